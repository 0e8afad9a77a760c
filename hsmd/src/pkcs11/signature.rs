//! `sign` and `verify` (docs/protocol.md "Signature algorithms"). hsmd hashes the
//! message and uses the token's prehash mechanisms, which every token offers,
//! the SmartCard-HSM included: `CKM_RSA_PKCS` over a DigestInfo (RFC 8017
//! section 9.2), `CKM_RSA_PKCS_PSS` (salt = hash length) and raw `CKM_ECDSA`
//! (PKCS#11 v2.40 curr. mech. sections 2.1.6, 2.1.10, 2.3.6).

use super::digest::Hash;
use super::ecdsa;
use super::engine::on_session::OnSession;
use super::engine::{routed_key, KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::keys::{resolve_cached, KeyCache, KeyObject, Want};
use super::mechanisms::Mechanisms;
use super::slot::SlotContext;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::PkcsPssParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::KeyType;
use cryptoki::session::Session;
use hsmd_protocol::uid::KeyUid;
use hsmd_protocol::{
    Curve, ErrorBody, ErrorCode, Sign, SignResult, SignatureAlgorithm, Verify, VerifyResult,
};

#[derive(Clone, Copy)]
enum Family {
    Pkcs1v15,
    Pss,
    Ecdsa,
}

fn split(a: SignatureAlgorithm) -> (Family, Hash) {
    use SignatureAlgorithm::*;
    match a {
        RsaPkcs1v15Sha256 => (Family::Pkcs1v15, Hash::Sha256),
        RsaPkcs1v15Sha384 => (Family::Pkcs1v15, Hash::Sha384),
        RsaPkcs1v15Sha512 => (Family::Pkcs1v15, Hash::Sha512),
        RsaPssSha256 => (Family::Pss, Hash::Sha256),
        RsaPssSha384 => (Family::Pss, Hash::Sha384),
        RsaPssSha512 => (Family::Pss, Hash::Sha512),
        EcdsaSha256 => (Family::Ecdsa, Hash::Sha256),
        EcdsaSha384 => (Family::Ecdsa, Hash::Sha384),
        EcdsaSha512 => (Family::Ecdsa, Hash::Sha512),
    }
}

fn alg_name(a: SignatureAlgorithm) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The mechanism, the token input for `data`, and (for ECDSA) the key's curve.
fn prepare(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    uid: &KeyUid,
    key: &KeyObject,
    a: SignatureAlgorithm,
    data: &[u8],
) -> Result<(Mechanism<'static>, Vec<u8>, Option<Curve>), OpError> {
    let (family, hash) = split(a);
    let name = alg_name(a);
    let wrong_type = |need: &str| {
        OpError::new(
            ErrorCode::BadRequest,
            format!("key {} is not an {need} key; {name} needs one", uid),
        )
    };
    match family {
        Family::Pkcs1v15 | Family::Pss if key.key_type != KeyType::RSA => Err(wrong_type("RSA")),
        Family::Pkcs1v15 => {
            mechs.require(MechanismType::RSA_PKCS, &name)?;
            Ok((Mechanism::RsaPkcs, hash.digest_info(data), None))
        }
        Family::Pss => {
            mechs.require(MechanismType::RSA_PKCS_PSS, &name)?;
            let params = PkcsPssParams {
                hash_alg: hash.mechanism(),
                mgf: hash.mgf1(),
                s_len: (hash.len() as u64).into(),
            };
            Ok((Mechanism::RsaPkcsPss(params), hash.digest(data), None))
        }
        Family::Ecdsa if key.key_type != KeyType::EC => Err(wrong_type("EC")),
        Family::Ecdsa => {
            mechs.require(MechanismType::ECDSA, &name)?;
            let curve = key_curve(s, keys, uid, key)?;
            Ok((Mechanism::Ecdsa, hash.digest(data), Some(curve)))
        }
    }
}

fn key_curve(
    s: &Session,
    keys: &KeyCache,
    uid: &KeyUid,
    key: &KeyObject,
) -> Result<Curve, OpError> {
    keys.curve(s, key)?.ok_or_else(|| {
        OpError::new(
            ErrorCode::Unsupported,
            format!(
                "key {} is on a curve hsmd does not serve; p256, p384 and p521 are served",
                uid
            ),
        )
    })
}

/// Signs `p.data` with the private key `uid`.
///
/// Errors: `bad_request` for a key of the wrong type, `not_found`,
/// `unsupported` when the mechanism is not offered, PKCS#11 failures.
pub fn sign(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    uid: &KeyUid,
    p: &Sign,
) -> Result<SignResult, OpError> {
    let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Private)?;
    let (mech, input, curve) = prepare(s, mechs, keys, uid, &key, p.algorithm, p.data.expose())?;
    let raw = s.sign(&mech, key.handle, &input)?;
    let signature = match curve {
        Some(c) => ecdsa::raw_to_der(c, &raw).ok_or_else(|| {
            OpError::new(
                ErrorCode::HsmError,
                format!(
                    "the token returned a {}-byte ECDSA signature, not r || s for {c:?}",
                    raw.len()
                ),
            )
        })?,
        None => raw,
    };
    Ok(SignResult { signature })
}

/// Verifies `p.signature` over `p.data` with the public key `uid` (or the
/// public key of the private key `uid`). A signature that does not verify,
/// or is malformed, is `valid: false`, not an error.
pub fn verify(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    uid: &KeyUid,
    p: &Verify,
) -> Result<VerifyResult, OpError> {
    let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Public)?;
    let (mech, input, curve) = prepare(s, mechs, keys, uid, &key, p.algorithm, p.data.expose())?;
    let signature = match curve {
        Some(c) => match ecdsa::der_to_raw(c, &p.signature) {
            Some(raw) => raw,
            None => return Ok(VerifyResult { valid: false }),
        },
        None => p.signature.clone(),
    };
    match s.verify(&mech, key.handle, &input, &signature) {
        Ok(()) => Ok(VerifyResult { valid: true }),
        Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => {
            Ok(VerifyResult { valid: false })
        }
        Err(e) => Err(e.into()),
    }
}

impl SlotOperation for Sign {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.uid)?))
    }
}

impl OnSession for Sign {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Cached;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<SignResult, OpError> {
        sign(s, &ctx.mechanisms, &ctx.keys, routed_key(uid)?, self)
    }
}

impl SlotOperation for Verify {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.uid)?))
    }
}

impl OnSession for Verify {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Cached;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<VerifyResult, OpError> {
        verify(s, &ctx.mechanisms, &ctx.keys, routed_key(uid)?, self)
    }
}
