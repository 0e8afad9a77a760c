//! Key objects on the token: finding them by `CKA_LABEL`, describing them as
//! protocol key infos, and the templates of new keys (PKCS#11 v2.40 sections
//! 4.7-4.9 for the key attributes, 2.3 for EC parameters).

use super::error::OpError;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hsmd_protocol::uid::{KeyUid, Label};
use hsmd_protocol::{Curve, ErrorCode, KeyInfo, KeyKind, Usage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// DER of the curve OIDs as `CKA_EC_PARAMS` holds them (namedCurve).
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

/// `CKA_EC_PARAMS` for a curve.
pub fn curve_params(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => P256_OID,
        Curve::P384 => P384_OID,
        Curve::P521 => P521_OID,
    }
}

/// The curve named by `CKA_EC_PARAMS`, if it is one hsmd knows.
pub fn curve_of(params: &[u8]) -> Option<Curve> {
    [Curve::P256, Curve::P384, Curve::P521]
        .into_iter()
        .find(|c| curve_params(*c) == params)
}

/// A key object located on the token.
#[derive(Debug, Clone, Copy)]
pub struct KeyObject {
    /// Session-independent object handle.
    pub handle: ObjectHandle,
    /// `CKA_CLASS`.
    pub class: ObjectClass,
    /// `CKA_KEY_TYPE`.
    pub key_type: KeyType,
}

impl KeyObject {
    /// The protocol kind, or None for key types hsmd does not serve.
    pub fn kind(&self) -> Option<KeyKind> {
        match (self.class, self.key_type) {
            (ObjectClass::SECRET_KEY, KeyType::AES) => Some(KeyKind::Aes),
            (ObjectClass::PRIVATE_KEY, KeyType::RSA) => Some(KeyKind::RsaPrivate),
            (ObjectClass::PUBLIC_KEY, KeyType::RSA) => Some(KeyKind::RsaPublic),
            (ObjectClass::PRIVATE_KEY, KeyType::EC) => Some(KeyKind::EcPrivate),
            (ObjectClass::PUBLIC_KEY, KeyType::EC) => Some(KeyKind::EcPublic),
            _ => None,
        }
    }
}

fn is_key_class(c: ObjectClass) -> bool {
    c == ObjectClass::SECRET_KEY || c == ObjectClass::PRIVATE_KEY || c == ObjectClass::PUBLIC_KEY
}

/// Every object matching `template`, asking the token for at most the
/// profile's `find_chunk` handles per `C_FindObjects` (PKCS#11 v2.40
/// section 5.7; the SmartCard-HSM hands out 16 at a time).
pub fn find_all(session: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>, OpError> {
    let chunk = std::num::NonZeroUsize::new(super::profile::get().find_chunk)
        .unwrap_or(std::num::NonZeroUsize::MIN);
    Ok(session
        .iter_objects_with_cache_size(template, chunk)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// Every token key object whose `CKA_LABEL` is `label`.
pub fn find_by_label(session: &Session, label: &[u8]) -> Result<Vec<KeyObject>, OpError> {
    let template = [Attribute::Token(true), Attribute::Label(label.to_vec())];
    let mut out = Vec::new();
    for handle in find_all(session, &template)? {
        if let Some(obj) = describe_handle(session, handle)? {
            out.push(obj);
        }
    }
    Ok(out)
}

/// Class and key type of a handle; None when it is not a key.
fn describe_handle(session: &Session, handle: ObjectHandle) -> Result<Option<KeyObject>, OpError> {
    let attrs = session.get_attributes(handle, &[AttributeType::Class, AttributeType::KeyType])?;
    let (mut class, mut key_type) = (None, None);
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(k) => key_type = Some(k),
            _ => {}
        }
    }
    Ok(match (class, key_type) {
        (Some(class), Some(key_type)) if is_key_class(class) => Some(KeyObject {
            handle,
            class,
            key_type,
        }),
        _ => None,
    })
}

/// What an operation needs the uid to resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Whatever key carries the label.
    Any,
    /// A secret key.
    Secret,
    /// A private key.
    Private,
    /// A public key; the private key's uid resolves to its `<label>_pk`.
    Public,
}

/// Resolves a uid to one key object.
///
/// Errors: `not_found` when no key carries the label (or, for [`Want::Public`]
/// on a private key's uid, when its `<label>_pk` is missing); `bad_request`
/// when the key is of the wrong class for the operation.
pub fn resolve(session: &Session, uid: &KeyUid, want: Want) -> Result<KeyObject, OpError> {
    resolve_by(uid, want, |label| {
        find_by_label(session, label).map(Arc::from)
    })
}

/// [`resolve`] through the slot's [`KeyCache`]: a label found before is not
/// looked up on the token again. Use with [`KeyCache::retry_stale`], which
/// forgets the cache and retries when a cached handle has gone stale.
pub fn resolve_cached(
    session: &Session,
    cache: &KeyCache,
    uid: &KeyUid,
    want: Want,
) -> Result<KeyObject, OpError> {
    resolve_by(uid, want, |label| cache.find(session, label))
}

fn resolve_by(
    uid: &KeyUid,
    want: Want,
    mut find: impl FnMut(&[u8]) -> Result<Arc<[KeyObject]>, OpError>,
) -> Result<KeyObject, OpError> {
    let found = find(uid.label.as_bytes())?;
    let pick = |class: ObjectClass| found.iter().copied().find(|k| k.class == class);
    // Formatted only for an error: this runs on every hot operation.
    let full = || uid.to_string();
    let not_found = || {
        OpError::new(
            ErrorCode::NotFound,
            format!("no key {} on the token in slot {}", full(), uid.slot),
        )
    };
    let wrong = |what: &str| {
        OpError::new(
            ErrorCode::BadRequest,
            format!("key {} is not {what}; this operation needs {what}", full()),
        )
    };
    match want {
        Want::Any => found.first().copied().ok_or_else(not_found),
        Want::Secret => pick(ObjectClass::SECRET_KEY).ok_or_else(|| {
            if found.is_empty() {
                not_found()
            } else {
                wrong("a secret (AES) key")
            }
        }),
        Want::Private => pick(ObjectClass::PRIVATE_KEY).ok_or_else(|| {
            if found.is_empty() {
                not_found()
            } else {
                wrong("a private key")
            }
        }),
        Want::Public => {
            if let Some(k) = pick(ObjectClass::PUBLIC_KEY) {
                return Ok(k);
            }
            if pick(ObjectClass::PRIVATE_KEY).is_some() {
                let pk = uid
                    .public_key()
                    .map_err(|e| OpError::new(ErrorCode::NotFound, e.to_string()))?;
                return find(pk.label.as_bytes())?
                    .iter()
                    .copied()
                    .find(|k| k.class == ObjectClass::PUBLIC_KEY)
                    .ok_or_else(|| {
                        OpError::new(
                            ErrorCode::NotFound,
                            format!(
                                "key {} is a private key and its public key {} is not on the token",
                                full(),
                                pk
                            ),
                        )
                    });
            }
            if found.is_empty() {
                Err(not_found())
            } else {
                Err(wrong("an RSA or EC key"))
            }
        }
    }
}

/// Most labels a [`KeyCache`] remembers before it starts over.
const CACHE_MAX_LABELS: usize = 4096;

/// What the key operations of one slot looked up on the token: the key
/// objects under each label and the curve of each EC key.
///
/// Looking a key up on the token (`C_FindObjectsInit`/`C_FindObjects` and
/// `C_GetAttributeValue`) costs several times the operation itself on
/// SoftHSMv2 (it rescans and rereads its object files) and a card round trip
/// per call on a SmartCard-HSM, so the hot operations (encrypt, decrypt,
/// sign, verify) resolve through this cache. Object handles are the
/// application's (this process's) and stay valid until the object is
/// destroyed; only labels that were found are remembered (a key created
/// later is seen at once); hsmd clears the cache whenever it creates or
/// destroys a key; and a handle made stale by another application
/// (`CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`) clears it and
/// the operation is retried once on a fresh lookup ([`KeyCache::retry_stale`]).
///
/// It also orders the slot's lookups against its creations and
/// destructions: a lookup ([`KeyCache::looking_up`]) never runs while a key
/// is being created or destroyed ([`KeyCache::changing`]). SoftHSMv2's file
/// object store needs this: `C_GenerateKey` writes the new object's file
/// before it enters it in the token's list, and a `C_FindObjectsInit` on
/// another session that rescans the directory in between takes the
/// half-written file for a second object and invalidates or corrupts the
/// first, which makes the creation fail with `CKR_GENERAL_ERROR` (or
/// `CKR_FUNCTION_FAILED`, `CKR_TEMPLATE_INCONSISTENT`) and the lookup read a
/// half-made object (docs/reliability.md "Errors under load"). Operations on a handle
/// already found (the hot operations on a cached key) do not wait.
#[derive(Debug, Default)]
pub struct KeyCache {
    inner: Mutex<CacheInner>,
    store: RwLock<()>,
}

#[derive(Debug, Default)]
struct CacheInner {
    labels: HashMap<Vec<u8>, Arc<[KeyObject]>>,
    curves: HashMap<u64, Option<Curve>>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shared use of the token's object list, for a lookup
    /// (`C_FindObjects*` and reading what it found): waits while a key is
    /// being created or destroyed. Never taken twice on one thread, nor
    /// while [`KeyCache::changing`] is held.
    pub fn looking_up(&self) -> RwLockReadGuard<'_, ()> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive use of the token's object list, for creating or destroying
    /// a key (and the "label is free" check before): waits for running
    /// lookups, keeps new ones out until dropped, and forgets the cache.
    pub fn changing(&self) -> RwLockWriteGuard<'_, ()> {
        let guard = self.store.write().unwrap_or_else(|p| p.into_inner());
        self.clear();
        guard
    }

    /// The key objects labelled `label`: from the cache, else from the
    /// token (and remembered when there is at least one).
    pub fn find(&self, session: &Session, label: &[u8]) -> Result<Arc<[KeyObject]>, OpError> {
        if let Some(found) = self.lock().labels.get(label) {
            return Ok(found.clone());
        }
        // Held until the result is cached, so a destruction cannot clear the
        // cache between the lookup and the insertion.
        let _store = self.looking_up();
        let found: Arc<[KeyObject]> = find_by_label(session, label)?.into();
        if !found.is_empty() {
            let mut inner = self.lock();
            if inner.labels.len() >= CACHE_MAX_LABELS {
                inner.labels.clear();
            }
            inner.labels.insert(label.to_vec(), found.clone());
        }
        Ok(found)
    }

    /// The curve of the EC key `key` (`CKA_EC_PARAMS`), None when hsmd does
    /// not know it; read from the token once per key.
    pub fn curve(&self, session: &Session, key: &KeyObject) -> Result<Option<Curve>, OpError> {
        let handle = key.handle.handle();
        if let Some(curve) = self.lock().curves.get(&handle) {
            return Ok(*curve);
        }
        let curve = session
            .get_attributes(key.handle, &[AttributeType::EcParams])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcParams(p) => curve_of(&p),
                _ => None,
            });
        let mut inner = self.lock();
        if inner.curves.len() >= CACHE_MAX_LABELS {
            inner.curves.clear();
        }
        inner.curves.insert(handle, curve);
        Ok(curve)
    }

    /// Forgets everything (after a key was created or destroyed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.labels.clear();
        inner.curves.clear();
    }

    /// Runs `op`; when it fails because a (cached) key handle is no longer
    /// valid, clears the cache and runs it once more.
    pub fn retry_stale<T>(&self, mut op: impl FnMut() -> Result<T, OpError>) -> Result<T, OpError> {
        match op() {
            Err(e)
                if matches!(
                    e.rv(),
                    Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
                ) =>
            {
                self.clear();
                op()
            }
            other => other,
        }
    }
}

/// Reads a key object's attributes into a protocol key info.
pub fn key_info(session: &Session, slot: u64, obj: &KeyObject) -> Result<Option<KeyInfo>, OpError> {
    let Some(kind) = obj.kind() else {
        return Ok(None);
    };
    let attrs = session.get_attributes(
        obj.handle,
        &[
            AttributeType::Label,
            AttributeType::ValueLen,
            AttributeType::Modulus,
            AttributeType::EcParams,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Sign,
            AttributeType::Verify,
            AttributeType::Wrap,
            AttributeType::Unwrap,
            AttributeType::Derive,
        ],
    )?;
    let mut label = Label::from_bytes(&[]);
    let mut bits = 0u32;
    let mut curve = None;
    let mut sensitive = false;
    let mut extractable = matches!(kind, KeyKind::RsaPublic | KeyKind::EcPublic);
    let mut usages = Vec::new();
    for a in attrs {
        match a {
            Attribute::Label(l) => label = Label::from_bytes(&l),
            Attribute::ValueLen(n) => bits = u32::try_from(u64::from(n) * 8).unwrap_or(u32::MAX),
            Attribute::Modulus(m) => {
                let significant = m.iter().skip_while(|b| **b == 0).count();
                bits = u32::try_from(significant * 8).unwrap_or(u32::MAX);
            }
            Attribute::EcParams(p) => {
                curve = curve_of(&p);
                bits = curve.map(Curve::bits).unwrap_or(0);
            }
            Attribute::Sensitive(s) => sensitive = s,
            Attribute::Extractable(e) => extractable = e,
            Attribute::Encrypt(true) => usages.push(Usage::Encrypt),
            Attribute::Decrypt(true) => usages.push(Usage::Decrypt),
            Attribute::Sign(true) => usages.push(Usage::Sign),
            Attribute::Verify(true) => usages.push(Usage::Verify),
            Attribute::Wrap(true) => usages.push(Usage::Wrap),
            Attribute::Unwrap(true) => usages.push(Usage::Unwrap),
            Attribute::Derive(true) => usages.push(Usage::Derive),
            _ => {}
        }
    }
    Ok(Some(KeyInfo {
        uid: KeyUid::new(slot, label.clone()).to_string(),
        slot,
        label: label.as_str().to_owned(),
        kind,
        bits,
        curve,
        sensitive,
        extractable,
        usages,
    }))
}

/// Every key object on the token, described; keys of other types are skipped.
pub fn list(session: &Session, slot: u64) -> Result<Vec<KeyInfo>, OpError> {
    let mut keys = Vec::new();
    for class in [
        ObjectClass::SECRET_KEY,
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
    ] {
        let template = [Attribute::Token(true), Attribute::Class(class)];
        for handle in find_all(session, &template)? {
            if let Some(obj) = describe_handle(session, handle)? {
                if let Some(info) = key_info(session, slot, &obj)? {
                    keys.push(info);
                }
            }
        }
    }
    keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.uid.cmp(&b.uid)));
    Ok(keys)
}

/// Attributes common to every new key: a token object, `CKA_LABEL` = `CKA_ID`
/// = the label.
pub fn identity_attrs(label: &Label) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ]
}

/// Attributes of a new private or secret key: private object, sensitive and
/// non-extractable unless `extractable` (then extractable and not sensitive,
/// so the value can be exported).
pub fn secret_attrs(label: &Label, extractable: bool) -> Vec<Attribute> {
    let mut t = identity_attrs(label);
    t.extend([
        Attribute::Private(true),
        Attribute::Sensitive(!extractable),
        Attribute::Extractable(extractable),
    ]);
    t
}
