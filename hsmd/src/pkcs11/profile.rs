//! What a token model cannot say about itself through PKCS#11 (the model's
//! profile), next to what the token does say (its mechanism list, PKCS#11
//! v2.40 section 5.5 `C_GetMechanismList`): together the limits hsmd works
//! within, kept here in one place.
//!
//! The SmartCard-HSM numbers are those of CardContact's sc-hsm-embedded 2.12
//! with a SmartCard-HSM 4K (docs/smartcard-hsm.md): the library serializes
//! every call, so more sessions only queue inside it; `C_FindObjects` hands
//! out at most 16 handles per call; AES-CBC input is sent to the card in one
//! command, so it must fit one APDU; and `CKM_RSA_PKCS_OAEP` is always
//! computed with SHA-256 and MGF1-SHA256 whatever parameters are passed.
//!
//! A slot holds its profile in its context (`SlotContext::profile`, through
//! its [`Mechanisms`](super::mechanisms::Mechanisms)); nothing reads it from
//! a process-wide place.

use crate::config::Model;
use cryptoki::mechanism::MechanismType;

/// The limits of a token model that the token does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Model name, for messages.
    pub model: &'static str,
    /// Most sessions per slot worth opening (None: as configured).
    pub max_sessions: Option<usize>,
    /// Object handles asked for per `C_FindObjects` (PKCS#11 v2.40 section 5.7).
    pub find_chunk: usize,
    /// Most bytes per `C_Encrypt`/`C_Decrypt` with `CKM_AES_CBC` (whole AES
    /// blocks); longer inputs are chained in pieces of this size (None: no limit).
    pub cbc_chunk: Option<usize>,
    /// The only hashes (`CKM_SHA_1`, `CKM_SHA256`) the token really uses for
    /// `CKM_RSA_PKCS_OAEP` (with MGF1 of the same hash); None when the token
    /// computes what it is asked or refuses it (`CKR_MECHANISM_PARAM_INVALID`).
    pub oaep_hashes: Option<&'static [MechanismType]>,
    /// True when the token keeps a key pair as one key: the public key object
    /// is a view of the private key, removed with it and not alone
    /// (`C_DestroyObject` on it only hides it from this process until the
    /// token is read again).
    pub pair_is_one_key: bool,
    /// True when the library takes the first byte of a new secret key's
    /// `CKA_ID` as the card's key reference without checking that it is
    /// free (sc-hsm-embedded 2.12 `sc_hsm_C_GenerateKey`), so a given
    /// `CKA_ID` can overwrite another key: hsmd then leaves `CKA_ID` out and
    /// the library picks a free reference (docs/smartcard-hsm.md).
    pub secret_key_id_is_key_reference: bool,
}

/// cryptoki's own number of handles per `C_FindObjects`.
const DEFAULT_FIND_CHUNK: usize = 10;

/// Profile of any token without known limits.
pub const GENERIC: Profile = Profile {
    model: "generic",
    max_sessions: None,
    find_chunk: DEFAULT_FIND_CHUNK,
    cbc_chunk: None,
    oaep_hashes: None,
    pair_is_one_key: false,
    secret_key_id_is_key_reference: false,
};

/// SmartCard-HSM 4K / Nitrokey HSM 2 with sc-hsm-embedded 2.12.
pub const SMARTCARD_HSM: Profile = Profile {
    model: "smartcardhsm",
    max_sessions: Some(1),
    find_chunk: 16,
    cbc_chunk: Some(1024),
    oaep_hashes: Some(&[MechanismType::SHA256]),
    pair_is_one_key: true,
    secret_key_id_is_key_reference: true,
};

impl Profile {
    /// The profile of `model`.
    pub fn for_model(model: Model) -> Self {
        match model {
            Model::Smartcardhsm => SMARTCARD_HSM,
            Model::Softhsm2 => Profile {
                model: "softhsm2",
                ..GENERIC
            },
            Model::Other => GENERIC,
        }
    }

    /// Sessions to open per slot when `configured` were asked for.
    pub fn sessions(&self, configured: usize) -> usize {
        self.max_sessions.map_or(configured, |m| configured.min(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smartcardhsm_limits() {
        let p = Profile::for_model(Model::Smartcardhsm);
        assert_eq!(p.sessions(4), 1);
        assert_eq!(p.find_chunk, 16);
        assert_eq!(p.cbc_chunk.map(|c| c % 16), Some(0));
        assert_eq!(Profile::for_model(Model::Softhsm2).sessions(4), 4);
    }
}
