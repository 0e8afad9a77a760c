//! The soak's clients on hsmd's socket: admins creating, using and
//! destroying keys, users encrypting, signing and listing the bench keys.
//! Every answer is checked.

use super::tally::{Failure, Tally};
use crate::workload::{AES_LABEL, EC_LABEL, RSA_LABEL};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{
    Client, ClientError, Curve, Destroy, Encrypt, EncryptionAlgorithm, GenerateKey,
    GenerateKeyPair, KeyPairAlgorithm, KeyRef, ListKeys, SecretKeyAlgorithm, Sign,
    SignatureAlgorithm,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client name announced in the hello.
const CLIENT: &str = concat!("hsmd-soak/", env!("CARGO_PKG_VERSION"));
/// Bytes encrypted or signed per request.
const DATA_LEN: usize = 64;
/// Pause before reconnecting after a lost connection (pacing, not waiting
/// for anything).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// One client: where, which slot, its number, the shared tally, when to stop.
#[derive(Clone)]
pub struct Lane {
    /// hsmd's socket.
    pub socket: PathBuf,
    /// The bench token's slot.
    pub slot: u64,
    /// This client's number (labels of its keys, where it starts in the mix).
    pub n: usize,
    /// Where results go.
    pub tally: Arc<Tally>,
    /// When to stop (after the operation or round under way).
    pub deadline: Instant,
}

fn failure(e: ClientError) -> Failure {
    match e {
        ClientError::Server(b) => Failure::new(
            match &b.ckr {
                Some(ckr) => format!("hsmd {} {ckr}", b.code),
                None => format!("hsmd {}", b.code),
            },
            b.message,
        ),
        ClientError::Closed(_) | ClientError::Connect { .. } | ClientError::Handshake(_) => {
            Failure {
                code: "hsmd connection".into(),
                message: e.to_string(),
                reconnect: true,
            }
        }
        other => Failure::new("hsmd client", other.to_string()),
    }
}

fn wrong(what: String) -> Failure {
    Failure::new("wrong answer", what)
}

fn data() -> SecretBytes {
    SecretBytes::new((0..DATA_LEN).map(|i| i as u8).collect())
}

impl Lane {
    fn uid(&self, label: &str) -> String {
        format!("hsm::{}::{label}", self.slot)
    }

    async fn connect(&self) -> Option<Client> {
        loop {
            let r = Client::connect(&self.socket, CLIENT).await;
            match r {
                Ok(c) => return Some(c),
                Err(e) => {
                    self.tally.record("hsmd connect", &Err(failure(e)));
                    if Instant::now() >= self.deadline {
                        return None;
                    }
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }

    /// Counts `op`'s outcome; false when the connection must be replaced.
    fn note(&self, op: &'static str, r: Result<(), Failure>) -> bool {
        let reconnect = matches!(&r, Err(f) if f.reconnect);
        self.tally.record(op, &r);
        !reconnect
    }

    /// A user: AES-GCM encryptions, ECDSA and RSA signatures with the bench
    /// keys, and key listings, in a fixed mix, until the deadline.
    pub async fn user(self) {
        let Some(mut c) = self.connect().await else {
            return;
        };
        let mut i = self.n;
        while Instant::now() < self.deadline {
            i += 1;
            let (op, r) = match i % 6 {
                1 => ("hsmd sign ecdsa", self.sign(&c, EC_LABEL, true).await),
                3 => ("hsmd sign rsa", self.sign(&c, RSA_LABEL, false).await),
                5 => ("hsmd list_keys", self.list(&c).await),
                _ => ("hsmd encrypt", self.encrypt(&c, AES_LABEL).await),
            };
            if !self.note(op, r) {
                match self.connect().await {
                    Some(new) => c = new,
                    None => return,
                }
            }
        }
    }

    /// An admin: rounds of create, use once, destroy (an AES key, every
    /// eighth round an EC key pair), each with a label of its own, until
    /// the deadline. A round under way is finished, so no key is left.
    pub async fn admin(self) {
        let Some(mut c) = self.connect().await else {
            return;
        };
        let mut round = 0usize;
        while Instant::now() < self.deadline {
            round += 1;
            let label = format!("soak-s{}-{round}", self.n);
            let ok = if round.is_multiple_of(8) {
                self.ec_round(&c, &label).await
            } else {
                self.aes_round(&c, &label).await
            };
            if !ok {
                match self.connect().await {
                    Some(new) => c = new,
                    None => return,
                }
            }
        }
    }

    async fn aes_round(&self, c: &Client, label: &str) -> bool {
        let created = c
            .call(
                None,
                &GenerateKey {
                    slot: self.slot,
                    label: label.into(),
                    algorithm: SecretKeyAlgorithm::Aes,
                    bits: 128,
                    extractable: false,
                },
            )
            .await
            .map_err(failure)
            .and_then(|k| match k.label == label {
                true => Ok(()),
                false => Err(wrong(format!("generate_key made {}", k.uid))),
            });
        let made = created.is_ok();
        if !self.note("hsmd generate_key", created) {
            return false;
        }
        if !made {
            return true;
        }
        let used = self.encrypt(c, label).await;
        if !self.note("hsmd encrypt", used) {
            return false;
        }
        self.destroy(c, label).await
    }

    async fn ec_round(&self, c: &Client, label: &str) -> bool {
        let created = c
            .call(
                None,
                &GenerateKeyPair {
                    slot: self.slot,
                    label: label.into(),
                    algorithm: KeyPairAlgorithm::Ec,
                    bits: None,
                    curve: Some(Curve::P256),
                    extractable: false,
                },
            )
            .await
            .map(|_| ())
            .map_err(failure);
        let made = created.is_ok();
        if !self.note("hsmd generate_key_pair", created) {
            return false;
        }
        if !made {
            return true;
        }
        let used = self.sign(c, label, true).await;
        if !self.note("hsmd sign ecdsa", used) {
            return false;
        }
        self.destroy(c, label).await && self.destroy(c, &format!("{label}_pk")).await
    }

    async fn destroy(&self, c: &Client, label: &str) -> bool {
        let r = c
            .call(
                None,
                &Destroy(KeyRef {
                    uid: self.uid(label),
                }),
            )
            .await
            .map(|_| ())
            .map_err(failure);
        self.note("hsmd destroy", r)
    }

    async fn encrypt(&self, c: &Client, label: &str) -> Result<(), Failure> {
        let r = c
            .call(
                None,
                &Encrypt {
                    uid: self.uid(label),
                    algorithm: EncryptionAlgorithm::AesGcm,
                    plaintext: data(),
                    aad: None,
                    iv: None,
                },
            )
            .await
            .map_err(failure)?;
        match (r.ciphertext.len(), r.tag.map(|t| t.len())) {
            (DATA_LEN, Some(16)) => Ok(()),
            other => Err(wrong(format!(
                "encrypt gave (ciphertext, tag) lengths {other:?}"
            ))),
        }
    }

    async fn sign(&self, c: &Client, label: &str, ec: bool) -> Result<(), Failure> {
        let algorithm = match ec {
            true => SignatureAlgorithm::EcdsaSha256,
            false => SignatureAlgorithm::RsaPkcs1v15Sha256,
        };
        let r = c
            .call(
                None,
                &Sign {
                    uid: self.uid(label),
                    algorithm,
                    data: data(),
                },
            )
            .await
            .map_err(failure)?;
        let s = &r.signature;
        let good = match ec {
            true => (8..=72).contains(&s.len()) && s[0] == 0x30,
            false => s.len() == 256,
        };
        match good {
            true => Ok(()),
            false => Err(wrong(format!("a {}-byte signature", s.len()))),
        }
    }

    async fn list(&self, c: &Client) -> Result<(), Failure> {
        let r = c
            .call(
                None,
                &ListKeys {
                    slot: Some(self.slot),
                    kind: None,
                },
            )
            .await
            .map_err(failure)?;
        match r.keys.iter().any(|k| k.label == AES_LABEL) {
            true => Ok(()),
            false => Err(wrong(format!(
                "list_keys without {AES_LABEL} ({} keys)",
                r.keys.len()
            ))),
        }
    }
}

/// The labels of every key on the token (for the check that the admins
/// left none behind).
pub async fn labels(socket: &std::path::Path, slot: u64) -> anyhow::Result<Vec<String>> {
    let c = Client::connect(socket, CLIENT).await?;
    let r = c
        .call(
            None,
            &ListKeys {
                slot: Some(slot),
                kind: None,
            },
        )
        .await?;
    Ok(r.keys.into_iter().map(|k| k.label).collect())
}
