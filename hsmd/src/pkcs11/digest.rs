//! Message digests computed in hsmd, for tokens that sign only prehashed
//! values (raw `CKM_ECDSA`, `CKM_RSA_PKCS` with a DigestInfo, `CKM_RSA_PKCS_PSS`).

use cryptoki::mechanism::rsa::PkcsMgfType;
use cryptoki::mechanism::MechanismType;
use sha2::Digest;

/// A SHA-2 hash used by a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256 (32 bytes).
    Sha256,
    /// SHA-384 (48 bytes).
    Sha384,
    /// SHA-512 (64 bytes).
    Sha512,
}

impl Hash {
    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Digest length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The PKCS#11 digest mechanism (for PSS parameters).
    pub fn mechanism(self) -> MechanismType {
        match self {
            Self::Sha256 => MechanismType::SHA256,
            Self::Sha384 => MechanismType::SHA384,
            Self::Sha512 => MechanismType::SHA512,
        }
    }

    /// MGF1 with this hash.
    pub fn mgf1(self) -> PkcsMgfType {
        match self {
            Self::Sha256 => PkcsMgfType::MGF1_SHA256,
            Self::Sha384 => PkcsMgfType::MGF1_SHA384,
            Self::Sha512 => PkcsMgfType::MGF1_SHA512,
        }
    }

    /// DER prefix of the DigestInfo for RSASSA-PKCS1-v1_5 (RFC 8017 section 9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Self::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Self::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Self::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// DigestInfo (prefix then digest) of `data`.
    pub fn digest_info(self, data: &[u8]) -> Vec<u8> {
        let mut out = self.digest_info_prefix().to_vec();
        out.extend_from_slice(&self.digest(data));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_lengths_match_prefix() {
        for h in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            let di = h.digest_info(b"abc");
            // The outer SEQUENCE length byte covers the rest of the structure.
            assert_eq!(di[1] as usize, di.len() - 2);
            assert_eq!(*h.digest_info_prefix().last().unwrap() as usize, h.len());
        }
    }
}
