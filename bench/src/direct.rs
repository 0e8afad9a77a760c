//! The limit: in-process cryptoki calls from N threads, each with its own
//! logged-in session and the key handles looked up once, doing exactly the
//! token work hsmd does for the same request.

use crate::cell::{Phase, ThreadStats};
use crate::servers::PIN;
use crate::workload::{Workload, AES_LABEL, EC_LABEL, RSA_LABEL};
use anyhow::{anyhow, Context, Result};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// DER prefix of a SHA-256 DigestInfo (RFC 8017 section 9.2, note 1), as hsmd uses.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The module, loaded and initialized in the bench process.
pub struct Direct {
    pkcs11: Pkcs11,
    slot: Slot,
}

impl Direct {
    /// Loads `module` and initializes it with OS locking (as hsmd does).
    pub fn open(module: &Path, slot_id: u64) -> Result<Self> {
        let pkcs11 = Pkcs11::new(module)
            .with_context(|| format!("cannot load the PKCS#11 module {}", module.display()))?;
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .context("C_Initialize")?;
        let slot = pkcs11
            .get_all_slots()?
            .into_iter()
            .find(|s| s.id() == slot_id)
            .ok_or_else(|| anyhow!("slot {slot_id} not found"))?;
        Ok(Self { pkcs11, slot })
    }

    /// Runs `workload` on `threads` threads until `phase` says stop; each
    /// thread first opens and logs in its session and finds its key, then
    /// waits on `ready` (shared with the caller, `threads + 1` parties).
    pub fn spawn(
        &self,
        workload: Workload,
        threads: usize,
        phase: Arc<Phase>,
        ready: Arc<Barrier>,
    ) -> Vec<std::thread::JoinHandle<Result<ThreadStats>>> {
        (0..threads)
            .map(|_| {
                let (pkcs11, slot, phase, ready) =
                    (self.pkcs11.clone(), self.slot, phase.clone(), ready.clone());
                std::thread::spawn(move || {
                    let worker = Worker::open(&pkcs11, slot, workload);
                    ready.wait();
                    let worker = worker?;
                    let mut stats = ThreadStats::new();
                    let mut checked = false;
                    while !phase.stopped() {
                        let t0 = Instant::now();
                        let out = worker.run();
                        let elapsed = t0.elapsed();
                        match out {
                            Ok(out) if checked || workload.check(&out) => {
                                checked = true;
                                stats.record(phase.measuring(), elapsed);
                            }
                            Ok(_) => {
                                return Err(anyhow!("{} gave a wrong result", workload.name()))
                            }
                            Err(e) => {
                                stats.error(phase.measuring(), &e.to_string());
                            }
                        }
                    }
                    Ok(stats)
                })
            })
            .collect()
    }
}

struct Worker {
    session: Session,
    key: Option<ObjectHandle>,
    workload: Workload,
    input: Vec<u8>,
}

fn find(session: &Session, label: &str, class: ObjectClass) -> Result<ObjectHandle> {
    session
        .find_objects(&[
            Attribute::Token(true),
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no key labelled {label} on the token"))
}

impl Worker {
    fn open(pkcs11: &Pkcs11, slot: Slot, workload: Workload) -> Result<Self> {
        let session = pkcs11.open_rw_session(slot)?;
        match session.login(UserType::User, Some(&SecretString::from(PIN))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e).context("C_Login"),
        }
        let key = match workload {
            Workload::AesGcm64 | Workload::AesGcm1k | Workload::AesGcm64k | Workload::AesCbc1k => {
                Some(find(&session, AES_LABEL, ObjectClass::SECRET_KEY)?)
            }
            Workload::EcdsaP256 => Some(find(&session, EC_LABEL, ObjectClass::PRIVATE_KEY)?),
            Workload::Rsa2048 => Some(find(&session, RSA_LABEL, ObjectClass::PRIVATE_KEY)?),
            Workload::Random32 => None,
        };
        Ok(Self {
            session,
            key,
            workload,
            input: workload.input(),
        })
    }

    /// One operation; returns what hsmd would return (ciphertext without
    /// the tag, DER signature, random bytes).
    fn run(&self) -> Result<Vec<u8>> {
        let s = &self.session;
        let key = || self.key.context("the workload has no key");
        Ok(match self.workload {
            Workload::AesGcm64 | Workload::AesGcm1k | Workload::AesGcm64k => {
                let mut iv = [0u8; 12];
                getrandom::getrandom(&mut iv).map_err(|e| anyhow!("getrandom: {e}"))?;
                let params = GcmParams::new(&mut iv, &[], 128u64.into())?;
                let mut out = s.encrypt(&Mechanism::AesGcm(params), key()?, &self.input)?;
                let _tag = out.split_off(out.len().saturating_sub(16));
                out
            }
            Workload::AesCbc1k => {
                let mut iv = [0u8; 16];
                getrandom::getrandom(&mut iv).map_err(|e| anyhow!("getrandom: {e}"))?;
                s.encrypt(&Mechanism::AesCbcPad(iv), key()?, &self.input)?
            }
            Workload::EcdsaP256 => {
                let digest = Sha256::digest(&self.input);
                let raw = s.sign(&Mechanism::Ecdsa, key()?, &digest)?;
                p256::ecdsa::Signature::from_slice(&raw)
                    .map_err(|e| anyhow!("token's ECDSA signature: {e}"))?
                    .to_der()
                    .as_bytes()
                    .to_vec()
            }
            Workload::Rsa2048 => {
                let mut info = SHA256_DIGEST_INFO.to_vec();
                info.extend_from_slice(&Sha256::digest(&self.input));
                s.sign(&Mechanism::RsaPkcs, key()?, &info)?
            }
            Workload::Random32 => s.generate_random_vec(32)?,
        })
    }
}
