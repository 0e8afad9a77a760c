//! KMIP operations on KMS keys: objects kept in the frontend's database,
//! their material wrapped by an HSM key ([`crate::vault`]), used in
//! software once unwrapped ([`crate::crypto`]). Any Unique Identifier that
//! is not `hsm::…` names one of them.
//!
//! Who may do what (the reference's model for its own keys): the user who
//! created or imported a key owns it and may do everything with it,
//! including granting; anybody else needs a grant. HSM admins have no
//! rights on KMS keys they do not own.
//!
//! States (KMIP 2.1 section 3.27): Encrypt and Sign need an Active key;
//! Decrypt and SignatureVerify also accept a Deactivated or Compromised
//! one (data protected before a Revoke stays readable); a Destroyed key is
//! "Item not found" for every use, its metadata answers GetAttributes.

pub mod attributes;
pub mod changes;
pub mod create;
pub mod crypto;
pub mod get;
pub mod import;
pub mod lifecycle;
pub mod locate;
pub mod modify;

use super::Ctx;
use crate::access::policy::Need;
use crate::error::KmsError;
use crate::store::{State, StoredObject};

/// True when `uid` names an HSM key (`hsm::…`), not a KMS key.
pub fn is_hsm(uid: &str) -> bool {
    uid.starts_with("hsm::")
}

/// Longest Unique Identifier a KMS key may be given, in bytes.
pub const UID_MAX: usize = 255;

/// Checks a caller-chosen Unique Identifier for a new KMS key: 1 to
/// [`UID_MAX`] bytes, no control characters (a uid is shown by clients
/// to the users it is shared with, and must not carry terminal escapes or
/// forge lines).
///
/// Errors: 422 saying what is wrong and what is accepted.
pub fn check_new_uid(uid: &str, what: &str) -> Result<(), KmsError> {
    let bad = if uid.is_empty() {
        Some("it is empty".to_owned())
    } else if uid.len() > UID_MAX {
        Some(format!("it is {} bytes long", uid.len()))
    } else if uid.chars().any(char::is_control) {
        Some("it holds control characters".to_owned())
    } else {
        None
    };
    match bad {
        Some(why) => Err(KmsError::unprocessable(format!(
            "{what}: the UniqueIdentifier {} is refused: {why}; give 1 to {UID_MAX} bytes of printable text, or leave it out for a UUID",
            crate::error::echo(uid)
        ))),
        None => Ok(()),
    }
}

/// How many times [`retrying`] runs an operation at most.
const CONFLICT_TRIES: u32 = 8;

/// Runs `op` (a read-modify-write of one key: Revoke, Destroy, an attribute
/// change, ReKey; or a use whose key changed while it was being unwrapped)
/// again, after a short random wait ([`backoff`]), up to [`CONFLICT_TRIES`]
/// times in all, while it fails with 409 because
/// the key changed between its read and its write (`StoreError::Conflict`:
/// nothing was written). Each run reads the key anew, so a concurrent
/// change is applied on top, never undone.
///
/// Errors: `op`'s; 409 when the key kept changing.
pub async fn retrying<T, F, Fut>(mut op: F) -> Result<T, KmsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KmsError>>,
{
    for attempt in 1..CONFLICT_TRIES {
        match op().await {
            Err(e) if e.is_conflict() => tokio::time::sleep(backoff(attempt)).await,
            done => return done,
        }
    }
    op().await
}

/// The wait before try `attempt + 1`: a random part of `attempt` ms, so
/// that writers that collided do not collide again in step (a stream of
/// attribute changes cannot hold a Revoke off for long).
fn backoff(attempt: u32) -> std::time::Duration {
    let mut byte = [0u8; 1];
    // Without randomness the wait is the whole slot: still bounded.
    let share = match aws_lc_rs::rand::fill(&mut byte) {
        Ok(()) => u64::from(byte[0]),
        Err(_) => 255,
    };
    std::time::Duration::from_micros(u64::from(attempt) * 1000 * share / 255)
}

/// "Item not found" for `uid`, the same whether it does not exist or the
/// caller may not see it (so its existence does not leak).
fn not_found(uid: &str, user: &str) -> KmsError {
    KmsError::unprocessable(format!(
        "Item not found: {uid}: no such key, or it is not shared with {user}"
    ))
}

/// The stored object `uid`, when the caller may do `need` with it.
///
/// Errors: 422 "Item not found" when there is none or the caller holds no
/// grant at all on it; 422 naming the missing grant; 500 on a database
/// failure.
pub async fn load(ctx: &Ctx<'_>, uid: &str, need: Need) -> Result<StoredObject, KmsError> {
    let obj = ctx.vault.store().get(uid).await?;
    allowed(ctx, uid, obj, need).await
}

/// [`load`] without the object's metadata (names, tags, attributes:
/// [`crate::store::ObjectStore::get_for_use`]), for the cryptographic
/// operations, which read the row on every request. Same errors.
pub async fn load_for_use(ctx: &Ctx<'_>, uid: &str, need: Need) -> Result<StoredObject, KmsError> {
    let obj = ctx.vault.store().get_for_use(uid).await?;
    allowed(ctx, uid, obj, need).await
}

/// `obj` when there is one and the caller may do `need` with it ([`load`]'s errors).
async fn allowed(
    ctx: &Ctx<'_>,
    uid: &str,
    obj: Option<StoredObject>,
    need: Need,
) -> Result<StoredObject, KmsError> {
    let obj = obj.ok_or_else(|| not_found(uid, ctx.user))?;
    if obj.owner != ctx.user {
        crate::access::policy::check_granted(ctx.grants(), ctx.user, uid, need).await?;
    }
    Ok(obj)
}

/// The stored object `uid` when the caller owns it (Destroy, Revoke, the
/// attribute changes, ReKey, grants).
///
/// Errors: 422 "Item not found" as [`load`]; 401 when another user owns it.
pub async fn load_owned(ctx: &Ctx<'_>, uid: &str, what: &str) -> Result<StoredObject, KmsError> {
    let obj = load(ctx, uid, Need::GetAttributes).await?;
    if obj.owner != ctx.user {
        return Err(KmsError::admin_only(format!(
            "Access denied: {what} {uid}: only its owner may, and {} is not the owner",
            ctx.user
        )));
    }
    Ok(obj)
}

/// Checks `obj`'s state allows `need`.
///
/// Errors: 422 "Item not found" for a destroyed object; 422
/// "Permission_Denied" naming the state for Encrypt or Sign with a key that
/// is not Active.
pub fn usable_for(obj: &StoredObject, need: Need) -> Result<(), KmsError> {
    match (obj.state, need) {
        (State::Destroyed | State::DestroyedCompromised, _) => {
            Err(KmsError::unprocessable(format!(
                "Item not found: {} is destroyed: its key material is gone",
                obj.uid
            )))
        }
        (State::Active, _) => Ok(()),
        (State::Deactivated | State::Compromised, Need::Decrypt | Need::SignatureVerify) => Ok(()),
        (State::Deactivated | State::Compromised, Need::Get | Need::GetAttributes) => Ok(()),
        (state, _) => Err(KmsError::unprocessable(format!(
            "Permission_Denied: {} is in state {}: only an Active key encrypts or signs (a Deactivated or Compromised one still decrypts and verifies)",
            obj.uid,
            state.name()
        ))),
    }
}
