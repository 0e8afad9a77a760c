//! The permission model (the reference server's documented one for HSM
//! keys): hsmd's `hsm_admin`s co-own every HSM key; only they create,
//! destroy, grant and revoke; anybody else may use a key only for what was
//! granted to them. `get` and `export` imply each other, `get_attributes`
//! (and seeing the key in `Locate`) comes with any grant, `create` and
//! `destroy` are never grantable.

use super::store::GrantStore;
use crate::error::KmsError;

/// Operation names a grant may hold (the reference's `KmipOperation` names).
pub const GRANTABLE: &[&str] = &[
    "decrypt",
    "encrypt",
    "export",
    "get",
    "get_attributes",
    "sign",
    "signature_verify",
];

/// What a request needs on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// KMIP Encrypt.
    Encrypt,
    /// KMIP Decrypt.
    Decrypt,
    /// KMIP Sign.
    Sign,
    /// KMIP SignatureVerify.
    SignatureVerify,
    /// KMIP Get or Export.
    Get,
    /// KMIP GetAttributes (any grant).
    GetAttributes,
}

impl Need {
    /// The grant names that satisfy this need (empty = any grant).
    fn satisfied_by(self) -> &'static [&'static str] {
        match self {
            Self::Encrypt => &["encrypt"],
            Self::Decrypt => &["decrypt"],
            Self::Sign => &["sign"],
            Self::SignatureVerify => &["signature_verify"],
            Self::Get => &["get", "export"],
            Self::GetAttributes => &[],
        }
    }

    /// The grant name to ask an admin for.
    fn name(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::Sign => "sign",
            Self::SignatureVerify => "signature_verify",
            Self::Get => "get",
            Self::GetAttributes => "get_attributes",
        }
    }
}

/// True when `user` is one of hsmd's `admins` (`"*"` = everyone).
pub fn is_admin(user: &str, admins: &[String]) -> bool {
    admins.iter().any(|a| a == "*" || a == user)
}

/// Checks that `user` may do `need` on key `uid`.
///
/// Errors: 422 naming the missing grant (or "not found / not shared" when
/// the user has no grant at all on the key), 503 when the database is
/// unreachable, 500 on another database failure.
pub async fn check(
    grants: &GrantStore,
    user: &str,
    admins: &[String],
    uid: &str,
    need: Need,
) -> Result<(), KmsError> {
    if is_admin(user, admins) {
        return Ok(());
    }
    check_granted(grants, user, uid, need).await
}

/// Checks that `user` holds a grant on `uid` that allows `need` (for KMS
/// keys, whose owner is checked by the caller, and for anybody who is not
/// an HSM admin on HSM keys).
///
/// Errors: as [`check`].
pub async fn check_granted(
    grants: &GrantStore,
    user: &str,
    uid: &str,
    need: Need,
) -> Result<(), KmsError> {
    let ops = grants.operations(uid, user).await?;
    if ops.is_empty() {
        return Err(KmsError::unprocessable(format!(
            "Item not found: {uid}: no such key, or it is not shared with {user}"
        )));
    }
    let wanted = need.satisfied_by();
    if wanted.is_empty() || ops.iter().any(|o| wanted.contains(&o.as_str())) {
        return Ok(());
    }
    Err(KmsError::unprocessable(format!(
        "Item not found: {user} may not {} with {uid}: the operations granted to {user} on it are {}; ask the key's owner to grant `{}`",
        need.name(),
        ops.join(", "),
        need.name()
    )))
}

/// The user a grant may name: `*` (every user, as the reference) or a name
/// of 1 to 255 characters without control characters or surrounding spaces.
///
/// Errors: 422 saying what is wrong.
pub fn grantee(user: &str) -> Result<(), KmsError> {
    let bad = if user.is_empty() {
        Some("it is empty")
    } else if user.chars().count() > 255 {
        Some("it is longer than 255 characters")
    } else if user.chars().any(char::is_control) {
        Some("it holds control characters")
    } else if user.trim() != user {
        Some("it begins or ends with spaces")
    } else {
        None
    };
    match bad {
        Some(why) => Err(KmsError::unprocessable(format!(
            "user_id {user:?} cannot be granted to: {why}; give a KMS user name (as its certificate or token names it), or * for every user"
        ))),
        None => Ok(()),
    }
}

/// Checks a grant's operation names against [`GRANTABLE`].
///
/// Errors: 422 naming the refused operation and the accepted ones.
pub fn grantable(operations: &[String]) -> Result<Vec<&'static str>, KmsError> {
    if operations.is_empty() {
        return Err(KmsError::unprocessable(format!(
            "operation_types is empty: name at least one of {}",
            GRANTABLE.join(", ")
        )));
    }
    operations
        .iter()
        .map(|op| {
            GRANTABLE
                .iter()
                .find(|g| **g == op.as_str())
                .copied()
                .ok_or_else(|| {
                    let why = match op.as_str() {
                        "create" | "destroy" => {
                            "only HSM admins create and destroy HSM keys, it cannot be granted"
                        }
                        _ => "it is not an operation on HSM keys that can be granted",
                    };
                    KmsError::unprocessable(format!(
                        "operation `{op}` cannot be granted: {why}; grantable: {}",
                        GRANTABLE.join(", ")
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_permission_table_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = GrantStore::open(&dir.path().join("kms.db")).expect("open");
        let admins = vec!["admin".to_owned()];
        g.grant("hsm::1::k", "bob", &["encrypt", "export"])
            .await
            .expect("grant");
        assert!(check(&g, "admin", &admins, "hsm::1::k", Need::Decrypt)
            .await
            .is_ok());
        assert!(check(&g, "bob", &admins, "hsm::1::k", Need::Encrypt)
            .await
            .is_ok());
        assert!(
            check(&g, "bob", &admins, "hsm::1::k", Need::Get)
                .await
                .is_ok(),
            "export implies get"
        );
        assert!(check(&g, "bob", &admins, "hsm::1::k", Need::GetAttributes)
            .await
            .is_ok());
        let e = check(&g, "bob", &admins, "hsm::1::k", Need::Decrypt)
            .await
            .expect_err("decrypt");
        assert_eq!(e.status.as_u16(), 422);
        assert!(
            e.message.contains("`decrypt`") && e.message.contains("encrypt, export"),
            "{e}"
        );
        let e = check(&g, "carol", &admins, "hsm::1::k", Need::GetAttributes)
            .await
            .expect_err("carol");
        assert!(e.message.contains("not shared with carol"), "{e}");
        assert!(grantable(&["destroy".into()])
            .expect_err("destroy")
            .message
            .contains("cannot be granted"));
        assert!(grantable(&["create".into()]).is_err());
        assert!(grantable(&[]).is_err());
        assert_eq!(
            grantable(&["get".into(), "sign".into()]).expect("ok"),
            ["get", "sign"]
        );
    }
}
