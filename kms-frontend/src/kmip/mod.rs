//! KMIP 2.1 operations on HSM keys, as the Cosmian KMS answers them on
//! `POST /kmip/2_1` (a bare operation payload in JSON TTLV, the response
//! payload back; the route is [`crate::http`]'s). Each operation checks the
//! caller's access rights ([`crate::access`]), asks hsmd ([`crate::hsm`]),
//! and shapes the answer like the reference's (see `tests/fixtures/kmip/`).
//! One file per operation family; no HTTP types here.

pub mod attributes;
pub mod create;
pub mod crypto;
pub mod destroy;
pub mod get;
pub mod locate;
pub mod server;
pub mod stored;

use crate::access::policy::{self, Need};
use crate::access::store::GrantStore;
use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::ttlv::{Ttlv, TtlvError};
use crate::vault::Vault;
use hsmd_protocol::ServerHello;
use std::sync::Arc;

/// Operations this KMS serves (KMIP 2.1 section 11.29 names).
pub const OPERATIONS: &[&str] = &[
    "AddAttribute",
    "Create",
    "CreateKeyPair",
    "Decrypt",
    "DeleteAttribute",
    "Destroy",
    "DiscoverVersions",
    "Encrypt",
    "Export",
    "Get",
    "GetAttributes",
    "Import",
    "Locate",
    "ModifyAttribute",
    "Query",
    "ReKey",
    "Revoke",
    "SetAttribute",
    "Sign",
    "SignatureVerify",
];

/// One request's context: what a KMIP operation uses of the frontend's
/// shared state (the hsmd client, the access rights; `crate::http` lends
/// them from its state, so this layer needs nothing of the HTTP one) and the
/// authenticated user.
pub struct Ctx<'a> {
    /// The hsmd connection pool.
    pub hsmd: &'a Hsmd,
    /// The access-rights store.
    pub grants: &'a GrantStore,
    /// The KMS keys: store, wrapping, unwrapped cache.
    pub vault: &'a Vault,
    /// The KMS user.
    pub user: &'a str,
}

impl Ctx<'_> {
    /// The hsmd connection pool.
    pub fn hsmd(&self) -> &Hsmd {
        self.hsmd
    }

    /// The access-rights store.
    pub fn grants(&self) -> &GrantStore {
        self.grants
    }

    /// hsmd's hello, whose `admins` are the HSM admins.
    ///
    /// Errors: 503 when hsmd is unreachable.
    pub async fn hello(&self) -> Result<Arc<ServerHello>, KmsError> {
        self.hsmd().hello().await
    }

    /// True when the caller is an HSM admin.
    pub async fn is_admin(&self) -> Result<bool, KmsError> {
        Ok(policy::is_admin(self.user, &self.hello().await?.admins))
    }

    /// Checks the caller may do `need` on `uid` ([`policy::check`]).
    pub async fn check(&self, uid: &str, need: Need) -> Result<(), KmsError> {
        let hello = self.hello().await?;
        policy::check(self.grants(), self.user, &hello.admins, uid, need).await
    }
}

impl From<TtlvError> for KmsError {
    /// 422 naming what is wrong in the JSON TTLV.
    fn from(e: TtlvError) -> Self {
        Self::unprocessable(e.to_string())
    }
}

/// Serves one KMIP operation.
///
/// Errors: [`KmsError`]; an unknown operation is 422 naming its tag and the
/// supported ones.
pub async fn handle(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    // A Unique Identifier that is not `hsm::…` names a KMS key (kept in the
    // database, wrapped by an HSM key): `stored` serves those.
    let kms_key = |req: &Ttlv| -> Result<Option<String>, KmsError> {
        Ok(req
            .text_of("UniqueIdentifier")?
            .filter(|u| !stored::is_hsm(u))
            .map(str::to_owned))
    };
    match req.tag.as_str() {
        "Create" if creates_kms_key(req, &["Attributes"])? => {
            stored::create::create(ctx, req).await
        }
        "CreateKeyPair" if creates_kms_key(req, &["PrivateKeyAttributes", "CommonAttributes"])? => {
            stored::create::create_key_pair(ctx, req).await
        }
        "Import" => stored::import::import(ctx, req).await,
        "Locate" => locate::locate(ctx, req).await,
        "Query" => server::query(req),
        "DiscoverVersions" => server::discover_versions(req),
        tag => match (tag, kms_key(req)?) {
            ("Get" | "Export", Some(u)) => stored::get::get(ctx, req, &u).await,
            ("GetAttributes", Some(u)) => stored::attributes::get_attributes(ctx, req, &u).await,
            ("Encrypt", Some(u)) => stored::crypto::encrypt(ctx, req, &u).await,
            ("Decrypt", Some(u)) => stored::crypto::decrypt(ctx, req, &u).await,
            ("Sign", Some(u)) => stored::crypto::sign(ctx, req, &u).await,
            ("SignatureVerify", Some(u)) => stored::crypto::signature_verify(ctx, req, &u).await,
            // Read-modify-writes of a key: run again when the key changed
            // under them (stored::retrying).
            ("Destroy", Some(u)) => {
                stored::retrying(|| stored::lifecycle::destroy(ctx, req, &u)).await
            }
            ("Revoke", Some(u)) => stored::retrying(|| stored::lifecycle::revoke(ctx, req, &u)).await,
            ("ReKey", Some(u)) => stored::retrying(|| stored::lifecycle::rekey(ctx, req, &u)).await,
            ("SetAttribute", Some(u)) => {
                stored::retrying(|| stored::modify::set_attribute(ctx, req, &u)).await
            }
            ("AddAttribute", Some(u)) => {
                stored::retrying(|| stored::modify::add_attribute(ctx, req, &u)).await
            }
            ("ModifyAttribute", Some(u)) => {
                stored::retrying(|| stored::modify::modify_attribute(ctx, req, &u)).await
            }
            ("DeleteAttribute", Some(u)) => {
                stored::retrying(|| stored::modify::delete_attribute(ctx, req, &u)).await
            }
            ("Create", _) => create::create(ctx, req).await,
            ("CreateKeyPair", _) => create::create_key_pair(ctx, req).await,
            ("Get" | "Export", None) => get::get(ctx, req).await,
            ("GetAttributes", None) => attributes::get_attributes(ctx, req).await,
            ("Encrypt", None) => crypto::encrypt(ctx, req).await,
            ("Decrypt", None) => crypto::decrypt(ctx, req).await,
            ("Sign", None) => crypto::sign(ctx, req).await,
            ("SignatureVerify", None) => crypto::signature_verify(ctx, req).await,
            ("Destroy", None) => destroy::destroy(ctx, req).await,
            ("Revoke", None) => destroy::revoke(req),
            ("ReKey", None) => Err(KmsError::unprocessable(
                "ReKey of HSM keys is not offered: create a new HSM key",
            )),
            ("SetAttribute" | "AddAttribute" | "ModifyAttribute" | "DeleteAttribute", None) => {
                Err(KmsError::unprocessable(format!(
                    "{tag}: attributes of HSM keys are the token's: {} keeps the label, type and size it was created with; attributes may be changed on KMS keys (uids not starting with hsm::)",
                    crate::error::echo(required_uid(req)?)
                )))
            }
            (other, _) => Err(KmsError::unprocessable(format!(
                "KMIP operation `{other}` is not supported by this KMS; supported: {}",
                OPERATIONS.join(", ")
            ))),
        },
    }
}

/// True when a Create or CreateKeyPair makes a KMS key: the first of
/// `layers` (attribute structures of `req`) that names a
/// `UniqueIdentifier` names no `hsm::…` one.
fn creates_kms_key(req: &Ttlv, layers: &[&str]) -> Result<bool, KmsError> {
    for l in layers {
        if let Some(a) = req.struct_of(l)? {
            if let Some(u) = a.text_of("UniqueIdentifier")? {
                return Ok(!stored::is_hsm(u));
            }
        }
    }
    Ok(true)
}

/// The request's `UniqueIdentifier` (a TextString).
///
/// Errors: 422 when it is missing or not text.
pub fn required_uid(req: &Ttlv) -> Result<&str, KmsError> {
    req.text_of("UniqueIdentifier")?.ok_or_else(|| {
        KmsError::unprocessable(format!(
            "{}: UniqueIdentifier is missing (a TextString hsm::<slot>::<label>)",
            req.tag
        ))
    })
}

/// Refuses any child of `item` whose tag is not in `allowed` (the fields
/// this KMS reads, or knowingly ignores, for that item).
///
/// Errors: 422 naming the tag and the accepted ones.
pub fn allow_only(item: &Ttlv, allowed: &[&str]) -> Result<(), KmsError> {
    match item
        .items()
        .iter()
        .find(|c| !allowed.contains(&c.tag.as_str()))
    {
        Some(c) => Err(KmsError::unprocessable(format!(
            "{}: `{}` is not supported here; accepted: {}",
            item.tag,
            c.tag,
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Refuses fields a request may carry in KMIP but this KMS does not do.
///
/// Errors: 422 naming the tag.
pub fn refuse_tags(req: &Ttlv, tags: &[&str], why: &str) -> Result<(), KmsError> {
    match tags.iter().find(|t| req.child(t).is_some()) {
        Some(t) => Err(KmsError::unprocessable(format!(
            "{}: `{t}` is not supported: {why}",
            req.tag
        ))),
        None => Ok(()),
    }
}
