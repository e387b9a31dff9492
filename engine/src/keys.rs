//! Keys: data keys, encryption contexts, wrapped keys, the [`KeyProvider`] trait and the embedded
//! default provider, [`LocalKeyring`].
//!
//! Envelope encryption: every object gets a fresh random 256-bit [`DataKey`]; a provider wraps it
//! under a key-encryption key (KEK) it holds, bound to the object's [`EncryptionContext`]; the
//! [`WrappedKey`] goes into the object's metadata. Plaintext data keys live only in zeroizing memory
//! and never appear in `Debug`, `Display` or error messages.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

mod cache;
mod counting;
pub mod home;
mod local;

pub use cache::{CachePolicy, CacheStats, CachingProvider};
pub use counting::{CallCounts, Counted};
pub use local::{Clock, KeyRecords, LocalKeyring, SystemClock, VersionStore, WRAP_ALGORITHM};

/// A 256-bit data key (DEK). Zeroized on drop; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system's generator fails (no safe way to go on).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut()).expect("the operating system's random number generator failed");
        DataKey(k)
    }

    /// Takes key bytes from elsewhere (an unwrap, an SSE-C request). The caller's copy is theirs to wipe.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        DataKey(Zeroizing::new(*bytes))
    }

    /// Takes key bytes, checking their length.
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] if `bytes` is not 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Malformed("a data key must be 32 bytes".into()))?;
        Ok(Self::from_bytes(arr))
    }

    /// The key bytes, for the cipher.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Bucket, object key, mode and whatever else a caller binds a wrap to: UTF-8 key/value pairs, at
/// most 64, each string at most 4096 bytes, keys non-empty. Iterates (and encodes) in byte order of
/// its keys, so two equal contexts always encode the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry.
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] for an empty key, a string over 4096 bytes, or a 65th entry.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), KeyError> {
        if key.is_empty() {
            return Err(KeyError::Malformed(
                "encryption context keys must not be empty".into(),
            ));
        }
        if key.len() > 4096 || value.len() > 4096 {
            return Err(KeyError::Malformed(
                "encryption context strings are at most 4096 bytes".into(),
            ));
        }
        if self.0.len() >= 64 && !self.0.contains_key(key) {
            return Err(KeyError::Malformed(
                "an encryption context has at most 64 entries".into(),
            ));
        }
        self.0.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Builds a context from pairs.
    ///
    /// # Errors
    ///
    /// As [`EncryptionContext::insert`].
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, KeyError> {
        let mut c = Self::new();
        for (k, v) in pairs {
            c.insert(k, v)?;
        }
        Ok(c)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The canonical encoding (as in docs/FORMAT.md): what a wrap is bound to.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = crate::object::MetaWriter(Vec::new());
        crate::object::encode_context(&mut w, self);
        w.0
    }
}

/// A data key wrapped by a provider: what the object's metadata records.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The provider that wrapped it (`local`, `pkcs11`, `kms`).
    pub provider: String,
    /// The KEK's id within the provider.
    pub key_id: String,
    /// The KEK version that wrapped it.
    pub key_version: u32,
    /// The wrap algorithm, as the provider names it.
    pub algorithm: String,
    /// The wrapped key bytes (opaque; no plaintext key material).
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Refuses a wrapped key that another provider than `provider` made.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongProvider`], naming both.
    pub fn expect_provider(&self, provider: &str) -> Result<(), KeyError> {
        if self.provider == provider {
            Ok(())
        } else {
            Err(KeyError::WrongProvider(format!(
                "the data key was wrapped by provider `{}`, not `{provider}`",
                self.provider.escape_debug()
            )))
        }
    }

    /// `Ok` if the key was wrapped with one of `known` (a provider's wrap algorithms), else
    /// [`KeyError::WrongProvider`] naming the stored one (escaped: it comes from the object).
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongProvider`].
    pub fn expect_algorithm(&self, known: &[&str]) -> Result<(), KeyError> {
        if known.contains(&self.algorithm.as_str()) {
            Ok(())
        } else {
            Err(KeyError::WrongProvider(format!(
                "unknown wrap algorithm `{}`",
                self.algorithm.escape_debug()
            )))
        }
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("algorithm", &self.algorithm)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A KEK's lifecycle state, as KMS defines it. Serialised (in key records) with its name in a
/// `state` field, beside `delete_at` for a pending deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state")]
pub enum KeyState {
    /// Usable for every operation.
    Enabled,
    /// Wraps and unwraps refused until enabled again.
    Disabled,
    /// Scheduled for destruction at `delete_at` (Unix seconds); unusable; can be cancelled until then.
    PendingDeletion {
        /// When the key material is destroyed, in Unix seconds.
        delete_at: u64,
    },
    /// Destroyed: its objects can never be opened again.
    Destroyed,
}

impl KeyState {
    /// Refuses a key `id` in this state unless it is enabled, with the state's typed error.
    ///
    /// # Errors
    ///
    /// [`KeyError::Disabled`], [`KeyError::PendingDeletion`] or [`KeyError::Destroyed`].
    pub fn require_enabled(self, id: &str) -> Result<(), KeyError> {
        match self {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KeyError::Disabled(id.to_owned())),
            KeyState::PendingDeletion { delete_at } => Err(KeyError::PendingDeletion {
                id: id.to_owned(),
                delete_at,
            }),
            KeyState::Destroyed => Err(KeyError::Destroyed(id.to_owned())),
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyState::Enabled => f.write_str("Enabled"),
            KeyState::Disabled => f.write_str("Disabled"),
            KeyState::PendingDeletion { .. } => f.write_str("PendingDeletion"),
            KeyState::Destroyed => f.write_str("Destroyed"),
        }
    }
}

/// What a provider tells about a KEK (never key material).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: String,
    /// Free text given at creation.
    pub description: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// The newest version (new wraps use it); versions are 1, 2, ….
    pub current_version: u32,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// When the newest version was made, Unix seconds.
    pub rotated: u64,
    /// Automatic rotation period in days, if any.
    pub rotation_period_days: Option<u32>,
}

/// What a new KEK should look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// The id to give it; the provider picks one when `None`.
    pub id: Option<String>,
    /// Free text.
    pub description: String,
    /// Rotate automatically after this many days.
    pub rotation_period_days: Option<u32>,
}

/// What can go wrong with keys. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No key with this id.
    NotFound(String),
    /// A key with this id already exists.
    AlreadyExists(String),
    /// The key is disabled.
    Disabled(String),
    /// The key is scheduled for deletion at the given Unix time.
    PendingDeletion {
        /// The key's id.
        id: String,
        /// When it will be destroyed, Unix seconds.
        delete_at: u64,
    },
    /// The key was destroyed: what it wrapped can never be unwrapped.
    Destroyed(String),
    /// The operation does not apply in the key's current state (e.g. cancelling a deletion that is
    /// not scheduled).
    InvalidState {
        /// The key's id.
        id: String,
        /// Its state.
        state: String,
    },
    /// A deletion window outside 7..=30 days.
    InvalidDeletionWindow(u32),
    /// The wrapped key does not unwrap: wrong encryption context, or the wrapped bytes were altered.
    UnwrapFailed,
    /// The wrapped key names another provider or an unknown algorithm or version.
    WrongProvider(String),
    /// Malformed input (an id, a context, a wrapped key).
    Malformed(String),
    /// The keyring's files are readable or writable by others.
    InsecurePermissions(String),
    /// A key device (HSM, KMS) refused or failed a call: which call and its error code, e.g.
    /// `C_WrapKey` and `CKR_DEVICE_ERROR`.
    Device {
        /// The call, e.g. `C_WrapKey`.
        call: String,
        /// The device's code, e.g. `CKR_DEVICE_ERROR`.
        code: String,
    },
    /// A key service (KMS) could not be reached or kept refusing (throttling, timeouts, internal
    /// errors) after the provider's bounded retries: nothing was changed; retry later.
    Unavailable {
        /// The call, e.g. `kms:Decrypt`.
        call: String,
        /// What the last attempt saw, e.g. `ThrottlingException` or `connection refused`.
        detail: String,
    },
    /// A key record does not match the keyring's index of record generations: an older copy of it
    /// was put back (reviving a disabled key, say), or it was deleted or added behind the keyring's
    /// back. The key is not used until its current record is restored.
    RolledBack {
        /// The key's id.
        id: String,
        /// What does not match, e.g. "the record is generation 2 but the index says 3: …".
        detail: String,
    },
    /// A keyring file is damaged or was sealed under another root secret.
    Corrupt(String),
    /// The storage under the provider failed.
    Io(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotFound(id) => write!(f, "key `{id}` not found"),
            KeyError::AlreadyExists(id) => write!(f, "key `{id}` already exists"),
            KeyError::Disabled(id) => write!(f, "key `{id}` is disabled; enable it to use it"),
            KeyError::PendingDeletion { id, delete_at } => write!(
                f,
                "key `{id}` is pending deletion (destroyed at {}); cancel the deletion to use it",
                format_time(*delete_at)
            ),
            KeyError::Destroyed(id) => write!(f, "key `{id}` was destroyed: objects sealed under it cannot be opened"),
            KeyError::InvalidState { id, state } => write!(f, "key `{id}` is {state}: the operation does not apply"),
            KeyError::InvalidDeletionWindow(d) => {
                write!(f, "a deletion window of {d} days is not allowed: use 7 to 30 days")
            }
            KeyError::UnwrapFailed => f.write_str(
                "the data key does not unwrap: the encryption context does not match, or the wrapped key was altered",
            ),
            KeyError::WrongProvider(what) => write!(f, "{what}"),
            KeyError::Malformed(what) => write!(f, "{what}"),
            KeyError::InsecurePermissions(what) => write!(f, "{what}"),
            KeyError::Device { call, code } => write!(f, "{call} failed: {code}"),
            KeyError::Unavailable { call, detail } => write!(
                f,
                "{call}: the key service is unavailable ({detail}) after retries; nothing was changed, try again later"
            ),
            KeyError::RolledBack { id, detail } => write!(
                f,
                "key `{id}`'s record does not match the keyring's index ({detail}); the key is not used: restore its current record, see docs/PROVIDERS.md"
            ),
            KeyError::Corrupt(what) => write!(f, "{what}"),
            KeyError::Io(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A source of key-encryption keys. Synchronous, shared between threads.
pub trait KeyProvider: Send + Sync {
    /// The provider's name, as recorded in [`WrappedKey::provider`].
    fn name(&self) -> &'static str;

    /// A fresh data key and its wrap under the newest version of `key_id`, bound to `context`.
    /// Fresh on every call, for every implementation (a cache included): one data key per object,
    /// never handed out twice.
    ///
    /// # Errors
    ///
    /// A [`KeyError`]: unknown key, key in the wrong state, storage failure.
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        let dek = DataKey::generate();
        let wrapped = self.wrap(key_id, &dek, context)?;
        Ok((dek, wrapped))
    }

    /// Wraps `dek` under the newest version of `key_id`, bound to `context`.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::generate_data_key`].
    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError>;

    /// Unwraps a key this provider wrapped, checking it was bound to `context`.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnwrapFailed`] for a wrong context or altered bytes; state errors as above.
    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError>;

    /// Creates a KEK.
    ///
    /// # Errors
    ///
    /// [`KeyError::AlreadyExists`], [`KeyError::Malformed`] for a bad id, storage failures.
    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError>;

    /// Describes a KEK.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotFound`].
    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError>;

    /// All KEKs, by id.
    ///
    /// # Errors
    ///
    /// Storage failures.
    fn list(&self) -> Result<Vec<KeyInfo>, KeyError>;

    /// Makes a new version the one new wraps use; old versions keep unwrapping.
    ///
    /// # Errors
    ///
    /// State errors: only an enabled key rotates.
    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError>;

    /// Enables a disabled key.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidState`] for a key pending deletion or destroyed.
    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError>;

    /// Disables a key: wraps and unwraps refused until enabled.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidState`] for a key pending deletion or destroyed.
    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError>;

    /// Schedules destruction in `days` days (7..=30). The key is unusable from now on.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidDeletionWindow`], state errors.
    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError>;

    /// Cancels a scheduled deletion; the key comes back disabled, as in KMS.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidState`] if no deletion is scheduled.
    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError>;

    /// Moves `wrapped` to the newest version of its key without touching object data: unwraps and
    /// wraps again under the same context. Returns `None` when it is already on the newest version.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::unwrap`] and [`KeyProvider::wrap`].
    fn rewrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<Option<WrappedKey>, KeyError> {
        let info = self.describe(&wrapped.key_id)?;
        if wrapped.key_version >= info.current_version {
            return Ok(None);
        }
        let dek = self.unwrap(wrapped, context)?;
        self.wrap(&wrapped.key_id, &dek, context).map(Some)
    }

    /// Creates `key_id` with defaults if it does not exist (the CLI's `default` key, made on first
    /// use); returns its info. Two callers racing both succeed.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::describe`] and [`KeyProvider::create_key`].
    fn ensure_key(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        match self.describe(key_id) {
            Err(KeyError::NotFound(_)) => match self.create_key(&KeySpec {
                id: Some(key_id.to_owned()),
                description: "created on first use".into(),
                rotation_period_days: None,
            }) {
                Err(KeyError::AlreadyExists(_)) => self.describe(key_id),
                other => other,
            },
            other => other,
        }
    }
}

/// `Box<dyn KeyProvider>` and `Arc<dyn KeyProvider>` are providers too (so a provider picked at run
/// time can go under a [`CachingProvider`]).
macro_rules! forward_provider {
    ($($ptr:ident)::+) => {
        impl<T: KeyProvider + ?Sized> KeyProvider for $($ptr)::+<T> {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn generate_data_key(&self, key_id: &str, context: &EncryptionContext) -> Result<(DataKey, WrappedKey), KeyError> {
                (**self).generate_data_key(key_id, context)
            }
            fn wrap(&self, key_id: &str, dek: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KeyError> {
                (**self).wrap(key_id, dek, context)
            }
            fn unwrap(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KeyError> {
                (**self).unwrap(wrapped, context)
            }
            fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
                (**self).create_key(spec)
            }
            fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
                (**self).describe(key_id)
            }
            fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
                (**self).list()
            }
            fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
                (**self).rotate(key_id)
            }
            fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
                (**self).enable(key_id)
            }
            fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
                (**self).disable(key_id)
            }
            fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
                (**self).schedule_deletion(key_id, days)
            }
            fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
                (**self).cancel_deletion(key_id)
            }
            fn rewrap(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<Option<WrappedKey>, KeyError> {
                (**self).rewrap(wrapped, context)
            }
        }
    };
}

forward_provider!(Box);
forward_provider!(std::sync::Arc);

/// Writes the lifecycle methods of a [`KeyProvider`] impl (`create_key` through `cancel_deletion`)
/// as calls on the provider's [`KeyRecords`] field `$records`: for providers that keep their keys'
/// lifecycle in key records (the local keyring, the PKCS#11 provider), so every one of them has the
/// same transitions and typed errors.
#[macro_export]
macro_rules! lifecycle_from_records {
    ($records:ident) => {
        fn create_key(
            &self,
            spec: &$crate::keys::KeySpec,
        ) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.create(spec)
        }

        fn describe(&self, key_id: &str) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.describe(key_id)
        }

        fn list(&self) -> Result<Vec<$crate::keys::KeyInfo>, $crate::keys::KeyError> {
            self.$records.list()
        }

        fn rotate(&self, key_id: &str) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.rotate(key_id)
        }

        fn enable(&self, key_id: &str) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.set_enabled(key_id, true)
        }

        fn disable(&self, key_id: &str) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.set_enabled(key_id, false)
        }

        fn schedule_deletion(
            &self,
            key_id: &str,
            days: u32,
        ) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.schedule_deletion(key_id, days)
        }

        fn cancel_deletion(
            &self,
            key_id: &str,
        ) -> Result<$crate::keys::KeyInfo, $crate::keys::KeyError> {
            self.$records.cancel_deletion(key_id)
        }
    };
}

/// Checks a key name as a provider allows it: 1 to `max` bytes, each an ASCII letter or digit or
/// one of `extra`, not starting with `bad_prefix`.
///
/// # Errors
///
/// [`KeyError::Malformed`]: "invalid {what} `{id}`: {rule}".
pub fn check_name(
    id: &str,
    max: usize,
    extra: &[u8],
    bad_prefix: &str,
    what: &str,
    rule: &str,
) -> Result<(), KeyError> {
    let ok = !id.is_empty()
        && id.len() <= max
        && !id.starts_with(bad_prefix)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::Malformed(format!(
            "invalid {what} `{}`: {rule}",
            id.escape_debug()
        )))
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
