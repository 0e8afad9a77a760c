//! `generate_key` (`CKM_AES_KEY_GEN`) and `generate_key_pair`
//! (`CKM_RSA_PKCS_KEY_PAIR_GEN`, `CKM_EC_KEY_PAIR_GEN`), PKCS#11 v2.40
//! section 5.14, and `destroy` (`C_DestroyObject`, section 5.7).

use super::engine::on_session::OnSession;
use super::engine::{routed_key, KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::keys::{
    curve_params, find_by_label, identity_attrs, key_info, names_any, resolve_found, secret_attrs,
    Found, KeyCache, KeyObject, Want,
};
use super::mechanisms::Mechanisms;
use super::profile::Profile;
use super::slot::SlotContext;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hsmd_protocol::uid::{KeyUid, Label};
use hsmd_protocol::{
    Destroy, ErrorBody, ErrorCode, GenerateKey, GenerateKeyPair, KeyInfo, KeyPairAlgorithm,
    KeyPairResult, KeyRef, Usage,
};

/// AES key sizes accepted, in bits.
pub const AES_BITS: [u32; 3] = [128, 192, 256];
/// RSA modulus sizes accepted, in bits.
pub const RSA_BITS: [u32; 3] = [2048, 3072, 4096];
/// RSA public exponent 65537.
const F4: [u8; 3] = [0x01, 0x00, 0x01];

/// Every usage attribute, true for those in `allowed` and false for the rest,
/// so module defaults (SoftHSMv2 sets CKA_SIGN and CKA_WRAP on AES keys) never
/// widen what a key may do.
/// Only the attributes of `class` are set (PKCS#11 v2.40 sections 4.8-4.10:
/// public keys have no CKA_DECRYPT/CKA_SIGN/CKA_UNWRAP, private keys no
/// CKA_ENCRYPT/CKA_VERIFY/CKA_WRAP).
fn usages(class: ObjectClass, allowed: &[Usage]) -> Vec<Attribute> {
    let on = |u| allowed.contains(&u);
    let public = class != ObjectClass::PRIVATE_KEY;
    let private = class != ObjectClass::PUBLIC_KEY;
    let mut v = vec![Attribute::Derive(on(Usage::Derive))];
    if public {
        v.extend([
            Attribute::Encrypt(on(Usage::Encrypt)),
            Attribute::Verify(on(Usage::Verify)),
            Attribute::Wrap(on(Usage::Wrap)),
        ]);
    }
    if private {
        v.extend([
            Attribute::Decrypt(on(Usage::Decrypt)),
            Attribute::Sign(on(Usage::Sign)),
            Attribute::Unwrap(on(Usage::Unwrap)),
        ]);
    }
    v
}

fn bad(msg: String) -> OpError {
    OpError::new(ErrorCode::BadRequest, msg)
}

/// The label of a new key: the text form of docs/protocol.md "Keys", and
/// printable (no control characters).
fn label_ok(label: &str) -> Result<Label, OpError> {
    Label::parse(label)
        .and_then(Label::require_printable)
        .map_err(|e| bad(e.to_string()))
}

/// Refuses when `label` is taken: some key object carries it as its
/// `CKA_LABEL`, or the uid `hsm::<slot>::<label>` already names a key (the
/// public key of a pair `L` is named `L_pk` even when its `CKA_LABEL` is `L`,
/// as on the SmartCard-HSM or after pkcs11-tool), so one uid never names two
/// keys.
fn ensure_free(s: &Session, profile: &Profile, slot: u64, label: &Label) -> Result<(), OpError> {
    let labelled = !find_by_label(s, profile, label.as_bytes())?.is_empty();
    if !labelled && !names_any(s, profile, label)? {
        return Ok(());
    }
    Err(OpError::new(
        ErrorCode::AlreadyExists,
        format!(
            "a key named {:?} already exists in slot {slot} ({}); choose another label or destroy it first",
            label.as_str(),
            KeyUid::new(slot, label.clone())
        ),
    ))
}

fn describe(
    s: &Session,
    slot: u64,
    name: &Label,
    handle: ObjectHandle,
    class: ObjectClass,
    key_type: KeyType,
) -> Result<KeyInfo, OpError> {
    key_info(
        s,
        slot,
        &KeyObject {
            handle,
            class,
            key_type,
        },
        name,
    )?
    .ok_or_else(|| {
        OpError::new(
            ErrorCode::Internal,
            "the new key has a type hsmd cannot describe",
        )
    })
}

/// Creates an AES key. The caller holds `keys`' [`KeyCache::changing`]
/// guard; the cache forgets what the new key touches.
///
/// Errors: `bad_request` (label, bits), `already_exists`, `unsupported`,
/// PKCS#11 failures.
pub fn generate_key(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    p: &GenerateKey,
) -> Result<KeyInfo, OpError> {
    let label = label_ok(&p.label)?;
    if !AES_BITS.contains(&p.bits) {
        return Err(bad(format!(
            "bits: AES keys are 128, 192 or 256 bits, got {}",
            p.bits
        )));
    }
    mechs.require(MechanismType::AES_KEY_GEN, "aes key generation")?;
    mechs.require_key_bits(MechanismType::AES_KEY_GEN, p.bits, "an AES key")?;
    ensure_free(s, mechs.profile(), p.slot, &label)?;
    let mut template = secret_attrs(&label, p.extractable);
    if mechs.profile().secret_key_id_is_key_reference {
        // Its first byte would become the card's key reference, overwriting
        // whatever key has it; the library picks a free one without it.
        template.retain(|a| !matches!(a, Attribute::Id(_)));
    }
    template.extend([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(u64::from(p.bits / 8).into()),
    ]);
    template.extend(usages(
        ObjectClass::SECRET_KEY,
        &[Usage::Encrypt, Usage::Decrypt],
    ));
    keys.forget_label(label.as_bytes());
    let handle = s.generate_key(&Mechanism::AesKeyGen, &template)?;
    keys.forget_handle(handle);
    describe(
        s,
        p.slot,
        &label,
        handle,
        ObjectClass::SECRET_KEY,
        KeyType::AES,
    )
}

/// Creates a key pair: private `label`, public `label_pk`. The caller holds
/// `keys`' [`KeyCache::changing`] guard; the cache forgets what the new
/// keys touch.
///
/// Errors: `bad_request` (label, bits or curve missing or not accepted),
/// `already_exists` (either label taken), `unsupported`, PKCS#11 failures.
pub fn generate_key_pair(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    p: &GenerateKeyPair,
) -> Result<KeyPairResult, OpError> {
    let label = label_ok(&p.label)?;
    let pk_label = label.public_key().map_err(|e| bad(e.to_string()))?;
    let mut public = identity_attrs(&pk_label);
    let mut private = secret_attrs(&label, p.extractable);
    let (mechanism, key_type) = match p.algorithm {
        KeyPairAlgorithm::Rsa => {
            if p.curve.is_some() {
                return Err(bad(
                    "curve: not used by rsa; give bits (2048, 3072 or 4096)".into(),
                ));
            }
            let bits = p
                .bits
                .ok_or_else(|| bad("bits: required by rsa (2048, 3072 or 4096)".into()))?;
            if !RSA_BITS.contains(&bits) {
                return Err(bad(format!(
                    "bits: RSA keys are 2048, 3072 or 4096 bits, got {bits}"
                )));
            }
            mechs.require(
                MechanismType::RSA_PKCS_KEY_PAIR_GEN,
                "rsa key pair generation",
            )?;
            mechs.require_key_bits(MechanismType::RSA_PKCS_KEY_PAIR_GEN, bits, "an RSA key")?;
            public.extend([
                Attribute::ModulusBits(u64::from(bits).into()),
                Attribute::PublicExponent(F4.to_vec()),
            ]);
            public.extend(usages(
                ObjectClass::PUBLIC_KEY,
                &[Usage::Encrypt, Usage::Verify],
            ));
            private.extend(usages(
                ObjectClass::PRIVATE_KEY,
                &[Usage::Decrypt, Usage::Sign],
            ));
            (Mechanism::RsaPkcsKeyPairGen, KeyType::RSA)
        }
        KeyPairAlgorithm::Ec => {
            if p.bits.is_some() {
                return Err(bad(
                    "bits: not used by ec; give curve (p256, p384 or p521)".into()
                ));
            }
            let curve = p
                .curve
                .ok_or_else(|| bad("curve: required by ec (p256, p384 or p521)".into()))?;
            mechs.require(MechanismType::ECC_KEY_PAIR_GEN, "ec key pair generation")?;
            public.push(Attribute::EcParams(curve_params(curve).to_vec()));
            public.extend(usages(ObjectClass::PUBLIC_KEY, &[Usage::Verify]));
            private.extend(usages(ObjectClass::PRIVATE_KEY, &[Usage::Sign]));
            (Mechanism::EccKeyPairGen, KeyType::EC)
        }
    };
    ensure_free(s, mechs.profile(), p.slot, &label)?;
    ensure_free(s, mechs.profile(), p.slot, &pk_label)?;
    // The private key is labelled L and the public key L_pk; a token that
    // labels a pair's public key L too (one key on the card) is covered by
    // forgetting L, which also forgets L_pk.
    keys.forget_label(label.as_bytes());
    keys.forget_label(pk_label.as_bytes());
    let (pub_handle, priv_handle) = s.generate_key_pair(&mechanism, &public, &private)?;
    keys.forget_handle(pub_handle);
    keys.forget_handle(priv_handle);
    Ok(KeyPairResult {
        private: describe(
            s,
            p.slot,
            &label,
            priv_handle,
            ObjectClass::PRIVATE_KEY,
            key_type,
        )?,
        public: describe(
            s,
            p.slot,
            &pk_label,
            pub_handle,
            ObjectClass::PUBLIC_KEY,
            key_type,
        )?,
    })
}

/// Destroys the one key object `uid` names ([`resolve`](super::keys::resolve)); objects of other
/// classes that share its label, and the other half of a key pair, are left.
/// The caller holds `keys`' [`KeyCache::changing`] guard; the cache
/// forgets what the destroyed objects touched.
///
/// Errors: `not_found`, `ambiguous` (nothing is destroyed), PKCS#11 failures.
pub fn destroy(
    s: &Session,
    profile: &Profile,
    keys: &KeyCache,
    uid: &KeyUid,
) -> Result<KeyRef, OpError> {
    let key = resolve_found(s, profile, uid, Want::Any)?;
    if key.obj.class == ObjectClass::PUBLIC_KEY && profile.pair_is_one_key {
        if let Some(private) = find_by_label(s, profile, &key.label)?
            .into_iter()
            .find(|p| p.pairs_with(&key))
        {
            let private = KeyUid::new(uid.slot, Label::from_bytes(&private.label));
            return Err(OpError::new(
                ErrorCode::Unsupported,
                format!(
                    "{uid} is the public key of the pair {private}: this token keeps a pair as one key, so its public key cannot be destroyed alone; destroy {private} to remove both"
                ),
            ));
        }
    }
    // The card removes a pair's public key with its private key; the library
    // still shows it to this process until it reads the card again, so it is
    // destroyed here too (which only hides it).
    let with_it: Vec<Found> =
        if key.obj.class == ObjectClass::PRIVATE_KEY && profile.pair_is_one_key {
            find_by_label(s, profile, &key.label)?
                .into_iter()
                .filter(|p| key.pairs_with(p))
                .collect()
        } else {
            Vec::new()
        };
    // Every object destroyed here carries the CKA_LABEL key.label (the
    // pair's public keys are found by it), so forgetting it covers them all.
    keys.forget_label(&key.label);
    let destroyed = s.destroy_object(key.obj.handle);
    keys.forget_handle(key.obj.handle);
    destroyed?;
    for public in with_it {
        // Already gone is fine: that is what the card did.
        let _ = s.destroy_object(public.obj.handle);
        keys.forget_handle(public.obj.handle);
    }
    Ok(KeyRef {
        uid: uid.to_string(),
    })
}

impl SlotOperation for GenerateKey {
    const ADMIN_ONLY: Option<&'static str> = Some("create keys");

    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Slot(self.slot))
    }
}

impl OnSession for GenerateKey {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Changed;

    fn run(&self, s: &Session, ctx: &SlotContext, _: Option<&KeyUid>) -> Result<KeyInfo, OpError> {
        generate_key(s, &ctx.mechanisms, &ctx.keys, self)
    }
}

impl SlotOperation for GenerateKeyPair {
    const ADMIN_ONLY: Option<&'static str> = Some("create keys");

    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Slot(self.slot))
    }
}

impl OnSession for GenerateKeyPair {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Changed;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        _: Option<&KeyUid>,
    ) -> Result<KeyPairResult, OpError> {
        generate_key_pair(s, &ctx.mechanisms, &ctx.keys, self)
    }
}

impl SlotOperation for Destroy {
    const ADMIN_ONLY: Option<&'static str> = Some("destroy keys");

    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.0.uid)?))
    }
}

impl OnSession for Destroy {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Changed;

    fn run(&self, s: &Session, ctx: &SlotContext, uid: Option<&KeyUid>) -> Result<KeyRef, OpError> {
        destroy(s, ctx.profile(), &ctx.keys, routed_key(uid)?)
    }
}
