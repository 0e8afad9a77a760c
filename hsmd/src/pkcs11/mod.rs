//! The PKCS#11 engine: one module context, one worker per configured slot,
//! and the key operations of docs/protocol.md on top of cryptoki.

pub mod cardpath;
pub mod cipher;
pub mod digest;
pub mod ecdsa;
pub mod engine;
pub mod error;
pub mod export;
pub mod generate;
pub mod keys;
pub mod library;
pub mod login;
pub mod mechanisms;
pub mod profile;
pub mod random;
pub mod signature;
pub mod slot;
pub mod status;
pub mod storage;
