//! The life of KMS keys (KMIP 2.1 section 3.27): Revoke (section 6.1.46),
//! Destroy (6.1.16) and ReKey of symmetric keys (6.1.42). Each takes the
//! key out of the unwrapped cache before it answers, so no later request
//! is served from a copy made before.

use super::attributes::{self, date_time, link_item};
use super::{load_owned, Ctx};
use crate::crypto::{self, MaterialFormat};
use crate::error::{echo, KmsError};
use crate::store::{ObjectType, State, StoredObject};
use crate::ttlv::Ttlv;

/// The other half of a pair, for `Cascade`.
fn other_half(obj: &StoredObject) -> Option<String> {
    attributes::linked(obj, "PublicKeyLink").or_else(|| attributes::linked(obj, "PrivateKeyLink"))
}

/// Writes `obj` with `attrs` back and drops its cached copy.
async fn save(ctx: &Ctx<'_>, obj: &mut StoredObject, attrs: &Ttlv) -> Result<(), KmsError> {
    obj.attributes = attributes::to_json(attrs)?;
    ctx.vault.store().update(obj).await?;
    ctx.vault.forget(&obj.uid).await;
    Ok(())
}

/// KMIP Revoke of a KMS key: Deactivated, or Compromised when the reason
/// is `KeyCompromise` or `CACompromise`; `Cascade` also revokes the other
/// half of a pair. Only the owner may.
///
/// Errors: 422 not found, 401 not the owner, 500.
pub async fn revoke(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(
        req,
        &[
            "UniqueIdentifier",
            "RevocationReason",
            "CompromiseOccurrenceDate",
            "Cascade",
        ],
    )?;
    let code = match req.struct_of("RevocationReason")? {
        Some(r) => r.enum_of("RevocationReasonCode")?.unwrap_or("Unspecified"),
        None => "Unspecified",
    };
    let compromised = matches!(code, "KeyCompromise" | "CACompromise");
    let mut uids = vec![uid.to_owned()];
    let first = load_owned(ctx, uid, "Revoke").await?;
    if req.bool_of("Cascade")?.unwrap_or(false) {
        uids.extend(other_half(&first));
    }
    for u in &uids {
        let mut obj = if *u == uid {
            first.clone()
        } else {
            match load_owned(ctx, u, "Revoke").await {
                Ok(o) => o,
                Err(_) => continue,
            }
        };
        if matches!(obj.state, State::Destroyed | State::DestroyedCompromised) {
            continue;
        }
        let mut attrs = attributes::stored(&obj)?;
        if compromised {
            obj.state = State::Compromised;
            attributes::set(
                &mut attrs,
                date_time("CompromiseDate", time::OffsetDateTime::now_utc()),
            );
        } else if obj.state != State::Compromised {
            obj.state = State::Deactivated;
            attributes::set(
                &mut attrs,
                date_time("DeactivationDate", time::OffsetDateTime::now_utc()),
            );
        }
        if let Some(r) = req.struct_of("RevocationReason")? {
            attributes::set(&mut attrs, r.clone());
        }
        save(ctx, &mut obj, &attrs).await?;
        tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(u), reason = code, "KMS key revoked");
    }
    Ok(Ttlv::structure(
        "RevokeResponse",
        vec![Ttlv::text("UniqueIdentifier", uid)],
    ))
}

/// KMIP Destroy of a KMS key: its material is erased from the database and
/// the cache, its metadata stays (state Destroyed). An Active key must be
/// revoked first, unless the request says `Remove` (the reference's
/// extension, which its CLI sends for `--remove` and at the end of `sym
/// keys unwrap`): then the whole row goes. `Cascade` also destroys the
/// other half of a pair. Only the owner may.
///
/// Errors: 422 "Wrong_Key_Lifecycle_State" for an Active key without
/// `Remove`, 422 when `ExpectedObjectType` differs, 401 not the owner.
pub async fn destroy(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(
        req,
        &[
            "UniqueIdentifier",
            "Cascade",
            "ExpectedObjectType",
            "Remove",
        ],
    )?;
    let remove = req.bool_of("Remove")?.unwrap_or(false);
    let first = load_owned(ctx, uid, "Destroy").await?;
    if let Some(t) = req.enum_of("ExpectedObjectType")? {
        if t != first.object_type.name() {
            return Err(KmsError::unprocessable(format!(
                "Destroy: {uid} is a {}, not the {t} the request expects",
                first.object_type.name()
            )));
        }
    }
    let mut uids = vec![uid.to_owned()];
    if req.bool_of("Cascade")?.unwrap_or(false) {
        uids.extend(other_half(&first));
    }
    if !remove && first.state == State::Active {
        return Err(KmsError::unprocessable(format!(
            "Wrong_Key_Lifecycle_State: DENIED: {uid} is Active: revoke it first (ckms sym keys revoke), or destroy it with Remove"
        )));
    }
    for u in &uids {
        let Ok(mut obj) = load_owned(ctx, u, "Destroy").await else {
            continue;
        };
        if remove {
            ctx.vault.store().remove(u).await?;
            ctx.vault.forget(u).await;
            ctx.grants().forget(u).await?;
            tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(u), "KMS key removed");
            continue;
        }
        if matches!(obj.state, State::Destroyed | State::DestroyedCompromised) {
            // Destroyed already (a second Destroy, or a run again after a
            // conflict on the other half): its state and DestroyDate stay.
            continue;
        }
        if obj.state == State::Active {
            // The other half of a revoked pair may still be Active: a
            // cascade destroys it with its pair.
            obj.state = State::Deactivated;
        }
        obj.state = if obj.state == State::Compromised {
            State::DestroyedCompromised
        } else {
            State::Destroyed
        };
        obj.material = None;
        let mut attrs = attributes::stored(&obj)?;
        attributes::set(
            &mut attrs,
            date_time("DestroyDate", time::OffsetDateTime::now_utc()),
        );
        save(ctx, &mut obj, &attrs).await?;
        tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(u), "KMS key destroyed");
    }
    Ok(Ttlv::structure(
        "DestroyResponse",
        vec![Ttlv::text("UniqueIdentifier", uid)],
    ))
}

/// KMIP ReKey of a KMS symmetric key: a new key of the same size, wrapped
/// by the same HSM key, with a new Unique Identifier and the old one's
/// attributes; the two are linked (ReplacementObjectLink,
/// ReplacedObjectLink). The old key stays as it is. Only the owner may.
///
/// Errors: 422 for anything but an AES key, a destroyed key, 401 not the
/// owner, 503.
pub async fn rekey(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(req, &["UniqueIdentifier", "Offset", "Attributes"])?;
    crate::kmip::refuse_tags(req, &["Offset"], "the new key is active at once")?;
    let mut old = load_owned(ctx, uid, "ReKey").await?;
    super::usable_for(&old, crate::access::policy::Need::Encrypt)?;
    if old.object_type != ObjectType::SymmetricKey {
        return Err(KmsError::unprocessable(format!(
            "ReKey: {uid} is a {}: only symmetric keys are re-keyed (use CreateKeyPair for a new pair)",
            old.object_type.name()
        )));
    }
    let wrapping = super::get::wrapping_of(&old)?;
    let old_attrs = attributes::stored(&old)?;
    let bits = old_attrs.int_of("CryptographicLength")?.unwrap_or(256);
    let clear = u32::try_from(bits)
        .ok()
        .filter(|b| matches!(b, 128 | 192 | 256))
        .ok_or_else(|| {
            KmsError::unprocessable(format!(
                "ReKey: {uid} records a CryptographicLength of {bits} bits, which is no AES key size (128, 192 or 256): create a new key instead"
            ))
        })
        .and_then(|b| crypto::generate_aes(b).map_err(KmsError::internal))?;
    let material = ctx
        .vault
        .seal(ctx.hsmd(), ctx.user, &wrapping, &clear, MaterialFormat::Raw)
        .await?;
    drop(clear);
    let new_uid = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc();
    let mut items: Vec<Ttlv> = old_attrs
        .items()
        .iter()
        .filter(|a| {
            let server_owned = matches!(
                a.tag.as_str(),
                "UniqueIdentifier"
                    | "InitialDate"
                    | "LastChangeDate"
                    | "ActivationDate"
                    | "DeactivationDate"
                    | "RevocationReason"
            );
            let other_link =
                a.tag == "Link" && a.enum_of("LinkType").ok().flatten() != Some("WrappingKeyLink");
            !server_owned && !other_link
        })
        .cloned()
        .collect();
    items.push(Ttlv::text("UniqueIdentifier", new_uid.clone()));
    for tag in ["InitialDate", "LastChangeDate", "ActivationDate"] {
        items.push(date_time(tag, now));
    }
    items.push(link_item("ReplacedObjectLink", uid));
    let new_attrs = Ttlv::structure("Attributes", items);
    let new = StoredObject {
        uid: new_uid.clone(),
        state: State::Active,
        attributes: attributes::to_json(&new_attrs)?,
        material: Some(material),
        ..old.clone()
    };
    // The old key's link first, written only over the version read (a
    // conflict writes nothing and the whole ReKey runs again); then the new
    // key, under a fresh uid. A failure between the two (the database gone)
    // leaves a link to a key that does not exist, never a key nobody knows.
    let mut attrs = old_attrs;
    attributes::add(&mut attrs, link_item("ReplacementObjectLink", &new_uid));
    save(ctx, &mut old, &attrs).await?;
    ctx.vault.store().insert(&new).await?;
    tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(uid), new = %new_uid, "KMS key re-keyed");
    Ok(Ttlv::structure(
        "ReKeyResponse",
        vec![Ttlv::text("UniqueIdentifier", new_uid)],
    ))
}
