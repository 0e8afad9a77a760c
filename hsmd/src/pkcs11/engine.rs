//! The engine's face: what the server may ask of a slot. Every operation of
//! docs/protocol.md that one slot performs is a [`SlotOperation`], declared
//! with its code in its own file of this directory (`cipher.rs`,
//! `signature.rs`, `generate.rs`, `export.rs`, `keys.rs`, `random.rs`), and
//! run by [`SlotHandle::perform`]; `status` and `list_keys`, which ask every
//! slot, are [`SlotHandle::status`] and [`SlotHandle::list_keys`].
//!
//! The engine decides here, and only here, on which session thread an
//! operation runs, whether it waits for the slot's key cache
//! ([`KeyCache::looking_up`](super::keys::KeyCache::looking_up) for lookups,
//! [`KeyCache::changing`](super::keys::KeyCache::changing) for creations and
//! destructions), and whether it is retried once on a fresh lookup when a
//! cached key handle went stale. Callers see protocol types, [`Route`] and
//! [`ErrorBody`] only, never a cryptoki type.

use super::error::OpError;
use super::keys;
use super::slot::{SlotContext, SlotHandle};
use super::status;
use cryptoki::session::Session;
use hsmd_protocol::{ErrorBody, KeyInfo, KeyKind, KeyUid, Op, SlotStatus};

/// How an operation uses the slot's key objects, which decides how the
/// engine orders it against the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyObjects {
    /// None (`random`).
    Untouched,
    /// Looks keys up on the token, under
    /// [`KeyCache::looking_up`](super::keys::KeyCache::looking_up).
    LookedUp,
    /// Creates or destroys keys, under
    /// [`KeyCache::changing`](super::keys::KeyCache::changing).
    Changed,
    /// Uses the key the request's uid names through the key cache, retried
    /// once on a fresh lookup when a cached handle went stale (the hot
    /// operations).
    Cached,
}

/// Which slot a request goes to, from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The slot of this key uid, which the operation gets.
    Key(KeyUid),
    /// This slot.
    Slot(u64),
    /// This slot, or the first configured one when None.
    SlotOrFirst(Option<u64>),
}

/// An operation one slot performs, as the server sees it: its protocol
/// parameters and result ([`Op`]), how it is routed and who may ask for it.
/// What it does on a session is its `OnSession` half, which only `pkcs11/` can name (so nothing outside the engine
/// touches a cryptoki type through it). Adding an operation to hsmd is one
/// impl of each, in its own file of `pkcs11/`, next to the code it runs.
// The OnSession bound is less visible than this trait on purpose: it seals
// the session side inside pkcs11/.
pub trait SlotOperation:
    Op<Output: Send + 'static> + on_session::OnSession + Send + 'static
{
    /// For admin-only operations, what the refusal says they do (e.g.
    /// `"create keys"`); None when every client may ask.
    const ADMIN_ONLY: Option<&'static str> = None;

    /// Checks what can be checked without a slot and says which slot.
    ///
    /// Errors: `bad_request` (a uid that does not parse, a value out of range).
    fn route(&self) -> Result<Route, ErrorBody>;
}

/// The session side of a [`SlotOperation`], visible inside `pkcs11/` only.
pub(super) mod on_session {
    use super::{KeyObjects, KeyUid, OpError, Session, SlotContext};
    use hsmd_protocol::Op;

    /// What a [`SlotOperation`](super::SlotOperation) does on a session.
    pub trait OnSession: Op {
        /// How it uses the slot's key objects.
        const KEY_OBJECTS: KeyObjects;

        /// Runs on one of the slot's session threads; `uid` is the key of a
        /// [`Route::Key`](super::Route::Key).
        ///
        /// Errors: the operation's refusals and PKCS#11 failures.
        fn run(
            &self,
            session: &Session,
            ctx: &SlotContext,
            uid: Option<&KeyUid>,
        ) -> Result<Self::Output, OpError>;
    }
}

/// The key uid a [`Route::Key`] operation was given.
///
/// Errors: `internal` when the operation was not routed by a key.
pub fn routed_key(uid: Option<&KeyUid>) -> Result<&KeyUid, OpError> {
    uid.ok_or_else(|| {
        OpError::new(
            hsmd_protocol::ErrorCode::Internal,
            "the operation was not routed by a key uid",
        )
    })
}

/// What runs on a slot's session thread.
type SlotOp<T> = dyn FnMut(&Session, &SlotContext) -> Result<T, OpError> + Send;

impl SlotHandle {
    /// Runs `f` on one of the slot's session threads with its session
    /// (reopened and logged in again when it was lost), mapping errors to
    /// bodies that name the slot. Boxed: one instance per result type.
    async fn on_session<T: Send + 'static>(&self, mut f: Box<SlotOp<T>>) -> Result<T, ErrorBody> {
        let id = self.id();
        self.run(move |w| w.with_session(&mut f).map_err(|e| e.into_body(id)))
            .await?
    }

    /// Performs `op` on this slot; `uid` is the key of its [`Route::Key`].
    ///
    /// Errors: the operation's, `busy` when the slot is shutting down.
    pub async fn perform<O: SlotOperation>(
        &self,
        op: O,
        uid: Option<KeyUid>,
    ) -> Result<O::Output, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let uid = uid.as_ref();
            match O::KEY_OBJECTS {
                KeyObjects::Untouched => op.run(s, ctx, uid),
                KeyObjects::LookedUp => {
                    let _store = ctx.keys.looking_up();
                    op.run(s, ctx, uid)
                }
                KeyObjects::Changed => {
                    let _store = ctx.keys.changing();
                    op.run(s, ctx, uid)
                }
                KeyObjects::Cached => ctx.keys.retry_stale(|| op.run(s, ctx, uid)),
            }
        }))
        .await
    }

    /// The slot's `status` entry (token, PIN flags, login, mechanisms,
    /// hsmd's state of the slot). Never fails on the token's account.
    ///
    /// Errors: `busy` when the slot is shutting down.
    pub async fn status(&self) -> Result<SlotStatus, ErrorBody> {
        self.run(status::slot_status).await
    }

    /// Every key on the slot's token, of `kind` only when given.
    ///
    /// Errors: PKCS#11 failures, `busy`.
    pub async fn list_keys(&self, kind: Option<KeyKind>) -> Result<Vec<KeyInfo>, ErrorBody> {
        let id = self.id();
        let found = self
            .on_session(Box::new(move |s, ctx| {
                let _store = ctx.keys.looking_up();
                keys::list(s, ctx.profile(), id)
            }))
            .await?;
        Ok(found
            .into_iter()
            .filter(|k| kind.is_none_or(|want| k.kind == want))
            .collect())
    }
}
