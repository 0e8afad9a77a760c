//! On the card rig (tests/src/card.rs): one sentence for every failure on
//! the card path, at start-up and in `status`, and the PIN rules against the
//! card's real retry counter (three tries).

use hsmd_e2e::card::{self, Rig, CARD_SLOT, EMPTY_SLOT};
use hsmd_e2e::{run_hsmd_to_exit, KillOnDrop, Token, PIN};
use hsmd_protocol::Status;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// hsmd on `toml` exits with `code`; its stderr holds every needle and the
/// error is one line (the start-up log lines aside).
fn fails_with(dir: &Token, toml: &str, code: i32, needles: &[&str]) -> String {
    let (status, stderr) = run_hsmd_to_exit(dir, toml, &[]);
    assert_eq!(status.code(), Some(code), "hsmd's exit; stderr: {stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("hsmd: ")).collect();
    assert_eq!(error.len(), 1, "one error line expected: {stderr}");
    for n in needles {
        assert!(error[0].contains(n), "the error lacks {n:?}: {}", error[0]);
    }
    assert!(error[0].len() < 600, "an overlong sentence: {}", error[0]);
    error[0].to_owned()
}

#[test]
fn pcscd_not_running_is_named_at_start_up_and_in_status() {
    let Some(rig) = Rig::take("pcscd_not_running") else {
        return;
    };
    let dir = card::scratch();
    let mut d = card::start(&dir, "");
    rig.down();
    d.wait_for_line("pcscd, the smart-card reader service, is not running");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let st = rt.block_on(async { d.client().await.call(None, &Status {}).await.unwrap() });
    let s = &st.slots[0];
    let last = s.last_error.clone().unwrap_or_default();
    assert_eq!(s.state, "error", "{s:?}");
    assert!(
        last.contains("CKR_DEVICE_ERROR") && last.contains("/run/pcscd/pcscd.comm"),
        "{last}"
    );
    let shown = String::from_utf8_lossy(&d.hsmctl(None, &["status"]).stdout).into_owned();
    assert!(
        shown.contains("is not running (nothing answers on /run/pcscd/pcscd.comm"),
        "{shown}"
    );
    d.stop();
    // Today's message was "C_GetSlotList ... failed: ... Some problem has occurred with the token and/or slot".
    fails_with(
        &dir,
        &card::card_config(&dir, ""),
        1,
        &[
            "CKR_DEVICE_ERROR",
            "pcscd, the smart-card reader service, is not running",
            "systemctl start pcscd.socket",
        ],
    );
}

#[test]
fn pcscd_without_a_reader_is_named() {
    let Some(rig) = Rig::take("pcscd_without_a_reader") else {
        return;
    };
    rig.down();
    let dir = card::scratch();
    let empty = dir.path("no-readers");
    std::fs::create_dir(&empty).expect("mkdir");
    // pcscd with an empty reader configuration: it serves, and sees no reader.
    let mut pcscd = KillOnDrop(
        Command::new("/usr/sbin/pcscd")
            .args(["--foreground", "--info", "--config"])
            .arg(&empty)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pcscd"),
    );
    let out = pcscd.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("daemon ready"))),
        "pcscd did not get ready"
    );
    fails_with(
        &dir,
        &card::card_config(&dir, ""),
        1,
        &["reports no slot", "sees no reader", "opensc-tool -l"],
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pcscd.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill pcscd");
    pcscd.0.wait().expect("wait pcscd");
}

#[test]
fn empty_reader_and_blank_card_are_named_with_the_reader() {
    let Some(rig) = Rig::take("empty_reader_and_blank_card") else {
        return;
    };
    let dir = card::scratch();
    let both = card::config_for(
        &dir,
        &format!("hsm_slot = [{CARD_SLOT}, {EMPTY_SLOT}]\nhsm_password = [\"{PIN}\", \"{PIN}\"]"),
        "",
    );
    fails_with(
        &dir,
        &both,
        1,
        &[
            "slot 5: no token in slot 5 (reader \"Virtual PCD 00 01\")",
            "the reader holds no card",
        ],
    );
    // A SmartCard-HSM that was never initialized shows no token either.
    rig.pull();
    let run = std::env::var("CARD_STACK_RUN").unwrap_or_else(|_| "/tmp/card-stack".into());
    std::fs::remove_file(format!("{run}/card/memory.flash")).expect("wipe the card");
    let out = Command::new(rig.dir().join("up.sh"))
        .env("UP_TIMEOUT", "5")
        .output()
        .expect("up.sh");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("token not visible"),
        "up.sh with a blank card: {text}"
    );
    fails_with(
        &dir,
        &card::card_config(&dir, ""),
        1,
        &[
            "no token in slot 1 (reader \"Virtual PCD 00 00\")",
            "never initialized: sc-hsm-tool --initialize",
        ],
    );
}

#[test]
fn a_file_that_is_not_a_pkcs11_module_is_named() {
    let dir = Token::scratch(CARD_SLOT);
    let toml = |lib: &str| card::card_config(&dir, "").replace(card::CARD_LIB, lib);
    let text = dir.path("not-a-library.so");
    std::fs::write(&text, "not ELF").expect("write");
    fails_with(
        &dir,
        &toml(&text.display().to_string()),
        1,
        &[
            "is not a PKCS#11 module",
            "cannot be loaded as a shared library",
            "hsm_library must name",
        ],
    );
    // A shared library, but not a PKCS#11 module (libc has no C_GetFunctionList).
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .expect("libc.so.6");
    fails_with(
        &dir,
        &toml(libc),
        1,
        &["is not a PKCS#11 module", "without C_GetFunctionList"],
    );
    fails_with(
        &dir,
        &toml("/nonexistent/libsc-hsm-pkcs11.so"),
        1,
        &[
            "/nonexistent/libsc-hsm-pkcs11.so does not exist",
            "sc-hsm-embedded",
        ],
    );
}

#[test]
fn a_wrong_pin_costs_one_try_and_the_final_try_is_never_spent() {
    let Some(_rig) = Rig::take("pin_counter") else {
        return;
    };
    let dir = card::scratch();
    let wrong = card::card_config(&dir, "").replace(PIN, "000000");
    assert_eq!(card::pin_flags(), (false, false, false));
    let first = fails_with(
        &dir,
        &wrong,
        3,
        &["slot 1", "CKR_PIN_INCORRECT", "will not try it again"],
    );
    assert!(!first.contains("000000"), "the PIN was printed: {first}");
    // Exactly one try: the card says "count low", not "final try".
    assert_eq!(card::pin_flags(), (true, false, false));
    fails_with(
        &dir,
        &wrong,
        3,
        &["CKR_PIN_INCORRECT", "already reported failed tries"],
    );
    assert_eq!(card::pin_flags(), (true, true, false));
    // At the final try hsmd tries neither a wrong nor the right PIN.
    for toml in [wrong.clone(), card::card_config(&dir, "")] {
        fails_with(
            &dir,
            &toml,
            3,
            &[
                "one try left (CKF_USER_PIN_FINAL_TRY)",
                "will not spend it",
                "sc-hsm-tool --unlock-pin",
            ],
        );
        assert_eq!(
            card::pin_flags(),
            (true, true, false),
            "hsmd spent the final try"
        );
    }
    // The right PIN, once by hand, resets the counter; hsmd starts.
    assert!(card::login_once(PIN));
    assert_eq!(card::pin_flags(), (false, false, false));
    drop(card::start(&dir, ""));
    // Locked: named with the unlock command, and never tried.
    for _ in 0..3 {
        assert!(!card::login_once("000000"));
    }
    assert!(card::pin_flags().2, "the PIN is not locked");
    fails_with(
        &dir,
        &card::card_config(&dir, ""),
        3,
        &["is locked (CKF_USER_PIN_LOCKED", "sc-hsm-tool --unlock-pin"],
    );
    card::unblock();
    drop(card::start(&dir, ""));
}

#[test]
fn a_wrong_pin_while_running_blocks_the_slot_after_one_try() {
    let Some(rig) = Rig::take("pin_while_running") else {
        return;
    };
    let dir = card::scratch();
    let mut d = card::start(&dir, "");
    // The PIN is changed behind hsmd's back; the card is pulled and put back,
    // so hsmd logs in again on its own: with the old PIN, once.
    let out = card::pkcs11_tool(&[
        "--login",
        "--pin",
        PIN,
        "--change-pin",
        "--new-pin",
        "123456",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rig.pull();
    d.wait_for_line("slot now token_not_present");
    rig.up();
    d.wait_for_line("slot now pin_rejected");
    assert_eq!(
        card::pin_flags(),
        (true, false, false),
        "more than one try spent"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let st = rt.block_on(async { d.client().await.call(None, &Status {}).await.unwrap() });
    let last = st.slots[0].last_error.clone().unwrap_or_default();
    assert!(
        last.contains("CKR_PIN_INCORRECT") && last.contains("will not try it again"),
        "{last}"
    );
    // Nothing more is tried: a request is refused without a login.
    let shown = d.hsmctl(None, &["keys"]);
    assert!(!shown.status.success());
    assert_eq!(card::pin_flags(), (true, false, false), "hsmd tried again");
    d.stop();
}
