//! The mechanisms a token offers (`C_GetMechanismList`, PKCS#11 v2.40
//! section 5.5) and the refusal when one is missing.

use super::error::OpError;
use super::profile::Profile;
use cryptoki::mechanism::MechanismType;
use hsmd_protocol::ErrorCode;
use std::collections::HashSet;

/// Mechanisms of one token, with the limits of its model's [`Profile`]:
/// everything hsmd knows a token can and cannot do.
#[derive(Debug, Clone)]
pub struct Mechanisms {
    slot: u64,
    offered: HashSet<u64>,
    profile: Profile,
}

impl Mechanisms {
    /// Wraps the mechanism list of `slot`.
    pub fn new(slot: u64, list: Vec<MechanismType>) -> Self {
        Self {
            slot,
            offered: list.into_iter().map(|m| *m).collect(),
            profile: *super::profile::get(),
        }
    }

    /// The slot ID.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// The model's limits that the token does not report ([`Profile`]).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// True when the token offers `m`.
    pub fn offers(&self, m: MechanismType) -> bool {
        self.offered.contains(&*m)
    }

    /// Ok when the token offers `m`, else `unsupported` naming it and `what`
    /// (the protocol algorithm that needs it).
    pub fn require(&self, m: MechanismType, what: &str) -> Result<(), OpError> {
        if self.offers(m) {
            Ok(())
        } else {
            let instead = if m == MechanismType::AES_GCM {
                "; use aes_cbc_pad (AES-CBC with PKCS#7 padding, which hsmd builds on CKM_AES_CBC) instead"
            } else {
                ""
            };
            Err(OpError::new(
                ErrorCode::Unsupported,
                format!(
                    "{what} needs {m}, which the token in slot {} does not offer{instead}",
                    self.slot
                ),
            ))
        }
    }

    /// The offered mechanisms as sorted `CKM_*` names (`CKM_0x...` for those
    /// the PKCS#11 binding has no name for).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .offered
            .iter()
            .map(
                |m| match MechanismType::try_from(*m as cryptoki_sys::CK_MECHANISM_TYPE) {
                    Ok(t) => t.to_string(),
                    Err(_) => format!("CKM_{m:#010x}"),
                },
            )
            .collect();
        v.sort();
        v
    }
}
