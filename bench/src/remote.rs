//! Through hsmd: N client connections (the protocol crate's pipelining
//! client), each keeping up to D requests in flight (D lanes, each sending
//! its next request as soon as its previous one is answered).

use crate::cell::{Phase, ThreadStats};
use crate::kek::KEK_LABEL;
use crate::workload::{Workload, AES_LABEL, EC_LABEL, RSA_LABEL};
use anyhow::{anyhow, Context, Result};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{
    Client, Encrypt, EncryptionAlgorithm, GenerateKey, GenerateKeyPair, KeyPairAlgorithm, Random,
    SecretKeyAlgorithm, Sign, SignatureAlgorithm,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// Client name announced in the hello.
const CLIENT: &str = concat!("hsmd-bench/", env!("CARGO_PKG_VERSION"));

/// Creates AES-256 keys labelled `labels` on `slot` through hsmd
/// (sensitive, not extractable: hsmd's defaults).
///
/// Errors: hsmd refused one (the label names it).
pub async fn create_aes_keys(socket: &Path, slot: u64, labels: &[&str]) -> Result<()> {
    let c = Client::connect(socket, CLIENT).await?;
    for label in labels {
        c.call(
            None,
            &GenerateKey {
                slot,
                label: (*label).into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 256,
                extractable: false,
            },
        )
        .await
        .with_context(|| format!("generate_key aes {label}"))?;
    }
    Ok(())
}

/// Creates the bench keys through hsmd: AES-256 ([`AES_LABEL`] and the
/// frontend's KEK, [`KEK_LABEL`]), EC P-256 and RSA-2048 (sensitive, not
/// extractable: hsmd's defaults).
pub async fn create_keys(socket: &Path, slot: u64) -> Result<()> {
    create_aes_keys(socket, slot, &[AES_LABEL, KEK_LABEL]).await?;
    let c = Client::connect(socket, CLIENT).await?;
    c.call(
        None,
        &GenerateKeyPair {
            slot,
            label: EC_LABEL.into(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(hsmd_protocol::Curve::P256),
            extractable: false,
        },
    )
    .await
    .context("generate_key_pair ec")?;
    c.call(
        None,
        &GenerateKeyPair {
            slot,
            label: RSA_LABEL.into(),
            algorithm: KeyPairAlgorithm::Rsa,
            bits: Some(2048),
            curve: None,
            extractable: false,
        },
    )
    .await
    .context("generate_key_pair rsa")?;
    Ok(())
}

/// One request of a workload, built once and sent many times.
enum Request {
    Encrypt(Encrypt),
    Sign(Sign),
    Random(Random),
}

impl Request {
    fn new(workload: Workload, slot: u64) -> Self {
        let uid = |label: &str| format!("hsm::{slot}::{label}");
        match workload {
            Workload::AesGcm64 | Workload::AesGcm1k | Workload::AesGcm64k => {
                Self::Encrypt(Encrypt {
                    uid: uid(AES_LABEL),
                    algorithm: EncryptionAlgorithm::AesGcm,
                    plaintext: SecretBytes::new(workload.input()),
                    aad: None,
                    iv: None,
                })
            }
            Workload::AesCbc1k => Self::Encrypt(Encrypt {
                uid: uid(AES_LABEL),
                algorithm: EncryptionAlgorithm::AesCbcPad,
                plaintext: SecretBytes::new(workload.input()),
                aad: None,
                iv: None,
            }),
            Workload::EcdsaP256 => Self::Sign(Sign {
                uid: uid(EC_LABEL),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: SecretBytes::new(workload.input()),
            }),
            Workload::Rsa2048 => Self::Sign(Sign {
                uid: uid(RSA_LABEL),
                algorithm: SignatureAlgorithm::RsaPkcs1v15Sha256,
                data: SecretBytes::new(workload.input()),
            }),
            Workload::Random32 => Self::Random(Random {
                len: 32,
                slot: None,
            }),
        }
    }

    async fn send(&self, c: &Client) -> Result<Vec<u8>, hsmd_protocol::ClientError> {
        Ok(match self {
            Self::Encrypt(p) => c.call(None, p).await?.ciphertext,
            Self::Sign(p) => c.call(None, p).await?.signature,
            Self::Random(p) => c.call(None, p).await?.bytes.expose().to_vec(),
        })
    }
}

/// Connects `n` clients to hsmd at `socket`.
pub async fn connect(socket: &Path, n: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(socket, CLIENT).await?);
    }
    Ok(clients)
}

/// Starts `depth` lanes on each client; every lane sends `workload`
/// requests one after the other until `phase` says stop.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    clients: &[Client],
    depth: usize,
    workload: Workload,
    slot: u64,
    phase: Arc<Phase>,
) -> Vec<JoinHandle<Result<ThreadStats>>> {
    let request = Arc::new(Request::new(workload, slot));
    let mut lanes = Vec::new();
    for c in clients {
        for _ in 0..depth {
            let (c, request, phase) = (c.clone(), request.clone(), phase.clone());
            lanes.push(rt.spawn(async move {
                let mut stats = ThreadStats::new();
                let mut checked = false;
                while !phase.stopped() {
                    let t0 = Instant::now();
                    let out = request.send(&c).await;
                    let elapsed = t0.elapsed();
                    match out {
                        Ok(out) if checked || workload.check(&out) => {
                            checked = true;
                            stats.record(phase.measuring(), elapsed);
                        }
                        Ok(_) => return Err(anyhow!("{} gave a wrong result", workload.name())),
                        Err(e) => stats.error(phase.measuring(), &e.to_string()),
                    }
                }
                Ok(stats)
            }));
        }
    }
    lanes
}
