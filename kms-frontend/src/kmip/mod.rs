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

use crate::access::policy::{self, Need};
use crate::access::store::GrantStore;
use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::ttlv::{Ttlv, TtlvError};
use hsmd_protocol::ServerHello;
use std::sync::Arc;

/// Operations this KMS serves (KMIP 2.1 section 11.29 names).
pub const OPERATIONS: &[&str] = &[
    "Create",
    "CreateKeyPair",
    "Decrypt",
    "Destroy",
    "DiscoverVersions",
    "Encrypt",
    "Export",
    "Get",
    "GetAttributes",
    "Locate",
    "Query",
    "Revoke",
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
        policy::check(self.grants(), self.user, &hello.admins, uid, need)
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
    match req.tag.as_str() {
        "Create" => create::create(ctx, req).await,
        "CreateKeyPair" => create::create_key_pair(ctx, req).await,
        "Get" | "Export" => get::get(ctx, req).await,
        "GetAttributes" => attributes::get_attributes(ctx, req).await,
        "Locate" => locate::locate(ctx, req).await,
        "Encrypt" => crypto::encrypt(ctx, req).await,
        "Decrypt" => crypto::decrypt(ctx, req).await,
        "Sign" => crypto::sign(ctx, req).await,
        "SignatureVerify" => crypto::signature_verify(ctx, req).await,
        "Destroy" => destroy::destroy(ctx, req).await,
        "Revoke" => destroy::revoke(req),
        "Query" => server::query(req),
        "DiscoverVersions" => server::discover_versions(req),
        other => Err(KmsError::unprocessable(format!(
            "KMIP operation `{other}` is not supported by this KMS; supported: {}",
            OPERATIONS.join(", ")
        ))),
    }
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
