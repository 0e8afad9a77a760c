//! Generated from cryptoki-sys 0.5's `CK_FUNCTION_LIST` (PKCS#11 v2.40 section 5):
//! one forwarding function per entry, each run through [`crate::call`], and the table.
#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]
use cryptoki_sys::*;

/// Forwards `C_Initialize`.
pub unsafe extern "C" fn C_Initialize(arg1: *mut ::std::os::raw::c_void) -> CK_RV {
    crate::call("C_Initialize", crate::Target::None, || unsafe {
        match crate::real().C_Initialize {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_Finalize`.
pub unsafe extern "C" fn C_Finalize(arg1: *mut ::std::os::raw::c_void) -> CK_RV {
    crate::call("C_Finalize", crate::Target::None, || unsafe {
        match crate::real().C_Finalize {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetInfo`.
pub unsafe extern "C" fn C_GetInfo(arg1: *mut CK_INFO) -> CK_RV {
    crate::call("C_GetInfo", crate::Target::None, || unsafe {
        match crate::real().C_GetInfo {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetSlotList`.
pub unsafe extern "C" fn C_GetSlotList(
    arg1: CK_BBOOL,
    arg2: *mut CK_SLOT_ID,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_GetSlotList", crate::Target::None, || unsafe {
        match crate::real().C_GetSlotList {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetSlotInfo`.
pub unsafe extern "C" fn C_GetSlotInfo(arg1: CK_SLOT_ID, arg2: *mut CK_SLOT_INFO) -> CK_RV {
    crate::call("C_GetSlotInfo", crate::Target::Slot(arg1), || unsafe {
        crate::special::C_GetSlotInfo(arg1, arg2)
    })
}

/// Forwards `C_GetTokenInfo`.
pub unsafe extern "C" fn C_GetTokenInfo(arg1: CK_SLOT_ID, arg2: *mut CK_TOKEN_INFO) -> CK_RV {
    crate::call("C_GetTokenInfo", crate::Target::Slot(arg1), || unsafe {
        crate::special::C_GetTokenInfo(arg1, arg2)
    })
}

/// Forwards `C_GetMechanismList`.
pub unsafe extern "C" fn C_GetMechanismList(
    arg1: CK_SLOT_ID,
    arg2: *mut CK_MECHANISM_TYPE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_GetMechanismList", crate::Target::Slot(arg1), || unsafe {
        crate::special::C_GetMechanismList(arg1, arg2, arg3)
    })
}

/// Forwards `C_GetMechanismInfo`.
pub unsafe extern "C" fn C_GetMechanismInfo(
    arg1: CK_SLOT_ID,
    arg2: CK_MECHANISM_TYPE,
    arg3: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    crate::call("C_GetMechanismInfo", crate::Target::Slot(arg1), || unsafe {
        crate::special::C_GetMechanismInfo(arg1, arg2, arg3)
    })
}

/// Forwards `C_InitToken`.
pub unsafe extern "C" fn C_InitToken(
    arg1: CK_SLOT_ID,
    arg2: *mut CK_UTF8CHAR,
    arg3: CK_ULONG,
    arg4: *mut CK_UTF8CHAR,
) -> CK_RV {
    crate::call("C_InitToken", crate::Target::Slot(arg1), || unsafe {
        match crate::real().C_InitToken {
            Some(f) => f(arg1, arg2, arg3, arg4),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_InitPIN`.
pub unsafe extern "C" fn C_InitPIN(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_UTF8CHAR,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_InitPIN", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_InitPIN {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SetPIN`.
pub unsafe extern "C" fn C_SetPIN(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_UTF8CHAR,
    arg3: CK_ULONG,
    arg4: *mut CK_UTF8CHAR,
    arg5: CK_ULONG,
) -> CK_RV {
    crate::call("C_SetPIN", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SetPIN {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_OpenSession`.
pub unsafe extern "C" fn C_OpenSession(
    arg1: CK_SLOT_ID,
    arg2: CK_FLAGS,
    arg3: *mut ::std::os::raw::c_void,
    arg4: CK_NOTIFY,
    arg5: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    crate::call("C_OpenSession", crate::Target::Slot(arg1), || unsafe {
        crate::special::C_OpenSession(arg1, arg2, arg3, arg4, arg5)
    })
}

/// Forwards `C_CloseSession`.
pub unsafe extern "C" fn C_CloseSession(arg1: CK_SESSION_HANDLE) -> CK_RV {
    crate::call("C_CloseSession", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_CloseSession {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_CloseAllSessions`.
pub unsafe extern "C" fn C_CloseAllSessions(arg1: CK_SLOT_ID) -> CK_RV {
    crate::call("C_CloseAllSessions", crate::Target::Slot(arg1), || unsafe {
        match crate::real().C_CloseAllSessions {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetSessionInfo`.
pub unsafe extern "C" fn C_GetSessionInfo(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_SESSION_INFO,
) -> CK_RV {
    crate::call(
        "C_GetSessionInfo",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_GetSessionInfo {
                Some(f) => f(arg1, arg2),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_GetOperationState`.
pub unsafe extern "C" fn C_GetOperationState(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_GetOperationState",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_GetOperationState {
                Some(f) => f(arg1, arg2, arg3),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_SetOperationState`.
pub unsafe extern "C" fn C_SetOperationState(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: CK_OBJECT_HANDLE,
    arg5: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call(
        "C_SetOperationState",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_SetOperationState {
                Some(f) => f(arg1, arg2, arg3, arg4, arg5),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_Login`.
pub unsafe extern "C" fn C_Login(
    arg1: CK_SESSION_HANDLE,
    arg2: CK_USER_TYPE,
    arg3: *mut CK_UTF8CHAR,
    arg4: CK_ULONG,
) -> CK_RV {
    crate::call("C_Login", crate::Target::Session(arg1), || unsafe {
        crate::special::C_Login(arg1, arg2, arg3, arg4)
    })
}

/// Forwards `C_Logout`.
pub unsafe extern "C" fn C_Logout(arg1: CK_SESSION_HANDLE) -> CK_RV {
    crate::call("C_Logout", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_Logout {
            Some(f) => f(arg1),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_CreateObject`.
pub unsafe extern "C" fn C_CreateObject(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_ATTRIBUTE,
    arg3: CK_ULONG,
    arg4: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_CreateObject", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_CreateObject {
            Some(f) => f(arg1, arg2, arg3, arg4),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_CopyObject`.
pub unsafe extern "C" fn C_CopyObject(
    arg1: CK_SESSION_HANDLE,
    arg2: CK_OBJECT_HANDLE,
    arg3: *mut CK_ATTRIBUTE,
    arg4: CK_ULONG,
    arg5: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_CopyObject", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_CopyObject {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DestroyObject`.
pub unsafe extern "C" fn C_DestroyObject(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE) -> CK_RV {
    crate::call("C_DestroyObject", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DestroyObject {
            Some(f) => f(arg1, arg2),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetObjectSize`.
pub unsafe extern "C" fn C_GetObjectSize(
    arg1: CK_SESSION_HANDLE,
    arg2: CK_OBJECT_HANDLE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_GetObjectSize", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_GetObjectSize {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GetAttributeValue`.
pub unsafe extern "C" fn C_GetAttributeValue(
    arg1: CK_SESSION_HANDLE,
    arg2: CK_OBJECT_HANDLE,
    arg3: *mut CK_ATTRIBUTE,
    arg4: CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_GetAttributeValue",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_GetAttributeValue {
                Some(f) => f(arg1, arg2, arg3, arg4),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_SetAttributeValue`.
pub unsafe extern "C" fn C_SetAttributeValue(
    arg1: CK_SESSION_HANDLE,
    arg2: CK_OBJECT_HANDLE,
    arg3: *mut CK_ATTRIBUTE,
    arg4: CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_SetAttributeValue",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_SetAttributeValue {
                Some(f) => f(arg1, arg2, arg3, arg4),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_FindObjectsInit`.
pub unsafe extern "C" fn C_FindObjectsInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_ATTRIBUTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_FindObjectsInit",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_FindObjectsInit {
                Some(f) => f(arg1, arg2, arg3),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_FindObjects`.
pub unsafe extern "C" fn C_FindObjects(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_OBJECT_HANDLE,
    arg3: CK_ULONG,
    arg4: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_FindObjects", crate::Target::Session(arg1), || unsafe {
        crate::special::C_FindObjects(arg1, arg2, arg3, arg4)
    })
}

/// Forwards `C_FindObjectsFinal`.
pub unsafe extern "C" fn C_FindObjectsFinal(arg1: CK_SESSION_HANDLE) -> CK_RV {
    crate::call(
        "C_FindObjectsFinal",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_FindObjectsFinal {
                Some(f) => f(arg1),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_EncryptInit`.
pub unsafe extern "C" fn C_EncryptInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_EncryptInit", crate::Target::Session(arg1), || unsafe {
        crate::special::C_EncryptInit(arg1, arg2, arg3)
    })
}

/// Forwards `C_Encrypt`.
pub unsafe extern "C" fn C_Encrypt(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_Encrypt", crate::Target::Session(arg1), || unsafe {
        crate::special::C_Encrypt(arg1, arg2, arg3, arg4, arg5)
    })
}

/// Forwards `C_EncryptUpdate`.
pub unsafe extern "C" fn C_EncryptUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_EncryptUpdate", crate::Target::Session(arg1), || unsafe {
        crate::special::C_EncryptUpdate(arg1, arg2, arg3, arg4, arg5)
    })
}

/// Forwards `C_EncryptFinal`.
pub unsafe extern "C" fn C_EncryptFinal(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_EncryptFinal", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_EncryptFinal {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DecryptInit`.
pub unsafe extern "C" fn C_DecryptInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_DecryptInit", crate::Target::Session(arg1), || unsafe {
        crate::special::C_DecryptInit(arg1, arg2, arg3)
    })
}

/// Forwards `C_Decrypt`.
pub unsafe extern "C" fn C_Decrypt(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_Decrypt", crate::Target::Session(arg1), || unsafe {
        crate::special::C_Decrypt(arg1, arg2, arg3, arg4, arg5)
    })
}

/// Forwards `C_DecryptUpdate`.
pub unsafe extern "C" fn C_DecryptUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_DecryptUpdate", crate::Target::Session(arg1), || unsafe {
        crate::special::C_DecryptUpdate(arg1, arg2, arg3, arg4, arg5)
    })
}

/// Forwards `C_DecryptFinal`.
pub unsafe extern "C" fn C_DecryptFinal(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_DecryptFinal", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DecryptFinal {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DigestInit`.
pub unsafe extern "C" fn C_DigestInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM) -> CK_RV {
    crate::call("C_DigestInit", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DigestInit {
            Some(f) => f(arg1, arg2),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_Digest`.
pub unsafe extern "C" fn C_Digest(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_Digest", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_Digest {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DigestUpdate`.
pub unsafe extern "C" fn C_DigestUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_DigestUpdate", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DigestUpdate {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DigestKey`.
pub unsafe extern "C" fn C_DigestKey(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE) -> CK_RV {
    crate::call("C_DigestKey", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DigestKey {
            Some(f) => f(arg1, arg2),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DigestFinal`.
pub unsafe extern "C" fn C_DigestFinal(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_DigestFinal", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DigestFinal {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SignInit`.
pub unsafe extern "C" fn C_SignInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_SignInit", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SignInit {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_Sign`.
pub unsafe extern "C" fn C_Sign(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_Sign", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_Sign {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SignUpdate`.
pub unsafe extern "C" fn C_SignUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_SignUpdate", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SignUpdate {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SignFinal`.
pub unsafe extern "C" fn C_SignFinal(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_SignFinal", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SignFinal {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SignRecoverInit`.
pub unsafe extern "C" fn C_SignRecoverInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call(
        "C_SignRecoverInit",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_SignRecoverInit {
                Some(f) => f(arg1, arg2, arg3),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_SignRecover`.
pub unsafe extern "C" fn C_SignRecover(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_SignRecover", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SignRecover {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_VerifyInit`.
pub unsafe extern "C" fn C_VerifyInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_VerifyInit", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_VerifyInit {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_Verify`.
pub unsafe extern "C" fn C_Verify(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: CK_ULONG,
) -> CK_RV {
    crate::call("C_Verify", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_Verify {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_VerifyUpdate`.
pub unsafe extern "C" fn C_VerifyUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_VerifyUpdate", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_VerifyUpdate {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_VerifyFinal`.
pub unsafe extern "C" fn C_VerifyFinal(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_VerifyFinal", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_VerifyFinal {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_VerifyRecoverInit`.
pub unsafe extern "C" fn C_VerifyRecoverInit(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call(
        "C_VerifyRecoverInit",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_VerifyRecoverInit {
                Some(f) => f(arg1, arg2, arg3),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_VerifyRecover`.
pub unsafe extern "C" fn C_VerifyRecover(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_VerifyRecover", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_VerifyRecover {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_DigestEncryptUpdate`.
pub unsafe extern "C" fn C_DigestEncryptUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_DigestEncryptUpdate",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_DigestEncryptUpdate {
                Some(f) => f(arg1, arg2, arg3, arg4, arg5),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_DecryptDigestUpdate`.
pub unsafe extern "C" fn C_DecryptDigestUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_DecryptDigestUpdate",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_DecryptDigestUpdate {
                Some(f) => f(arg1, arg2, arg3, arg4, arg5),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_SignEncryptUpdate`.
pub unsafe extern "C" fn C_SignEncryptUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_SignEncryptUpdate",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_SignEncryptUpdate {
                Some(f) => f(arg1, arg2, arg3, arg4, arg5),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_DecryptVerifyUpdate`.
pub unsafe extern "C" fn C_DecryptVerifyUpdate(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
    arg4: *mut CK_BYTE,
    arg5: *mut CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_DecryptVerifyUpdate",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_DecryptVerifyUpdate {
                Some(f) => f(arg1, arg2, arg3, arg4, arg5),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_GenerateKey`.
pub unsafe extern "C" fn C_GenerateKey(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: *mut CK_ATTRIBUTE,
    arg4: CK_ULONG,
    arg5: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_GenerateKey", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_GenerateKey {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GenerateKeyPair`.
pub unsafe extern "C" fn C_GenerateKeyPair(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: *mut CK_ATTRIBUTE,
    arg4: CK_ULONG,
    arg5: *mut CK_ATTRIBUTE,
    arg6: CK_ULONG,
    arg7: *mut CK_OBJECT_HANDLE,
    arg8: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call(
        "C_GenerateKeyPair",
        crate::Target::Session(arg1),
        || unsafe {
            crate::special::C_GenerateKeyPair(arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8)
        },
    )
}

/// Forwards `C_WrapKey`.
pub unsafe extern "C" fn C_WrapKey(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
    arg4: CK_OBJECT_HANDLE,
    arg5: *mut CK_BYTE,
    arg6: *mut CK_ULONG,
) -> CK_RV {
    crate::call("C_WrapKey", crate::Target::Session(arg1), || unsafe {
        crate::special::C_WrapKey(arg1, arg2, arg3, arg4, arg5, arg6)
    })
}

/// Forwards `C_UnwrapKey`.
pub unsafe extern "C" fn C_UnwrapKey(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
    arg4: *mut CK_BYTE,
    arg5: CK_ULONG,
    arg6: *mut CK_ATTRIBUTE,
    arg7: CK_ULONG,
    arg8: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_UnwrapKey", crate::Target::Session(arg1), || unsafe {
        crate::special::C_UnwrapKey(arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8)
    })
}

/// Forwards `C_DeriveKey`.
pub unsafe extern "C" fn C_DeriveKey(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_MECHANISM,
    arg3: CK_OBJECT_HANDLE,
    arg4: *mut CK_ATTRIBUTE,
    arg5: CK_ULONG,
    arg6: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    crate::call("C_DeriveKey", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_DeriveKey {
            Some(f) => f(arg1, arg2, arg3, arg4, arg5, arg6),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_SeedRandom`.
pub unsafe extern "C" fn C_SeedRandom(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call("C_SeedRandom", crate::Target::Session(arg1), || unsafe {
        match crate::real().C_SeedRandom {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// Forwards `C_GenerateRandom`.
pub unsafe extern "C" fn C_GenerateRandom(
    arg1: CK_SESSION_HANDLE,
    arg2: *mut CK_BYTE,
    arg3: CK_ULONG,
) -> CK_RV {
    crate::call(
        "C_GenerateRandom",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_GenerateRandom {
                Some(f) => f(arg1, arg2, arg3),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_GetFunctionStatus`.
pub unsafe extern "C" fn C_GetFunctionStatus(arg1: CK_SESSION_HANDLE) -> CK_RV {
    crate::call(
        "C_GetFunctionStatus",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_GetFunctionStatus {
                Some(f) => f(arg1),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_CancelFunction`.
pub unsafe extern "C" fn C_CancelFunction(arg1: CK_SESSION_HANDLE) -> CK_RV {
    crate::call(
        "C_CancelFunction",
        crate::Target::Session(arg1),
        || unsafe {
            match crate::real().C_CancelFunction {
                Some(f) => f(arg1),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            }
        },
    )
}

/// Forwards `C_WaitForSlotEvent`.
pub unsafe extern "C" fn C_WaitForSlotEvent(
    arg1: CK_FLAGS,
    arg2: *mut CK_SLOT_ID,
    arg3: *mut ::std::os::raw::c_void,
) -> CK_RV {
    crate::call("C_WaitForSlotEvent", crate::Target::None, || unsafe {
        match crate::real().C_WaitForSlotEvent {
            Some(f) => f(arg1, arg2, arg3),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    })
}

/// The table handed out by `C_GetFunctionList`.
pub static TABLE: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(crate::C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
