//! The unwrapped cache (the reference's `unwrapped_cache_max_age`): a KMS
//! key unwrapped through hsmd stays in memory, parsed and ready, for at
//! most `max_age` after its unwrap, and at most `max_size` keys are held
//! (least recently used first out). Concurrent misses for one key wait for
//! one unwrap (one hsmd call). An entry is bound to the wrapped bytes it
//! came from (their SHA-256): when the stored row changes (ReKey, Import
//! with ReplaceExisting, another frontend), the old entry is not served.
//! Revoke and Destroy remove the key at once ([`UnwrappedCache::forget`]);
//! the material is zeroized when the last request using it ends.

use crate::crypto::ClearKey;
use crate::error::KmsError;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One cached key and the digest of the wrapped bytes it came from.
struct Entry {
    digest: [u8; 32],
    key: Arc<ClearKey>,
}

/// The cache, keyed by the object's Unique Identifier.
pub struct UnwrappedCache {
    entries: moka::future::Cache<String, Arc<Entry>>,
}

/// SHA-256 of a wrapped blob, the version an entry belongs to.
pub fn digest_of(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

impl UnwrappedCache {
    /// A cache of at most `max_size` keys, each for at most `max_age`.
    pub fn new(max_age: Duration, max_size: u64) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(max_size)
                .time_to_live(max_age)
                .build(),
        }
    }

    /// The clear key of `uid` whose wrapped bytes hash to `digest`: the
    /// cached one, or `unwrap()`'s (once for all concurrent callers).
    ///
    /// Errors: `unwrap`'s.
    pub async fn get_or_unwrap<F>(
        &self,
        uid: &str,
        digest: [u8; 32],
        unwrap: F,
    ) -> Result<Arc<ClearKey>, KmsError>
    where
        F: Future<Output = Result<ClearKey, KmsError>>,
    {
        if let Some(e) = self.entries.get(uid).await {
            if e.digest == digest {
                return Ok(e.key.clone());
            }
            self.entries.invalidate(uid).await;
        }
        let entry = self
            .entries
            .try_get_with(uid.to_owned(), async {
                unwrap.await.map(|key| {
                    Arc::new(Entry {
                        digest,
                        key: Arc::new(key),
                    })
                })
            })
            .await
            .map_err(|e| (*e).clone())?;
        if entry.digest != digest {
            // Another version won the race; it is not ours to serve.
            return Err(KmsError::unavailable(format!(
                "{uid} changed while it was being unwrapped; retry"
            )));
        }
        Ok(entry.key.clone())
    }

    /// Removes `uid` at once (Revoke, Destroy, ReKey, replace).
    pub async fn forget(&self, uid: &str) {
        self.entries.invalidate(uid).await;
        self.entries.run_pending_tasks().await;
    }

    /// Removes every entry at once (the change feed between frontends was
    /// interrupted: any key may have been revoked or destroyed meanwhile).
    pub async fn forget_all(&self) {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks().await;
    }

    /// Drops expired entries now (run once a minute by the server, so an
    /// expired key is zeroized without waiting for other cache traffic).
    pub async fn sweep(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Keys held (after pending evictions).
    pub async fn held(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{generate_aes, MaterialFormat};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    fn aes() -> ClearKey {
        let bytes = generate_aes(256).expect("aes key");
        ClearKey::from_material(MaterialFormat::Raw, bytes, true).expect("clear key")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_misses_share_one_unwrap() {
        let cache = Arc::new(UnwrappedCache::new(Duration::from_secs(60), 10));
        let unwraps = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let digest = digest_of(b"blob");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, unwraps, release) = (cache.clone(), unwraps.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_unwrap("k", digest, async {
                        unwraps.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok(aes())
                    })
                    .await
                    .map(|k| k.bits())
            }));
        }
        // Every task runs up to its wait (current-thread runtime: in order).
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        release.notify_one();
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("key"), 256);
        }
        assert_eq!(
            unwraps.load(Ordering::SeqCst),
            1,
            "one unwrap for 8 callers"
        );
        assert_eq!(cache.held().await, 1);
    }

    #[tokio::test]
    async fn a_changed_blob_or_forget_unwraps_again() {
        let cache = UnwrappedCache::new(Duration::from_secs(60), 10);
        let unwraps = AtomicUsize::new(0);
        let load = || async {
            unwraps.fetch_add(1, Ordering::SeqCst);
            Ok(aes())
        };
        let (v1, v2) = (digest_of(b"v1"), digest_of(b"v2"));
        cache.get_or_unwrap("k", v1, load()).await.expect("first");
        cache.get_or_unwrap("k", v1, load()).await.expect("hit");
        assert_eq!(unwraps.load(Ordering::SeqCst), 1);
        cache
            .get_or_unwrap("k", v2, load())
            .await
            .expect("new version");
        assert_eq!(unwraps.load(Ordering::SeqCst), 2);
        cache.forget("k").await;
        assert_eq!(cache.held().await, 0);
        cache
            .get_or_unwrap("k", v2, load())
            .await
            .expect("after forget");
        assert_eq!(unwraps.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_unwrap_is_not_cached() {
        let cache = UnwrappedCache::new(Duration::from_secs(60), 10);
        let d = digest_of(b"v");
        let err = cache
            .get_or_unwrap("k", d, async { Err(KmsError::unprocessable("tampered")) })
            .await
            .expect_err("refused");
        assert!(err.message.contains("tampered"));
        assert_eq!(cache.held().await, 0);
    }

    #[tokio::test]
    async fn entries_expire_after_max_age() {
        let cache = UnwrappedCache::new(Duration::from_millis(1), 10);
        let unwraps = AtomicUsize::new(0);
        let load = || async {
            unwraps.fetch_add(1, Ordering::SeqCst);
            Ok(aes())
        };
        let d = digest_of(b"v");
        cache.get_or_unwrap("k", d, load()).await.expect("first");
        // Wait for the age to pass by the clock, not a sleep of a guessed length.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(5) {
            tokio::task::yield_now().await;
        }
        cache.get_or_unwrap("k", d, load()).await.expect("again");
        assert_eq!(
            unwraps.load(Ordering::SeqCst),
            2,
            "expired entry unwrapped again"
        );
    }
}
