//! Key unique identifiers `hsm::<slot>::<label>`, the form the Cosmian KMS uses
//! for HSM keys (PROTOCOL.md "Keys").

use hsmd_protocol::{ErrorBody, ErrorCode};

/// Largest label hsmd creates or looks up, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// Suffix of the public key's label in a key pair (`<label>_pk`).
pub const PUBLIC_SUFFIX: &str = "_pk";

/// A parsed uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUid {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// `CKA_LABEL`.
    pub label: String,
}

impl KeyUid {
    /// Parses `hsm::<slot>::<label>`.
    ///
    /// Errors: `bad_request` naming the expected form when the prefix, the
    /// slot number or the label is wrong.
    pub fn parse(uid: &str) -> Result<Self, ErrorBody> {
        let bad = |why: &str| {
            let shown: String = uid.chars().take(MAX_LABEL_LEN + 32).collect();
            ErrorBody::new(
                ErrorCode::BadRequest,
                format!("uid {shown:?}: {why}; expected hsm::<slot>::<label>, e.g. hsm::0::my-key"),
            )
        };
        let rest = uid
            .strip_prefix("hsm::")
            .ok_or_else(|| bad("does not start with hsm::"))?;
        let (slot, label) = rest
            .split_once("::")
            .ok_or_else(|| bad("has no :: between slot and label"))?;
        let slot = slot
            .parse::<u64>()
            .map_err(|_| bad("the slot is not a decimal slot ID"))?;
        check_label(label).map_err(|e| bad(&e))?;
        Ok(Self {
            slot,
            label: label.to_owned(),
        })
    }

    /// Formats the uid.
    pub fn format(slot: u64, label: &str) -> String {
        format!("hsm::{slot}::{label}")
    }
}

/// Checks a label: 1 to [`MAX_LABEL_LEN`] bytes, no control characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the label is empty".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "the label is {} bytes long; at most {MAX_LABEL_LEN} are accepted",
            label.len()
        ));
    }
    if label.chars().any(char::is_control) {
        return Err("the label contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            KeyUid::parse("hsm::4::a::b").unwrap(),
            KeyUid {
                slot: 4,
                label: "a::b".into()
            }
        );
        for bad in ["", "hsm::", "hsm::x::k", "kms::0::k", "hsm::0::", "hsm::0"] {
            let e = KeyUid::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
            assert!(e.message.contains("hsm::<slot>::<label>"), "{}", e.message);
        }
        let long = format!("hsm::0::{}", "x".repeat(MAX_LABEL_LEN + 1));
        assert!(KeyUid::parse(&long)
            .unwrap_err()
            .message
            .contains("at most"));
    }
}
