//! Operations of protocol version 1: one parameter type per `op`, each naming
//! its result type through [`Op`] (docs/protocol.md "Operations"), and the
//! one list of them all ([`for_each_operation!`](crate::for_each_operation))
//! from which `message::Operation`, its names, decoder and encoder are
//! written. Adding an operation to the protocol is this file only: its
//! parameter type with an `op!` line, and its name in that list.

use crate::b64::{self, SecretBytes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An operation: its wire name (`op`) and result type.
pub trait Op: Serialize {
    /// The `op` string, e.g. `"encrypt"`.
    const NAME: &'static str;
    /// The type of the response's `result` object.
    type Output: DeserializeOwned;

    /// The key uid the operation names or creates, if any (for logs and
    /// audit records); None by default.
    fn key_uid(&self) -> Option<String> {
        None
    }
}

/// `op!(Params, "name", Result)`, with `key_uid: |p| <uid of p>` for an
/// operation that names or creates a key.
macro_rules! op {
    ($params:ty, $name:literal, $out:ty) => {
        impl Op for $params {
            const NAME: &'static str = $name;
            type Output = $out;
        }
    };
    ($params:ty, $name:literal, $out:ty, key_uid: |$p:ident| $uid:expr) => {
        impl Op for $params {
            const NAME: &'static str = $name;
            type Output = $out;
            fn key_uid(&self) -> Option<String> {
                let $p = self;
                Some($uid)
            }
        }
    };
}

/// Every operation of version 1, in the order error messages list them:
/// calls the macro `$m` with the parameter types, each of which is also its
/// `message::Operation` variant's name. The one place an operation is
/// declared; `message.rs` writes `Operation`, `OP_NAMES`, `name`, `key_uid`,
/// the decoder and the encoder from it, and hsmd can write its dispatch
/// from it too.
#[macro_export]
macro_rules! for_each_operation {
    ($m:ident) => {
        $m! {
            Status,
            ListKeys,
            GetKey,
            GenerateKey,
            GenerateKeyPair,
            Export,
            Encrypt,
            Decrypt,
            Sign,
            Verify,
            Random,
            Destroy,
        }
    };
}

/// Kind of key object (`kind` of a key info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// AES secret key (`CKK_AES`).
    Aes,
    /// RSA private key.
    RsaPrivate,
    /// RSA public key.
    RsaPublic,
    /// EC private key.
    EcPrivate,
    /// EC public key.
    EcPublic,
}

/// NIST curve of an EC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    /// NIST P-256 (secp256r1, OID 1.2.840.10045.3.1.7).
    P256,
    /// NIST P-384 (secp384r1, OID 1.3.132.0.34).
    P384,
    /// NIST P-521 (secp521r1, OID 1.3.132.0.35).
    P521,
}

impl Curve {
    /// Size of the curve's field, in bits (256, 384, 521).
    pub fn bits(self) -> u32 {
        match self {
            Self::P256 => 256,
            Self::P384 => 384,
            Self::P521 => 521,
        }
    }
}

/// What a key may be used for, from `CKA_ENCRYPT`, `CKA_DECRYPT`, `CKA_SIGN`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// `CKA_ENCRYPT`.
    Encrypt,
    /// `CKA_DECRYPT`.
    Decrypt,
    /// `CKA_SIGN`.
    Sign,
    /// `CKA_VERIFY`.
    Verify,
    /// `CKA_WRAP`.
    Wrap,
    /// `CKA_UNWRAP`.
    Unwrap,
    /// `CKA_DERIVE`.
    Derive,
}

/// Description of one key object (docs/protocol.md "Keys").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `hsm::<slot>::<label>`.
    pub uid: String,
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// The label part of `uid` (docs/protocol.md "Keys"): the `CKA_LABEL`
    /// in its text form, or, for the public key of a pair that carries the
    /// private key's label, that label + `_pk`.
    pub label: String,
    /// `CKA_ID` in lower-case hex (empty when the object has none).
    #[serde(default)]
    pub id: String,
    /// Kind of key.
    pub kind: KeyKind,
    /// Key size in bits: AES key, RSA modulus, EC field size.
    pub bits: u32,
    /// EC curve, null for other kinds.
    pub curve: Option<Curve>,
    /// `CKA_SENSITIVE` (false for public keys).
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE` (true for public keys).
    pub extractable: bool,
    /// Allowed usages.
    pub usages: Vec<Usage>,
}

/// `status`: no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}
op!(Status, "status", StatusResult);

/// Result of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResult {
    /// Configured `hsm_model`.
    pub model: String,
    /// The PKCS#11 library (`C_GetInfo`).
    pub library: LibraryInfo,
    /// One entry per configured slot, in configuration order.
    pub slots: Vec<SlotStatus>,
}

/// The PKCS#11 library in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryInfo {
    /// File path of the module.
    pub path: String,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `libraryDescription`.
    pub description: String,
    /// `libraryVersion`, as `major.minor`.
    pub version: String,
}

/// State of one configured slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// Token label, empty when no token is present.
    pub token_label: String,
    /// Token serial number, empty when no token is present.
    pub serial: String,
    /// A token is in the slot.
    pub present: bool,
    /// hsmd is logged in as the user on this slot.
    pub logged_in: bool,
    /// `CKF_USER_PIN_COUNT_LOW`.
    pub pin_count_low: bool,
    /// `CKF_USER_PIN_FINAL_TRY`.
    pub pin_final_try: bool,
    /// `CKF_USER_PIN_LOCKED`.
    pub pin_locked: bool,
    /// Mechanisms the token offers, as `CKM_*` names.
    pub mechanisms: Vec<String>,
    /// What hsmd makes of the slot: `ready`, `token_not_present`,
    /// `pin_rejected` (hsmd will not log in again on its own) or `error`.
    #[serde(default)]
    pub state: String,
    /// The last failure that changed the slot's state, one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `list_keys`: every key object, optionally of one slot and one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    /// Only this slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
}
op!(ListKeys, "list_keys", ListKeysResult);

/// Result of `list_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListKeysResult {
    /// The keys, sorted by slot then label.
    pub keys: Vec<KeyInfo>,
}

/// Parameters naming one key: `get_key`, `export`, `destroy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// `hsm::<slot>::<label>`.
    pub uid: String,
}

/// `get_key`: one key's info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GetKey(pub KeyRef);
op!(GetKey, "get_key", KeyInfo, key_uid: |p| p.0.uid.clone());

/// `export`: public keys as SPKI DER, extractable secret keys raw or PKCS#8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Export(pub KeyRef);
op!(Export, "export", ExportResult, key_uid: |p| p.0.uid.clone());

/// `destroy`: delete a key object (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Destroy(pub KeyRef);
op!(Destroy, "destroy", KeyRef, key_uid: |p| p.0.uid.clone());

/// Format of exported key data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// X.509 SubjectPublicKeyInfo, DER.
    SpkiDer,
    /// Raw secret key bytes.
    Raw,
    /// PKCS#8 PrivateKeyInfo, DER.
    Pkcs8Der,
}

/// Result of `export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResult {
    /// The key's uid.
    pub uid: String,
    /// How `data` is encoded.
    pub format: ExportFormat,
    /// The key (secret for `raw` and `pkcs8_der`).
    pub data: SecretBytes,
}

/// Algorithm of `generate_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKeyAlgorithm {
    /// AES (`CKM_AES_KEY_GEN`).
    Aes,
}

/// `generate_key`: a new secret key on the token (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKey {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// `CKA_LABEL` and `CKA_ID`.
    pub label: String,
    /// Only `"aes"`.
    pub algorithm: SecretKeyAlgorithm,
    /// 128, 192 or 256.
    pub bits: u32,
    /// `CKA_EXTRACTABLE` (and not `CKA_SENSITIVE`); default false.
    #[serde(default)]
    pub extractable: bool,
}
op!(GenerateKey, "generate_key", KeyInfo, key_uid: |p| format!("hsm::{}::{}", p.slot, p.label));

/// Algorithm of `generate_key_pair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPairAlgorithm {
    /// RSA (`CKM_RSA_PKCS_KEY_PAIR_GEN`), with `bits`.
    Rsa,
    /// EC (`CKM_EC_KEY_PAIR_GEN`), with `curve`.
    Ec,
}

/// `generate_key_pair`: a new key pair, private `L` and public `L_pk` (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyPair {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// Label of the private key; the public key gets `<label>_pk`.
    pub label: String,
    /// `"rsa"` or `"ec"`.
    pub algorithm: KeyPairAlgorithm,
    /// RSA modulus size: 2048, 3072 or 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// EC curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<Curve>,
    /// Private key `CKA_EXTRACTABLE`; default false.
    #[serde(default)]
    pub extractable: bool,
}
op!(
    GenerateKeyPair,
    "generate_key_pair",
    KeyPairResult,
    key_uid: |p| format!("hsm::{}::{}", p.slot, p.label)
);

/// Result of `generate_key_pair`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairResult {
    /// The private key.
    pub private: KeyInfo,
    /// The public key (`<label>_pk`).
    pub public: KeyInfo,
}

/// Encryption algorithm (docs/protocol.md "Encryption algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionAlgorithm {
    /// AES-GCM, 12-byte IV, 16-byte tag returned apart.
    AesGcm,
    /// AES-CBC with PKCS#7 padding, 16-byte IV.
    AesCbcPad,
    /// RSA-OAEP, SHA-256 and MGF1-SHA-256, no label.
    RsaOaepSha256,
    /// RSA-OAEP, SHA-1 and MGF1-SHA-1, no label.
    RsaOaepSha1,
    /// RSA PKCS#1 v1.5 encryption.
    RsaPkcs1v15,
}

/// `encrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    /// Key uid (public-key algorithms accept the private or the public key's uid).
    pub uid: String,
    /// Algorithm.
    pub algorithm: EncryptionAlgorithm,
    /// Data to encrypt.
    pub plaintext: SecretBytes,
    /// GCM additional authenticated data.
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub aad: Option<Vec<u8>>,
    /// IV; chosen by hsmd when absent (12 bytes for GCM, 16 for CBC).
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub iv: Option<Vec<u8>>,
}
op!(Encrypt, "encrypt", EncryptResult, key_uid: |p| p.uid.clone());

/// Result of `encrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptResult {
    /// Ciphertext (without the GCM tag).
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    /// IV used, null when the algorithm has none.
    #[serde(default, with = "b64::option")]
    pub iv: Option<Vec<u8>>,
    /// GCM tag (16 bytes), else null.
    #[serde(default, with = "b64::option")]
    pub tag: Option<Vec<u8>>,
}

/// `decrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decrypt {
    /// Key uid (the private key for RSA).
    pub uid: String,
    /// Algorithm.
    pub algorithm: EncryptionAlgorithm,
    /// Ciphertext (without the GCM tag).
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    /// IV, required for AES.
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub iv: Option<Vec<u8>>,
    /// GCM tag, required for `aes_gcm`.
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub tag: Option<Vec<u8>>,
    /// GCM additional authenticated data.
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub aad: Option<Vec<u8>>,
}
op!(Decrypt, "decrypt", DecryptResult, key_uid: |p| p.uid.clone());

/// Result of `decrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptResult {
    /// The plaintext.
    pub plaintext: SecretBytes,
}

/// Signature algorithm (docs/protocol.md "Signature algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1v15Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1v15Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1v15Sha512,
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
    RsaPssSha256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48.
    RsaPssSha384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, salt 64.
    RsaPssSha512,
    /// ECDSA over SHA-256, DER signature.
    EcdsaSha256,
    /// ECDSA over SHA-384, DER signature.
    EcdsaSha384,
    /// ECDSA over SHA-512, DER signature.
    EcdsaSha512,
}

/// `sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// Private key uid.
    pub uid: String,
    /// Algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The message (hsmd hashes it).
    pub data: SecretBytes,
}
op!(Sign, "sign", SignResult, key_uid: |p| p.uid.clone());

/// Result of `sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResult {
    /// RSA signature, or DER `SEQUENCE { r, s }` for ECDSA.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Public or private key uid.
    pub uid: String,
    /// Algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The message.
    pub data: SecretBytes,
    /// The signature (DER for ECDSA).
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}
op!(Verify, "verify", VerifyResult, key_uid: |p| p.uid.clone());

/// Result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// The signature is valid.
    pub valid: bool,
}

/// `random`: bytes from the token's RNG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Random {
    /// Number of bytes, 1 to 1024.
    pub len: u32,
    /// Slot whose RNG to use; default the first configured slot (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
}
op!(Random, "random", RandomResult);

/// Result of `random`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomResult {
    /// The random bytes.
    pub bytes: SecretBytes,
}

/// Largest `random` length, in bytes.
pub const MAX_RANDOM_LEN: u32 = 1024;
