//! Opening the PKCS#11 module: load, `C_Initialize` with OS locking, and the
//! slot list used to check the configured slot IDs (PKCS#11 v2.40 sections
//! 5.4 and 5.5).

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;
use hsmd_protocol::LibraryInfo;
use std::fmt;
use std::path::{Path, PathBuf};

/// Start-up failures of the PKCS#11 layer; each is one sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The module file is not there.
    #[error("the PKCS#11 library {path} does not exist: {hint}, or set hsm_library / --hsm-library to where it is")]
    Missing {
        /// Path looked at.
        path: PathBuf,
        /// What to install for the model.
        hint: &'static str,
    },
    /// The configured path is a directory, not the module file.
    #[error("the PKCS#11 library {path} is a directory: set hsm_library / --hsm-library to the module file itself (a .so, e.g. {path}/libsofthsm2.so or /usr/local/lib/libsc-hsm-pkcs11.so)")]
    Directory {
        /// Path looked at.
        path: PathBuf,
    },
    /// `dlopen` or `C_GetFunctionList` failed: the file is not a PKCS#11 module.
    #[error("{path} is not a PKCS#11 module: {}; hsm_library must name the token's PKCS#11 library (for the SmartCard-HSM, sc-hsm-embedded's libsc-hsm-pkcs11.so)", super::cardpath::not_a_module(.reason))]
    Load {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: CkError,
    },
    /// `C_Initialize` failed.
    #[error("C_Initialize of the PKCS#11 library {path} failed: {reason}")]
    Initialize {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: CkError,
    },
    /// A configured slot ID is not among the module's slots.
    #[error("slot {slot} ({slot:#x}) does not exist in {path}; hsm_slot takes PKCS#11 slot IDs, and the slots are: {listing}")]
    UnknownSlot {
        /// The configured ID.
        slot: u64,
        /// Module path.
        path: PathBuf,
        /// Every slot, formatted.
        listing: SlotListing,
    },
    /// No slot holds the token `hsm_token` names.
    #[error("no slot of {path} holds {wanted} (hsm_token); the slots are: {listing}")]
    NoToken {
        /// The configured token, described.
        wanted: String,
        /// Module path.
        path: PathBuf,
        /// Every slot, formatted.
        listing: SlotListing,
    },
    /// Several slots hold a token `hsm_token` names.
    #[error("several slots of {path} hold {wanted} (hsm_token): name the token by its serial instead; the slots are: {listing}")]
    AmbiguousToken {
        /// The configured token, described.
        wanted: String,
        /// Module path.
        path: PathBuf,
        /// Every slot, formatted.
        listing: SlotListing,
    },
    /// The module reports no slot at all (a PC/SC module: pcscd sees no reader).
    #[error("the PKCS#11 library {path} reports no slot: for a smart card, pcscd runs but sees no reader; plug the reader in (opensc-tool -l lists the readers pcscd sees)")]
    NoSlots {
        /// Module path.
        path: PathBuf,
    },
    /// `C_GetSlotList` answered `CKR_DEVICE_ERROR`: pcscd is not running, or
    /// the library lost it.
    #[error("C_GetSlotList on {path} failed with CKR_DEVICE_ERROR: {cause}")]
    ReaderService {
        /// Module path.
        path: PathBuf,
        /// [`super::cardpath::device_error_cause`].
        cause: String,
    },
    /// Listing slots failed.
    #[error("C_GetSlotList on {path} failed: {reason}")]
    SlotList {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: CkError,
    },
}

/// One slot as `pkcs11-tool --list-slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDescription {
    /// Position in `C_GetSlotList` (what pkcs11-tool prints as "Slot N").
    pub index: usize,
    /// The slot ID (what hsm_slot takes).
    pub id: u64,
    /// Token label, or None when no token is present.
    pub token_label: Option<String>,
    /// Token serial number.
    pub serial: Option<String>,
}

/// All slots, printed as `index 0: ID 1234 (0x4d2), token "x", serial "y"; ...`.
#[derive(Debug, Clone, Default)]
pub struct SlotListing(pub Vec<SlotDescription>);

impl fmt::Display for SlotListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none (the module reports no slot)");
        }
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "index {}: ID {} ({:#x}), ", s.index, s.id, s.id)?;
            match (&s.token_label, &s.serial) {
                (Some(l), Some(n)) => write!(f, "token {l:?}, serial {n:?}")?,
                _ => f.write_str("no token")?,
            }
        }
        Ok(())
    }
}

/// The opened, initialized module.
#[derive(Debug, Clone)]
pub struct Library {
    /// The cryptoki context (one per process).
    pub pkcs11: Pkcs11,
    /// File it was loaded from.
    pub path: PathBuf,
}

impl Library {
    /// The library's `C_GetInfo`, as the hello reports it (blank when the
    /// module does not answer).
    pub fn info(&self) -> LibraryInfo {
        let info = self.pkcs11.get_library_info().ok();
        LibraryInfo {
            path: self.path.display().to_string(),
            manufacturer: info
                .as_ref()
                .map(|i| i.manufacturer_id().trim().to_owned())
                .unwrap_or_default(),
            description: info
                .as_ref()
                .map(|i| i.library_description().trim().to_owned())
                .unwrap_or_default(),
            version: info
                .as_ref()
                .map(|i| {
                    format!(
                        "{}.{}",
                        i.library_version().major(),
                        i.library_version().minor()
                    )
                })
                .unwrap_or_default(),
        }
    }

    /// Loads the module at `path` and initializes it with `CKF_OS_LOCKING_OK`.
    /// `hint` says what to install when the file is missing.
    pub fn open(path: &Path, hint: &'static str) -> Result<Self, LibraryError> {
        if path.is_dir() {
            return Err(LibraryError::Directory {
                path: path.to_owned(),
            });
        }
        if !path.is_file() {
            return Err(LibraryError::Missing {
                path: path.to_owned(),
                hint,
            });
        }
        let pkcs11 = Pkcs11::new(path).map_err(|reason| LibraryError::Load {
            path: path.to_owned(),
            reason,
        })?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(reason) => {
                return Err(LibraryError::Initialize {
                    path: path.to_owned(),
                    reason,
                })
            }
        }
        Ok(Self {
            pkcs11,
            path: path.to_owned(),
        })
    }

    /// Every slot, with its token's label and serial when present.
    pub fn describe_slots(&self) -> Result<(Vec<Slot>, SlotListing), LibraryError> {
        let slots = self.pkcs11.get_all_slots().map_err(|reason| match reason {
            CkError::Pkcs11(RvError::DeviceError, _) => LibraryError::ReaderService {
                path: self.path.clone(),
                cause: super::cardpath::device_error_cause(),
            },
            reason => LibraryError::SlotList {
                path: self.path.clone(),
                reason,
            },
        })?;
        let listing = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let token = self.pkcs11.get_token_info(*slot).ok();
                SlotDescription {
                    index,
                    id: slot.id(),
                    token_label: token.as_ref().map(|t| t.label().trim().to_owned()),
                    serial: token.as_ref().map(|t| t.serial_number().trim().to_owned()),
                }
            })
            .collect();
        Ok((slots, SlotListing(listing)))
    }

    /// The slot with ID `id`, or [`LibraryError::UnknownSlot`] listing them
    /// all ([`LibraryError::NoSlots`] when there is none).
    pub fn slot(&self, id: u64) -> Result<Slot, LibraryError> {
        let (slots, listing) = self.describe_slots()?;
        if slots.is_empty() {
            return Err(LibraryError::NoSlots {
                path: self.path.clone(),
            });
        }
        slots
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or_else(|| LibraryError::UnknownSlot {
                slot: id,
                path: self.path.clone(),
                listing,
            })
    }

    /// The slot ID `r` names: the ID itself (checked to exist), or the one
    /// slot whose token's serial or label is the configured one.
    ///
    /// Errors: unknown slot, no such token, or a label several tokens carry
    /// (each listing every slot).
    pub fn resolve(&self, r: &crate::config::SlotRef) -> Result<u64, LibraryError> {
        if let crate::config::SlotRef::Id(id) = r {
            return self.slot(*id).map(|s| s.id());
        }
        let (slots, listing) = self.describe_slots()?;
        if slots.is_empty() {
            return Err(LibraryError::NoSlots {
                path: self.path.clone(),
            });
        }
        let found: Vec<u64> = listing
            .0
            .iter()
            .filter(|s| match (&s.token_label, &s.serial) {
                (Some(l), Some(n)) => r.matches_token(l, n),
                _ => false,
            })
            .map(|s| s.id)
            .collect();
        match found.as_slice() {
            [id] => Ok(*id),
            [] => Err(LibraryError::NoToken {
                wanted: r.to_string(),
                path: self.path.clone(),
                listing,
            }),
            _ => Err(LibraryError::AmbiguousToken {
                wanted: r.to_string(),
                path: self.path.clone(),
                listing,
            }),
        }
    }

    /// `C_Finalize`. Every session must be closed first: some modules
    /// (sc-hsm-embedded with OS locking) deadlock otherwise.
    pub fn finalize(self) -> Result<(), CkError> {
        self.pkcs11.finalize()
    }
}
