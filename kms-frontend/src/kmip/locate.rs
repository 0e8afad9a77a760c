//! KMIP Locate (KMIP 2.1 section 6.1.27) over the KMS keys, then hsmd's
//! keys (the reference's order): filters on ObjectType,
//! CryptographicAlgorithm, CryptographicLength, RecommendedCurve,
//! UniqueIdentifier, and for KMS keys also Name, State and the reference's
//! `tag` vendor attribute (HSM keys have no names, tags or states of
//! theirs, so such filters find none of them). Each caller sees only the
//! keys they may use: KMS keys they own or hold a grant on, HSM keys they
//! hold a grant on (admins see every HSM key).

use super::{attributes, stored, Ctx};
use crate::access::policy;
use crate::error::KmsError;
use crate::ttlv::{Ttlv, TtlvValue};
use hsmd_protocol::{KeyInfo, ListKeys};
use std::collections::HashSet;

/// Attribute tags Locate can filter on.
const FILTERS: &[&str] = &[
    "ObjectType",
    "CryptographicAlgorithm",
    "CryptographicLength",
    "RecommendedCurve",
    "UniqueIdentifier",
    "Name",
    "State",
];

/// KMIP Locate.
///
/// Errors: 422 naming an attribute it cannot filter on, 503.
pub async fn locate(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    super::allow_only(
        req,
        &[
            "Attributes",
            "MaximumItems",
            "OffsetItems",
            "StorageStatusMask",
        ],
    )?;
    let empty = Ttlv::structure("Attributes", vec![]);
    let filter = req.struct_of("Attributes")?.unwrap_or(&empty);
    for a in filter.items() {
        let vendor_tag =
            a.tag == "Attribute" && stored::attributes::vendor(filter, "tag").is_some();
        if !FILTERS.contains(&a.tag.as_str()) && !vendor_tag {
            return Err(KmsError::unprocessable(format!(
                "Locate cannot filter on `{}`: it filters on {}",
                a.tag,
                FILTERS.join(", ")
            )));
        }
    }
    let count = |tag: &str| -> Result<Option<usize>, KmsError> {
        match req.int_of(tag)? {
            Some(n) if n < 0 => Err(KmsError::unprocessable(format!(
                "Locate: {tag} is {n}; give a count of 0 or more"
            ))),
            n => Ok(n.map(|n| n as usize)),
        }
    };
    let max = count("MaximumItems")?;
    let offset = count("OffsetItems")?.unwrap_or(0);
    let mut found = stored::locate::locate(ctx, filter).await?;
    // Filters only KMS keys have leave HSM keys out (and hsmd alone).
    let kms_only = filter.items().iter().any(|a| {
        matches!(a.tag.as_str(), "Name" | "State")
            || (a.tag == "Attribute" && !is_empty_vendor_tag(a))
    });
    let keys = if kms_only {
        Vec::new()
    } else {
        ctx.hsmd()
            .call(ctx.user, "Locate", &ListKeys::default())
            .await?
            .keys
    };
    let hello = ctx.hello().await?;
    // Admins see every key; anybody else the keys they hold a grant on
    // (one query for all of them).
    let granted: Option<HashSet<String>> = if policy::is_admin(ctx.user, &hello.admins) {
        None
    } else {
        let rows = ctx.grants().by_user(ctx.user).await?;
        Some(rows.into_iter().map(|(uid, _)| uid).collect())
    };
    for k in keys {
        let visible = granted.as_ref().is_none_or(|g| g.contains(&k.uid));
        if visible && matches(&k, filter)? {
            found.push(k.uid);
        }
    }
    let found: Vec<String> = found
        .into_iter()
        .skip(offset)
        .take(max.unwrap_or(usize::MAX))
        .collect();
    let mut v = vec![Ttlv::integer("LocatedItems", found.len() as i64)];
    v.extend(found.into_iter().map(|u| Ttlv::text("UniqueIdentifier", u)));
    Ok(Ttlv::structure("LocateResponse", v))
}

/// The reference CLI sends its `tag` vendor attribute as `[]` when no tag
/// is asked for: that filters nothing.
pub fn is_empty_vendor_tag(a: &Ttlv) -> bool {
    a.text_of("AttributeName").ok().flatten() == Some("tag")
        && a.text_of("AttributeValue").ok().flatten() == Some("[]")
}

fn matches(k: &KeyInfo, filter: &Ttlv) -> Result<bool, KmsError> {
    for a in filter.items() {
        let ok = match (a.tag.as_str(), &a.value) {
            ("ObjectType", TtlvValue::Enumeration(v)) => v == attributes::object_type(k.kind),
            ("CryptographicAlgorithm", TtlvValue::Enumeration(v)) => {
                v == attributes::algorithm(k.kind)
                    || (v == "ECDSA" && attributes::algorithm(k.kind) == "EC")
            }
            ("CryptographicLength", TtlvValue::Integer(v)) => *v == i64::from(k.bits),
            ("RecommendedCurve", TtlvValue::Enumeration(v)) => {
                k.curve.map(attributes::curve_name) == Some(v.as_str())
            }
            ("UniqueIdentifier", TtlvValue::TextString(v)) => *v == k.uid,
            ("Attribute", _) => true,
            (tag, _) => {
                return Err(KmsError::unprocessable(format!(
                    "Locate: the filter `{tag}` has the wrong type: ObjectType, CryptographicAlgorithm and RecommendedCurve are Enumerations, CryptographicLength an Integer, UniqueIdentifier a TextString"
                )))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}
