//! Locate over KMS keys (the KMS half of KMIP Locate, KMIP 2.1 section
//! 6.1.27; [`crate::kmip::locate`] merges it with hsmd's keys).

use super::attributes;
use super::Ctx;
use crate::error::KmsError;
use crate::store::{LocateQuery, ObjectType, State};
use crate::ttlv::{Ttlv, TtlvValue};
use std::collections::HashSet;

/// Most tags one Locate may ask for (every one is a condition of the
/// database query; PostgreSQL takes at most 65,535 parameters and SQLite's
/// expression depth is 1,000).
const MAX_TAGS: usize = 64;

/// The uids of the KMS keys matching `filter` (an `Attributes` structure)
/// that the caller owns or holds a grant on, oldest first.
///
/// Errors: 422 for a tag filter that is not a JSON list or names more than
/// [`MAX_TAGS`] tags; 503 when the database is unreachable; 500 on another
/// database failure.
pub async fn locate(ctx: &Ctx<'_>, filter: &Ttlv) -> Result<Vec<String>, KmsError> {
    let mut q = LocateQuery::default();
    let mut exact: Vec<&Ttlv> = Vec::new();
    for a in filter.items() {
        match (a.tag.as_str(), &a.value) {
            ("ObjectType", TtlvValue::Enumeration(v)) => match ObjectType::from_name(v) {
                Some(t) => q.object_type = Some(t),
                None => return Ok(Vec::new()),
            },
            ("CryptographicAlgorithm", TtlvValue::Enumeration(v)) => {
                q.algorithm = Some(match v.as_str() {
                    "ECDSA" | "ECDH" => "EC".to_owned(),
                    other => other.to_owned(),
                });
            }
            ("Name", _) => q.name = a.text_of("NameValue")?.map(str::to_owned),
            ("State", TtlvValue::Enumeration(v)) => match State::from_name(v) {
                Some(s) => q.state = Some(s),
                None => return Ok(Vec::new()),
            },
            ("Attribute", _) => {}
            _ => exact.push(a),
        }
    }
    q.tags = attributes::tags_of(filter)?;
    if q.tags.len() > MAX_TAGS {
        return Err(KmsError::unprocessable(format!(
            "Locate: {} tags asked; at most {MAX_TAGS} may be asked at once",
            q.tags.len()
        )));
    }
    let rows = ctx.vault.store().locate(&q).await?;
    let granted: HashSet<String> = ctx
        .grants()
        .by_user(ctx.user)
        .await?
        .into_iter()
        .map(|(uid, _)| uid)
        .collect();
    let mut found = Vec::new();
    for (uid, owner) in rows {
        if owner != ctx.user && !granted.contains(&uid) {
            continue;
        }
        if !exact.is_empty() && !matches_exact(ctx, &uid, &exact).await? {
            continue;
        }
        found.push(uid);
    }
    Ok(found)
}

/// True when every item of `exact` equals the stored attribute of that tag
/// (CryptographicLength, UniqueIdentifier, and the curve inside
/// CryptographicDomainParameters).
async fn matches_exact(ctx: &Ctx<'_>, uid: &str, exact: &[&Ttlv]) -> Result<bool, KmsError> {
    let Some(obj) = ctx.vault.store().get(uid).await? else {
        return Ok(false);
    };
    let attrs = attributes::stored(&obj)?;
    Ok(exact.iter().all(|want| match want.tag.as_str() {
        "RecommendedCurve" => attrs
            .struct_of("CryptographicDomainParameters")
            .ok()
            .flatten()
            .and_then(|d| d.child("RecommendedCurve"))
            .is_some_and(|c| c.value == want.value),
        tag => attrs.child(tag).is_some_and(|c| c.value == want.value),
    }))
}
