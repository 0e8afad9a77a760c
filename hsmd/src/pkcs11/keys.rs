//! Key objects on the token: finding them by `CKA_LABEL`, describing them as
//! protocol key infos, and the templates of new keys (PKCS#11 v2.40 sections
//! 4.7-4.9 for the key attributes, 2.3 for EC parameters).

use super::engine::on_session::OnSession;
use super::engine::{routed_key, KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::profile::Profile;
use super::slot::SlotContext;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hsmd_protocol::uid::{is_key_pair, KeyUid, Label, PUBLIC_SUFFIX};
use hsmd_protocol::{Curve, ErrorBody, ErrorCode, GetKey, KeyInfo, KeyKind, Usage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

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

/// Every object matching `template`, asking the token for at most
/// `profile`'s `find_chunk` handles per `C_FindObjects` (PKCS#11 v2.40
/// section 5.7; the SmartCard-HSM hands out 16 at a time).
pub fn find_all(
    session: &Session,
    profile: &Profile,
    template: &[Attribute],
) -> Result<Vec<ObjectHandle>, OpError> {
    let chunk =
        std::num::NonZeroUsize::new(profile.find_chunk).unwrap_or(std::num::NonZeroUsize::MIN);
    Ok(session
        .iter_objects_with_cache_size(template, chunk)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// A key object found on the token, with what naming it needs.
#[derive(Debug, Clone)]
pub struct Found {
    /// Handle, class and key type.
    pub obj: KeyObject,
    /// `CKA_LABEL`.
    pub label: Vec<u8>,
    /// `CKA_ID` (empty when the object has none).
    pub id: Vec<u8>,
}

impl Found {
    /// True when `self` is a private key and `public` the public key of its
    /// pair ([`hsmd_protocol::uid::is_key_pair`]).
    pub fn pairs_with(&self, public: &Found) -> bool {
        self.obj.class == ObjectClass::PRIVATE_KEY
            && public.obj.class == ObjectClass::PUBLIC_KEY
            && is_key_pair(&self.label, &self.id, &public.label, &public.id)
    }
}

/// True for a CKR that means the object is gone (destroyed by another
/// application between `C_FindObjects` and a later call).
fn vanished(e: &OpError) -> bool {
    matches!(
        e.rv(),
        Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
    )
}

/// Every token key object whose `CKA_LABEL` is `label`; objects that vanish
/// while they are read are left out.
pub fn find_by_label(
    session: &Session,
    profile: &Profile,
    label: &[u8],
) -> Result<Vec<Found>, OpError> {
    let template = [Attribute::Token(true), Attribute::Label(label.to_vec())];
    let mut out = Vec::new();
    for handle in find_all(session, profile, &template)? {
        if let Some(found) = read_object(session, handle)? {
            out.push(found);
        }
    }
    Ok(out)
}

/// Class, key type, label and ID of a handle; None when it is not a key or
/// has vanished (`CKR_OBJECT_HANDLE_INVALID`).
fn read_object(session: &Session, handle: ObjectHandle) -> Result<Option<Found>, OpError> {
    let attrs = match session.get_attributes(
        handle,
        &[
            AttributeType::Class,
            AttributeType::KeyType,
            AttributeType::Label,
            AttributeType::Id,
        ],
    ) {
        Ok(a) => a,
        Err(e) => {
            let e = OpError::from(e);
            return if vanished(&e) { Ok(None) } else { Err(e) };
        }
    };
    let (mut class, mut key_type, mut label, mut id) = (None, None, Vec::new(), Vec::new());
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::Label(l) => label = l,
            Attribute::Id(i) => id = i,
            _ => {}
        }
    }
    Ok(match (class, key_type) {
        (Some(class), Some(key_type)) if is_key_class(class) => Some(Found {
            obj: KeyObject {
                handle,
                class,
                key_type,
            },
            label,
            id,
        }),
        _ => None,
    })
}

/// What an operation needs the uid to resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The one key the uid names, of any class.
    Any,
    /// A secret key.
    Secret,
    /// A private key.
    Private,
    /// A public key; a private key's uid resolves to its own public key.
    Public,
}

/// Resolves a uid to the one key object it names (docs/protocol.md "Keys"):
/// objects labelled with the uid's label, except public keys that carry
/// their private key's label and `CKA_ID` (those are named `<label>_pk`),
/// and, for a label `L_pk`, the public key of the pair `L` that carries
/// `L`.
///
/// Errors: `not_found` when the uid names no key (or, for [`Want::Public`]
/// on a private key's uid, when its public key is missing); `bad_request`
/// when it names a key of the wrong class for the operation; `ambiguous`
/// when it names two keys the operation could use (naming their
/// `CKA_ID`s and how to fix it).
pub fn resolve(
    session: &Session,
    profile: &Profile,
    uid: &KeyUid,
    want: Want,
) -> Result<KeyObject, OpError> {
    resolve_found(session, profile, uid, want).map(|f| f.obj)
}

/// [`resolve`], with the object's label and `CKA_ID`.
pub fn resolve_found(
    session: &Session,
    profile: &Profile,
    uid: &KeyUid,
    want: Want,
) -> Result<Found, OpError> {
    resolve_by(uid, want, |label| {
        named(label, &mut |l| {
            find_by_label(session, profile, l).map(Arc::from)
        })
        .map(Arc::from)
    })
}

/// [`resolve`] through the slot's [`KeyCache`]: a label found before is not
/// looked up on the token again. Use with [`KeyCache::retry_stale`], which
/// forgets the cache and retries when a cached handle has gone stale.
pub fn resolve_cached(
    session: &Session,
    profile: &Profile,
    cache: &KeyCache,
    uid: &KeyUid,
    want: Want,
) -> Result<KeyObject, OpError> {
    resolve_by(uid, want, |label| cache.named(session, profile, label)).map(|f| f.obj)
}

/// Whether the uid label `label` names any key on the token, looked up
/// there (not in the cache): see [`resolve`] for the naming rule.
pub fn names_any(session: &Session, profile: &Profile, label: &Label) -> Result<bool, OpError> {
    Ok(!named(label, &mut |l| {
        find_by_label(session, profile, l).map(Arc::from)
    })?
    .is_empty())
}

/// The objects `label` names: see [`resolve`].
fn named(
    label: &Label,
    find: &mut impl FnMut(&[u8]) -> Result<Arc<[Found]>, OpError>,
) -> Result<Vec<Found>, OpError> {
    let direct = find(label.as_bytes())?;
    let mut out: Vec<Found> = direct
        .iter()
        .filter(|o| !direct.iter().any(|p| p.pairs_with(o) && p.label == o.label))
        .cloned()
        .collect();
    if let Some(private) = label.pair_private() {
        let base = find(private.as_bytes())?;
        out.extend(
            base.iter()
                .filter(|o| base.iter().any(|p| p.pairs_with(o) && p.label == o.label))
                .cloned(),
        );
    }
    Ok(out)
}

/// The pkcs11-tool `--type` of a class.
fn tool_type(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::SECRET_KEY => "secrkey",
        ObjectClass::PRIVATE_KEY => "privkey",
        _ => "pubkey",
    }
}

/// `ambiguous`: `uid` names several keys (at most 4 `CKA_ID`s shown, each
/// cut to 64 hex digits).
fn ambiguous(uid: &KeyUid, what: &str, keys: &[&Found]) -> OpError {
    let hex = |b: &[u8]| -> String {
        let h: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
        if h.is_empty() {
            "none".into()
        } else {
            h
        }
    };
    let ids: Vec<String> = keys
        .iter()
        .take(4)
        .map(|k| format!("{} {}", tool_type(k.obj.class), hex(&k.id)))
        .collect();
    let example = keys.last().map_or(String::new(), |k| {
        format!(
            " (e.g. pkcs11-tool --login --delete-object --type {} --id {})",
            tool_type(k.obj.class),
            hex(&k.id)
        )
    });
    OpError::new(
        ErrorCode::Ambiguous,
        format!(
            "{uid} names {} {what} on the token in slot {} (CKA_ID {}); hsmd will not pick one: delete or relabel all but one of them with pkcs11-tool{example}",
            keys.len(),
            uid.slot,
            ids.join(", ")
        ),
    )
}

/// [`resolve`] given `named`, the objects a uid label names.
fn resolve_by(
    uid: &KeyUid,
    want: Want,
    mut named: impl FnMut(&Label) -> Result<Arc<[Found]>, OpError>,
) -> Result<Found, OpError> {
    let found = named(&uid.label)?;
    let not_found = || {
        OpError::new(
            ErrorCode::NotFound,
            format!("no key {uid} on the token in slot {}", uid.slot),
        )
    };
    let wrong = |what: &str| {
        OpError::new(
            ErrorCode::BadRequest,
            format!("key {uid} is not {what}; this operation needs {what}"),
        )
    };
    let of = |class: ObjectClass| -> Vec<&Found> {
        found.iter().filter(|k| k.obj.class == class).collect()
    };
    let one = |keys: Vec<&Found>, what: &str| -> Result<Option<Found>, OpError> {
        match keys.as_slice() {
            [] => Ok(None),
            [k] => Ok(Some((*k).clone())),
            _ => Err(ambiguous(uid, what, &keys)),
        }
    };
    let missing = |what: &str| {
        if found.is_empty() {
            not_found()
        } else {
            wrong(what)
        }
    };
    match want {
        Want::Any => one(found.iter().collect(), "keys")?.ok_or_else(not_found),
        Want::Secret => one(of(ObjectClass::SECRET_KEY), "secret keys")?
            .ok_or_else(|| missing("a secret (AES) key")),
        Want::Private => one(of(ObjectClass::PRIVATE_KEY), "private keys")?
            .ok_or_else(|| missing("a private key")),
        Want::Public => {
            if let Some(k) = one(of(ObjectClass::PUBLIC_KEY), "public keys")? {
                return Ok(k);
            }
            let privates = of(ObjectClass::PRIVATE_KEY);
            let Some(private) = one(privates, "private keys")? else {
                return Err(missing("an RSA or EC key"));
            };
            let pk = uid
                .public_key()
                .map_err(|e| OpError::new(ErrorCode::NotFound, e.to_string()))?;
            let own = named(&pk.label)?;
            one(
                own.iter().filter(|k| private.pairs_with(k)).collect(),
                "public keys",
            )?
            .ok_or_else(|| {
                OpError::new(
                    ErrorCode::NotFound,
                    format!(
                        "key {uid} is a private key and its public key {pk} is not on the token"
                    ),
                )
            })
        }
    }
}

/// Most labels a [`KeyCache`] remembers before it starts over.
const CACHE_MAX_LABELS: usize = 4096;

/// How long a [`KeyCache`] trusts what a name resolved to before it looks
/// the name up on the token again. Another program (pkcs11-tool, a second
/// application on the card) may create or destroy keys without hsmd
/// knowing: this bounds how long hsmd can miss a new duplicate label
/// (`ambiguous`) or keep a handle the module has since given to another
/// object. One lookup per name per second costs nothing measurable on
/// SoftHSMv2 nor on the card (docs/performance.md).
const CACHE_MAX_AGE: Duration = Duration::from_secs(1);

/// What the key operations of one slot looked up on the token: the key
/// objects each uid label names ([`resolve`]) and the curve of each EC key.
///
/// Looking a key up on the token (`C_FindObjectsInit`/`C_FindObjects` and
/// `C_GetAttributeValue`) costs several times the operation itself on
/// SoftHSMv2 (it rescans and rereads its object files) and a card round trip
/// per call on a SmartCard-HSM, so the hot operations (encrypt, decrypt,
/// sign, verify) resolve through this cache. Object handles are the
/// application's (this process's) and stay valid until the object is
/// destroyed; only names that were found are remembered (a key created
/// later is seen at once), each for [`CACHE_MAX_AGE`] (what another
/// program changes is seen within it); when hsmd creates or destroys a key it forgets
/// what that change can touch ([`KeyCache::forget_label`],
/// [`KeyCache::forget_handle`]); and a handle made stale by another application
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
    /// By uid label (the name, not `CKA_LABEL`): when it was looked up on
    /// the token, and what it named then.
    labels: HashMap<Vec<u8>, (Instant, Arc<[Found]>)>,
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
    /// lookups and keeps new ones out until dropped. While it is held, the
    /// change forgets what it touches ([`KeyCache::forget_label`] for the
    /// `CKA_LABEL` of each object created or destroyed,
    /// [`KeyCache::forget_handle`] for each handle) before the guard is
    /// dropped; nothing can be remembered meanwhile, since remembering
    /// happens under [`KeyCache::looking_up`].
    pub fn changing(&self) -> RwLockWriteGuard<'_, ()> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the uid labels an object whose `CKA_LABEL` is `label` can
    /// be named by, or change the naming of, when it is created or
    /// destroyed: `label` itself and `label_pk`. Why these two are enough
    /// ([`named`]): what a uid label `X` names depends only on the objects
    /// whose `CKA_LABEL` is `X` (less the public keys paired with a private
    /// key of that same label) and, when `X` is `Y_pk`, on those whose
    /// `CKA_LABEL` is `Y` (the public key of a pair `Y`). So an object
    /// labelled `L` enters only what `L` and `L_pk` name; every other
    /// entry is unchanged and stays right.
    pub fn forget_label(&self, label: &[u8]) {
        let mut inner = self.lock();
        inner.labels.remove(label);
        let pk = [label, PUBLIC_SUFFIX.as_bytes()].concat();
        inner.labels.remove(pk.as_slice());
    }

    /// Forgets everything remembered about the object handle `handle`: its
    /// curve, and every name that resolves to it. After a destruction the
    /// handle is dead; after a creation it is new, and any entry that still
    /// held it was about an object destroyed outside hsmd whose handle the
    /// module gave again, which must not stand for the new key.
    pub fn forget_handle(&self, handle: ObjectHandle) {
        let mut inner = self.lock();
        inner.curves.remove(&handle.handle());
        inner
            .labels
            .retain(|_, (_, found)| !found.iter().any(|f| f.obj.handle == handle));
    }

    /// The key objects the uid label `label` names ([`resolve`]): from the
    /// cache when looked up less than [`CACHE_MAX_AGE`] ago, else from the
    /// token (and remembered when there is at least one). Remembering what a
    /// name resolves to, rather than each label looked up, spares the lookup
    /// that finds nothing (a card's `L_pk`, whose public key carries the
    /// label `L`) on every operation. A fresh lookup also forgets the curve
    /// read for each handle it found, in case the module gave that handle
    /// again to another object.
    pub fn named(
        &self,
        session: &Session,
        profile: &Profile,
        label: &Label,
    ) -> Result<Arc<[Found]>, OpError> {
        if let Some((at, found)) = self.lock().labels.get(label.as_bytes()) {
            if at.elapsed() < CACHE_MAX_AGE {
                return Ok(found.clone());
            }
        }
        // Held until the result is cached, so a destruction cannot clear the
        // cache between the lookup and the insertion.
        let _store = self.looking_up();
        let at = Instant::now();
        let found: Arc<[Found]> = named(label, &mut |l| {
            find_by_label(session, profile, l).map(Arc::from)
        })?
        .into();
        let mut inner = self.lock();
        for f in found.iter() {
            inner.curves.remove(&f.obj.handle.handle());
        }
        if found.is_empty() {
            inner.labels.remove(label.as_bytes());
        } else {
            if inner.labels.len() >= CACHE_MAX_LABELS {
                inner.labels.clear();
            }
            inner
                .labels
                .insert(label.as_bytes().to_vec(), (at, found.clone()));
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

    /// Forgets everything (the session was lost, the token was removed, or
    /// a cached handle went stale).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.labels.clear();
        inner.curves.clear();
    }

    /// Runs `op`; when it fails because a (cached) key handle is no longer
    /// valid, clears the cache and runs it once more.
    pub fn retry_stale<T>(&self, mut op: impl FnMut() -> Result<T, OpError>) -> Result<T, OpError> {
        match op() {
            Err(e) if vanished(&e) => {
                self.clear();
                op()
            }
            other => other,
        }
    }
}

/// Reads a key object's attributes into a protocol key info under the name
/// `name` (the label of its uid, see [`resolve`]).
pub fn key_info(
    session: &Session,
    slot: u64,
    obj: &KeyObject,
    name: &Label,
) -> Result<Option<KeyInfo>, OpError> {
    let Some(kind) = obj.kind() else {
        return Ok(None);
    };
    let attrs = session.get_attributes(
        obj.handle,
        &[
            AttributeType::Id,
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
    let mut id = String::new();
    let mut bits = 0u32;
    let mut curve = None;
    let mut sensitive = false;
    let mut extractable = matches!(kind, KeyKind::RsaPublic | KeyKind::EcPublic);
    let mut usages = Vec::new();
    for a in attrs {
        match a {
            Attribute::Id(i) => id = i.iter().map(|b| format!("{b:02x}")).collect(),
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
        uid: KeyUid::new(slot, name.clone()).to_string(),
        slot,
        label: name.as_str().to_owned(),
        id,
        kind,
        bits,
        curve,
        sensitive,
        extractable,
        usages,
    }))
}

/// Every key object on the token, described under its name (see
/// [`resolve`]: a public key that carries its private key's label and
/// `CKA_ID` is listed as `<label>_pk`); keys of other types are skipped, and
/// so are objects destroyed by another application while they are read.
pub fn list(session: &Session, profile: &Profile, slot: u64) -> Result<Vec<KeyInfo>, OpError> {
    let mut objects = Vec::new();
    for class in [
        ObjectClass::SECRET_KEY,
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
    ] {
        let template = [Attribute::Token(true), Attribute::Class(class)];
        for handle in find_all(session, profile, &template)? {
            if let Some(found) = read_object(session, handle)? {
                objects.push(found);
            }
        }
    }
    let mut privates: HashMap<&[u8], Vec<&Found>> = HashMap::new();
    for o in objects
        .iter()
        .filter(|o| o.obj.class == ObjectClass::PRIVATE_KEY)
    {
        privates.entry(&o.label).or_default().push(o);
    }
    let mut keys = Vec::new();
    for o in &objects {
        let label = Label::from_bytes(&o.label);
        let paired = privates
            .get(o.label.as_slice())
            .is_some_and(|ps| ps.iter().any(|p| p.pairs_with(o)));
        let name = match paired {
            true => Label::from_bytes(&[&o.label[..], PUBLIC_SUFFIX.as_bytes()].concat()),
            false => label,
        };
        match key_info(session, slot, &o.obj, &name) {
            Ok(Some(info)) => keys.push(info),
            Ok(None) => {}
            Err(e) if vanished(&e) => {}
            Err(e) => return Err(e),
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

/// `get_key`: the key info of the one key the uid names.
///
/// Errors: `not_found`, `ambiguous`, `unsupported` (a key type hsmd does
/// not serve), PKCS#11 failures.
impl SlotOperation for GetKey {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.0.uid)?))
    }
}

impl OnSession for GetKey {
    const KEY_OBJECTS: KeyObjects = KeyObjects::LookedUp;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<KeyInfo, OpError> {
        let uid = routed_key(uid)?;
        let obj = resolve(s, ctx.profile(), uid, Want::Any)?;
        key_info(s, ctx.id, &obj, &uid.label)?.ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::Unsupported,
                format!("key {} is of a type hsmd does not serve", uid),
            )
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(handle: u64, label: &str) -> Found {
        Found {
            obj: KeyObject {
                // SAFETY: never passed to a module; only compared.
                handle: unsafe { ObjectHandle::new_from_raw(handle) },
                class: ObjectClass::SECRET_KEY,
                key_type: KeyType::AES,
            },
            label: label.as_bytes().to_vec(),
            id: Vec::new(),
        }
    }

    fn cached(cache: &KeyCache) -> Vec<String> {
        let mut names: Vec<String> = cache
            .lock()
            .labels
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        names.sort();
        names
    }

    /// A change forgets the names of its label (`L`, `L_pk`) and every entry
    /// holding its handle, and nothing else.
    #[test]
    fn a_change_forgets_only_what_it_touches() {
        let cache = KeyCache::default();
        {
            let mut inner = cache.lock();
            for (name, handle) in [("a", 1), ("a_pk", 2), ("b", 3), ("c", 4), ("ab", 5)] {
                inner.labels.insert(
                    name.as_bytes().to_vec(),
                    (Instant::now(), Arc::from(vec![found(handle, name)])),
                );
            }
            inner.curves.insert(3, Some(Curve::P256));
            inner.curves.insert(4, None);
        }
        cache.forget_label(b"a");
        assert_eq!(cached(&cache), ["ab", "b", "c"]);
        // SAFETY: as in `found`.
        cache.forget_handle(unsafe { ObjectHandle::new_from_raw(3) });
        assert_eq!(cached(&cache), ["ab", "c"]);
        assert!(!cache.lock().curves.contains_key(&3));
        assert!(cache.lock().curves.contains_key(&4));
    }
}
