//! Which attributes of a KMS key its owner may change, and how a
//! SetAttribute, AddAttribute, ModifyAttribute or DeleteAttribute (KMIP 2.1
//! sections 6.1.50, 6.1.2, 6.1.32, 6.1.13) applies to the list of items of
//! its stored `Attributes` structure. Pure: no store, no request context;
//! [`super::modify`] loads, checks the owner and saves.
//!
//! What may change: `Name`, the vendor attributes (the reference's `tag`, a
//! JSON list in a TextString, among them), `CryptographicUsageMask`,
//! `Sensitive` (false to true only), `Description`, `Comment`,
//! `ContactInformation`, `ObjectGroup` and the Links other than
//! `WrappingKeyLink`. Everything else is the server's: the identifier, the
//! type, the state and its dates, the algorithm, length, curve and format,
//! the wrapping key.

use super::attributes::{date_time, VENDOR};
use crate::error::{echo, KmsError};
use crate::ttlv::{Ttlv, TtlvValue};

/// The tags a caller may change (with the exceptions of [`refusal`]).
pub const CHANGEABLE: &[&str] = &[
    "Name",
    "Attribute",
    "CryptographicUsageMask",
    "Sensitive",
    "Description",
    "Comment",
    "ContactInformation",
    "ObjectGroup",
    "Link",
];

/// Tags that may have several instances (KMIP 2.1 section 4: Name,
/// Object Group, Link; vendor attributes are one per vendor and name).
const MULTI: &[&str] = &["Name", "ObjectGroup", "Link"];

/// The one sentence naming what may be changed, ending every refusal.
const MAY_CHANGE: &str = "what may be changed: Name, the vendor attributes (such as `tag`), CryptographicUsageMask, Sensitive (to true), Description, Comment, ContactInformation, ObjectGroup and the Links other than WrappingKeyLink";

/// The vendor identification and name of a vendor attribute item.
fn vendor_key(item: &Ttlv) -> (Option<&str>, Option<&str>) {
    (
        item.text_of("VendorIdentification").ok().flatten(),
        item.text_of("AttributeName").ok().flatten(),
    )
}

/// The LinkType of a `Link` item.
fn link_type(item: &Ttlv) -> Option<&str> {
    item.enum_of("LinkType").ok().flatten()
}

/// How an item is named in a message (bounded).
pub fn describe(item: &Ttlv) -> String {
    match item.tag.as_str() {
        "Attribute" => {
            let (v, n) = vendor_key(item);
            format!(
                "vendor attribute {}/{}",
                echo(v.unwrap_or("?")),
                echo(n.unwrap_or("?"))
            )
        }
        "Link" => format!("Link {}", echo(link_type(item).unwrap_or("?"))),
        "Name" => format!(
            "Name `{}`",
            echo(item.text_of("NameValue").ok().flatten().unwrap_or(""))
        ),
        tag => echo(tag),
    }
}

/// Why `item` may not be changed by `op`, or None when it may.
pub fn refusal(op: &str, item: &Ttlv) -> Option<KmsError> {
    let server_owned = !CHANGEABLE.contains(&item.tag.as_str())
        || (item.tag == "Link" && link_type(item) == Some("WrappingKeyLink"))
        || (item.tag == "Attribute" && vendor_key(item) == (Some(VENDOR), Some("wrapping_key_id")));
    server_owned.then(|| {
        KmsError::unprocessable(format!(
            "{op}: {} is the server's and cannot be changed; {MAY_CHANGE}",
            describe(item)
        ))
    })
}

/// The attribute a request carries in `field` (`NewAttribute` or
/// `CurrentAttribute`: a structure holding one attribute item), as kept in
/// `Attributes`: the reference's `VendorAttribute` becomes `Attribute`, and
/// a ByteString value of the vendor `tag` (what `ckms attributes set
/// --attribute-value` sends, hex-decoded) becomes its TextString.
///
/// Errors: 422 when the field does not hold exactly one item, or a `tag`
/// value is not UTF-8.
pub fn carried(req: &Ttlv, field: &str) -> Result<Option<Ttlv>, KmsError> {
    let Some(holder) = req.child(field) else {
        return Ok(None);
    };
    let mut item = match holder.items() {
        [one] => one.clone(),
        _ => {
            return Err(KmsError::unprocessable(format!(
                "{}: {field} must be a Structure holding exactly one attribute, such as a Name",
                req.tag
            )))
        }
    };
    if item.tag == "VendorAttribute" {
        item.tag = "Attribute".into();
    }
    if item.tag == "Attribute" && vendor_key(&item) == (Some(VENDOR), Some("tag")) {
        if let TtlvValue::Structure(children) = &mut item.value {
            for c in children.iter_mut().filter(|c| c.tag == "AttributeValue") {
                if let TtlvValue::ByteString(b) = &c.value {
                    let text = String::from_utf8(b.clone()).map_err(|_| {
                        KmsError::unprocessable(
                            "the `tag` attribute must be a JSON array of strings in UTF-8, such as [\"finance\"]",
                        )
                    })?;
                    c.value = TtlvValue::TextString(text);
                }
            }
        }
    }
    Ok(Some(item))
}

/// True when `a` and `b` are the same slot: the same tag and, for a vendor
/// attribute, the same vendor and name; for a Link, the same LinkType
/// (SetAttribute replaces a slot's instances).
fn same_slot(a: &Ttlv, b: &Ttlv) -> bool {
    a.tag == b.tag
        && match a.tag.as_str() {
            "Attribute" => vendor_key(a) == vendor_key(b),
            "Link" => link_type(a) == link_type(b),
            _ => true,
        }
}

/// True when `a` is the instance `b` names: for a Name its NameValue, for
/// a Link its type and target, for an ObjectGroup its value; otherwise the
/// slot (a single-instance attribute is named by its tag).
fn same_instance(a: &Ttlv, b: &Ttlv) -> bool {
    same_slot(a, b)
        && match a.tag.as_str() {
            "Name" => a.text_of("NameValue").ok() == b.text_of("NameValue").ok(),
            "Link" => {
                a.text_of("LinkedObjectIdentifier").ok() == b.text_of("LinkedObjectIdentifier").ok()
            }
            "ObjectGroup" => a.value == b.value,
            _ => true,
        }
}

/// Refuses turning `Sensitive` off: a key once sensitive stays so (its
/// clear material never leaves the server).
fn keep_sensitive(op: &str, items: &[Ttlv], new: Option<&Ttlv>) -> Result<(), KmsError> {
    let was = items
        .iter()
        .any(|i| i.tag == "Sensitive" && i.value == TtlvValue::Boolean(true));
    let stays = new.is_some_and(|n| n.value == TtlvValue::Boolean(true));
    if was && !stays {
        return Err(KmsError::unprocessable(format!(
            "{op}: Sensitive is true and stays true (the key's clear material never leaves the server); {MAY_CHANGE}"
        )));
    }
    Ok(())
}

/// "Attribute_Not_Found" for `what` on `uid`.
fn not_found(op: &str, uid: &str, what: &str) -> KmsError {
    KmsError::unprocessable(format!(
        "Attribute_Not_Found: {op}: {} has no {what}",
        echo(uid)
    ))
}

/// Sets `LastChangeDate` to now.
fn stamp(items: &mut Vec<Ttlv>) {
    items.retain(|i| i.tag != "LastChangeDate");
    items.push(date_time("LastChangeDate", time::OffsetDateTime::now_utc()));
}

/// The items of an `Attributes` structure, to change in place.
fn items_of(attrs: &mut Ttlv) -> Result<&mut Vec<Ttlv>, KmsError> {
    match &mut attrs.value {
        TtlvValue::Structure(v) => Ok(v),
        _ => Err(KmsError::internal("stored attributes are not a structure")),
    }
}

/// SetAttribute: `new` replaces every instance of its slot (or is added).
///
/// Errors: 422 for a server-owned attribute or turning Sensitive off.
pub fn set(attrs: &mut Ttlv, new: Ttlv) -> Result<(), KmsError> {
    if let Some(e) = refusal("SetAttribute", &new) {
        return Err(e);
    }
    let items = items_of(attrs)?;
    if new.tag == "Sensitive" {
        keep_sensitive("SetAttribute", items, Some(&new))?;
    }
    items.retain(|i| !same_slot(i, &new));
    items.push(new);
    stamp(items);
    Ok(())
}

/// AddAttribute: `new` is added; a single-instance attribute must not be
/// there yet, a multi-instance one not with the same value.
///
/// Errors: 422 for a server-owned attribute or one already present.
pub fn add(attrs: &mut Ttlv, uid: &str, new: Ttlv) -> Result<(), KmsError> {
    if let Some(e) = refusal("AddAttribute", &new) {
        return Err(e);
    }
    let items = items_of(attrs)?;
    let multi = MULTI.contains(&new.tag.as_str());
    if items.iter().any(|i| {
        if multi {
            same_instance(i, &new)
        } else {
            same_slot(i, &new)
        }
    }) {
        return Err(KmsError::unprocessable(format!(
            "AddAttribute: {} already has {}: use SetAttribute or ModifyAttribute to change it",
            echo(uid),
            describe(&new)
        )));
    }
    items.push(new);
    stamp(items);
    Ok(())
}

/// ModifyAttribute: the instance `current` names (or the only instance of
/// `new`'s slot when `current` is None) becomes `new`.
///
/// Errors: 422 for a server-owned attribute, when there is no such
/// instance, when several match and `current` is None, when `current` and
/// `new` are of different tags, or turning Sensitive off.
pub fn modify(
    attrs: &mut Ttlv,
    uid: &str,
    current: Option<&Ttlv>,
    new: Ttlv,
) -> Result<(), KmsError> {
    for item in current.into_iter().chain([&new]) {
        if let Some(e) = refusal("ModifyAttribute", item) {
            return Err(e);
        }
    }
    let items = items_of(attrs)?;
    let target = current.unwrap_or(&new);
    if target.tag != new.tag {
        return Err(KmsError::unprocessable(format!(
            "ModifyAttribute: CurrentAttribute is a {} and NewAttribute a {}: they must be of the same attribute",
            echo(&target.tag),
            echo(&new.tag)
        )));
    }
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            if current.is_some() {
                same_instance(i, target)
            } else {
                same_slot(i, target)
            }
        })
        .map(|(n, _)| n)
        .collect();
    let at = match hits.as_slice() {
        [] => {
            return Err(not_found(
                "ModifyAttribute",
                uid,
                &format!(
                    "{} to modify: use AddAttribute or SetAttribute",
                    describe(target)
                ),
            ))
        }
        [one] => *one,
        _ => {
            return Err(KmsError::unprocessable(format!(
                "ModifyAttribute: {} has several {}: name the one to change in CurrentAttribute",
                echo(uid),
                echo(&new.tag)
            )))
        }
    };
    if new.tag == "Sensitive" {
        keep_sensitive("ModifyAttribute", items, Some(&new))?;
    }
    items[at] = new;
    stamp(items);
    Ok(())
}

/// What a DeleteAttribute names: an instance (`CurrentAttribute`) or
/// references (`AttributeReference`: a tag name, or a structure naming a
/// vendor attribute).
pub enum Deletion<'a> {
    /// The instance to delete.
    Instance(&'a Ttlv),
    /// Attribute references.
    References(Vec<&'a Ttlv>),
}

/// The slot an `AttributeReference` names, as an item to match with
/// [`same_slot`] (an empty item of that tag, or a vendor attribute's
/// identification and name).
///
/// Errors: 422 for a reference that names a Link or every vendor attribute
/// by tag, or is not a tag name or a vendor reference.
fn referenced(r: &Ttlv) -> Result<Ttlv, KmsError> {
    match &r.value {
        TtlvValue::Enumeration(t) | TtlvValue::TextString(t) => {
            if t == "Link" || t == "Attribute" {
                return Err(KmsError::unprocessable(format!(
                    "DeleteAttribute: an AttributeReference to every {t} is refused: name the one to delete in CurrentAttribute"
                )));
            }
            Ok(Ttlv::structure(t, Vec::new()))
        }
        TtlvValue::Structure(_) => {
            let (v, n) = vendor_key(r);
            match (v, n) {
                (Some(v), Some(n)) => Ok(Ttlv::structure(
                    "Attribute",
                    vec![
                        Ttlv::text("VendorIdentification", v),
                        Ttlv::text("AttributeName", n),
                    ],
                )),
                _ => Err(KmsError::unprocessable(
                    "DeleteAttribute: a structured AttributeReference must hold VendorIdentification and AttributeName",
                )),
            }
        }
        _ => Err(KmsError::unprocessable(
            "DeleteAttribute: AttributeReference must be an attribute's tag name (Enumeration or TextString) or a vendor reference",
        )),
    }
}

/// DeleteAttribute: removes the instance named, or every instance of each
/// slot referenced.
///
/// Errors: 422 for a server-owned attribute, a reference naming nothing
/// present, or deleting a true Sensitive.
pub fn delete(attrs: &mut Ttlv, uid: &str, what: Deletion<'_>) -> Result<(), KmsError> {
    let (targets, by_instance) = match what {
        Deletion::Instance(i) => (vec![i.clone()], true),
        Deletion::References(rs) => (
            rs.into_iter()
                .map(referenced)
                .collect::<Result<Vec<_>, _>>()?,
            false,
        ),
    };
    for t in &targets {
        if let Some(e) = refusal("DeleteAttribute", t) {
            return Err(e);
        }
    }
    let items = items_of(attrs)?;
    for t in &targets {
        if t.tag == "Sensitive" {
            keep_sensitive("DeleteAttribute", items, None)?;
        }
        let before = items.len();
        items.retain(|i| {
            !if by_instance {
                same_instance(i, t)
            } else {
                same_slot(i, t)
            }
        });
        if items.len() == before {
            return Err(not_found("DeleteAttribute", uid, &describe(t)));
        }
    }
    stamp(items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::stored::attributes::{names_of, tags_of};

    fn name(v: &str) -> Ttlv {
        Ttlv::structure(
            "Name",
            vec![
                Ttlv::text("NameValue", v),
                Ttlv::enumeration("NameType", "UninterpretedTextString"),
            ],
        )
    }

    fn vendor(name: &str, value: TtlvValue) -> Ttlv {
        Ttlv::structure(
            "Attribute",
            vec![
                Ttlv::text("VendorIdentification", VENDOR),
                Ttlv::text("AttributeName", name),
                Ttlv {
                    tag: "AttributeValue".into(),
                    value,
                },
            ],
        )
    }

    fn tags(list: &str) -> Ttlv {
        vendor("tag", TtlvValue::TextString(list.into()))
    }

    fn link(t: &str, to: &str) -> Ttlv {
        crate::kmip::stored::attributes::link_item(t, to)
    }

    /// Attributes as Create leaves them for a tagged AES key.
    fn stored() -> Ttlv {
        Ttlv::structure(
            "Attributes",
            vec![
                Ttlv::enumeration("CryptographicAlgorithm", "AES"),
                Ttlv::integer("CryptographicLength", 256),
                Ttlv::integer("CryptographicUsageMask", 12),
                Ttlv::text("UniqueIdentifier", "k1"),
                name("first"),
                link("WrappingKeyLink", "hsm::1::kek"),
                tags("[\"finance\"]"),
                vendor(
                    "wrapping_key_id",
                    TtlvValue::TextString("hsm::1::kek".into()),
                ),
                Ttlv::boolean("Sensitive", false),
            ],
        )
    }

    fn holder(field: &str, item: Ttlv) -> Ttlv {
        Ttlv::structure("SetAttribute", vec![Ttlv::structure(field, vec![item])])
    }

    #[test]
    fn set_of_a_name_replaces_every_name_and_stamps_the_change() {
        let mut a = stored();
        add(&mut a, "k1", name("second")).unwrap();
        assert_eq!(names_of(&a), ["first", "second"]);
        set(&mut a, name("only")).unwrap();
        assert_eq!(names_of(&a), ["only"]);
        assert_eq!(a.children("LastChangeDate").count(), 1);
        assert_eq!(a.int_of("CryptographicLength").unwrap(), Some(256));
    }

    #[test]
    fn set_of_the_tag_list_replaces_only_that_vendor_attribute() {
        let mut a = stored();
        set(&mut a, tags("[\"hr\",\"eu\"]")).unwrap();
        assert_eq!(tags_of(&a).unwrap(), ["hr", "eu"]);
        assert_eq!(
            crate::kmip::stored::attributes::vendor(&a, "wrapping_key_id"),
            Some("hsm::1::kek")
        );
    }

    #[test]
    fn the_vendor_attribute_ckms_sends_becomes_the_stored_tag_text() {
        let sent = Ttlv::structure(
            "VendorAttribute",
            vec![
                Ttlv::text("VendorIdentification", VENDOR),
                Ttlv::text("AttributeName", "tag"),
                Ttlv::bytes("AttributeValue", b"[\"ops\"]".to_vec()),
            ],
        );
        let item = carried(&holder("NewAttribute", sent), "NewAttribute")
            .unwrap()
            .unwrap();
        assert_eq!(item.tag, "Attribute");
        let mut a = stored();
        set(&mut a, item).unwrap();
        assert_eq!(tags_of(&a).unwrap(), ["ops"]);

        let bad = Ttlv::structure(
            "VendorAttribute",
            vec![
                Ttlv::text("VendorIdentification", VENDOR),
                Ttlv::text("AttributeName", "tag"),
                Ttlv::bytes("AttributeValue", vec![0xff, 0xfe]),
            ],
        );
        let e = carried(&holder("NewAttribute", bad), "NewAttribute").unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let two = Ttlv::structure(
            "SetAttribute",
            vec![Ttlv::structure("NewAttribute", vec![name("a"), name("b")])],
        );
        assert!(carried(&two, "NewAttribute").is_err());
        assert!(carried(&two, "CurrentAttribute").unwrap().is_none());
    }

    #[test]
    fn server_owned_attributes_are_refused_naming_what_may_change() {
        for item in [
            Ttlv::text("UniqueIdentifier", "k2"),
            Ttlv::enumeration("ObjectType", "SecretData"),
            Ttlv::enumeration("State", "Active"),
            date_time("ActivationDate", time::OffsetDateTime::UNIX_EPOCH),
            Ttlv::enumeration("CryptographicAlgorithm", "RSA"),
            Ttlv::integer("CryptographicLength", 128),
            Ttlv::enumeration("KeyFormatType", "Raw"),
            link("WrappingKeyLink", "hsm::1::other"),
            vendor(
                "wrapping_key_id",
                TtlvValue::TextString("hsm::1::other".into()),
            ),
        ] {
            let mut a = stored();
            let e = set(&mut a, item.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 422, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("is the server's"), "{msg}");
            assert!(msg.contains("what may be changed: Name"), "{msg}");
            assert_eq!(a, stored(), "{} changed the attributes", item.tag);
            assert!(modify(&mut a, "k1", None, item.clone()).is_err());
            assert!(delete(&mut a, "k1", Deletion::Instance(&item)).is_err());
            assert!(add(&mut a, "k1", item).is_err());
            assert_eq!(a, stored());
        }
        let r = Ttlv::enumeration("AttributeReference", "CryptographicLength");
        assert!(delete(&mut stored(), "k1", Deletion::References(vec![&r])).is_err());
    }

    #[test]
    fn add_refuses_a_present_slot_or_the_same_instance() {
        let mut a = stored();
        let e = add(&mut a, "k1", Ttlv::integer("CryptographicUsageMask", 4)).unwrap_err();
        assert!(
            e.to_string().contains("already has CryptographicUsageMask"),
            "{e}"
        );
        assert!(add(&mut a, "k1", name("first")).is_err());
        assert!(add(&mut a, "k1", tags("[]")).is_err());
        add(&mut a, "k1", link("PublicKeyLink", "pk1")).unwrap();
        add(&mut a, "k1", link("PublicKeyLink", "pk2")).unwrap();
        assert_eq!(a.children("Link").count(), 3);
        add(&mut a, "k1", Ttlv::text("Description", "payroll")).unwrap();
        assert_eq!(a.text_of("Description").unwrap(), Some("payroll"));
    }

    #[test]
    fn modify_changes_the_named_instance_and_needs_one_to_exist() {
        let mut a = stored();
        modify(&mut a, "k1", None, name("renamed")).unwrap();
        assert_eq!(names_of(&a), ["renamed"]);
        add(&mut a, "k1", name("other")).unwrap();
        let e = modify(&mut a, "k1", None, name("x")).unwrap_err();
        assert!(e.to_string().contains("CurrentAttribute"), "{e}");
        modify(&mut a, "k1", Some(&name("other")), name("x")).unwrap();
        assert_eq!(names_of(&a), ["renamed", "x"]);
        let e = modify(&mut a, "k1", None, Ttlv::text("Comment", "c")).unwrap_err();
        assert!(e.to_string().starts_with("Attribute_Not_Found"), "{e}");
        let e = modify(&mut a, "k1", Some(&name("x")), Ttlv::text("Comment", "c")).unwrap_err();
        assert!(e.to_string().contains("same attribute"), "{e}");
        modify(
            &mut a,
            "k1",
            None,
            Ttlv::integer("CryptographicUsageMask", 4),
        )
        .unwrap();
        assert_eq!(a.int_of("CryptographicUsageMask").unwrap(), Some(4));
    }

    #[test]
    fn delete_by_instance_and_by_reference() {
        let mut a = stored();
        add(&mut a, "k1", name("second")).unwrap();
        delete(&mut a, "k1", Deletion::Instance(&name("first"))).unwrap();
        assert_eq!(names_of(&a), ["second"]);
        let e = delete(&mut a, "k1", Deletion::Instance(&name("first"))).unwrap_err();
        assert!(e.to_string().starts_with("Attribute_Not_Found"), "{e}");
        // The value of a vendor attribute does not matter: its name does
        // (ckms sends an empty value).
        delete(
            &mut a,
            "k1",
            Deletion::Instance(&vendor("tag", TtlvValue::ByteString(Vec::new()))),
        )
        .unwrap();
        assert!(tags_of(&a).unwrap().is_empty());
        let by_tag = Ttlv::enumeration("AttributeReference", "Name");
        delete(&mut a, "k1", Deletion::References(vec![&by_tag])).unwrap();
        assert!(names_of(&a).is_empty());
        let every_link = Ttlv::enumeration("AttributeReference", "Link");
        assert!(delete(&mut a, "k1", Deletion::References(vec![&every_link])).is_err());
        assert_eq!(a.children("Link").count(), 1);
    }

    #[test]
    fn sensitive_turns_on_and_then_stays_on() {
        let mut a = stored();
        set(&mut a, Ttlv::boolean("Sensitive", true)).unwrap();
        let e = set(&mut a, Ttlv::boolean("Sensitive", false)).unwrap_err();
        assert!(e.to_string().contains("stays true"), "{e}");
        let r = Ttlv::enumeration("AttributeReference", "Sensitive");
        assert!(delete(&mut a, "k1", Deletion::References(vec![&r])).is_err());
        assert_eq!(a.bool_of("Sensitive").unwrap(), Some(true));
    }
}
