//! The fault module itself, loaded in this process with cryptoki: it must
//! behave like the SmartCard-HSM facts the other tests rely on. Alone in its
//! test binary because it sets the module's environment variables.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use hsmd_e2e::{fault_module, Faults, Token, PIN, SOFTHSM_LIB};

fn rv<T: std::fmt::Debug>(r: Result<T, Error>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a CKR_*, got {other:?}"),
    }
}

#[test]
fn the_fault_module_behaves_like_the_card() {
    let token = Token::new("module");
    let faults = Faults::new(&token, "profile = smartcardhsm\npin_tries = 3\n");
    // Only test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    std::env::set_var("PKCS11_FAULTS_MODULE", SOFTHSM_LIB);
    std::env::set_var("PKCS11_FAULTS_CONTROL", &faults.control);
    std::env::set_var("PKCS11_FAULTS_COUNTERS", &faults.counters);
    let p = Pkcs11::new(fault_module()).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| s.id() == token.slot)
        .unwrap();

    // The card's mechanisms: no GCM, no CBC-PAD, no key wrap.
    let mechs = p.get_mechanism_list(slot).unwrap();
    for hidden in [
        MechanismType::AES_GCM,
        MechanismType::AES_CBC_PAD,
        MechanismType::AES_KEY_WRAP,
    ] {
        assert!(!mechs.contains(&hidden), "{hidden}");
        assert_eq!(
            rv(p.get_mechanism_info(slot, hidden)),
            RvError::MechanismInvalid
        );
    }
    assert!(mechs.contains(&MechanismType::AES_CBC));

    // Wrong PIN: count-low, then final-try, then locked; zero flags at first.
    let s = p.open_rw_session(slot).unwrap();
    let wrong = AuthPin::new("000000".into());
    let info = p.get_token_info(slot).unwrap();
    assert!(!info.user_pin_count_low() && !info.user_pin_final_try() && !info.user_pin_locked());
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    let info = p.get_token_info(slot).unwrap();
    assert!(info.user_pin_count_low() && !info.user_pin_final_try());
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    let info = p.get_token_info(slot).unwrap();
    assert!(info.user_pin_count_low() && info.user_pin_final_try());
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinLocked
    );
    assert!(p.get_token_info(slot).unwrap().user_pin_locked());
    let right = AuthPin::new(PIN.into());
    assert_eq!(
        rv(s.login(UserType::User, Some(&right))),
        RvError::PinLocked
    );
    assert_eq!(faults.counter("logins"), 4);
    // Unblocked (as the SO would): a correct PIN resets the counter.
    faults.set("profile = smartcardhsm\npin_tries = 3\npin_left = 2\n");
    s.login(UserType::User, Some(&right)).unwrap();
    let info = p.get_token_info(slot).unwrap();
    assert!(!info.user_pin_count_low() && !info.user_pin_locked());

    // 20 keys come back at most 16 per C_FindObjects.
    for n in 0..20 {
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(format!("k{n}").into_bytes()),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    }
    let all = s
        .iter_objects_with_cache_size(
            &[Attribute::Class(ObjectClass::SECRET_KEY)],
            std::num::NonZeroUsize::new(64).unwrap(),
        )
        .unwrap()
        .count();
    assert_eq!(
        all, 16,
        "a caller asking for 64 at once sees one card-sized chunk"
    );
    assert_eq!(faults.counter("find_max_returned"), 16);

    // AES-CBC input is capped per call.
    let key = s.find_objects(&[Attribute::Label(b"k0".to_vec())]).unwrap()[0];
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesCbc([0; 16]), key, &[0u8; 2048])),
        RvError::DataLenRange
    );
    assert_eq!(
        s.encrypt(&Mechanism::AesCbc([0; 16]), key, &[0u8; 1024])
            .unwrap()
            .len(),
        1024
    );

    // An injected failure, once.
    faults.set("profile = smartcardhsm\nfail = C_GetSessionInfo CKR_SESSION_HANDLE_INVALID 1\n");
    assert_eq!(rv(s.get_session_info()), RvError::SessionHandleInvalid);
    s.get_session_info().unwrap();

    // Pulled: no token, old sessions dead for good, a new one needs a new login.
    faults.set(&format!(
        "profile = smartcardhsm\nremoved = {}\n",
        token.slot
    ));
    assert!(!p.get_slot_info(slot).unwrap().token_present());
    assert_eq!(rv(s.get_session_info()), RvError::DeviceRemoved);
    assert_eq!(rv(p.open_rw_session(slot)), RvError::TokenNotPresent);
    assert_eq!(rv(p.get_token_info(slot)), RvError::TokenNotPresent);
    faults.set("profile = smartcardhsm\n");
    assert!(p.get_slot_info(slot).unwrap().token_present());
    assert_eq!(rv(s.get_session_info()), RvError::DeviceRemoved);
    let fresh = p.open_rw_session(slot).unwrap();
    assert_eq!(
        fresh.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RwPublic
    );
    drop(fresh);
    std::mem::forget(s); // its handle is dead; closing it would only fail
    p.finalize().unwrap();
}
