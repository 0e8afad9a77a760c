//! The engine's face: one typed method per operation of docs/protocol.md on
//! a [`SlotHandle`]. The engine decides here, and only here, on which
//! session thread an operation runs, whether it waits for the slot's key
//! cache ([`KeyCache::looking_up`](super::keys::KeyCache::looking_up) for
//! lookups, [`KeyCache::changing`](super::keys::KeyCache::changing) for
//! creations and destructions), and whether it is retried once on a fresh
//! lookup when a cached key handle went stale. Callers (the server) see
//! protocol types and [`ErrorBody`] only, never a cryptoki type.

use super::error::OpError;
use super::slot::{SlotContext, SlotHandle};
use super::{cipher, export, generate, keys, signature, status};
use cryptoki::session::Session;
use hsmd_protocol::{
    Decrypt, DecryptResult, Encrypt, EncryptResult, ErrorBody, ErrorCode, ExportResult,
    GenerateKey, GenerateKeyPair, KeyInfo, KeyKind, KeyPairResult, KeyRef, KeyUid, RandomResult,
    Sign, SignResult, SlotStatus, Verify, VerifyResult,
};

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

    /// An operation on the key `uid` of this slot, resolved through the
    /// slot's key cache and retried once on a fresh lookup when a cached
    /// handle went stale.
    async fn on_key<T: Send + 'static>(
        &self,
        uid: KeyUid,
        op: impl Fn(&Session, &SlotContext, &KeyUid) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            ctx.keys.retry_stale(|| op(s, ctx, &uid))
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

    /// The key info of `uid`.
    ///
    /// Errors: `not_found`, `ambiguous`, `unsupported` (a key type hsmd does
    /// not serve), PKCS#11 failures.
    pub async fn get_key(&self, uid: KeyUid) -> Result<KeyInfo, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let _store = ctx.keys.looking_up();
            let obj = keys::resolve(s, ctx.profile(), &uid, keys::Want::Any)?;
            keys::key_info(s, ctx.id, &obj, &uid.label)?.ok_or_else(|| {
                ErrorBody::new(
                    ErrorCode::Unsupported,
                    format!("key {} is of a type hsmd does not serve", uid),
                )
                .into()
            })
        }))
        .await
    }

    /// Creates an AES key ([`generate::generate_key`]).
    pub async fn generate_key(&self, p: GenerateKey) -> Result<KeyInfo, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let _store = ctx.keys.changing();
            generate::generate_key(s, &ctx.mechanisms, &ctx.keys, &p)
        }))
        .await
    }

    /// Creates a key pair ([`generate::generate_key_pair`]).
    pub async fn generate_key_pair(&self, p: GenerateKeyPair) -> Result<KeyPairResult, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let _store = ctx.keys.changing();
            generate::generate_key_pair(s, &ctx.mechanisms, &ctx.keys, &p)
        }))
        .await
    }

    /// Destroys the key `uid` ([`generate::destroy`]).
    pub async fn destroy(&self, uid: KeyUid) -> Result<KeyRef, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let _store = ctx.keys.changing();
            generate::destroy(s, ctx.profile(), &ctx.keys, &uid)
        }))
        .await
    }

    /// Exports the key `uid` ([`export::export`]).
    pub async fn export(&self, uid: KeyUid) -> Result<ExportResult, ErrorBody> {
        self.on_session(Box::new(move |s, ctx| {
            let _store = ctx.keys.looking_up();
            export::export(s, ctx.profile(), &uid)
        }))
        .await
    }

    /// Encrypts with the key `uid` ([`cipher::encrypt`]).
    pub async fn encrypt(&self, uid: KeyUid, p: Encrypt) -> Result<EncryptResult, ErrorBody> {
        self.on_key(uid, move |s, ctx, uid| {
            cipher::encrypt(s, &ctx.mechanisms, &ctx.keys, uid, &p)
        })
        .await
    }

    /// Decrypts with the key `uid` ([`cipher::decrypt`]).
    pub async fn decrypt(&self, uid: KeyUid, p: Decrypt) -> Result<DecryptResult, ErrorBody> {
        self.on_key(uid, move |s, ctx, uid| {
            cipher::decrypt(s, &ctx.mechanisms, &ctx.keys, uid, &p)
        })
        .await
    }

    /// Signs with the key `uid` ([`signature::sign`]).
    pub async fn sign(&self, uid: KeyUid, p: Sign) -> Result<SignResult, ErrorBody> {
        self.on_key(uid, move |s, ctx, uid| {
            signature::sign(s, &ctx.mechanisms, &ctx.keys, uid, &p)
        })
        .await
    }

    /// Verifies with the key `uid` ([`signature::verify`]).
    pub async fn verify(&self, uid: KeyUid, p: Verify) -> Result<VerifyResult, ErrorBody> {
        self.on_key(uid, move |s, ctx, uid| {
            signature::verify(s, &ctx.mechanisms, &ctx.keys, uid, &p)
        })
        .await
    }

    /// `len` random bytes from the token (`C_GenerateRandom`, PKCS#11 v2.40
    /// section 5.15); the caller has checked `len` against
    /// [`hsmd_protocol::MAX_RANDOM_LEN`].
    pub async fn random(&self, len: u32) -> Result<RandomResult, ErrorBody> {
        self.on_session(Box::new(move |s, _| {
            Ok(RandomResult {
                bytes: s.generate_random_vec(len)?.into(),
            })
        }))
        .await
    }
}
