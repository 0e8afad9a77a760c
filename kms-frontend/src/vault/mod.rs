//! KMS keys at rest and in use: the object store, wrapping and unwrapping
//! through hsmd ([`wrap`]), and the unwrapped cache ([`cache`]). Key
//! material reaches the store only wrapped by an HSM key: the caller's
//! wrapping key, else the server's `key_encryption_key`; with neither, a
//! Create or Import is refused ([`Vault::wrapping_key_for`]).

pub mod cache;
pub mod memory;
pub mod wrap;

use crate::config::KmsKeysConfig;
use crate::crypto::{ClearKey, MaterialFormat};
use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::store::{ObjectStore, ObjectType, StoredObject, WrappedMaterial};
use cache::UnwrappedCache;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The KMS keys' service, shared by every request.
pub struct Vault {
    store: Arc<dyn ObjectStore>,
    cache: UnwrappedCache,
    config: KmsKeysConfig,
}

impl Vault {
    /// A vault over `store`, configured by `config`.
    pub fn new(store: Arc<dyn ObjectStore>, config: KmsKeysConfig) -> Self {
        let cache = UnwrappedCache::new(
            config.unwrapped_cache_max_age,
            config.unwrapped_cache_max_size,
        );
        Self {
            store,
            cache,
            config,
        }
    }

    /// The object store.
    pub fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// The unwrapped cache.
    pub fn cache(&self) -> &UnwrappedCache {
        &self.cache
    }

    /// The configuration (KEK, unwrap defaults).
    pub fn config(&self) -> &KmsKeysConfig {
        &self.config
    }

    /// The HSM key new material is wrapped with: `asked` (the caller's
    /// `wrapping_key_id`), else the server KEK.
    ///
    /// Errors: 422 when there is neither, naming both ways to wrap; 422
    /// when `asked` is not an HSM key's uid.
    pub fn wrapping_key_for(&self, asked: Option<&str>, what: &str) -> Result<String, KmsError> {
        match asked {
            Some(uid) if uid.starts_with("hsm::") => Ok(uid.to_owned()),
            Some(uid) => Err(KmsError::unprocessable(format!(
                "{what}: the wrapping key {:?} is not an HSM key; KMS keys are wrapped by HSM keys only: name one as hsm::<slot>::<label>",
                uid.chars().take(80).collect::<String>()
            ))),
            None => self.config.key_encryption_key.clone().ok_or_else(|| {
                KmsError::unprocessable(format!(
                    "{what}: key material is stored only wrapped by an HSM key, and none was named: give a wrapping key (ckms --wrapping-key-id hsm::<slot>::<label>), or configure the server's key_encryption_key"
                ))
            }),
        }
    }

    /// Wraps `clear` (of `format`) with `kek` through hsmd as `user`.
    ///
    /// Errors: [`wrap::wrap`]'s.
    pub async fn seal(
        &self,
        hsmd: &Hsmd,
        user: &str,
        kek: &str,
        clear: &[u8],
        format: MaterialFormat,
    ) -> Result<WrappedMaterial, KmsError> {
        wrap::wrap(hsmd, user, kek, clear, format.name()).await
    }

    /// The clear material of `obj`, unwrapped through hsmd (not cached: for
    /// an export).
    ///
    /// Errors: 422 for a destroyed object; [`wrap::unwrap`]'s.
    pub async fn material(
        &self,
        hsmd: &Hsmd,
        user: &str,
        obj: &StoredObject,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let m = present(obj)?;
        wrap::unwrap(hsmd, user, m).await
    }

    /// The usable key of `obj`: from the cache, or unwrapped through hsmd
    /// as `user` and parsed (one hsmd call per miss, shared by concurrent
    /// callers).
    ///
    /// On a miss the row is read again after the unwrap: when it changed
    /// meanwhile (a Revoke or Destroy through any frontend, whose change
    /// notice came before this key was in the cache to be forgotten), the
    /// key is not cached and the request is refused with 409 (sent again,
    /// it reads the new row).
    ///
    /// Errors: 422 for a destroyed object or material that does not parse;
    /// 409 when the row changed during the unwrap; 503 when the database
    /// cannot be read again; [`wrap::unwrap`]'s.
    pub async fn clear_key(
        &self,
        hsmd: &Hsmd,
        user: &str,
        obj: &StoredObject,
    ) -> Result<Arc<ClearKey>, KmsError> {
        let m = present(obj)?;
        let digest = cache::digest_of(&m.blob);
        self.cache
            .get_or_unwrap(&obj.uid, digest, async {
                let format = MaterialFormat::from_name(&m.format).ok_or_else(|| {
                    KmsError::unprocessable(format!(
                        "{}: stored material format {:?} is unknown (raw, pkcs8, spki)",
                        obj.uid,
                        m.format.chars().take(20).collect::<String>()
                    ))
                })?;
                let clear = wrap::unwrap(hsmd, user, m).await?;
                match self.store.get_for_use(&obj.uid).await? {
                    Some(now) if now.version == obj.version => {}
                    _ => {
                        return Err(KmsError::conflict(format!(
                            "{} changed while it was being unwrapped; retry",
                            obj.uid
                        )))
                    }
                }
                let aes = obj.object_type == ObjectType::SymmetricKey;
                ClearKey::from_material(format, clear, aes).map_err(|e| {
                    KmsError::unprocessable(format!(
                        "{}: the unwrapped key is unusable: {e}",
                        obj.uid
                    ))
                })
            })
            .await
    }

    /// Removes `uid` from the unwrapped cache at once.
    pub async fn forget(&self, uid: &str) {
        self.cache.forget(uid).await;
    }

    /// Forgets, for as long as the process runs, every key that `changes`
    /// says was updated or removed (by this frontend or another on the
    /// same PostgreSQL database), and every key when the feed is
    /// interrupted. A Revoke or Destroy is enforced without this (every
    /// use reads the key's row); this takes the clear key out of memory
    /// within moments rather than at the cache's expiry.
    pub async fn follow(&self, mut changes: crate::store::Changes) {
        loop {
            match changes.next().await {
                crate::store::Change::Object(uid) => {
                    self.cache.forget(&uid).await;
                    tracing::debug!(uid = %crate::error::echo(&uid), "unwrapped key forgotten: changed in the database");
                }
                crate::store::Change::Lost => {
                    self.cache.forget_all().await;
                    tracing::debug!(
                        "every unwrapped key forgotten: the change feed was interrupted"
                    );
                }
            }
        }
    }
}

/// The wrapped material of `obj`.
///
/// Errors: 422 "Item not found" for a destroyed object (its material is gone).
pub fn present(obj: &StoredObject) -> Result<&WrappedMaterial, KmsError> {
    obj.material.as_ref().ok_or_else(|| {
        KmsError::unprocessable(format!(
            "Item not found: {} is destroyed: its key material is gone",
            obj.uid
        ))
    })
}
