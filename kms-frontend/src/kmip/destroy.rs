//! KMIP Destroy (KMIP 2.1 section 6.1.15), by HSM admins only: with
//! `Cascade`, destroying a private key also destroys its own public key
//! `_pk`, the one that shares its `CKA_ID` (unlike the reference, which
//! leaves it). Grants on destroyed keys are removed. Revoke (6.1.43) is refused: HSM keys are destroyed, not revoked.

use super::{attributes, Ctx};
use crate::error::KmsError;
use crate::ttlv::Ttlv;
use hsmd_protocol::{Destroy, ErrorCode, GetKey, KeyInfo, KeyKind, KeyRef, KeyUid};

/// KMIP Destroy.
///
/// Errors: 401 (not an admin), 422 (not found, ExpectedObjectType differs), 503.
pub async fn destroy(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let id = super::required_uid(req)?;
    super::allow_only(req, &["UniqueIdentifier", "Cascade", "ExpectedObjectType"])?;
    KeyUid::parse(id)?;
    if !ctx.is_admin().await? {
        return Err(KmsError::admin_only(format!(
            "Access denied: Only HSM admins can destroy HSM key `{id}`: {} is not an hsm_admin of hsmd",
            ctx.user
        )));
    }
    let hsmd = ctx.hsmd();
    let info = hsmd
        .call(
            ctx.user,
            &format!("Destroy {id}"),
            &GetKey(KeyRef { uid: id.into() }),
        )
        .await?;
    if let Some(expected) = req.enum_of("ExpectedObjectType")? {
        let actual = attributes::object_type(info.kind);
        if expected != actual {
            return Err(KmsError::unprocessable(format!(
                "Destroy: {id} is a {actual}, not the ExpectedObjectType {expected}; nothing was destroyed"
            )));
        }
    }
    // The public key goes first: on a token that labels it like its
    // private key (a SmartCard-HSM), it is named `_pk` only while the
    // private key is there.
    let cascade = req.bool_of("Cascade")?.unwrap_or(false);
    let private = matches!(info.kind, KeyKind::RsaPrivate | KeyKind::EcPrivate);
    if cascade && private {
        cascade_public(ctx, id, &info).await?;
    }
    hsmd.call(
        ctx.user,
        &format!("Destroy {id}"),
        &Destroy(KeyRef { uid: id.into() }),
    )
    .await?;
    forget(ctx, id).await?;
    tracing::info!(target: "audit", user = %crate::error::echo(ctx.user), uid = id, "destroyed key");
    if private {
        forget_public_if_gone(ctx, id).await?;
    }
    Ok(Ttlv::structure(
        "DestroyResponse",
        vec![Ttlv::text("UniqueIdentifier", id)],
    ))
}

/// Destroys the public key of the pair whose private key is `id` (about to
/// be destroyed): `id` + `_pk`, when it exists and is that private key's
/// own public key (same `CKA_ID`, [`hsmd_protocol::uid::infos_pair`]); an
/// AES key or a foreign public key that merely carries that name is left
/// alone.
async fn cascade_public(ctx: &Ctx<'_>, id: &str, private: &KeyInfo) -> Result<(), KmsError> {
    let public = KeyUid::parse(id)?.public_key()?.to_string();
    let what = format!("Destroy (cascade) {public}");
    let hsmd = ctx.hsmd();
    let info = match hsmd
        .call_code(
            ctx.user,
            &what,
            &GetKey(KeyRef {
                uid: public.clone(),
            }),
        )
        .await
    {
        Ok(info) => info,
        Err((Some(ErrorCode::NotFound), _)) => return Ok(()),
        Err((_, e)) => return Err(e),
    };
    if !matches!(info.kind, KeyKind::RsaPublic | KeyKind::EcPublic)
        || !hsmd_protocol::uid::infos_pair(private, &info)
    {
        return Ok(());
    }
    match hsmd
        .call_code(
            ctx.user,
            &what,
            &Destroy(KeyRef {
                uid: public.clone(),
            }),
        )
        .await
    {
        Ok(_) => {}
        // A token that keeps a pair as one key (the SmartCard-HSM) removes
        // the public key with the private key, next.
        Err((Some(ErrorCode::Unsupported), _)) => return Ok(()),
        Err((_, e)) => {
            return Err(KmsError::unprocessable(format!(
                "Destroy: neither {id} nor its public key {public} was destroyed: {e}"
            )))
        }
    }
    forget(ctx, &public).await?;
    tracing::info!(target: "audit", user = %crate::error::echo(ctx.user), uid = %public, "destroyed public key (cascade)");
    Ok(())
}

/// After the private key `id` was destroyed: when its `_pk` is gone too
/// (a token that keeps a pair as one key removes both), removes the public
/// key's grants as well.
async fn forget_public_if_gone(ctx: &Ctx<'_>, id: &str) -> Result<(), KmsError> {
    let public = KeyUid::parse(id)?.public_key()?.to_string();
    let lookup = ctx
        .hsmd()
        .call_code(
            ctx.user,
            &format!("Destroy {id}"),
            &GetKey(KeyRef {
                uid: public.clone(),
            }),
        )
        .await;
    if let Err((Some(ErrorCode::NotFound), _)) = lookup {
        forget(ctx, &public).await?;
    }
    Ok(())
}

/// Removes the grants of destroyed key `id`. A failure is a 500: stale
/// grants would apply to a later key of the same name.
async fn forget(ctx: &Ctx<'_>, id: &str) -> Result<(), KmsError> {
    ctx.grants().forget(id).await.map(drop).map_err(|e| {
        KmsError::internal(format!(
            "{id} was destroyed but its grants could not be removed (remove them before creating a key of that name): {e}"
        ))
    })
}

/// KMIP Revoke: refused.
pub fn revoke(req: &Ttlv) -> Result<Ttlv, KmsError> {
    let id = req.text_of("UniqueIdentifier")?.unwrap_or("the key");
    Err(KmsError::unprocessable(format!(
        "Revoke: HSM keys cannot be revoked: an HSM admin destroys {id} instead (Destroy)"
    )))
}
