//! The data-key cache: a [`KeyProvider`] wrapper that keeps unwrapped data keys for a while, so
//! repeated reads of one object do not each cost an HSM or KMS call.
//!
//! Only unwraps are cached, found by the SHA-256 of the wrapped key *and* the encryption context it
//! is opened under: a hit needs the same wrapped bytes and the same context the provider checked, so
//! the cache never opens a wrap under a context the provider would refuse. Entries are bounded by age
//! ([`CachePolicy::ttl`]), number of uses ([`CachePolicy::max_uses`]) and number of entries
//! ([`CachePolicy::max_entries`]).
//!
//! Data keys for encryption are never cached: every [`KeyProvider::generate_data_key`] goes to the
//! provider and returns a fresh key, so every object has a data key of its own. (A key shared
//! between objects would let one object's data, placed under another's metadata, open.) No byte
//! budget either: an unwrapped key only decrypts what was sealed under it once, which spends
//! nothing; the limits on what one data key seals are the object format's.
//!
//! Entries are zeroized when evicted (expired, used up, over the entry bound, or invalidated). A
//! lifecycle call made through the cache (rotate, enable, disable, schedule or cancel deletion) drops
//! every entry at once (not only the entries recorded under the id the call names: a KMS envelope
//! records the key's ARN while the call may name an alias, and lifecycle calls are rare); a change made elsewhere (another process, the KMS console) is
//! seen when the entry expires, so the TTL is how long a disabled key may keep serving cached reads.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, WrappedKey};

/// How long a cached unwrap may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// Age after which an entry is dropped.
    pub ttl: Duration,
    /// Unwraps served after which an entry is dropped.
    pub max_uses: u64,
    /// Entries held at most; the oldest goes first.
    pub max_entries: usize,
}

impl Default for CachePolicy {
    /// 60 seconds, 10,000 uses, 4,096 entries.
    fn default() -> Self {
        CachePolicy {
            ttl: Duration::from_secs(60),
            max_uses: 10_000,
            max_entries: 4096,
        }
    }
}

impl CachePolicy {
    /// The default for a provider: none for the local keyring (an unwrap there costs about as much
    /// as a cache lookup), [`CachePolicy::default`] for the HSM and KMS providers.
    pub fn default_for(provider: &str) -> Option<Self> {
        (provider != "local").then(Self::default)
    }
}

/// What the cache has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests the cache could not answer (each one then went to the provider).
    pub misses: u64,
    /// Calls made to the provider's `wrap`, `unwrap` and `generate_data_key`.
    pub provider_calls: u64,
    /// Entries dropped (and zeroized) before being asked for again: expired, used up, over the
    /// entry bound or invalidated.
    pub evictions: u64,
}

struct Entry {
    key_id: String,
    // Boxed so the key bytes never move when the map grows (a move would leave a copy behind).
    dek: Box<DataKey>,
    born: Instant,
    uses: u64,
    seq: u64,
}

#[derive(Default)]
struct Table {
    map: HashMap<[u8; 32], Entry>,
    // Insertion order for the entry bound; stale pairs (entry since replaced) are skipped.
    order: VecDeque<([u8; 32], u64)>,
    seq: u64,
}

/// A [`KeyProvider`] that caches what `P` unwraps; see the module docs.
pub struct CachingProvider<P> {
    inner: P,
    policy: CachePolicy,
    table: Mutex<Table>,
    hits: AtomicU64,
    misses: AtomicU64,
    provider_calls: AtomicU64,
    evictions: AtomicU64,
}

impl<P: KeyProvider> CachingProvider<P> {
    /// Wraps `inner` with a cache run by `policy`.
    pub fn new(inner: P, policy: CachePolicy) -> Self {
        CachingProvider {
            inner,
            policy,
            table: Mutex::new(Table::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            provider_calls: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The provider underneath.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The policy in force.
    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            provider_calls: self.provider_calls.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops (and zeroizes) every entry.
    pub fn clear(&self) {
        let mut t = self.lock();
        self.evictions.fetch_add(t.map.len() as u64, Relaxed);
        t.map.clear();
        t.order.clear();
    }

    /// Drops every entry of `key_id`.
    pub fn invalidate(&self, key_id: &str) {
        let mut t = self.lock();
        let before = t.map.len();
        t.map.retain(|_, e| e.key_id != key_id);
        self.evictions
            .fetch_add((before - t.map.len()) as u64, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every change is one map call).
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `h` up and takes one use; evicts an entry that can no longer serve.
    fn take(&self, h: &[u8; 32]) -> Option<DataKey> {
        let mut t = self.lock();
        let serves = match t.map.get_mut(h) {
            None => return None,
            Some(e) => {
                let fresh = e.born.elapsed() < self.policy.ttl;
                if fresh && e.uses < self.policy.max_uses {
                    e.uses += 1;
                    Some((*e.dek).clone())
                } else {
                    None
                }
            }
        };
        if serves.is_none() {
            t.map.remove(h);
            self.evictions.fetch_add(1, Relaxed);
        }
        serves
    }

    fn put(&self, h: [u8; 32], key_id: &str, dek: &DataKey) {
        if self.policy.max_entries == 0 {
            return;
        }
        let mut t = self.lock();
        while t.map.len() >= self.policy.max_entries && !t.map.contains_key(&h) {
            let Some((old, seq)) = t.order.pop_front() else {
                break;
            };
            if t.map.get(&old).is_some_and(|e| e.seq == seq) {
                t.map.remove(&old);
                self.evictions.fetch_add(1, Relaxed);
            }
        }
        t.seq += 1;
        let seq = t.seq;
        t.order.push_back((h, seq));
        // Stale order pairs would pile up under churn without an eviction; compact now and then.
        if t.order.len() > 2 * self.policy.max_entries.max(16) {
            let Table { map, order, .. } = &mut *t;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
        t.map.insert(
            h,
            Entry {
                key_id: key_id.to_owned(),
                dek: Box::new(dek.clone()),
                born: Instant::now(),
                uses: 1,
                seq,
            },
        );
    }

    fn called<T>(&self, r: Result<T, KeyError>) -> Result<T, KeyError> {
        self.provider_calls.fetch_add(1, Relaxed);
        r
    }
}

/// SHA-256 over length-prefixed fields, so no two field lists hash alike by running together.
fn digest(domain: &str, fields: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    h.finalize().into()
}

fn unwrap_digest(w: &WrappedKey, context: &EncryptionContext) -> [u8; 32] {
    digest(
        "ssekit data-key cache: unwrap",
        &[
            w.provider.as_bytes(),
            w.key_id.as_bytes(),
            &w.key_version.to_be_bytes(),
            w.algorithm.as_bytes(),
            &w.ciphertext,
            &context.canonical_bytes(),
        ],
    )
}

impl<P: KeyProvider> KeyProvider for CachingProvider<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        // Never from the cache: a fresh key for every object.
        self.called(self.inner.generate_data_key(key_id, context))
    }

    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        self.called(self.inner.wrap(key_id, dek, context))
    }

    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let h = unwrap_digest(wrapped, context);
        if let Some(dek) = self.take(&h) {
            self.hits.fetch_add(1, Relaxed);
            return Ok(dek);
        }
        self.misses.fetch_add(1, Relaxed);
        let dek = self.called(self.inner.unwrap(wrapped, context))?;
        self.put(h, &wrapped.key_id, &dek);
        Ok(dek)
    }

    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        self.inner.create_key(spec)
    }

    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.inner.describe(key_id)
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.inner.list()
    }

    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let r = self.inner.rotate(key_id);
        self.clear();
        r
    }

    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let r = self.inner.enable(key_id);
        self.clear();
        r
    }

    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let r = self.inner.disable(key_id);
        self.clear();
        r
    }

    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        let r = self.inner.schedule_deletion(key_id, days);
        self.clear();
        r
    }

    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let r = self.inner.cancel_deletion(key_id);
        self.clear();
        r
    }
}
