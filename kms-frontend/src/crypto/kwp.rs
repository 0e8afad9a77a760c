//! AES key wrap with padding (RFC 5649) built on AWS-LC's AES block
//! cipher, for the key size AWS-LC's own key wrap lacks (AES-192; aws-lc-rs
//! `key_wrap` offers AES-128 and AES-256 only, and those use it). The
//! tests check this code against RFC 5649 section 6 (whose key-encryption
//! key is AES-192) and against AWS-LC's wrap for AES-128 and AES-256.

use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey};
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;

/// RFC 5649 section 3: the high half of the Alternative Initial Value.
const AIV_PREFIX: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];
/// RFC 3394 works on 64-bit semiblocks.
const SEMIBLOCK: usize = 8;

fn unbound(key: &[u8]) -> Result<UnboundCipherKey, CryptoError> {
    let algorithm = match key.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        32 => &cipher::AES_256,
        n => {
            return Err(CryptoError::BadKey(format!(
                "an AES key of {n} bytes was given; 16, 24 or 32 bytes are accepted"
            )))
        }
    };
    UnboundCipherKey::new(algorithm, key)
        .map_err(|_| CryptoError::Failed("AWS-LC refused the AES key-wrap key"))
}

/// Wraps `plaintext` (1 to 2^32 - 1 bytes) under the AES key `key`
/// (RFC 5649 section 4.1).
pub(super) fn wrap(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mli = u32::try_from(plaintext.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or_else(|| {
            CryptoError::BadInput(format!(
                "an RFC 5649 plaintext of {} bytes was given; 1 byte to 2^32 - 1 bytes are accepted",
                plaintext.len()
            ))
        })?;
    let aes = EncryptingKey::ecb(unbound(key)?)
        .map_err(|_| CryptoError::Failed("AWS-LC refused the AES key-wrap key"))?;
    let encrypt = |block: &mut [u8; 16]| {
        aes.encrypt(block)
            .map(|_| ())
            .map_err(|_| CryptoError::Failed("AWS-LC failed to encrypt an AES block"))
    };
    let mut aiv = [0u8; SEMIBLOCK];
    aiv[..4].copy_from_slice(&AIV_PREFIX);
    aiv[4..].copy_from_slice(&mli.to_be_bytes());
    let n = plaintext.len().div_ceil(SEMIBLOCK);
    // AIV || padded plaintext; the plaintext part is zeroized if we fail.
    let mut out = Zeroizing::new(vec![0u8; SEMIBLOCK * (n + 1)]);
    out[..SEMIBLOCK].copy_from_slice(&aiv);
    out[SEMIBLOCK..SEMIBLOCK + plaintext.len()].copy_from_slice(plaintext);
    let mut block = Zeroizing::new([0u8; 16]);
    if n == 1 {
        // Section 4.1: one AES block, AIV || P.
        block.copy_from_slice(&out[..16]);
        encrypt(&mut block)?;
        out.copy_from_slice(&block[..]);
    } else {
        // RFC 3394 section 2.2.1 with the AIV as initial value.
        for j in 0..6 {
            for i in 1..=n {
                block[..SEMIBLOCK].copy_from_slice(&out[..SEMIBLOCK]);
                block[SEMIBLOCK..].copy_from_slice(&out[i * SEMIBLOCK..(i + 1) * SEMIBLOCK]);
                encrypt(&mut block)?;
                let t = ((n * j + i) as u64).to_be_bytes();
                for (k, byte) in out[..SEMIBLOCK].iter_mut().enumerate() {
                    *byte = block[k] ^ t[k];
                }
                out[i * SEMIBLOCK..(i + 1) * SEMIBLOCK].copy_from_slice(&block[SEMIBLOCK..]);
            }
        }
    }
    Ok(std::mem::take(&mut *out))
}

/// Unwraps an RFC 5649 `ciphertext` (a multiple of 8 bytes, 16 or more)
/// under `key` (section 4.2); the integrity check is done without early
/// exit, and a failure returns no plaintext.
pub(super) fn unwrap(key: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if ciphertext.len() < 2 * SEMIBLOCK || !ciphertext.len().is_multiple_of(SEMIBLOCK) {
        return Err(CryptoError::BadInput(format!(
            "an RFC 5649 ciphertext of {} bytes was given; a multiple of 8 bytes, 16 or more, is accepted",
            ciphertext.len()
        )));
    }
    let aes = DecryptingKey::ecb(unbound(key)?)
        .map_err(|_| CryptoError::Failed("AWS-LC refused the AES key-wrap key"))?;
    let decrypt = |block: &mut [u8; 16]| {
        aes.decrypt(block, DecryptionContext::None)
            .map(|_| ())
            .map_err(|_| CryptoError::Failed("AWS-LC failed to decrypt an AES block"))
    };
    let n = ciphertext.len() / SEMIBLOCK - 1;
    let mut out = Zeroizing::new(ciphertext.to_vec());
    let mut block = Zeroizing::new([0u8; 16]);
    if n == 1 {
        block.copy_from_slice(ciphertext);
        decrypt(&mut block)?;
        out.copy_from_slice(&block[..]);
    } else {
        // RFC 3394 section 2.2.2.
        for j in (0..6).rev() {
            for i in (1..=n).rev() {
                let t = ((n * j + i) as u64).to_be_bytes();
                for k in 0..SEMIBLOCK {
                    block[k] = out[k] ^ t[k];
                }
                block[SEMIBLOCK..].copy_from_slice(&out[i * SEMIBLOCK..(i + 1) * SEMIBLOCK]);
                decrypt(&mut block)?;
                out[..SEMIBLOCK].copy_from_slice(&block[..SEMIBLOCK]);
                out[i * SEMIBLOCK..(i + 1) * SEMIBLOCK].copy_from_slice(&block[SEMIBLOCK..]);
            }
        }
    }
    // Section 3: the AIV prefix, 8 * (n - 1) < MLI <= 8 * n, zero padding.
    let mut bad = 0u8;
    for (byte, expected) in out[..4].iter().zip(AIV_PREFIX) {
        bad |= byte ^ expected;
    }
    let mli = u32::from_be_bytes([out[4], out[5], out[6], out[7]]) as usize;
    let max = SEMIBLOCK * n;
    let length_ok = mli > max - SEMIBLOCK && mli <= max;
    let mli = if length_ok { mli } else { max };
    for (index, byte) in out[SEMIBLOCK..].iter().enumerate() {
        // Bytes past MLI must be zero.
        let mask = if index >= mli { 0xff } else { 0 };
        bad |= byte & mask;
    }
    if bad != 0 || !length_ok {
        out.zeroize();
        return Err(CryptoError::Integrity(
            "the RFC 5649 integrity check does not match: wrong key or altered ciphertext",
        ));
    }
    Ok(Zeroizing::new(out[SEMIBLOCK..SEMIBLOCK + mli].to_vec()))
}
