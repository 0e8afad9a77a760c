//! `export`: public keys as X.509 SubjectPublicKeyInfo DER (RFC 5280 section
//! 4.1.2.7, RFC 3279, RFC 5480), extractable AES keys raw, extractable private
//! keys as PKCS#8 DER (RFC 5208). Sensitive keys never leave the token.

use super::engine::on_session::OnSession;
use super::engine::{routed_key, KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::keys::{curve_of, resolve, KeyObject, Want};
use super::profile::Profile;
use super::slot::SlotContext;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::uid::KeyUid;
use hsmd_protocol::{Curve, ErrorBody, ErrorCode, Export, ExportFormat, ExportResult};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::BigUint;
use zeroize::Zeroizing;

fn attrs(s: &Session, key: &KeyObject, types: &[AttributeType]) -> Result<Vec<Attribute>, OpError> {
    Ok(s.get_attributes(key.handle, types)?)
}

fn encoding_failed(what: &str, e: impl std::fmt::Display) -> OpError {
    OpError::new(
        ErrorCode::HsmError,
        format!("cannot encode the {what}: {e}"),
    )
}

/// Exports the key `uid`.
///
/// Errors: `forbidden` for a sensitive or non-extractable key (naming the
/// public key to export instead, for a private key), `not_found`, PKCS#11 failures.
pub fn export(s: &Session, profile: &Profile, uid: &KeyUid) -> Result<ExportResult, OpError> {
    let key = resolve(s, profile, uid, Want::Any)?;
    let full = uid.to_string();
    let (format, data) = if key.class == ObjectClass::PUBLIC_KEY {
        (ExportFormat::SpkiDer, public_spki(s, &key)?)
    } else {
        let mut sensitive = true;
        let mut extractable = false;
        for a in attrs(
            s,
            &key,
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )? {
            match a {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                _ => {}
            }
        }
        if sensitive || !extractable {
            let hint = match uid.public_key() {
                Ok(pk) if key.class == ObjectClass::PRIVATE_KEY => {
                    format!("; export its public key {pk} instead")
                }
                _ => String::new(),
            };
            return Err(OpError::new(
                ErrorCode::Forbidden,
                format!(
                    "key {full} is sensitive (CKA_SENSITIVE={sensitive}, CKA_EXTRACTABLE={extractable}): its value never leaves the token{hint}"
                ),
            ));
        }
        if key.class == ObjectClass::SECRET_KEY {
            (ExportFormat::Raw, secret_value(s, &key)?)
        } else {
            (ExportFormat::Pkcs8Der, private_pkcs8(s, &key)?)
        }
    };
    Ok(ExportResult {
        uid: full,
        format,
        data: SecretBytes::new(data),
    })
}

fn secret_value(s: &Session, key: &KeyObject) -> Result<Vec<u8>, OpError> {
    attrs(s, key, &[AttributeType::Value])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        })
        .ok_or_else(|| OpError::new(ErrorCode::HsmError, "the token did not return CKA_VALUE"))
}

/// Uncompressed EC point from `CKA_EC_POINT`, which is a DER OCTET STRING
/// per the specification (some modules return the bare point).
fn ec_point(raw: &[u8], curve: Curve) -> Option<&[u8]> {
    let field = (curve.bits() as usize).div_ceil(8);
    let point_len = 1 + 2 * field;
    if raw.len() == point_len && raw[0] == 0x04 {
        return Some(raw);
    }
    let (tag, rest) = raw.split_first()?;
    if *tag != 0x04 {
        return None;
    }
    let (len, body) = match rest.split_first()? {
        (&l, body) if l < 0x80 => (l as usize, body),
        (0x81, body) => (*body.first()? as usize, &body[1..]),
        _ => return None,
    };
    (body.len() == len && len == point_len).then_some(body)
}

fn public_spki(s: &Session, key: &KeyObject) -> Result<Vec<u8>, OpError> {
    if key.key_type == KeyType::RSA {
        let (mut n, mut e) = (Vec::new(), Vec::new());
        for a in attrs(
            s,
            key,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )? {
            match a {
                Attribute::Modulus(v) => n = v,
                Attribute::PublicExponent(v) => e = v,
                _ => {}
            }
        }
        let pk = rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
            .map_err(|e| encoding_failed("RSA public key", e))?;
        let der = pk
            .to_public_key_der()
            .map_err(|e| encoding_failed("RSA public key", e))?;
        return Ok(der.as_bytes().to_vec());
    }
    let (mut params, mut point) = (Vec::new(), Vec::new());
    for a in attrs(s, key, &[AttributeType::EcParams, AttributeType::EcPoint])? {
        match a {
            Attribute::EcParams(v) => params = v,
            Attribute::EcPoint(v) => point = v,
            _ => {}
        }
    }
    let curve = curve_of(&params).ok_or_else(|| {
        OpError::new(
            ErrorCode::Unsupported,
            "the key's curve is not p256, p384 or p521",
        )
    })?;
    let point = ec_point(&point, curve).ok_or_else(|| {
        OpError::new(
            ErrorCode::HsmError,
            "CKA_EC_POINT is not an uncompressed point",
        )
    })?;
    let der = match curve {
        Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
            .map_err(|e| encoding_failed("EC point", e))?
            .to_public_key_der(),
        Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
            .map_err(|e| encoding_failed("EC point", e))?
            .to_public_key_der(),
        Curve::P521 => p521::PublicKey::from_sec1_bytes(point)
            .map_err(|e| encoding_failed("EC point", e))?
            .to_public_key_der(),
    }
    .map_err(|e| encoding_failed("EC public key", e))?;
    Ok(der.as_bytes().to_vec())
}

fn private_pkcs8(s: &Session, key: &KeyObject) -> Result<Vec<u8>, OpError> {
    if key.key_type == KeyType::RSA {
        let mut parts: [Zeroizing<Vec<u8>>; 5] = Default::default();
        let types = [
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::PrivateExponent,
            AttributeType::Prime1,
            AttributeType::Prime2,
        ];
        for a in attrs(s, key, &types)? {
            match a {
                Attribute::Modulus(v) => parts[0] = Zeroizing::new(v),
                Attribute::PublicExponent(v) => parts[1] = Zeroizing::new(v),
                Attribute::PrivateExponent(v) => parts[2] = Zeroizing::new(v),
                Attribute::Prime1(v) => parts[3] = Zeroizing::new(v),
                Attribute::Prime2(v) => parts[4] = Zeroizing::new(v),
                _ => {}
            }
        }
        let big = |i: usize| BigUint::from_bytes_be(&parts[i]);
        let sk = rsa::RsaPrivateKey::from_components(big(0), big(1), big(2), vec![big(3), big(4)])
            .map_err(|e| encoding_failed("RSA private key", e))?;
        let der = sk
            .to_pkcs8_der()
            .map_err(|e| encoding_failed("RSA private key", e))?;
        return Ok(der.as_bytes().to_vec());
    }
    let (mut params, mut value) = (Vec::new(), Zeroizing::new(Vec::new()));
    for a in attrs(s, key, &[AttributeType::EcParams, AttributeType::Value])? {
        match a {
            Attribute::EcParams(v) => params = v,
            Attribute::Value(v) => value = Zeroizing::new(v),
            _ => {}
        }
    }
    let curve = curve_of(&params).ok_or_else(|| {
        OpError::new(
            ErrorCode::Unsupported,
            "the key's curve is not p256, p384 or p521",
        )
    })?;
    let field = (curve.bits() as usize).div_ceil(8);
    // CKA_VALUE may omit leading zero bytes; left-pad to the field size.
    let mut scalar = Zeroizing::new(vec![0u8; field.saturating_sub(value.len())]);
    scalar.extend_from_slice(&value);
    let der = match curve {
        Curve::P256 => p256::SecretKey::from_slice(&scalar)
            .map_err(|e| encoding_failed("EC private key", e))?
            .to_pkcs8_der(),
        Curve::P384 => p384::SecretKey::from_slice(&scalar)
            .map_err(|e| encoding_failed("EC private key", e))?
            .to_pkcs8_der(),
        Curve::P521 => p521::SecretKey::from_slice(&scalar)
            .map_err(|e| encoding_failed("EC private key", e))?
            .to_pkcs8_der(),
    }
    .map_err(|e| encoding_failed("EC private key", e))?;
    Ok(der.as_bytes().to_vec())
}

impl SlotOperation for Export {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.0.uid)?))
    }
}

impl OnSession for Export {
    const KEY_OBJECTS: KeyObjects = KeyObjects::LookedUp;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<ExportResult, OpError> {
        export(s, ctx.profile(), routed_key(uid)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_accepts_der_and_bare() {
        let mut bare = vec![0x04];
        bare.extend([1u8; 64]);
        assert_eq!(ec_point(&bare, Curve::P256), Some(&bare[..]));
        let mut der = vec![0x04, 65];
        der.extend(&bare);
        assert_eq!(ec_point(&der, Curve::P256), Some(&bare[..]));
        let mut der521 = vec![0x04, 0x81, 133, 0x04];
        der521.extend([1u8; 132]);
        assert_eq!(ec_point(&der521, Curve::P521).map(<[u8]>::len), Some(133));
        assert_eq!(ec_point(&der[..10], Curve::P256), None);
    }
}
