//! The workloads, each done the same way in every mode: the same key, the
//! same mechanism, the same input, the same result. hsmd hashes messages
//! itself and signs with the token's prehash mechanisms (`CKM_ECDSA`,
//! `CKM_RSA_PKCS` over a DigestInfo), chooses GCM IVs with the OS RNG, and
//! returns ECDSA signatures as DER; the direct mode does all of that too.

use serde::Serialize;

/// Label of the AES-256 key the AES-GCM workloads use.
pub const AES_LABEL: &str = "bench-aes";
/// Label of the P-256 key pair.
pub const EC_LABEL: &str = "bench-ec";
/// Label of the RSA-2048 key pair.
pub const RSA_LABEL: &str = "bench-rsa";

/// Length of the message signed by the signature workloads, in bytes.
pub const SIGN_MESSAGE_LEN: usize = 64;

/// One kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// AES-256-GCM encryption of 64 bytes.
    AesGcm64,
    /// AES-256-GCM encryption of 1 KiB.
    AesGcm1k,
    /// AES-256-GCM encryption of 64 KiB.
    AesGcm64k,
    /// AES-256-CBC encryption of 1 KiB with PKCS#7 padding (hsmd's
    /// `aes_cbc_pad`): the SmartCard-HSM's AES, which has no GCM. Not in
    /// [`Workload::ALL`]: the card section of the bench runs it (and
    /// `--workload aes-cbc1k` does on SoftHSMv2).
    AesCbc1k,
    /// ECDSA P-256 signature (SHA-256) of a 64-byte message.
    EcdsaP256,
    /// RSA-2048 PKCS#1 v1.5 signature (SHA-256) of a 64-byte message.
    Rsa2048,
    /// 32 random bytes from the token.
    Random32,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 6] = [
        Self::AesGcm64,
        Self::AesGcm1k,
        Self::AesGcm64k,
        Self::EcdsaP256,
        Self::Rsa2048,
        Self::Random32,
    ];

    /// Name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesGcm64 => "aes-gcm 64 B",
            Self::AesGcm1k => "aes-gcm 1 KiB",
            Self::AesGcm64k => "aes-gcm 64 KiB",
            Self::AesCbc1k => "aes-cbc 1 KiB",
            Self::EcdsaP256 => "ecdsa p256 sign",
            Self::Rsa2048 => "rsa2048 pkcs1 sign",
            Self::Random32 => "random 32 B",
        }
    }

    /// Plaintext or message length, in bytes.
    pub fn input_len(self) -> usize {
        match self {
            Self::AesGcm64 => 64,
            Self::AesGcm1k | Self::AesCbc1k => 1024,
            Self::AesGcm64k => 64 * 1024,
            Self::EcdsaP256 | Self::Rsa2048 => SIGN_MESSAGE_LEN,
            Self::Random32 => 32,
        }
    }

    /// The input bytes (a fixed pattern; their value does not matter).
    pub fn input(self) -> Vec<u8> {
        (0..self.input_len()).map(|i| (i % 251) as u8).collect()
    }

    /// Length of the ciphertext of an encryption workload (GCM without its
    /// tag; CBC padded to the next whole block), None for the others.
    pub fn ciphertext_len(self) -> Option<usize> {
        match self {
            Self::AesGcm64 | Self::AesGcm1k | Self::AesGcm64k => Some(self.input_len()),
            Self::AesCbc1k => Some((self.input_len() / 16 + 1) * 16),
            Self::EcdsaP256 | Self::Rsa2048 | Self::Random32 => None,
        }
    }

    /// Length of a correct result (ciphertext + tag, DER signature bounds
    /// aside): used to check every mode really did the work.
    pub fn check(self, out: &[u8]) -> bool {
        match self {
            Self::AesGcm64 | Self::AesGcm1k | Self::AesGcm64k | Self::AesCbc1k => {
                Some(out.len()) == self.ciphertext_len()
            }
            // DER SEQUENCE of two INTEGERs of up to 33 bytes each.
            Self::EcdsaP256 => (8..=72).contains(&out.len()) && out[0] == 0x30,
            Self::Rsa2048 => out.len() == 256,
            Self::Random32 => out.len() == 32,
        }
    }
}
