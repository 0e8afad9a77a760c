//! The mechanisms a token offers (`C_GetMechanismList`, PKCS#11 v2.40
//! section 5.5) and the refusal when one is missing.

use super::error::OpError;
use super::profile::Profile;
use cryptoki::mechanism::MechanismType;
use hsmd_protocol::ErrorCode;
use std::collections::{HashMap, HashSet};

/// Mechanisms of one token, with the limits of its model's [`Profile`]:
/// everything hsmd knows a token can and cannot do.
#[derive(Debug, Clone)]
pub struct Mechanisms {
    slot: u64,
    offered: HashSet<u64>,
    profile: Profile,
    /// Key sizes in bits the token accepts per key-generation mechanism
    /// (`C_GetMechanismInfo` `ulMinKeySize`/`ulMaxKeySize`).
    key_bits: HashMap<u64, (u64, u64)>,
}

/// The key-generation mechanisms whose key-size range hsmd reads.
pub const SIZED: [MechanismType; 2] = [
    MechanismType::AES_KEY_GEN,
    MechanismType::RSA_PKCS_KEY_PAIR_GEN,
];

/// Every mechanism type the token in `slot` lists, as the raw
/// `CK_MECHANISM_TYPE` values (`C_GetMechanismList`, PKCS#11 v2.40 section
/// 5.5), of the module at `path` (already loaded and initialized by the
/// binding: this opens the same instance again).
///
/// The binding's own `get_mechanism_list` drops the types it has no name
/// for, logging `ERROR Mechanism type N is not supported.` for each (some
/// 30 on SoftHSMv2); here they are kept, as numbers, without a word.
///
/// Errors: the module cannot be opened again, has no `C_GetFunctionList`,
/// or a call fails (the `CKR_*` named).
pub fn list_raw(path: &std::path::Path, slot: u64) -> Result<Vec<u64>, String> {
    use cryptoki::context::Function;
    use cryptoki::error::Rv;
    use cryptoki_sys::{CK_C_GetFunctionList, CK_FUNCTION_LIST, CK_ULONG};
    let check = |rv| {
        Rv::from(rv)
            .into_result(Function::GetMechanismList)
            .map_err(|e| e.to_string())
    };
    // SAFETY: the module is a PKCS#11 library the binding has loaded and
    // initialized from this same path (dlopen hands back that instance);
    // the calls follow the PKCS#11 signatures of cryptoki-sys, with buffers
    // of the length passed.
    unsafe {
        let lib = libloading::Library::new(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let get: libloading::Symbol<'_, CK_C_GetFunctionList> = lib
            .get(b"C_GetFunctionList\0")
            .map_err(|e| format!("{}: no C_GetFunctionList: {e}", path.display()))?;
        let get = (*get).ok_or_else(|| format!("{}: C_GetFunctionList is null", path.display()))?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        Rv::from(get(&mut list))
            .into_result(Function::GetFunctionList)
            .map_err(|e| e.to_string())?;
        let call = list
            .as_ref()
            .and_then(|l| l.C_GetMechanismList)
            .ok_or_else(|| format!("{}: no C_GetMechanismList", path.display()))?;
        let mut count: CK_ULONG = 0;
        check(call(slot, std::ptr::null_mut(), &mut count))?;
        let mut types = vec![0; count as usize];
        check(call(slot, types.as_mut_ptr(), &mut count))?;
        types.truncate(count as usize);
        Ok(types)
    }
}

impl Mechanisms {
    /// Wraps the mechanism list of `slot` (raw `CK_MECHANISM_TYPE` values,
    /// see [`list_raw`]) with the limits of the token's model, `profile`.
    pub fn new(slot: u64, list: Vec<u64>, profile: Profile) -> Self {
        Self {
            slot,
            offered: list.into_iter().collect(),
            profile,
            key_bits: HashMap::new(),
        }
    }

    /// Records the key-size range `C_GetMechanismInfo` reported for `m`.
    /// PKCS#11 v2.40 (curr. mech. section 2.1.1 and 2.10.1) gives RSA sizes
    /// in bits and AES sizes in bytes; tokens that report AES in bits
    /// (a maximum of 64 or more) are taken as they are.
    pub fn set_key_sizes(&mut self, m: MechanismType, min: usize, max: usize) {
        let (min, max) = (min as u64, max as u64);
        let bits = if m == MechanismType::AES_KEY_GEN && max < 64 {
            (min * 8, max * 8)
        } else {
            (min, max)
        };
        if bits.1 > 0 {
            self.key_bits.insert(*m, bits);
        }
    }

    /// Ok when `bits` is within what the token said it generates with `m`
    /// (or it said nothing), else `unsupported` naming the range.
    pub fn require_key_bits(&self, m: MechanismType, bits: u32, what: &str) -> Result<(), OpError> {
        match self.key_bits.get(&*m) {
            Some(&(min, max)) if !(min..=max).contains(&u64::from(bits)) => Err(OpError::new(
                ErrorCode::Unsupported,
                format!(
                    "{what} of {bits} bits: the token in slot {} generates {min} to {max} bits with {m} (C_GetMechanismInfo)",
                    self.slot
                ),
            )),
            _ => Ok(()),
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
            .map(|&m| {
                // Vendor types are numbers anyway; for the others the
                // binding's conversion logs (off in hsmd's log filter) when
                // it has no name.
                let named = if m >= cryptoki_sys::CKM_VENDOR_DEFINED {
                    None
                } else {
                    MechanismType::try_from(m as cryptoki_sys::CK_MECHANISM_TYPE).ok()
                };
                match named {
                    Some(t) => t.to_string(),
                    None => format!("CKM_{m:#010x}"),
                }
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sizes_from_mechanism_info() {
        let mut m = Mechanisms::new(
            0,
            vec![*MechanismType::AES_KEY_GEN],
            super::super::profile::GENERIC,
        );
        // AES in bytes, as the specification says (SoftHSMv2: 16 to 32).
        m.set_key_sizes(MechanismType::AES_KEY_GEN, 16, 32);
        assert!(m
            .require_key_bits(MechanismType::AES_KEY_GEN, 256, "k")
            .is_ok());
        m.set_key_sizes(MechanismType::RSA_PKCS_KEY_PAIR_GEN, 1024, 2048);
        let e = m
            .require_key_bits(MechanismType::RSA_PKCS_KEY_PAIR_GEN, 4096, "an RSA key")
            .err()
            .map(|e| e.into_body(0));
        let e = e.map(|b| (b.code, b.message));
        assert!(
            matches!(&e, Some((ErrorCode::Unsupported, msg)) if msg.contains("1024 to 2048")),
            "{e:?}"
        );
        // AES reported in bits is taken as bits.
        m.set_key_sizes(MechanismType::AES_KEY_GEN, 128, 256);
        assert!(m
            .require_key_bits(MechanismType::AES_KEY_GEN, 192, "k")
            .is_ok());
        assert!(m
            .require_key_bits(MechanismType::AES_KEY_GEN, 512, "k")
            .is_err());
    }
}
