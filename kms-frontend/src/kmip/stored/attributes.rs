//! The attributes of KMS keys (KMIP 2.1 section 4): kept with the object as
//! a KMIP `Attributes` structure, built at Create or Import from what the
//! request sent, and answered by GetAttributes with the state and its
//! dates. Unlike the reference, no `Digest` of the key material is kept: a
//! hash of a wrapped key's clear bytes is a fingerprint stored in clear.

use super::Ctx;
use crate::access::policy::Need;
use crate::error::KmsError;
use crate::store::{State, StoredObject};
use crate::ttlv::{Ttlv, TtlvValue};

/// The vendor identification of the reference's own attributes.
pub const VENDOR: &str = "cosmian";

/// Now, as a KMIP DateTime (RFC 3339, whole seconds, UTC).
pub fn now() -> Ttlv {
    date_time("", time::OffsetDateTime::now_utc())
}

/// A KMIP DateTime item `tag` of `t` (whole seconds, UTC).
pub fn date_time(tag: &str, t: time::OffsetDateTime) -> Ttlv {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    Ttlv {
        tag: tag.into(),
        value: TtlvValue::DateTime(text),
    }
}

fn retag(mut t: Ttlv, tag: &str) -> Ttlv {
    t.tag = tag.into();
    t
}

/// The value of the reference's vendor attribute `name` in `attrs`.
pub fn vendor<'a>(attrs: &'a Ttlv, name: &str) -> Option<&'a str> {
    attrs.children("Attribute").find_map(|a| {
        let ours = a.text_of("VendorIdentification").ok().flatten() == Some(VENDOR);
        let named = a.text_of("AttributeName").ok().flatten() == Some(name);
        if ours && named {
            a.text_of("AttributeValue").ok().flatten()
        } else {
            None
        }
    })
}

/// The vendor `tag` attribute's list (JSON text such as `["a","b"]`).
///
/// Errors: 422 when it is not a JSON array of strings.
pub fn tags_of(attrs: &Ttlv) -> Result<Vec<String>, KmsError> {
    match vendor(attrs, "tag") {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str::<Vec<String>>(text).map_err(|_| {
            KmsError::unprocessable(
                "the `tag` attribute must be a JSON array of strings, such as [\"finance\"]",
            )
        }),
    }
}

/// The `Name` values (NameValue text) of `attrs`.
pub fn names_of(attrs: &Ttlv) -> Vec<String> {
    attrs
        .children("Name")
        .filter_map(|n| n.text_of("NameValue").ok().flatten().map(str::to_owned))
        .collect()
}

/// Attributes a caller may set at Create or Import and that are kept as
/// sent (the others are the server's own).
const KEPT: &[&str] = &[
    "ActivationDate",
    "ContactInformation",
    "CryptographicUsageMask",
    "Description",
    "Comment",
    "Name",
    "ObjectGroup",
    "Sensitive",
];

/// What a new object's attributes are made of.
pub struct Shape<'a> {
    /// Unique Identifier.
    pub uid: &'a str,
    /// KMIP Object Type name.
    pub object_type: &'a str,
    /// KMIP Cryptographic Algorithm name (None for SecretData).
    pub algorithm: Option<&'a str>,
    /// Bits (AES key, RSA modulus, curve size, secret length × 8).
    pub bits: i64,
    /// RecommendedCurve name for EC keys.
    pub curve: Option<&'a str>,
    /// Default CryptographicUsageMask when the request gives none.
    pub usage_mask: i64,
    /// KeyFormatType of the object as registered.
    pub format: &'a str,
    /// Links (LinkType name, linked uid).
    pub links: Vec<(&'static str, String)>,
}

/// The attributes of a new object: `shape`, what the request's `layers`
/// (most specific first) set of [`KEPT`] and the vendor attributes, the
/// creation dates.
///
/// Errors: 422 when one of [`KEPT`] has the wrong type (a `Sensitive` that
/// is not a Boolean would otherwise be kept and break every later Get).
pub fn initial(shape: &Shape<'_>, layers: &[&Ttlv]) -> Result<Ttlv, KmsError> {
    for item in layers.iter().flat_map(|l| l.items()) {
        check_type(item)?;
    }
    let now = now();
    let mut v: Vec<Ttlv> = Vec::new();
    for tag in KEPT {
        if let Some(item) = layers.iter().find_map(|l| l.child(tag)) {
            if *tag == "Name" {
                let names = layers.iter().find(|l| l.child("Name").is_some());
                v.extend(names.into_iter().flat_map(|l| l.children("Name").cloned()));
            } else {
                v.push(item.clone());
            }
        }
    }
    if !v.iter().any(|a| a.tag == "ActivationDate") {
        v.push(retag(now.clone(), "ActivationDate"));
    }
    if !v.iter().any(|a| a.tag == "CryptographicUsageMask") {
        v.push(Ttlv::integer("CryptographicUsageMask", shape.usage_mask));
    }
    if let Some(a) = shape.algorithm {
        v.push(Ttlv::enumeration("CryptographicAlgorithm", a));
    }
    v.push(Ttlv::integer("CryptographicLength", shape.bits));
    if let Some(c) = shape.curve {
        v.push(Ttlv::structure(
            "CryptographicDomainParameters",
            vec![Ttlv::enumeration("RecommendedCurve", c)],
        ));
    }
    v.push(Ttlv::enumeration("KeyFormatType", shape.format));
    v.push(Ttlv::enumeration("ObjectType", shape.object_type));
    v.push(Ttlv::text("UniqueIdentifier", shape.uid));
    for tag in ["InitialDate", "LastChangeDate", "OriginalCreationDate"] {
        v.push(retag(now.clone(), tag));
    }
    for (link, to) in &shape.links {
        v.push(link_item(link, to));
    }
    // The vendor attributes, once each (the most specific layer wins).
    let mut seen = std::collections::HashSet::new();
    for l in layers {
        for a in l.children("Attribute") {
            let name = a
                .text_of("AttributeName")
                .ok()
                .flatten()
                .unwrap_or_default();
            if seen.insert(name.to_owned()) {
                v.push(a.clone());
            }
        }
    }
    Ok(Ttlv::structure("Attributes", v))
}

/// Checks that an attribute of [`KEPT`] has its KMIP type (KMIP 2.1
/// section 4): DateTime, Integer, Boolean, a Name structure with a text
/// NameValue, or text.
///
/// Errors: 422 naming the attribute and the type it must have.
fn check_type(item: &Ttlv) -> Result<(), KmsError> {
    let (typed, want) = match item.tag.as_str() {
        "ActivationDate" => (matches!(item.value, TtlvValue::DateTime(_)), "a DateTime"),
        "CryptographicUsageMask" => (matches!(item.value, TtlvValue::Integer(_)), "an Integer"),
        "Sensitive" => (matches!(item.value, TtlvValue::Boolean(_)), "a Boolean"),
        "Name" => (
            matches!(item.text_of("NameValue"), Ok(Some(_))),
            "a structure with a TextString NameValue",
        ),
        "ContactInformation" | "Description" | "Comment" | "ObjectGroup" => (
            matches!(item.value, TtlvValue::TextString(_)),
            "a TextString",
        ),
        _ => return Ok(()),
    };
    if typed {
        return Ok(());
    }
    Err(KmsError::unprocessable(format!(
        "the attribute {} must be {want}",
        item.tag
    )))
}

/// A `Link` item.
pub fn link_item(link_type: &str, to: &str) -> Ttlv {
    Ttlv::structure(
        "Link",
        vec![
            Ttlv::enumeration("LinkType", link_type),
            Ttlv::text("LinkedObjectIdentifier", to),
        ],
    )
}

/// The uid `obj` links to with `link_type` (e.g. `PublicKeyLink`).
pub fn linked(obj: &StoredObject, link_type: &str) -> Option<String> {
    let attrs = stored(obj).ok()?;
    let found = attrs.children("Link").find_map(|l| {
        (l.enum_of("LinkType").ok().flatten() == Some(link_type))
            .then(|| l.text_of("LinkedObjectIdentifier").ok().flatten())
            .flatten()
            .map(str::to_owned)
    });
    found
}

/// The stored attributes of `obj` as TTLV.
///
/// Errors: 500 when the stored JSON is not TTLV (a damaged row).
pub fn stored(obj: &StoredObject) -> Result<Ttlv, KmsError> {
    Ttlv::from_json(&obj.attributes).map_err(|e| {
        KmsError::internal(format!(
            "the stored attributes of {} are damaged: {e}",
            obj.uid
        ))
    })
}

/// Serializes attributes for the store.
///
/// Errors: 500 when they cannot be encoded.
pub fn to_json(attrs: &Ttlv) -> Result<serde_json::Value, KmsError> {
    serde_json::to_value(attrs)
        .map_err(|e| KmsError::internal(format!("cannot encode attributes: {e}")))
}

/// The attributes as answered: stored ones plus `State`; a destroyed
/// object keeps only what identifies it.
pub fn answered(obj: &StoredObject) -> Result<Ttlv, KmsError> {
    let attrs = stored(obj)?;
    let destroyed = matches!(obj.state, State::Destroyed | State::DestroyedCompromised);
    let mut v: Vec<Ttlv> = attrs
        .items()
        .iter()
        .filter(|a| !destroyed || DESTROYED_KEEP.contains(&a.tag.as_str()))
        .cloned()
        .collect();
    v.push(Ttlv::enumeration("State", obj.state.name()));
    v.sort_by_key(order);
    Ok(Ttlv::structure("Attributes", v))
}

/// What GetAttributes still shows of a destroyed object.
const DESTROYED_KEEP: &[&str] = &[
    "CryptographicLength",
    "DestroyDate",
    "KeyFormatType",
    "ObjectType",
    "UniqueIdentifier",
    "Name",
    "Attribute",
];

/// Answer order: KMIP attributes by tag name, vendor attributes last (as
/// the reference answers).
fn order(a: &Ttlv) -> (bool, String) {
    (a.tag == "Attribute", a.tag.clone())
}

/// KMIP GetAttributes of a KMS key (KMIP 2.1 section 6.1.22), all of them
/// or those named by `AttributeReference`.
///
/// Errors: 422 not found / not shared, 500.
pub async fn get_attributes(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    let obj = super::load(ctx, uid, Need::GetAttributes).await?;
    let all = answered(&obj)?;
    let wanted: Vec<&str> = req
        .children("AttributeReference")
        .filter_map(|r| match &r.value {
            TtlvValue::Enumeration(t) | TtlvValue::TextString(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let attrs = if wanted.is_empty() {
        all
    } else {
        Ttlv::structure(
            "Attributes",
            all.items()
                .iter()
                .filter(|a| wanted.contains(&a.tag.as_str()))
                .cloned()
                .collect(),
        )
    };
    Ok(Ttlv::structure(
        "GetAttributesResponse",
        vec![Ttlv::text("UniqueIdentifier", uid), attrs],
    ))
}

/// Replaces (or adds) the item `item` in `attrs`, and sets
/// `LastChangeDate` to now.
pub fn set(attrs: &mut Ttlv, item: Ttlv) {
    if let TtlvValue::Structure(v) = &mut attrs.value {
        v.retain(|a| a.tag != item.tag && a.tag != "LastChangeDate");
        v.push(item);
        v.push(retag(now(), "LastChangeDate"));
    }
}

/// Appends `item` to `attrs` (for items that may repeat, such as `Link`),
/// and sets `LastChangeDate` to now.
pub fn add(attrs: &mut Ttlv, item: Ttlv) {
    if let TtlvValue::Structure(v) = &mut attrs.value {
        v.retain(|a| a.tag != "LastChangeDate");
        v.push(item);
        v.push(retag(now(), "LastChangeDate"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape<'static> {
        Shape {
            uid: "k",
            object_type: "SymmetricKey",
            algorithm: Some("AES"),
            bits: 256,
            curve: None,
            usage_mask: 2108,
            format: "TransparentSymmetricKey",
            links: vec![("WrappingKeyLink", "hsm::0::kek".into())],
        }
    }

    #[test]
    fn kept_attributes_of_the_wrong_type_are_refused_at_creation() {
        let bad = Ttlv::structure("Attributes", vec![Ttlv::text("Sensitive", "yes")]);
        let e = initial(&shape(), &[&bad]).expect_err("a text Sensitive");
        assert_eq!(e.message, "the attribute Sensitive must be a Boolean");
        let bad = Ttlv::structure("Attributes", vec![Ttlv::integer("Name", 3)]);
        let e = initial(&shape(), &[&bad]).expect_err("a number as Name");
        assert!(e.message.contains("NameValue"), "{e}");
        let good = Ttlv::structure(
            "Attributes",
            vec![
                Ttlv::boolean("Sensitive", true),
                Ttlv::structure("Name", vec![Ttlv::text("NameValue", "dek")]),
            ],
        );
        let attrs = initial(&shape(), &[&good]).expect("well-typed");
        assert_eq!(attrs.bool_of("Sensitive").expect("bool"), Some(true));
        assert_eq!(names_of(&attrs), vec!["dek".to_owned()]);
        assert_eq!(
            attrs.int_of("CryptographicUsageMask").expect("int"),
            Some(2108)
        );
    }
}
