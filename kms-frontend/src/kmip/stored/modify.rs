//! The attribute operations on KMS keys: SetAttribute (KMIP 2.1 section
//! 6.1.50), AddAttribute (6.1.2), ModifyAttribute (6.1.32) and
//! DeleteAttribute (6.1.13), as `ckms attributes set` and `delete` send
//! them (`NewAttribute` / `CurrentAttribute`: a structure holding one
//! attribute; `AttributeReference`: a tag name). Only the owner may; what
//! may change is [`super::changes`]'s rule. The row's `names` and `tags`
//! columns follow the attributes, so Locate by Name or tag sees the change
//! at once.

use super::changes::{self, Deletion};
use super::{attributes, load_owned, Ctx};
use crate::error::{echo, KmsError};
use crate::store::StoredObject;
use crate::ttlv::Ttlv;

/// The request's attribute in `field`.
///
/// Errors: 422 when it is missing or not one attribute.
fn required(req: &Ttlv, field: &str) -> Result<Ttlv, KmsError> {
    changes::carried(req, field)?.ok_or_else(|| {
        KmsError::unprocessable(format!(
            "{}: {field} is missing (a Structure holding the attribute, such as a Name)",
            req.tag
        ))
    })
}

/// Loads `uid` for its owner, applies `change` to its attributes, writes
/// the row back with its names and tags, and answers `<op>Response`.
///
/// Errors: 422 not found or refused by `change`, 401 not the owner, 500.
async fn change(
    ctx: &Ctx<'_>,
    op: &str,
    uid: &str,
    what: &str,
    change: impl FnOnce(&mut Ttlv) -> Result<(), KmsError>,
) -> Result<Ttlv, KmsError> {
    let mut obj: StoredObject = load_owned(ctx, uid, op).await?;
    let mut attrs = attributes::stored(&obj)?;
    change(&mut attrs)?;
    obj.names = attributes::names_of(&attrs);
    obj.tags = attributes::tags_of(&attrs)?;
    obj.attributes = attributes::to_json(&attrs)?;
    ctx.vault.store().update(&obj).await?;
    tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(uid), op, attribute = %what, "KMS key attribute changed");
    Ok(Ttlv::structure(
        &format!("{op}Response"),
        vec![Ttlv::text("UniqueIdentifier", uid)],
    ))
}

/// KMIP SetAttribute of a KMS key: the new value replaces the attribute's
/// instances (or is added).
///
/// Errors: 422 not found or a server-owned attribute, 401 not the owner.
pub async fn set_attribute(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(req, &["UniqueIdentifier", "NewAttribute"])?;
    let new = required(req, "NewAttribute")?;
    let what = changes::describe(&new);
    change(ctx, "SetAttribute", uid, &what, |a| changes::set(a, new)).await
}

/// KMIP AddAttribute of a KMS key: a new instance.
///
/// Errors: 422 not found, a server-owned attribute or one already there,
/// 401 not the owner.
pub async fn add_attribute(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(req, &["UniqueIdentifier", "NewAttribute"])?;
    let new = required(req, "NewAttribute")?;
    let what = changes::describe(&new);
    change(ctx, "AddAttribute", uid, &what, |a| {
        changes::add(a, uid, new)
    })
    .await
}

/// KMIP ModifyAttribute of a KMS key: an existing instance (the one
/// `CurrentAttribute` names, or the only one) takes the new value.
///
/// Errors: 422 not found, a server-owned attribute, no such instance, 401
/// not the owner.
pub async fn modify_attribute(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(
        req,
        &["UniqueIdentifier", "CurrentAttribute", "NewAttribute"],
    )?;
    let current = changes::carried(req, "CurrentAttribute")?;
    let new = required(req, "NewAttribute")?;
    let what = changes::describe(&new);
    change(ctx, "ModifyAttribute", uid, &what, |a| {
        changes::modify(a, uid, current.as_ref(), new)
    })
    .await
}

/// KMIP DeleteAttribute of a KMS key: the instance `CurrentAttribute`
/// names, or every instance of each `AttributeReference` (KMIP 2.1's
/// repeated item, or the reference CLI's `AttributeReferences` items).
///
/// Errors: 422 not found, nothing named, a server-owned attribute or
/// nothing to delete, 401 not the owner.
pub async fn delete_attribute(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(
        req,
        &[
            "UniqueIdentifier",
            "CurrentAttribute",
            "AttributeReference",
            "AttributeReferences",
        ],
    )?;
    let current = changes::carried(req, "CurrentAttribute")?;
    let references: Vec<&Ttlv> = req
        .children("AttributeReference")
        .chain(req.children("AttributeReferences").flat_map(|r| {
            // The reference CLI's serializer repeats the field's tag for
            // each element; a structure of elements is taken apart.
            if r.items().is_empty() || r.child("VendorIdentification").is_some() {
                std::slice::from_ref(r)
            } else {
                r.items()
            }
        }))
        .collect();
    let (what, deletion) = match (&current, references.is_empty()) {
        (Some(c), true) => (changes::describe(c), Deletion::Instance(c)),
        (None, false) => ("references".to_owned(), Deletion::References(references)),
        _ => {
            return Err(KmsError::unprocessable(
                "DeleteAttribute: name the attribute to delete either in CurrentAttribute or by AttributeReference, one of the two",
            ))
        }
    };
    change(ctx, "DeleteAttribute", uid, &what, |a| {
        changes::delete(a, uid, deletion)
    })
    .await
}
