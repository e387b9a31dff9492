//! [`KmsProvider`]: KEKs are AWS KMS keys (or any server speaking the KMS API), data keys come from
//! `GenerateDataKey` and are opened with `Decrypt`, both bound to the object's encryption context.
//!
//! - **Key ids.** A KMS key id, key ARN or `alias/...` is used as given. Any other id names the
//!   alias `alias/<id>`: `create_key` with an id makes the key and that alias, so `ssekit key create
//!   --id k1` and `--key-id k1` work as with the other providers.
//! - **Envelopes name the key, not the alias.** A wrap records the ARN of the KMS key that made it
//!   (`GenerateDataKey`'s and `Encrypt`'s `KeyId`), and `unwrap` sends that ARN to `Decrypt`: an
//!   alias re-pointed to another key sends new writes there and leaves old objects opening under
//!   the key that sealed them. Envelopes that hold a name (`alias/...` or a bare name) still open
//!   through the alias.
//! - **Versions.** KMS rotates key material behind one key id and picks the right material from the
//!   ciphertext itself. The provider counts versions as 1 + the key's completed rotations
//!   (`ListKeyRotations`), records that number in each wrap (refreshed at most once a minute, and at
//!   once after a rotation made here) and uses it for `rewrap`, which re-encrypts under the newest
//!   material.
//! - **States.** KMS is the judge for data calls: its `DisabledException`,
//!   `KMSInvalidStateException` and `NotFoundException` become [`KeyError::Disabled`],
//!   [`KeyError::PendingDeletion`] (with the deletion date, from `DescribeKey`) and
//!   [`KeyError::NotFound`]. Lifecycle calls check the state themselves first, and the 7..=30-day
//!   deletion window is checked here before any call, so a server that is lax about either (moto)
//!   still gets the same answers as the other providers.
//! - **Retries.** The provider's own (the SDK's are turned off, so attempts are counted in one
//!   place and no retry quota shared across the process cuts them short): throttling, KMS's
//!   internal and dependency errors, any 5xx, timeouts and connection failures are tried again after
//!   an exponential backoff with jitter, at most [`KmsConfig::max_attempts`] attempts in all, each
//!   under [`KmsConfig::attempt_timeout`]. What is still failing then is [`KeyError::Unavailable`];
//!   every other error is returned at once. Only calls that are safe to repeat are repeated as they
//!   are: reads, the data calls (`GenerateDataKey`, `Encrypt`, `Decrypt`) and the calls that only
//!   set a state (`EnableKey`, `DisableKey`, `EnableKeyRotation`: a repeat finds it set and
//!   changes nothing). `CreateKey`, `CreateAlias`, `RotateKeyOnDemand`, `ScheduleKeyDeletion` and
//!   `CancelKeyDeletion` are not: after a failure that leaves their outcome unknown (a lost answer,
//!   a timeout, a 5xx, as well as the rejections above, which cost one read to confirm), the
//!   provider reads the state back and repeats the call only if it was not carried out. `CreateKey`
//!   tags each key with a creation token of its own ([`CREATION_TOKEN_TAG`]) and looks for it
//!   (`ListKeys`, `ListResourceTags`); `CreateAlias` reads where the alias points; a rotation
//!   counts `ListKeyRotations` and reads `GetKeyRotationStatus`'s on-demand start; the deletion
//!   calls read the key's state. Where that read fails too, the call is a
//!   [`KeyError::Device`] whose code says the outcome is unknown, never a repeat.
//! - **Clean-up.** `create_key` with a name makes the key, then the alias. It schedules deletion
//!   (7 days) only of the key it made itself, and only when the alias could not be made and does
//!   not point at that key: a name already taken by another key is [`KeyError::AlreadyExists`]
//!   and the other key is left alone; an outcome it could not read back leaves its key in place.
//! - **Runtime.** The provider owns a small tokio runtime; its calls block the calling thread. Called
//!   from inside another tokio runtime, a call runs on a scoped thread instead of panicking.
//! - **Key material.** Plaintext data keys are moved out of the SDK's response into `Zeroizing`
//!   memory at once. The SDK's own buffers (the HTTP body, its base64 decoding, and the plaintext
//!   handed to `Encrypt`, which only `rewrap` uses) are not zeroized; that is a limit of every KMS
//!   client built on the SDK.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeySpec, KeyListEntry, KeyMetadata, KeySpec as KmsKeySpec, KeyUsageType, Tag,
};
use ssekit_engine::keys::{
    DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, KeyState, WrappedKey,
};
use zeroize::Zeroizing;

/// The provider name recorded in wrapped keys.
pub const KMS_PROVIDER: &str = "kms";
/// The wrap algorithm recorded in wrapped keys: KMS symmetric encryption.
pub const ALG_KMS: &str = "AWS-KMS-SYMMETRIC_DEFAULT";

/// The tag `create_key` puts on each key it makes, its value a random token of that call's own, by
/// which a call whose answer was lost finds the key it made instead of making another.
pub const CREATION_TOKEN_TAG: &str = "ssekit:creation-token";

/// How often a key's version count is read again for new wraps.
const VERSION_TTL: Duration = Duration::from_secs(60);

/// Where the KMS is and how hard to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsConfig {
    /// Endpoint URL (e.g. `http://127.0.0.1:4566`); `None` uses AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// Region; `None` takes it from `AWS_REGION` or the AWS profile.
    pub region: Option<String>,
    /// Attempts per call, the first included (throttling, timeouts, connection failures, 5xx).
    pub max_attempts: u32,
    /// First backoff; it doubles (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
    /// Time allowed for one attempt.
    pub attempt_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
}

impl Default for KmsConfig {
    /// No endpoint override, region from the environment, 5 attempts, 100 ms to 2 s backoff, 10 s
    /// per attempt, 3 s to connect.
    fn default() -> Self {
        KmsConfig {
            endpoint: None,
            region: None,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl KmsConfig {
    /// The defaults, with the endpoint from `SSEKIT_KMS_ENDPOINT` when set. Region and credentials
    /// come from the standard AWS variables (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or profile when the provider is made.
    pub fn from_env() -> Self {
        KmsConfig {
            endpoint: std::env::var("SSEKIT_KMS_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty()),
            ..KmsConfig::default()
        }
    }
}

/// The provider's own bounded retries (the SDK's are off, so every attempt is counted here).
#[derive(Clone, Copy)]
struct Retry {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
}

impl Retry {
    /// Backoff after attempt `n` (1-based): half of `initial * 2^(n-1)` (capped at `max`) plus a
    /// random part up to the other half, so threads throttled together do not retry together.
    fn backoff(&self, n: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1 << (n - 1).min(16))
            .min(self.max);
        let mut r = [0u8; 4];
        // Without randomness the backoff is just not jittered.
        let _ = getrandom::fill(&mut r);
        let frac = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        full / 2 + full.mul_f64(frac / 2.0)
    }
}

/// A key's version count as last read, by key ARN.
struct Known {
    version: u32,
    at: Instant,
}

/// A [`KeyProvider`] on AWS KMS; see the module docs.
pub struct KmsProvider {
    rt: tokio::runtime::Runtime,
    client: Client,
    retry: Retry,
    known: Mutex<HashMap<String, Known>>,
    /// ARNs of the keys KMS lists for the caller's own account (`ListKeys`), refreshed on a miss:
    /// the only keys an envelope may send `Decrypt` to (see [`KmsProvider::require_own_key`]).
    own: Mutex<HashSet<String>>,
}

impl KmsProvider {
    /// Connects (lazily: no call is made until the first use).
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] if the runtime cannot start; [`KeyError::Malformed`] when no region is set.
    pub fn new(config: &KmsConfig) -> Result<Self, KeyError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ssekit-kms")
            .enable_all()
            .build()
            .map_err(|e| KeyError::Io(format!("cannot start the KMS client's runtime: {e}")))?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(r) = &config.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &config.endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = rt.block_on(loader.load());
        if sdk.region().is_none() {
            return Err(KeyError::Malformed(
                "no AWS region for KMS: set AWS_REGION (or the provider's region)".into(),
            ));
        }
        Ok(KmsProvider {
            client: Client::new(&sdk),
            rt,
            retry: Retry {
                max_attempts: config.max_attempts.max(1),
                initial: config.initial_backoff,
                max: config.max_backoff,
            },
            known: Mutex::new(HashMap::new()),
            own: Mutex::new(HashSet::new()),
        })
    }

    /// Refuses an envelope that names a key ARN outside the caller's own account. The ARN comes from
    /// the stored object, which whoever can write the storage can rewrite: with their own key in
    /// another account (whose key policy lets this caller decrypt) they could otherwise make objects
    /// whose data key they chose, and so whose content and metadata MAC they chose, and have them
    /// open. A key id or an alias resolves in the caller's own account anyway; an ARN must be one of
    /// the keys `ListKeys` returns for it (listed once, and again when an ARN is not found), or one
    /// this provider wrapped under at the caller's request.
    ///
    /// # Errors
    ///
    /// [`KeyError::Corrupt`] naming the ARN; the `ListKeys` call's errors.
    fn require_own_key(&self, key_id: &str) -> Result<(), KeyError> {
        if !key_id.starts_with("arn:") {
            return Ok(());
        }
        if self.lock_own().contains(key_id) {
            return Ok(());
        }
        let listed: HashSet<String> = self
            .all_keys(key_id)?
            .iter()
            .filter_map(|k| k.key_arn())
            .map(str::to_owned)
            .collect();
        let found = listed.contains(key_id);
        self.lock_own().extend(listed);
        if found {
            Ok(())
        } else {
            Err(KeyError::Corrupt(format!(
                "the object's envelope names KMS key {key_id}, which is not a key of this account: \
                 refusing to decrypt with it (a forged or foreign envelope)"
            )))
        }
    }

    /// Runs `f` to completion on the provider's runtime.
    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking inside a runtime would panic: do it on a thread of our own.
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(f)
        }
    }

    /// One KMS call with the provider's bounded retries: an attempt that fails as
    /// [`KeyError::Unavailable`] (throttling, 5xx, timeouts, no connection) is tried again after an
    /// exponential backoff with jitter, up to `max_attempts` in all.
    fn call<T, E, Fut>(
        &self,
        call: &str,
        id: &str,
        data: bool,
        op: impl Fn() -> Fut,
    ) -> Result<T, KeyError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send,
        T: Send,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 1;
        loop {
            match self.block(op()).map_err(|e| self.fail(call, id, data, e)) {
                Err(KeyError::Unavailable { .. }) if attempt < self.retry.max_attempts => {
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// A KMS call that changes state and is not safe to repeat blindly: tried once, and after a
    /// failure that leaves its outcome unknown (one that [`Self::call`] would retry), `done` reads
    /// the state back after the backoff: `Some(v)` when the change is found made (its answer was
    /// lost), `None` when it was not, and only then is the call tried again. `answered` maps the
    /// call's own answer. A read that fails stops here with [`outcome_unknown`]; after the last
    /// attempt, a change read back as not made is [`KeyError::Unavailable`] (nothing was changed).
    fn change<T, V, E, Fut>(
        &self,
        call: &str,
        id: &str,
        data: bool,
        op: impl Fn() -> Fut,
        answered: impl FnOnce(T) -> Result<V, KeyError>,
        done: impl Fn() -> Result<Option<V>, KeyError>,
    ) -> Result<V, KeyError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send,
        T: Send,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 1;
        loop {
            let err = match self.block(op()).map_err(|e| self.fail(call, id, data, e)) {
                Ok(out) => return answered(out),
                Err(e @ KeyError::Unavailable { .. }) => e,
                Err(e) => return Err(e),
            };
            std::thread::sleep(self.retry.backoff(attempt));
            match done() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) if attempt < self.retry.max_attempts => attempt += 1,
                Ok(None) => return Err(err),
                Err(read) => return Err(outcome_unknown(call, &err, &read)),
            }
        }
    }

    fn describe_meta(&self, id: &str) -> Result<KeyMetadata, KeyError> {
        let out = self.call("kms:DescribeKey", id, false, || {
            self.client.describe_key().key_id(kms_id(id)).send()
        })?;
        out.key_metadata
            .ok_or_else(|| bad_answer("kms:DescribeKey", "no KeyMetadata"))
    }

    /// Version count (1 + completed rotations) of the key with KMS id `key_id`, and the newest
    /// rotation's date.
    fn versions(&self, id: &str, key_id: &str) -> Result<(u32, Option<u64>), KeyError> {
        let mut count = 1u32;
        let mut last = None;
        let mut marker = None;
        loop {
            let out = self.call("kms:ListKeyRotations", id, false, || {
                self.client
                    .list_key_rotations()
                    .key_id(key_id)
                    .set_marker(marker.clone())
                    .send()
            })?;
            for r in out.rotations() {
                count = count.saturating_add(1);
                let at = r.rotation_date().map(|d| d.secs().max(0) as u64);
                last = last.max(at);
            }
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => break,
            }
        }
        Ok((count, last))
    }

    /// The version new wraps under the key with ARN `arn` record (cached for [`VERSION_TTL`]).
    fn current_version(&self, arn: &str) -> Result<u32, KeyError> {
        if let Some(k) = self.lock_known().get(arn)
            && k.at.elapsed() < VERSION_TTL
        {
            return Ok(k.version);
        }
        let meta = self.describe_meta(arn)?;
        let (version, _) = self.versions(arn, meta.key_id())?;
        self.remember(&meta, version);
        Ok(version)
    }

    fn remember(&self, meta: &KeyMetadata, version: u32) {
        self.lock_known().insert(
            arn_of(meta),
            Known {
                version,
                at: Instant::now(),
            },
        );
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_own(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.own.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn info(&self, id: &str, meta: &KeyMetadata) -> Result<KeyInfo, KeyError> {
        let key_id = meta.key_id();
        let rotation = self.call("kms:GetKeyRotationStatus", id, false, || {
            self.client.get_key_rotation_status().key_id(key_id).send()
        })?;
        let (version, last) = self.versions(id, key_id)?;
        self.remember(meta, version);
        let created = meta.creation_date().map_or(0, |d| d.secs().max(0) as u64);
        Ok(KeyInfo {
            id: id.to_owned(),
            description: meta.description().unwrap_or_default().to_owned(),
            state: state_of(meta),
            current_version: version,
            created,
            rotated: last.unwrap_or(created),
            // A server that says rotation is on without a period (moto) rotates at KMS's default.
            rotation_period_days: if rotation.key_rotation_enabled {
                Some(
                    rotation
                        .rotation_period_in_days
                        .and_then(|d| u32::try_from(d).ok())
                        .unwrap_or(365),
                )
            } else {
                None
            },
        })
    }

    /// Maps an SDK error: KMS's codes to typed errors, what the retries could not get past to
    /// [`KeyError::Unavailable`]. `data` says whether the call used the key for data (then a state
    /// error names the state's own error) or was a lifecycle call.
    fn fail<E>(&self, call: &str, id: &str, data: bool, e: SdkError<E, HttpResponse>) -> KeyError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let unavailable = |detail: String| KeyError::Unavailable {
            call: call.to_owned(),
            detail,
        };
        let status = match &e {
            SdkError::ServiceError(se) => se.raw().status().as_u16(),
            SdkError::TimeoutError(_) => return unavailable("timed out".into()),
            SdkError::DispatchFailure(d) => {
                if caused_by::<CredentialsError>(&e) {
                    // Not the service's fault, and retrying will not help.
                    return KeyError::Device {
                        call: call.to_owned(),
                        code: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile".into(),
                    };
                }
                let what = if d.is_timeout() {
                    "timed out".to_owned()
                } else {
                    // The operating system's word for it ("Connection refused") where there is one.
                    let io = sources(&e).find_map(|s| s.downcast_ref::<std::io::Error>());
                    let why = io.map_or_else(|| one_line(&e), ToString::to_string);
                    format!("could not reach the endpoint: {why}")
                };
                return unavailable(what);
            }
            SdkError::ResponseError(_) => {
                return unavailable("the answer could not be read".into());
            }
            _ => return KeyError::Malformed(format!("{call}: {}", one_line(&e))),
        };
        let code = e.code().unwrap_or("UnknownError").to_owned();
        let message = e.message().unwrap_or_default().to_owned();
        match code.as_str() {
            "NotFoundException" => KeyError::NotFound(id.to_owned()),
            "AlreadyExistsException" => KeyError::AlreadyExists(id.to_owned()),
            "DisabledException" => KeyError::Disabled(id.to_owned()),
            "KMSInvalidStateException" => self.state_error(id, data),
            "InvalidCiphertextException" | "IncorrectKeyException" => KeyError::UnwrapFailed,
            "ValidationException"
            | "InvalidArnException"
            | "InvalidAliasNameException"
            | "InvalidMarkerException" => KeyError::Malformed(format!("{call}: {message}")),
            "ThrottlingException"
            | "LimitExceededException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException" => unavailable(code),
            _ if status >= 500 => unavailable(format!("{code} (HTTP {status})")),
            _ => KeyError::Device {
                call: call.to_owned(),
                code,
            },
        }
    }

    /// The typed error for a key KMS says is in the wrong state: the state is read back.
    fn state_error(&self, id: &str, data: bool) -> KeyError {
        let state = match self.describe_meta(id) {
            Ok(meta) => state_of(&meta),
            Err(e) => return e,
        };
        match (data, state.require_enabled(id)) {
            (true, Err(e)) => e,
            _ => KeyError::InvalidState {
                id: id.to_owned(),
                state: state.to_string(),
            },
        }
    }

    /// Describes `id` and refuses it unless `ok` accepts its state.
    fn lifecycle_meta(
        &self,
        id: &str,
        ok: impl Fn(KeyState) -> Result<(), String>,
    ) -> Result<KeyMetadata, KeyError> {
        let meta = self.describe_meta(id)?;
        ok(state_of(&meta)).map_err(|state| KeyError::InvalidState {
            id: id.to_owned(),
            state,
        })?;
        Ok(meta)
    }

    /// `ScheduleKeyDeletion` of the key `key_id` (a KMS key id) in `days` days, named `id` in errors.
    fn schedule(&self, id: &str, key_id: &str, days: u32) -> Result<(), KeyError> {
        self.change(
            "kms:ScheduleKeyDeletion",
            id,
            false,
            || {
                self.client
                    .schedule_key_deletion()
                    .key_id(key_id)
                    .pending_window_in_days(days as i32)
                    .send()
            },
            |_| Ok(()),
            || {
                let now = state_of(&self.describe_meta(key_id)?);
                Ok(matches!(now, KeyState::PendingDeletion { .. }).then_some(()))
            },
        )
    }

    /// The KMS key id of the key whose [`CREATION_TOKEN_TAG`] is `token`, if there is one: how a
    /// `CreateKey` whose answer was lost is found. Reads every key's tags (`ListResourceTags`), so
    /// it is only used after such a failure.
    fn find_created(&self, name: &str, token: &str) -> Result<Option<String>, KeyError> {
        for key_id in self.all_keys(name)?.iter().filter_map(|k| k.key_id()) {
            if self.has_token(name, key_id, token)? {
                return Ok(Some(key_id.to_owned()));
            }
        }
        Ok(None)
    }

    /// Every key of the caller's account, all pages of `ListKeys` (`name` for errors).
    fn all_keys(&self, name: &str) -> Result<Vec<KeyListEntry>, KeyError> {
        let mut keys = Vec::new();
        let mut marker = None;
        loop {
            let out = self.call("kms:ListKeys", name, false, || {
                self.client.list_keys().set_marker(marker.clone()).send()
            })?;
            keys.extend(out.keys.unwrap_or_default());
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => return Ok(keys),
            }
        }
    }

    fn has_token(&self, name: &str, key_id: &str, token: &str) -> Result<bool, KeyError> {
        let mut marker = None;
        loop {
            let out = match self.call("kms:ListResourceTags", name, false, || {
                self.client
                    .list_resource_tags()
                    .key_id(key_id)
                    .set_marker(marker.clone())
                    .send()
            }) {
                Ok(out) => out,
                // Deleted since it was listed, or not ours to read: not the key this call made.
                Err(KeyError::NotFound(_) | KeyError::Device { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            if out
                .tags()
                .iter()
                .any(|t| t.tag_key() == CREATION_TOKEN_TAG && t.tag_value() == token)
            {
                return Ok(true);
            }
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => return Ok(false),
            }
        }
    }

    /// The KMS key id the alias of `id` points at; `None` when there is no such alias.
    fn alias_target(&self, id: &str) -> Result<Option<String>, KeyError> {
        match self.describe_meta(id) {
            Ok(meta) => Ok(Some(meta.key_id().to_owned())),
            Err(KeyError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names the key `key_id`, which this `create_key` made, `alias/<id>`. If the alias cannot be
    /// made, and it does not point at that key, the key is an orphan and is scheduled for
    /// deletion (it is this call's own; nothing else is ever deleted). A name taken by another key
    /// is [`KeyError::AlreadyExists`]; an outcome that could not be read back leaves the key.
    fn create_alias(&self, id: &str, key_id: &str) -> Result<(), KeyError> {
        // `true`: the alias names this key; `false`: it names another.
        let named = self.change(
            "kms:CreateAlias",
            id,
            false,
            || {
                self.client
                    .create_alias()
                    .alias_name(kms_id(id))
                    .target_key_id(key_id)
                    .send()
            },
            |_| Ok(true),
            || Ok(self.alias_target(id)?.map(|t| t == key_id)),
        );
        let err = match named {
            Ok(true) => return Ok(()),
            Ok(false) => KeyError::AlreadyExists(id.to_owned()),
            // The name is taken, if by this key then through an attempt whose answer was lost:
            // read where it points.
            Err(e @ KeyError::AlreadyExists(_)) => match self.alias_target(id) {
                Ok(Some(t)) if t == key_id => return Ok(()),
                Ok(_) => e,
                Err(read) => return Err(outcome_unknown("kms:CreateAlias", &e, &read)),
            },
            // Whether the alias was made is not known: the key may be in use by it.
            Err(e @ KeyError::Device { .. }) if is_outcome_unknown(&e) => return Err(e),
            // Refused, or unavailable and read back as not made: the key has no name.
            Err(e) => e,
        };
        // Best effort: a failure here leaves an orphan key, never touches another.
        let _ = self.schedule(id, key_id, 7);
        Err(err)
    }

    /// The envelope of a wrap of `id` that KMS answered with `ciphertext` made by the key `arn`
    /// (its answer's `KeyId`; a server that leaves it out is asked with `DescribeKey`).
    fn wrapped(
        &self,
        id: &str,
        arn: Option<String>,
        ciphertext: Option<Blob>,
        call: &str,
    ) -> Result<WrappedKey, KeyError> {
        let ciphertext = ciphertext
            .ok_or_else(|| bad_answer(call, "no CiphertextBlob"))?
            .into_inner();
        let arn = match arn.filter(|a| !a.is_empty()) {
            Some(a) => a,
            None => arn_of(&self.describe_meta(id)?),
        };
        // The caller chose this key for the write: its envelopes may decrypt with it.
        self.lock_own().insert(arn.clone());
        Ok(WrappedKey {
            provider: KMS_PROVIDER.into(),
            key_version: self.current_version(&arn)?,
            key_id: arn,
            algorithm: ALG_KMS.into(),
            ciphertext,
        })
    }
}

/// What a state-changing call that failed ambiguously is, when reading the state back failed too:
/// it may or may not have been carried out, and is not repeated.
fn outcome_unknown(call: &str, err: &KeyError, read: &KeyError) -> KeyError {
    // An unavailable service by what it said (its message says nothing was changed).
    let why = |e: &KeyError| match e {
        KeyError::Unavailable { call, detail } => format!("{call}: {detail}"),
        e => e.to_string(),
    };
    KeyError::Device {
        call: call.to_owned(),
        code: format!(
            "{OUTCOME_UNKNOWN} ({}; reading the state back failed: {}): look at the key before trying again",
            why(err),
            why(read)
        ),
    }
}

const OUTCOME_UNKNOWN: &str = "outcome unknown";

fn is_outcome_unknown(e: &KeyError) -> bool {
    matches!(e, KeyError::Device { code, .. } if code.starts_with(OUTCOME_UNKNOWN))
}

/// A fresh random creation token (128 bits, hex).
fn creation_token() -> Result<String, KeyError> {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r)
        .map_err(|e| KeyError::Io(format!("no randomness for a creation token: {e}")))?;
    Ok(r.iter().map(|b| format!("{b:02x}")).collect())
}

/// The key's ARN (its key id from a server that gives no ARN).
fn arn_of(meta: &KeyMetadata) -> String {
    meta.arn()
        .filter(|a| !a.is_empty())
        .unwrap_or(meta.key_id())
        .to_owned()
}

/// The KeyId to send for a caller's id (see the module docs).
fn kms_id(id: &str) -> String {
    let uuid_like = id.len() == 36 && id.bytes().filter(|&b| b == b'-').count() == 4;
    if id.starts_with("arn:") || id.starts_with("alias/") || id.starts_with("mrk-") || uuid_like {
        id.to_owned()
    } else {
        format!("alias/{id}")
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn state_of(meta: &KeyMetadata) -> KeyState {
    use aws_sdk_kms::types::KeyState as K;
    match meta.key_state() {
        Some(K::Enabled | K::Creating | K::Updating) => KeyState::Enabled,
        Some(K::PendingDeletion | K::PendingReplicaDeletion) => KeyState::PendingDeletion {
            delete_at: meta.deletion_date().map_or(0, |d| d.secs().max(0) as u64),
        },
        // Disabled, PendingImport, Unavailable and anything newer: not usable now.
        _ => KeyState::Disabled,
    }
}

/// `e` and its chain of sources.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Whether `T` is anywhere in `e`'s chain of sources.
fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|err| err.is::<T>())
}

/// An SDK error with its causes, on one line and at most 300 bytes.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = DisplayErrorContext(e)
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn bad_answer(call: &str, what: &str) -> KeyError {
    KeyError::Device {
        call: call.to_owned(),
        code: format!("malformed answer ({what})"),
    }
}

fn plaintext_key(plaintext: Option<Blob>, call: &str) -> Result<DataKey, KeyError> {
    let bytes = Zeroizing::new(
        plaintext
            .ok_or_else(|| bad_answer(call, "no Plaintext"))?
            .into_inner(),
    );
    DataKey::try_from_slice(&bytes).map_err(|_| bad_answer(call, "a data key of the wrong length"))
}

/// KMS alias names: 1 to 250 of A-Z a-z 0-9 / _ - (the `alias/` prefix is added here).
fn check_alias(id: &str) -> Result<(), KeyError> {
    ssekit_engine::keys::check_name(
        id,
        250,
        b"/_-",
        "aws/",
        "KMS key name",
        "use 1 to 250 of A-Z a-z 0-9 / _ - (not starting with aws/)",
    )
}

impl KeyProvider for KmsProvider {
    fn name(&self) -> &'static str {
        KMS_PROVIDER
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        let call = "kms:GenerateDataKey";
        let out = self.call(call, key_id, true, || {
            self.client
                .generate_data_key()
                .key_id(kms_id(key_id))
                .key_spec(DataKeySpec::Aes256)
                .set_encryption_context(Some(context_map(context)))
                .send()
        })?;
        let dek = plaintext_key(out.plaintext, call)?;
        Ok((
            dek,
            self.wrapped(key_id, out.key_id, out.ciphertext_blob, call)?,
        ))
    }

    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        let call = "kms:Encrypt";
        let out = self.call(call, key_id, true, || {
            self.client
                .encrypt()
                .key_id(kms_id(key_id))
                .plaintext(Blob::new(dek.expose().to_vec()))
                .set_encryption_context(Some(context_map(context)))
                .send()
        })?;
        self.wrapped(key_id, out.key_id, out.ciphertext_blob, call)
    }

    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        wrapped.expect_provider(KMS_PROVIDER)?;
        wrapped.expect_algorithm(&[ALG_KMS])?;
        self.require_own_key(&wrapped.key_id)?;
        let call = "kms:Decrypt";
        let out = self.call(call, &wrapped.key_id, true, || {
            self.client
                .decrypt()
                .key_id(kms_id(&wrapped.key_id))
                .ciphertext_blob(Blob::new(wrapped.ciphertext.clone()))
                .set_encryption_context(Some(context_map(context)))
                .send()
        })?;
        plaintext_key(out.plaintext, call)
    }

    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        if let Some(id) = &spec.id {
            check_alias(id)?;
        }
        if let Some(days) = spec.rotation_period_days
            && !(90..=2560).contains(&days)
        {
            return Err(KeyError::Malformed(format!(
                "KMS rotates every 90 to 2560 days, not {days}"
            )));
        }
        if let Some(id) = &spec.id {
            match self.describe_meta(id) {
                Ok(_) => return Err(KeyError::AlreadyExists(id.clone())),
                Err(KeyError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let name = spec.id.as_deref().unwrap_or("(new key)");
        let token = creation_token()?;
        let tag = Tag::builder()
            .tag_key(CREATION_TOKEN_TAG)
            .tag_value(&token)
            .build()
            .map_err(|e| KeyError::Malformed(format!("kms:CreateKey: {e}")))?;
        let key_id = self.change(
            "kms:CreateKey",
            name,
            false,
            || {
                self.client
                    .create_key()
                    .description(&spec.description)
                    .key_usage(KeyUsageType::EncryptDecrypt)
                    .key_spec(KmsKeySpec::SymmetricDefault)
                    .tags(tag.clone())
                    .send()
            },
            |out| {
                let meta = out
                    .key_metadata
                    .ok_or_else(|| bad_answer("kms:CreateKey", "no KeyMetadata"))?;
                Ok(meta.key_id().to_owned())
            },
            || self.find_created(name, &token),
        )?;
        if let Some(id) = &spec.id {
            self.create_alias(id, &key_id)?;
        }
        if let Some(days) = spec.rotation_period_days {
            self.call("kms:EnableKeyRotation", name, false, || {
                self.client
                    .enable_key_rotation()
                    .key_id(&key_id)
                    .rotation_period_in_days(days as i32)
                    .send()
            })?;
        }
        let id = spec.id.clone().unwrap_or(key_id);
        self.describe(&id)
    }

    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let meta = self.describe_meta(key_id)?;
        self.info(key_id, &meta)
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut marker = None;
        loop {
            let out = self.call("kms:ListAliases", "*", false, || {
                self.client.list_aliases().set_marker(marker.clone()).send()
            })?;
            for a in out.aliases() {
                if let (Some(name), Some(target)) = (a.alias_name(), a.target_key_id())
                    && let Some(short) = name.strip_prefix("alias/")
                    && !short.starts_with("aws/")
                {
                    names
                        .entry(target.to_owned())
                        .or_insert_with(|| short.to_owned());
                }
            }
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => break,
            }
        }
        let keys: Vec<String> = self
            .all_keys("*")?
            .iter()
            .filter_map(|k| k.key_id())
            .map(|key_id| {
                names
                    .get(key_id)
                    .cloned()
                    .unwrap_or_else(|| key_id.to_owned())
            })
            .collect();
        let mut infos = keys
            .iter()
            .map(|id| self.describe(id))
            .collect::<Result<Vec<_>, _>>()?;
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let meta = self.describe_meta(key_id)?;
        let mut info = self.info(key_id, &meta)?;
        info.state.require_enabled(key_id)?;
        let before = info.current_version;
        self.change(
            "kms:RotateKeyOnDemand",
            key_id,
            true,
            || {
                self.client
                    .rotate_key_on_demand()
                    .key_id(meta.key_id())
                    .send()
            },
            |_| Ok(()),
            // Done if a rotation was completed since, or one is under way (real KMS lists an
            // on-demand rotation only once it is complete, and refuses a second meanwhile).
            || {
                let status = self.call("kms:GetKeyRotationStatus", key_id, false, || {
                    self.client
                        .get_key_rotation_status()
                        .key_id(meta.key_id())
                        .send()
                })?;
                let (now, _) = self.versions(key_id, meta.key_id())?;
                let done = now > before || status.on_demand_rotation_start_date.is_some();
                Ok(done.then_some(()))
            },
        )?;
        // Real KMS may list the rotation a little later; the version counts it from now on.
        let (after, _) = self.versions(key_id, meta.key_id())?;
        info.current_version = after.max(before + 1);
        self.remember(&meta, info.current_version);
        Ok(info)
    }

    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let meta = self.lifecycle_meta(key_id, not_pending)?;
        self.call("kms:EnableKey", key_id, false, || {
            self.client.enable_key().key_id(meta.key_id()).send()
        })?;
        self.describe(key_id)
    }

    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let meta = self.lifecycle_meta(key_id, not_pending)?;
        self.call("kms:DisableKey", key_id, false, || {
            self.client.disable_key().key_id(meta.key_id()).send()
        })?;
        self.describe(key_id)
    }

    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        if !(7..=30).contains(&days) {
            return Err(KeyError::InvalidDeletionWindow(days));
        }
        let meta = self.lifecycle_meta(key_id, |s| match s {
            KeyState::PendingDeletion { .. } => Err("already pending deletion".into()),
            _ => Ok(()),
        })?;
        self.schedule(key_id, meta.key_id(), days)?;
        self.describe(key_id)
    }

    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        let meta = self.lifecycle_meta(key_id, |s| match s {
            KeyState::PendingDeletion { .. } => Ok(()),
            _ => Err("not pending deletion".into()),
        })?;
        self.change(
            "kms:CancelKeyDeletion",
            key_id,
            false,
            || {
                self.client
                    .cancel_key_deletion()
                    .key_id(meta.key_id())
                    .send()
            },
            |_| Ok(()),
            || {
                let now = state_of(&self.describe_meta(meta.key_id())?);
                Ok((!matches!(now, KeyState::PendingDeletion { .. })).then_some(()))
            },
        )?;
        self.describe(key_id)
    }
}

fn not_pending(s: KeyState) -> Result<(), String> {
    match s {
        KeyState::PendingDeletion { .. } => {
            Err("pending deletion (cancel the deletion first)".into())
        }
        _ => Ok(()),
    }
}
