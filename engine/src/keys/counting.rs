//! A provider wrapper that counts calls, so a test or an operator can see what reached the provider.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, WrappedKey};

/// How many calls of each kind reached the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `generate_data_key`.
    pub generate: u64,
    /// `wrap`.
    pub wrap: u64,
    /// `unwrap`.
    pub unwrap: u64,
    /// `rewrap`.
    pub rewrap: u64,
    /// `describe` and `list`.
    pub describe: u64,
    /// `create_key`, `rotate`, `enable`, `disable`, `schedule_deletion`, `cancel_deletion`.
    pub lifecycle: u64,
}

impl CallCounts {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.generate + self.wrap + self.unwrap + self.rewrap + self.describe + self.lifecycle
    }

    /// The calls that use key material: generate, wrap, unwrap, rewrap.
    pub fn key_uses(&self) -> u64 {
        self.generate + self.wrap + self.unwrap + self.rewrap
    }
}

/// Counts every call to `inner`.
#[derive(Debug, Default)]
pub struct Counted<P> {
    inner: P,
    n: [AtomicU64; 6],
}

impl<P> Counted<P> {
    /// Wraps `inner`, all counts zero.
    pub fn new(inner: P) -> Self {
        Counted {
            inner,
            n: Default::default(),
        }
    }

    /// The provider counted.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        let g = |i: usize| self.n[i].load(Ordering::Relaxed);
        CallCounts {
            generate: g(0),
            wrap: g(1),
            unwrap: g(2),
            rewrap: g(3),
            describe: g(4),
            lifecycle: g(5),
        }
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        for c in &self.n {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn bump(&self, i: usize) {
        self.n[i].fetch_add(1, Ordering::Relaxed);
    }
}

impl<P: KeyProvider> KeyProvider for Counted<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        self.bump(0);
        self.inner.generate_data_key(key_id, context)
    }
    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        self.bump(1);
        self.inner.wrap(key_id, dek, context)
    }
    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        self.bump(2);
        self.inner.unwrap(wrapped, context)
    }
    fn rewrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<Option<WrappedKey>, KeyError> {
        self.bump(3);
        self.inner.rewrap(wrapped, context)
    }
    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.create_key(spec)
    }
    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.bump(4);
        self.inner.describe(key_id)
    }
    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.bump(4);
        self.inner.list()
    }
    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.rotate(key_id)
    }
    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.enable(key_id)
    }
    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.disable(key_id)
    }
    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.schedule_deletion(key_id, days)
    }
    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.bump(5);
        self.inner.cancel_deletion(key_id)
    }
}
