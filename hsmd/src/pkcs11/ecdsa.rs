//! ECDSA signature encodings: PKCS#11 returns raw `r || s` (PKCS#11 v2.40
//! curr. mech. section 2.3.1); the protocol carries DER `SEQUENCE { r, s }`
//! (RFC 3279 section 2.2.3). Conversions go through the RustCrypto curve crates.

use hsmd_protocol::Curve;

/// Raw `r || s` from the token to DER. None when the length does not fit the curve.
pub fn raw_to_der(curve: Curve, raw: &[u8]) -> Option<Vec<u8>> {
    Some(match curve {
        Curve::P256 => p256::ecdsa::Signature::from_slice(raw)
            .ok()?
            .to_der()
            .as_bytes()
            .to_vec(),
        Curve::P384 => p384::ecdsa::Signature::from_slice(raw)
            .ok()?
            .to_der()
            .as_bytes()
            .to_vec(),
        Curve::P521 => p521::ecdsa::Signature::from_slice(raw)
            .ok()?
            .to_der()
            .as_bytes()
            .to_vec(),
    })
}

/// DER to raw `r || s` for the token. None when the DER is malformed or a
/// value is out of range for the curve.
pub fn der_to_raw(curve: Curve, der: &[u8]) -> Option<Vec<u8>> {
    Some(match curve {
        Curve::P256 => p256::ecdsa::Signature::from_der(der)
            .ok()?
            .to_bytes()
            .to_vec(),
        Curve::P384 => p384::ecdsa::Signature::from_der(der)
            .ok()?
            .to_bytes()
            .to_vec(),
        Curve::P521 => p521::ecdsa::Signature::from_der(der)
            .ok()?
            .to_bytes()
            .to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut raw = vec![0u8; 64];
        raw[31] = 7;
        raw[63] = 9;
        let der = raw_to_der(Curve::P256, &raw).unwrap();
        assert_eq!(der, vec![0x30, 0x06, 0x02, 0x01, 0x07, 0x02, 0x01, 0x09]);
        assert_eq!(der_to_raw(Curve::P256, &der).unwrap(), raw);
        assert!(raw_to_der(Curve::P384, &raw).is_none());
        assert!(der_to_raw(Curve::P256, b"junk").is_none());
    }
}
