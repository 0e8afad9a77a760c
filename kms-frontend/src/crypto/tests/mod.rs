//! Tests of the crypto room: known-answer vectors, round trips with real
//! keys, and refusals of wrong input.

mod ec;
mod key;
mod rsa;
mod symmetric;

use std::sync::OnceLock;

use zeroize::Zeroizing;

use super::{generate_rsa, ClearKey, KeyPairDer, MaterialFormat};

/// Lower-case hex to bytes.
fn hex(text: &str) -> Vec<u8> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    data_encoding::HEXLOWER.decode(clean.as_bytes()).unwrap()
}

/// An AES key from hex.
fn aes(key_hex: &str) -> ClearKey {
    ClearKey::from_material(MaterialFormat::Raw, Zeroizing::new(hex(key_hex)), true).unwrap()
}

/// One RSA-2048 key pair for the whole test run (generation is slow).
fn rsa2048() -> &'static KeyPairDer {
    static PAIR: OnceLock<KeyPairDer> = OnceLock::new();
    PAIR.get_or_init(|| generate_rsa(2048).unwrap())
}

fn private(pair: &KeyPairDer) -> ClearKey {
    ClearKey::from_material(MaterialFormat::Pkcs8, pair.private_pkcs8.clone(), false).unwrap()
}

fn public(pair: &KeyPairDer) -> ClearKey {
    ClearKey::from_material(
        MaterialFormat::Spki,
        Zeroizing::new(pair.public_spki.clone()),
        false,
    )
    .unwrap()
}
