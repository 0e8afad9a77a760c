//! HSM key identifiers: `hsm::<slot>::<label>` (the Cosmian KMS's form,
//! PROTOCOL.md "Keys"), the only objects this KMS holds.

use crate::error::KmsError;

/// A parsed `hsm::<slot>::<label>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmUid {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// `CKA_LABEL`.
    pub label: String,
}

/// Parses `uid`.
///
/// Errors: 422 naming the uid and the accepted form.
pub fn parse(uid: &str) -> Result<HsmUid, KmsError> {
    let refuse = || {
        KmsError::unprocessable(format!(
            "`{uid}` is not an HSM key identifier: this KMS holds HSM keys only, named hsm::<slot>::<label> with the slot ID in plain decimal (e.g. hsm::0::my_key)"
        ))
    };
    let rest = uid.strip_prefix("hsm::").ok_or_else(refuse)?;
    let (slot, label) = rest.split_once("::").ok_or_else(refuse)?;
    // Only the canonical decimal form: `01` or `+1` would name the same key
    // under another string, and grants are kept per uid string.
    let slot: u64 = slot.parse().map_err(|_| refuse())?;
    if rest.split_once("::").map(|(s, _)| s) != Some(slot.to_string().as_str()) {
        return Err(refuse());
    }
    if label.is_empty() {
        return Err(refuse());
    }
    Ok(HsmUid {
        slot,
        label: label.to_owned(),
    })
}

/// The uid of the public key of the pair whose private key is `uid`.
pub fn public_of(uid: &str) -> String {
    format!("{uid}_pk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hsm_uids_parse() {
        assert_eq!(
            parse("hsm::1365358982::aes1"),
            Ok(HsmUid {
                slot: 1365358982,
                label: "aes1".into()
            })
        );
        assert_eq!(parse("hsm::0::a::b").map(|u| u.label), Ok("a::b".into()));
        for bad in [
            "kms_key1",
            "hsm::x::a",
            "hsm::1::",
            "hsm::1",
            "",
            "hsm::01::a",
            "hsm::+1::a",
            "hsm:: 1::a",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.message.contains("hsm::<slot>::<label>"), "{e}");
        }
    }
}
