//! S3 Bucket Keys: fewer provider calls for SSE-KMS without sharing data keys.
//!
//! A bucket key is a data key from the provider, generated under the object's KMS key with the
//! encryption context `{"aws:s3:arn": "arn:aws:s3:::bucket"}` (the bucket's ARN, as S3 uses), one per
//! (bucket, KMS key, requester), kept for a bounded time ([`BucketKeyPolicy::ttl`]) and a bounded
//! number of objects ([`BucketKeyPolicy::max_uses`]). Every object still gets its own fresh data key;
//! it is wrapped locally under the bucket key with AES-256-GCM, a random 96-bit nonce and AAD
//! `"ssekit bucket key v1\0" ‖ canonical(object context)`, so it is bound to the object. The object's
//! wrapped key records the provider's wrap of the bucket key beside it: a GET unwraps the bucket key
//! (once per TTL and requester: unwrapped bucket keys are cached per requester too) and then the
//! object's key locally.
//!
//! The wrapped key's ciphertext is `u8 n ‖ provider name (n) ‖ u8 m ‖ provider algorithm (m) ‖
//! be16 l ‖ provider ciphertext (l) ‖ nonce (12) ‖ sealed data key (32) ‖ tag (16)`; its provider
//! field is `s3-bucket-key`, its key id and version those of the provider's wrap of the bucket key.
//!
//! A bucket key disabled or scheduled for deletion at the provider keeps working from the cache until
//! its entry expires (as S3's bucket keys do); [`BucketKeys::clear`] drops every entry at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::ssec::{open_dek, seal_dek};
use crate::aead::Aes256Gcm;
use crate::keys::{DataKey, EncryptionContext, KeyError, KeyProvider, WrappedKey};

/// The provider name of a data key wrapped under a bucket key.
pub const PROVIDER: &str = "s3-bucket-key";
/// Its algorithm name.
pub const ALGORITHM: &str = "ssekit-bucket-key-v1";
const AAD: &[u8] = b"ssekit bucket key v1\x00";

/// How long and how much a bucket key is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketKeyPolicy {
    /// A bucket key is used for new objects, and its unwrap reused, for at most this long.
    pub ttl: Duration,
    /// A bucket key wraps at most this many objects' data keys (each with a random nonce: far below
    /// GCM's 2^32 random-nonce bound).
    pub max_uses: u64,
    /// At most this many bucket keys (generated and unwrapped) are held; past it, expired ones go, then all.
    pub max_entries: usize,
}

impl Default for BucketKeyPolicy {
    /// 5 minutes, 1,048,576 objects, 4,096 entries.
    fn default() -> Self {
        BucketKeyPolicy {
            ttl: Duration::from_secs(300),
            max_uses: 1 << 20,
            max_entries: 4096,
        }
    }
}

/// Counters, for tests and operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketKeyStats {
    /// Bucket keys generated at the provider.
    pub generated: u64,
    /// Bucket keys unwrapped at the provider.
    pub unwrapped: u64,
    /// Object keys wrapped under a cached bucket key.
    pub wraps: u64,
    /// Object keys unwrapped under a cached bucket key.
    pub unwraps: u64,
}

/// Unwrapped bucket keys by (the provider's wrap, requester): when unwrapped, and the key.
type Unwrapped = HashMap<([u8; 32], String), (Instant, Arc<Aes256Gcm>)>;

struct Generated {
    gcm: Arc<Aes256Gcm>,
    wrapped: WrappedKey,
    created: Instant,
    uses: AtomicU64,
}

/// The bucket keys an engine holds.
pub struct BucketKeys {
    policy: BucketKeyPolicy,
    generated: Mutex<HashMap<String, Arc<Generated>>>,
    unwrapped: Mutex<Unwrapped>,
    stats: [AtomicU64; 4],
}

impl std::fmt::Debug for BucketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketKeys")
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn bucket_context(bucket_arn: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("aws:s3:arn", bucket_arn)]).expect("a short context")
}

fn object_aad(context: &EncryptionContext) -> Vec<u8> {
    let mut w = crate::object::MetaWriter(Vec::with_capacity(128));
    w.0.extend_from_slice(AAD);
    crate::object::encode_context(&mut w, context);
    w.0
}

fn inner_id(inner: &WrappedKey) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        inner.provider.as_bytes(),
        inner.key_id.as_bytes(),
        &inner.key_version.to_be_bytes(),
        inner.algorithm.as_bytes(),
        &inner.ciphertext,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn fresh(t: Instant, ttl: Duration) -> bool {
    t.elapsed() < ttl
}

impl BucketKeys {
    /// An empty set of bucket keys under `policy`.
    pub fn new(policy: BucketKeyPolicy) -> Self {
        BucketKeys {
            policy,
            generated: Mutex::new(HashMap::new()),
            unwrapped: Mutex::new(HashMap::new()),
            stats: Default::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> BucketKeyPolicy {
        self.policy
    }

    /// The counters.
    pub fn stats(&self) -> BucketKeyStats {
        let s = |i: usize| self.stats[i].load(Ordering::Relaxed);
        BucketKeyStats {
            generated: s(0),
            unwrapped: s(1),
            wraps: s(2),
            unwraps: s(3),
        }
    }

    /// Drops every bucket key held (after a key's state changed at the provider, say).
    pub fn clear(&self) {
        self.generated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.unwrapped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn bump(&self, i: usize) {
        self.stats[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Wraps the object's fresh `dek` under the bucket key of (`bucket_arn`, `key_id`, `principal`),
    /// generating one at `provider` when none is held or it expired or is used up. The wrap's nonce
    /// is the bucket key's use count (`0^32 ‖ be64(n)`): never repeated under one bucket key, which
    /// lives only in this process's memory.
    ///
    /// # Errors
    ///
    /// The provider's, when a bucket key must be generated.
    pub fn wrap(
        &self,
        provider: &dyn KeyProvider,
        key_id: &str,
        bucket_arn: &str,
        principal: &str,
        object_context: &EncryptionContext,
        dek: &DataKey,
    ) -> Result<WrappedKey, KeyError> {
        // One allocation for the slot's name, each part length-prefixed so no two (bucket, key,
        // requester) triples share a name, whatever bytes they hold.
        let mut slot =
            String::with_capacity(bucket_arn.len() + key_id.len() + principal.len() + 24);
        for part in [bucket_arn, key_id, principal] {
            use std::fmt::Write as _;
            let _ = write!(slot, "{}:", part.len());
            slot.push_str(part);
        }
        let (entry, index) = self.entry(provider, key_id, bucket_arn, principal, slot)?;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&index.to_be_bytes());
        let sealed = seal_dek(&entry.gcm, &nonce, &object_aad(object_context), dek);
        self.bump(2);
        let inner = &entry.wrapped;
        if inner.provider.len() > 255
            || inner.algorithm.len() > 255
            || inner.ciphertext.len() > 4096
        {
            return Err(KeyError::Malformed(
                "the provider's wrap of the bucket key is too long to record".into(),
            ));
        }
        let mut ct = Vec::with_capacity(
            4 + inner.provider.len() + inner.algorithm.len() + inner.ciphertext.len() + 60,
        );
        ct.push(inner.provider.len() as u8);
        ct.extend_from_slice(inner.provider.as_bytes());
        ct.push(inner.algorithm.len() as u8);
        ct.extend_from_slice(inner.algorithm.as_bytes());
        ct.extend_from_slice(&(inner.ciphertext.len() as u16).to_be_bytes());
        ct.extend_from_slice(&inner.ciphertext);
        ct.extend_from_slice(&nonce);
        ct.extend_from_slice(&sealed);
        Ok(WrappedKey {
            provider: PROVIDER.to_owned(),
            key_id: inner.key_id.clone(),
            key_version: inner.key_version,
            algorithm: ALGORITHM.to_owned(),
            ciphertext: ct,
        })
    }

    /// The usable bucket key of `slot` and this use's index, generating one when needed. The
    /// provider is called without the lock held, so a slow or unreachable key service stalls only
    /// the writers that need a new bucket key (two racing writers may both generate one: both are
    /// valid, the later is kept).
    fn entry(
        &self,
        provider: &dyn KeyProvider,
        key_id: &str,
        bucket_arn: &str,
        principal: &str,
        slot: String,
    ) -> Result<(Arc<Generated>, u64), KeyError> {
        {
            let map = self.generated.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get(&slot)
                && fresh(e.created, self.policy.ttl)
            {
                let i = e.uses.fetch_add(1, Ordering::Relaxed);
                if i < self.policy.max_uses {
                    return Ok((Arc::clone(e), i));
                }
            }
        }
        let (bk, wrapped) = provider.generate_data_key(key_id, &bucket_context(bucket_arn))?;
        self.bump(0);
        let e = Arc::new(Generated {
            gcm: Arc::new(Aes256Gcm::new(bk.expose())),
            wrapped,
            created: Instant::now(),
            uses: AtomicU64::new(1),
        });
        self.remember(inner_id(&e.wrapped), principal, Arc::clone(&e.gcm));
        let mut map = self.generated.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.policy.max_entries {
            map.retain(|_, e| fresh(e.created, self.policy.ttl));
            if map.len() >= self.policy.max_entries {
                map.clear();
            }
        }
        map.insert(slot, Arc::clone(&e));
        Ok((e, 0))
    }

    fn remember(&self, id: [u8; 32], principal: &str, gcm: Arc<Aes256Gcm>) {
        let mut map = self.unwrapped.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.policy.max_entries {
            map.retain(|_, (t, _)| fresh(*t, self.policy.ttl));
            if map.len() >= self.policy.max_entries {
                map.clear();
            }
        }
        map.insert((id, principal.to_owned()), (Instant::now(), gcm));
    }

    /// The provider's wrap of the bucket key inside a bucket-key wrapped key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] for a layout that is not [`BucketKeys::wrap`]'s.
    pub fn inner(wrapped: &WrappedKey) -> Result<WrappedKey, KeyError> {
        Ok(parse(wrapped)?.0)
    }

    /// Unwraps an object's data key wrapped by [`BucketKeys::wrap`]: the bucket key from the cache of
    /// `principal`'s unwraps, or from `provider` (context: `bucket_arn`), then the object's key under
    /// it, bound to `object_context`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] for a damaged layout, [`KeyError::UnwrapFailed`] when the object's key
    /// does not open under the bucket key (wrong bucket or object, or altered bytes), and the
    /// provider's errors.
    pub fn unwrap(
        &self,
        provider: &dyn KeyProvider,
        wrapped: &WrappedKey,
        bucket_arn: &str,
        principal: &str,
        object_context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let (inner, nonce, sealed) = parse(wrapped)?;
        let id = inner_id(&inner);
        let cached = {
            let map = self.unwrapped.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&(id, principal.to_owned()))
                .filter(|(t, _)| fresh(*t, self.policy.ttl))
                .map(|(_, g)| Arc::clone(g))
        };
        let gcm = match cached {
            Some(g) => g,
            None => {
                let bk = provider.unwrap(&inner, &bucket_context(bucket_arn))?;
                self.bump(1);
                let g = Arc::new(Aes256Gcm::new(bk.expose()));
                self.remember(id, principal, Arc::clone(&g));
                g
            }
        };
        let dek = open_dek(&gcm, &nonce, &object_aad(object_context), sealed)
            .ok_or(KeyError::UnwrapFailed)?;
        self.bump(3);
        Ok(dek)
    }
}

fn parse(wrapped: &WrappedKey) -> Result<(WrappedKey, [u8; 12], &[u8]), KeyError> {
    let bad = || KeyError::Malformed("a damaged bucket-key wrapped key".into());
    if wrapped.provider != PROVIDER || wrapped.algorithm != ALGORITHM {
        return Err(bad());
    }
    let ct = wrapped.ciphertext.as_slice();
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<std::ops::Range<usize>, KeyError> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= ct.len())
            .ok_or_else(bad)?;
        let r = at..end;
        at = end;
        Ok(r)
    };
    let n = ct[take(1)?][0] as usize;
    let prov = std::str::from_utf8(&ct[take(n)?])
        .map_err(|_| bad())?
        .to_owned();
    let m = ct[take(1)?][0] as usize;
    let alg = std::str::from_utf8(&ct[take(m)?])
        .map_err(|_| bad())?
        .to_owned();
    let l = u16::from_be_bytes(ct[take(2)?].try_into().expect("2 bytes")) as usize;
    let inner_ct = ct[take(l)?].to_vec();
    let nonce: [u8; 12] = ct[take(12)?].try_into().expect("12 bytes");
    let sealed = take(48)?;
    if sealed.end != ct.len() {
        return Err(bad());
    }
    Ok((
        WrappedKey {
            provider: prov,
            key_id: wrapped.key_id.clone(),
            key_version: wrapped.key_version,
            algorithm: alg,
            ciphertext: inner_ct,
        },
        nonce,
        &ct[sealed],
    ))
}
