//! The data-key cache over a real local keyring: hits and provider calls counted, every bound
//! (TTL, uses, entries) enforced, context binding never bypassed, generated keys never reused,
//! lifecycle calls through the cache taking effect at once.

use std::sync::Arc;
use std::time::Duration;

use ssekit_engine::keys::{
    CachePolicy, CacheStats, CachingProvider, EncryptionContext, KeyError, KeyInfo, KeyProvider,
    KeySpec, LocalKeyring, WrappedKey,
};

fn cached(policy: CachePolicy) -> (tempfile::TempDir, CachingProvider<LocalKeyring>) {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(dir.path().join("home")).unwrap();
    ring.create_key(&KeySpec {
        id: Some("k".into()),
        ..KeySpec::default()
    })
    .unwrap();
    (dir, CachingProvider::new(ring, policy))
}

fn ctx(k: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("bucket", "b"), ("key", k)]).unwrap()
}

fn stats(hits: u64, misses: u64, provider_calls: u64, evictions: u64) -> CacheStats {
    CacheStats {
        hits,
        misses,
        provider_calls,
        evictions,
    }
}

#[test]
fn defaults_off_for_local_on_for_devices() {
    assert_eq!(CachePolicy::default_for("local"), None);
    assert_eq!(
        CachePolicy::default_for("pkcs11"),
        Some(CachePolicy::default())
    );
    assert_eq!(
        CachePolicy::default_for("kms"),
        Some(CachePolicy::default())
    );
}

#[test]
fn repeated_unwraps_cost_one_provider_call() {
    let (_d, c) = cached(CachePolicy::default());
    let (dek, w) = c.inner().generate_data_key("k", &ctx("a")).unwrap();
    for _ in 0..100 {
        assert_eq!(c.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    }
    assert_eq!(c.stats(), stats(99, 1, 1, 0));
}

#[test]
fn the_context_is_part_of_the_lookup() {
    let (_d, c) = cached(CachePolicy::default());
    let (_, w) = c.inner().generate_data_key("k", &ctx("a")).unwrap();
    c.unwrap(&w, &ctx("a")).unwrap();
    // Same wrapped bytes, another context: the provider is asked, and it refuses.
    for _ in 0..3 {
        assert_eq!(c.unwrap(&w, &ctx("b")).unwrap_err(), KeyError::UnwrapFailed);
    }
    let mut t = w.clone();
    t.ciphertext[10] ^= 1;
    assert_eq!(c.unwrap(&t, &ctx("a")).unwrap_err(), KeyError::UnwrapFailed);
    assert_eq!(c.stats(), stats(0, 5, 5, 0));
    assert_eq!(c.len(), 1, "failures are not cached");
}

#[test]
fn entries_expire() {
    let (_d, c) = cached(CachePolicy {
        ttl: Duration::from_millis(150),
        ..CachePolicy::default()
    });
    let (_, w) = c.inner().generate_data_key("k", &ctx("a")).unwrap();
    c.unwrap(&w, &ctx("a")).unwrap();
    c.unwrap(&w, &ctx("a")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.unwrap(&w, &ctx("a")).unwrap();
    assert_eq!(c.stats(), stats(1, 2, 2, 1));
}

#[test]
fn entries_are_used_up() {
    let (_d, c) = cached(CachePolicy {
        max_uses: 3,
        ..CachePolicy::default()
    });
    let (_, w) = c.inner().generate_data_key("k", &ctx("a")).unwrap();
    for _ in 0..7 {
        c.unwrap(&w, &ctx("a")).unwrap();
    }
    // Uses 1-3 from the first call, 4-6 from the second, the 7th from a third.
    assert_eq!(c.stats(), stats(4, 3, 3, 2));
}

#[test]
fn every_generated_key_is_fresh() {
    // Issue 12 item 2: one key id and one context (the CLI's `--context bucket=pics` for every
    // object of a bucket) must still give every object its own data key and its own wrap.
    let (_d, c) = cached(CachePolicy::default());
    let cx = EncryptionContext::from_pairs([("bucket", "pics")]).unwrap();
    let (k1, w1) = c.generate_data_key("k", &cx).unwrap();
    let (k2, w2) = c.generate_data_key("k", &cx).unwrap();
    assert_ne!(k1.expose(), k2.expose());
    assert_ne!(w1, w2);
    assert_ne!(w1.ciphertext, w2.ciphertext);
    // Each went to the provider; neither is served from or kept in the cache.
    assert_eq!(c.stats(), stats(0, 0, 2, 0));
    assert!(c.is_empty());
    // Both still open, each to its own key.
    assert_eq!(c.unwrap(&w1, &cx).unwrap().expose(), k1.expose());
    assert_eq!(c.unwrap(&w2, &cx).unwrap().expose(), k2.expose());
}

#[test]
fn unwraps_of_generated_keys_are_still_cached() {
    let (_d, c) = cached(CachePolicy::default());
    let (dek, w) = c.generate_data_key("k", &ctx("a")).unwrap();
    for _ in 0..10 {
        assert_eq!(c.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    }
    // The generate and the first unwrap went to the provider, the other nine were answered from
    // memory.
    assert_eq!(c.stats(), stats(9, 1, 2, 0));
}

#[test]
fn lifecycle_calls_through_the_cache_drop_its_entries() {
    let (_d, c) = cached(CachePolicy::default());
    let (_, w) = c.generate_data_key("k", &ctx("a")).unwrap();
    c.unwrap(&w, &ctx("a")).unwrap();
    c.disable("k").unwrap();
    assert!(c.is_empty());
    assert_eq!(
        c.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    assert_eq!(
        c.generate_data_key("k", &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    c.enable("k").unwrap();
    c.unwrap(&w, &ctx("a")).unwrap();
    c.rotate("k").unwrap();
    let (_, w2) = c.generate_data_key("k", &ctx("a")).unwrap();
    assert_eq!(w2.key_version, 2, "a rotation is seen by the next seal");
    c.schedule_deletion("k", 7).unwrap();
    assert!(matches!(
        c.unwrap(&w2, &ctx("a")).unwrap_err(),
        KeyError::PendingDeletion { .. }
    ));
}

#[test]
fn the_entry_bound_holds() {
    let (_d, c) = cached(CachePolicy {
        max_entries: 8,
        ..CachePolicy::default()
    });
    let wraps: Vec<_> = (0..40)
        .map(|i| {
            c.inner()
                .generate_data_key("k", &ctx(&i.to_string()))
                .unwrap()
        })
        .collect();
    for (i, (dek, w)) in wraps.iter().enumerate() {
        assert_eq!(
            c.unwrap(w, &ctx(&i.to_string())).unwrap().expose(),
            dek.expose()
        );
        assert!(c.len() <= 8);
    }
    assert_eq!(c.stats().evictions, 32);
    // The newest 8 are still there.
    for (i, (_, w)) in wraps.iter().enumerate().skip(32) {
        c.unwrap(w, &ctx(&i.to_string())).unwrap();
    }
    assert_eq!(c.stats().hits, 8);
    c.clear();
    assert!(c.is_empty());
}

#[test]
fn threads_share_entries() {
    let (_d, c) = cached(CachePolicy::default());
    let c = Arc::new(c);
    let wraps: Vec<_> = (0..4)
        .map(|i| {
            c.inner()
                .generate_data_key("k", &ctx(&i.to_string()))
                .unwrap()
        })
        .collect();
    let wraps = Arc::new(wraps);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (c, wraps) = (c.clone(), wraps.clone());
            std::thread::spawn(move || {
                for n in 0..500 {
                    let i = (t + n) % 4;
                    let (dek, w) = &wraps[i];
                    assert_eq!(
                        c.unwrap(w, &ctx(&i.to_string())).unwrap().expose(),
                        dek.expose()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = c.stats();
    assert_eq!(s.hits + s.misses, 4000);
    // Threads that miss the same entry at once each ask the provider; never more than all of them.
    assert!((4..=32).contains(&s.provider_calls), "{s:?}");
}

#[test]
fn boxed_and_shared_providers_are_providers() {
    let (_d, c) = cached(CachePolicy::default());
    let boxed: Box<dyn KeyProvider> = Box::new(c);
    let c = CachingProvider::new(boxed, CachePolicy::default());
    let (dek, w) = c.generate_data_key("k", &ctx("a")).unwrap();
    assert_eq!(c.name(), "local");
    assert_eq!(c.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    let shared: Arc<dyn KeyProvider> = Arc::new(c);
    assert_eq!(shared.describe("k").unwrap().current_version, 1);
}

/// A provider whose envelopes name the key differently from the calls that manage it, as the KMS
/// provider does (the envelope records the key's ARN; `key disable` may name its alias).
struct Renaming(LocalKeyring);

const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

impl KeyProvider for Renaming {
    fn name(&self) -> &'static str {
        "renaming"
    }
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(ssekit_engine::keys::DataKey, WrappedKey), KeyError> {
        let (dek, mut w) = self.0.generate_data_key(key_id, context)?;
        w.key_id = ARN.into();
        Ok((dek, w))
    }
    fn wrap(
        &self,
        key_id: &str,
        dek: &ssekit_engine::keys::DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        let mut w = self.0.wrap(key_id, dek, context)?;
        w.key_id = ARN.into();
        Ok(w)
    }
    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<ssekit_engine::keys::DataKey, KeyError> {
        let mut w = wrapped.clone();
        w.key_id = "k".into();
        self.0.unwrap(&w, context)
    }
    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        self.0.create_key(spec)
    }
    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.0.describe(key_id)
    }
    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.0.list()
    }
    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.0.rotate(key_id)
    }
    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.0.enable(key_id)
    }
    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.0.disable(key_id)
    }
    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        self.0.schedule_deletion(key_id, days)
    }
    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.0.cancel_deletion(key_id)
    }
}

#[test]
fn a_lifecycle_call_by_another_name_of_the_key_still_drops_its_entries() {
    let (d, c) = cached(CachePolicy::default());
    drop(c);
    let ring = LocalKeyring::open(d.path().join("home")).unwrap();
    let c = CachingProvider::new(Renaming(ring), CachePolicy::default());
    let (_, w) = c.generate_data_key("k", &ctx("a")).unwrap();
    assert_eq!(w.key_id, ARN);
    c.unwrap(&w, &ctx("a")).unwrap();
    assert_eq!(c.len(), 1);
    // Disabled by the name the operator uses: the entry recorded under the ARN goes too.
    c.disable("k").unwrap();
    assert!(c.is_empty());
    assert_eq!(
        c.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
}
