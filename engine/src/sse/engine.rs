//! [`SseEngine`]: S3's encryption decisions for each operation, and the plans that carry them out.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::bucket_key::{self, BucketKeyPolicy, BucketKeyStats, BucketKeys};
use super::headers::{self, CustomerKey, Headers, SseHeaders, customer_key_group};
use super::{BucketConfig, DefaultAlgorithm, Operation, RequestContext, S3Error, quote, ssec};
use crate::audit::{AuditLog, Audited, Event, Op};
use crate::keys::{DataKey, EncryptionContext, KeyError, KeyProvider, KeySpec, WrappedKey};
use crate::object::{
    self, ByteRange, LayeredWriter, MAX_PART_NUMBER, ObjectMeta, OpenReader, PartEntry, RangeRead,
    ReadAt, SealWriter, SseMode,
};

/// The provider key id of the engine-owned SSE-S3 root key (created on first use, rotated every
/// [`SseConfig::sse_s3_rotation_days`] days; operators never name it in a request).
pub const SSE_S3_ROOT_KEY: &str = "ssekit-sse-s3";
/// The provider key id standing for S3's `aws/s3` key: the SSE-KMS key of a request that names none
/// in a bucket with no default key (created on first use).
pub const AWS_S3_DEFAULT_KEY: &str = "ssekit-aws-s3";

/// How an [`SseEngine`] names keys and treats requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseConfig {
    /// The region in the KMS key ARNs the engine echoes (`arn:aws:kms:REGION:ACCOUNT:key/ID`) and
    /// accepts, for providers whose keys have no ARN of their own (the local keyring, PKCS#11).
    pub region: String,
    /// The account in those ARNs.
    pub account: String,
    /// Rotation period of the SSE-S3 root key, set when the engine creates it (at least 90 days on
    /// the KMS provider, KMS's shortest).
    pub sse_s3_rotation_days: u32,
    /// What a bucket policy's silence means: true (the default) lets the server's own
    /// authorization stand; false denies anything no statement allows.
    pub default_allow: bool,
    /// Bucket-key lifetime and bounds.
    pub bucket_keys: BucketKeyPolicy,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            sse_s3_rotation_days: 30,
            default_allow: true,
            bucket_keys: BucketKeyPolicy::default(),
        }
    }
}

/// The data key(s) of one object: the inner (every mode) and, for DSSE-KMS, the outer layer's.
/// Zeroized on drop; `Debug` shows nothing of them.
pub struct ObjectKeys {
    inner: DataKey,
    outer: Option<DataKey>,
    /// A salt drawn with the data key, used by the first single-layer seal (one draw of the
    /// operating system's generator per object instead of three: a measurable part of a 4 KiB PUT).
    salt: Mutex<Option<[u8; 24]>>,
}

impl std::fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectKeys")
            .field("layers", &(1 + usize::from(self.outer.is_some())))
            .finish()
    }
}

impl ObjectKeys {
    fn one(inner: DataKey) -> Self {
        ObjectKeys {
            inner,
            outer: None,
            salt: Mutex::new(None),
        }
    }

    /// Seals one part (0: a single-part object); returns the stored bytes and the salt of the
    /// message the part table will name.
    fn seal_part(&self, part: u32, plaintext: &[u8]) -> Result<(Vec<u8>, [u8; 24]), S3Error> {
        let salt = self.salt.lock().unwrap_or_else(|p| p.into_inner()).take();
        match &self.outer {
            None => match salt {
                Some(salt) => object::seal_part_salted(&self.inner, part, &salt, plaintext),
                None => object::seal_part(&self.inner, part, plaintext),
            }
            .map(|m| {
                let salt = m[..24].try_into().expect("a message starts with its salt");
                (m, salt)
            }),
            Some(outer) => {
                object::layered::seal_layered_part_salted(&self.inner, outer, part, plaintext)
            }
        }
        .map_err(object_error)
    }

    pub(crate) fn inner(&self) -> &DataKey {
        &self.inner
    }

    pub(crate) fn outer(&self) -> Option<&DataKey> {
        self.outer.as_ref()
    }

    /// [`ObjectKeys::seal_part`] into `out` (at least the stored length); returns the bytes written
    /// and the salt. DSSE-KMS goes through a buffer of its own (its two layers do not fit one
    /// caller's buffer in place).
    pub(crate) fn seal_part_into(
        &self,
        part: u32,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, [u8; 24]), S3Error> {
        let n = self.checked_stored_len(plaintext.len() as u64)?;
        if (out.len() as u64) < n {
            return Err(object_error(object::Error::BufferSize {
                expected: n,
                got: out.len() as u64,
            }));
        }
        let out = &mut out[..n as usize];
        if self.outer.is_some() {
            let (m, salt) = self.seal_part(part, plaintext)?;
            out.copy_from_slice(&m);
            return Ok((m.len(), salt));
        }
        let salt = self
            .salt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(object::random_salt);
        object::seal_part_salted_into(&self.inner, part, &salt, plaintext, out)
            .map_err(object_error)?;
        Ok((out.len(), salt))
    }

    /// Seals a single-part object in place: `buf` holds `len` plaintext bytes at its front and is at
    /// least their stored length; returns the stored length.
    pub(crate) fn seal_in_place(&self, buf: &mut [u8], len: usize) -> Result<usize, S3Error> {
        let n = self.checked_stored_len(len as u64)?;
        if (buf.len() as u64) < n || len > buf.len() {
            return Err(object_error(object::Error::BufferSize {
                expected: n,
                got: buf.len() as u64,
            }));
        }
        if self.outer.is_some() {
            let (m, _) = self.seal_part(0, &buf[..len])?;
            buf[..m.len()].copy_from_slice(&m);
            return Ok(m.len());
        }
        let buf = &mut buf[..n as usize];
        super::stream::spread_to_slots(buf, len);
        let salt = self
            .salt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(object::random_salt);
        object::seal_part_salted_in_place(&self.inner, 0, &salt, buf).map_err(object_error)?;
        Ok(buf.len())
    }

    /// The stored size of `plaintext_len` bytes from a caller (400 EntityTooLarge past the limit).
    fn checked_stored_len(&self, plaintext_len: u64) -> Result<u64, S3Error> {
        if self.outer.is_some() {
            object::checked_layered_len(plaintext_len)
        } else {
            object::checked_sealed_len(plaintext_len)
        }
        .map_err(object_error)
    }

    /// The stored size of `plaintext_len` bytes in this object's layers.
    fn stored_len(&self, plaintext_len: u64) -> u64 {
        if self.outer.is_some() {
            object::layered_len(plaintext_len)
        } else {
            object::sealed_len(plaintext_len)
        }
    }
}

/// A streaming writer of one part (or a single-part object) in the plan's layers.
#[derive(Debug)]
pub enum ObjectWriter<W: Write> {
    /// One layer.
    One(Box<SealWriter<W>>),
    /// Two layers (DSSE-KMS).
    Two(Box<LayeredWriter<W>>),
}

impl<W: Write> Write for ObjectWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ObjectWriter::One(w) => w.write(buf),
            ObjectWriter::Two(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ObjectWriter::One(w) => w.flush(),
            ObjectWriter::Two(w) => w.flush(),
        }
    }
}

impl<W: Write> ObjectWriter<W> {
    /// The salt of the message the part table names (the inner one, for DSSE-KMS).
    pub fn salt(&self) -> [u8; 24] {
        match self {
            ObjectWriter::One(w) => w.salt(),
            ObjectWriter::Two(w) => w.salt(),
        }
    }

    /// Seals what is buffered as the message's final chunks; returns the writer and the plaintext
    /// length.
    ///
    /// # Errors
    ///
    /// 500 InternalError when writing failed.
    pub fn finish(self) -> Result<(W, u64), S3Error> {
        match self {
            ObjectWriter::One(w) => w.finish(),
            ObjectWriter::Two(w) => object::finish_layered(*w),
        }
        .map_err(|e| S3Error::internal(format!("sealing failed: {e}")))
    }
}

/// A streaming reader of one part (or a single-part object) through the object's layers; releases
/// only authenticated chunks.
#[derive(Debug)]
pub enum ObjectReader<R: Read> {
    /// One layer.
    One(Box<OpenReader<R>>),
    /// Two layers (DSSE-KMS).
    Two(Box<OpenReader<OpenReader<R>>>),
}

impl<R: Read> Read for ObjectReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObjectReader::One(r) => r.read(buf),
            ObjectReader::Two(r) => r.read(buf),
        }
    }
}

/// A provider under the audit log.
type AuditedProvider = Audited<Arc<dyn KeyProvider>>;

/// SSE response headers: each name (S3's, lower case but for `…-MD5`) and its value.
pub type ResponseHeaders = Vec<(&'static str, String)>;

/// The engine: key providers, names, bucket keys. Shared by every request thread.
pub struct SseEngine {
    kms: Arc<dyn KeyProvider>,
    s3: Arc<dyn KeyProvider>,
    /// With an audit log: the providers under it, so each call is recorded with the request's
    /// principal.
    audited: Option<(AuditedProvider, AuditedProvider)>,
    /// The same log, for the key uses that call no provider (bucket keys, SSE-C).
    log: Option<Arc<AuditLog>>,
    config: SseConfig,
    bucket_keys: BucketKeys,
    /// Engine-managed keys known to exist: (SSE-S3 root, aws/s3 default).
    ensured: Mutex<[bool; 2]>,
    /// `arn:aws:kms:REGION:ACCOUNT:key/`.
    arn_prefix: String,
}

impl std::fmt::Debug for SseEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseEngine")
            .field("kms", &self.kms.name())
            .field("sse_s3", &self.s3.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The source of a CopyObject or UploadPartCopy: its request context (the source bucket and key,
/// with the requester's principal and TLS flag), its bucket's configuration (whose policy must allow
/// `s3:GetObject`), and its stored metadata.
#[derive(Clone, Copy, Debug)]
pub struct CopySource<'a> {
    /// The source object, as the requester reads it.
    pub ctx: &'a RequestContext,
    /// The source bucket's configuration.
    pub bucket: &'a BucketConfig,
    /// The source object's stored metadata.
    pub meta: &'a ObjectMeta,
}

/// A write's plan: the mode and keys chosen, what to store, and the response headers.
#[derive(Debug)]
pub struct WritePlan {
    pub(super) meta: ObjectMeta,
    pub(super) keys: ObjectKeys,
    headers: ResponseHeaders,
}

/// A read's plan (GET, HEAD, or the source of a copy).
#[derive(Debug)]
pub struct ReadPlan {
    pub(super) meta: ObjectMeta,
    pub(super) keys: Option<ObjectKeys>,
    headers: ResponseHeaders,
}

/// An UploadPart's plan: the upload's keys, checked against the request.
#[derive(Debug)]
pub struct PartPlan {
    pub(super) part: u32,
    pub(super) keys: ObjectKeys,
    headers: ResponseHeaders,
}

impl SseEngine {
    /// An engine whose SSE-KMS and SSE-S3 keys both live in `provider`, with [`SseConfig::default`].
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self::with_config(Arc::clone(&provider), provider, SseConfig::default())
    }

    /// An engine with SSE-KMS (and DSSE-KMS) keys in `kms`, the SSE-S3 root key in `sse_s3`.
    pub fn with_config(
        kms: Arc<dyn KeyProvider>,
        sse_s3: Arc<dyn KeyProvider>,
        config: SseConfig,
    ) -> Self {
        SseEngine {
            kms,
            s3: sse_s3,
            audited: None,
            log: None,
            bucket_keys: BucketKeys::new(config.bucket_keys),
            arn_prefix: format!("arn:aws:kms:{}:{}:key/", config.region, config.account),
            config,
            ensured: Mutex::new([false; 2]),
        }
    }

    /// Records every provider call of this engine in `log` (docs/AUDIT.md): operation, key,
    /// encryption context (which names the object), the request's principal, outcome. A call whose
    /// record cannot be written fails, and its key is not used. The key uses that call no provider
    /// are recorded too, naming the object: a data key wrapped or unwrapped under a cached S3 Bucket
    /// Key (`bucket_key_wrap`, `bucket_key_unwrap`) or under an SSE-C key (`sse_c_wrap`,
    /// `sse_c_unwrap`, a wrong key as a failed one); a request whose line cannot be written fails.
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.audited = Some((
            Audited::new(Arc::clone(&self.kms), Arc::clone(&log)),
            Audited::new(Arc::clone(&self.s3), Arc::clone(&log)),
        ));
        self.log = Some(log);
        self
    }

    /// Records a key use that called no provider; a line that cannot be written fails the request.
    fn note_local(
        &self,
        op: Op,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        principal: &str,
        outcome: Result<(), &KeyError>,
    ) -> Result<(), S3Error> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        log.record(&Event {
            op,
            provider: &wrapped.provider,
            key_id: Some(&wrapped.key_id),
            key_version: Some(wrapped.key_version),
            context: Some(context),
            principal: Some(principal),
            outcome,
        })
        .map_err(|e| {
            S3Error::new(
                "ServiceUnavailable",
                503,
                format!("the audit log cannot be written ({e}): the key is not used"),
            )
        })
    }

    /// The KMS-key provider as `principal` calls it (recorded under that principal when audited).
    fn kms_as<'a>(&'a self, principal: &'a str) -> Box<dyn KeyProvider + 'a> {
        match &self.audited {
            Some((kms, _)) => Box::new(kms.with_principal(principal)),
            None => Box::new(Arc::clone(&self.kms)),
        }
    }

    /// The SSE-S3 root's provider as `principal` calls it.
    fn s3_as<'a>(&'a self, principal: &'a str) -> Box<dyn KeyProvider + 'a> {
        match &self.audited {
            Some((_, s3)) => Box::new(s3.with_principal(principal)),
            None => Box::new(Arc::clone(&self.s3)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SseConfig {
        &self.config
    }

    /// The bucket keys' counters.
    pub fn bucket_key_stats(&self) -> BucketKeyStats {
        self.bucket_keys.stats()
    }

    /// Drops every cached bucket key (after disabling a KMS key, say: otherwise cached bucket keys
    /// keep serving until they expire, as S3's do).
    pub fn clear_bucket_keys(&self) {
        self.bucket_keys.clear();
    }

    /// Evaluates the bucket's policy on the raw request, before any SSE header is validated (as S3
    /// does: a PUT with `AES192` is denied by a policy, not refused as a bad header).
    ///
    /// # Errors
    ///
    /// 403 AccessDenied when an explicit Deny applies, or nothing allows and
    /// [`SseConfig::default_allow`] is false.
    pub fn authorize(
        &self,
        op: Operation,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
    ) -> Result<(), S3Error> {
        super::authorize::check_request(headers, ctx)?;
        super::authorize::authorize(op, headers, ctx, bucket, self.config.default_allow, &[])
    }

    /// [`SseEngine::authorize`] for a request on an upload in progress (UploadPart, UploadPartCopy,
    /// CompleteMultipartUpload): those requests carry no `x-amz-server-side-encryption` header, so
    /// the upload's own encryption fills the policy's SSE condition keys, and a policy requiring
    /// encryption does not refuse the parts of an encrypted upload.
    fn authorize_upload(
        &self,
        op: Operation,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
        upload: &ObjectMeta,
    ) -> Result<(), S3Error> {
        use super::policy::{KEY_SSE, KEY_SSE_CUSTOMER_ALGORITHM, KEY_SSE_KMS_KEY_ID};
        let arn = upload.keys.first().map(|w| self.key_arn(&w.key_id));
        let mut extra: Vec<(&str, &str)> = Vec::with_capacity(2);
        match upload.mode {
            SseMode::SseC => extra.push((KEY_SSE_CUSTOMER_ALGORITHM, "AES256")),
            SseMode::SseS3 | SseMode::SseKms | SseMode::DsseKms => {
                extra.push((KEY_SSE, upload.mode.s3_name()));
                if upload.mode != SseMode::SseS3
                    && let Some(a) = &arn
                {
                    extra.push((KEY_SSE_KMS_KEY_ID, a));
                }
            }
            _ => {}
        }
        super::authorize::check_request(headers, ctx)?;
        super::authorize::authorize(op, headers, ctx, bucket, self.config.default_allow, &extra)
    }

    /// Plans a write (PutObject, PostObject, CopyObject's target, CreateMultipartUpload): the
    /// policy, the headers, the mode (the request's, else the bucket's default, else SSE-S3), and a
    /// fresh data key per object wrapped as the mode says.
    ///
    /// # Errors
    ///
    /// The policy's 403, the headers' 400s, and the provider's errors as S3 reports them (400
    /// KMS.NotFoundException, KMS.DisabledException, KMS.KMSInvalidStateException; 503 when the key
    /// service is unreachable).
    pub fn plan_write(
        &self,
        op: Operation,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
    ) -> Result<WritePlan, S3Error> {
        if !matches!(
            op,
            Operation::PutObject
                | Operation::PostObject
                | Operation::CopyObject
                | Operation::CreateMultipartUpload
        ) {
            return Err(S3Error::internal(format!(
                "plan_write does not serve {}",
                op.name()
            )));
        }
        self.authorize(op, headers, ctx, bucket)?;
        let sse = SseHeaders::parse(headers, ctx.secure)?;
        self.write_keys(&sse, ctx, bucket)
    }

    fn write_keys(
        &self,
        sse: &SseHeaders,
        ctx: &RequestContext,
        bucket: &BucketConfig,
    ) -> Result<WritePlan, S3Error> {
        static S3_DEFAULT: std::sync::OnceLock<super::BucketEncryption> =
            std::sync::OnceLock::new();
        let default = bucket
            .encryption
            .as_ref()
            .unwrap_or_else(|| S3_DEFAULT.get_or_init(super::BucketEncryption::s3_default));
        let mut context = EncryptionContext::new();
        context
            .insert("aws:s3:arn", &ctx.object_arn())
            .map_err(|e| S3Error::invalid_argument(format!("object name: {e}")))?;
        if let Some(ck) = &sse.customer_key {
            let dek = DataKey::generate();
            let wrapped = ssec::wrap(ck, &dek, &context);
            self.note_local(
                Op::CustomerKeyWrap,
                &wrapped,
                &context,
                &ctx.principal,
                Ok(()),
            )?;
            let meta = ObjectMeta::new(SseMode::SseC, context, vec![wrapped]);
            let headers = self.response_headers_for(&meta, Some(ck), false);
            return Ok(WritePlan {
                meta,
                keys: ObjectKeys::one(dek),
                headers,
            });
        }
        let from_request = sse.algorithm.is_some();
        let algorithm = sse.algorithm.unwrap_or(default.algorithm);
        if algorithm == DefaultAlgorithm::Aes256 {
            self.ensure(0, &ctx.principal)?;
            let (dek, wrapped) = self
                .s3_as(&ctx.principal)
                .generate_data_key(SSE_S3_ROOT_KEY, &context)
                .map_err(|e| key_error(e, false, SSE_S3_ROOT_KEY))?;
            let meta = ObjectMeta::new(SseMode::SseS3, context, vec![wrapped]);
            let headers = self.response_headers_for(&meta, None, false);
            return Ok(WritePlan {
                meta,
                keys: ObjectKeys::one(dek),
                headers,
            });
        }
        // SSE-KMS or DSSE-KMS: the named key, else the bucket's default key (when the bucket's
        // default is a KMS mode), else aws/s3.
        let named = sse.kms_key_id.clone().or_else(|| {
            matches!(
                default.algorithm,
                DefaultAlgorithm::AwsKms | DefaultAlgorithm::AwsKmsDsse
            )
            .then(|| default.kms_key_id.clone())
            .flatten()
        });
        let key_id = self.resolve_kms_key(named.as_deref(), &ctx.principal)?;
        if let Some(user) = &sse.context {
            for (k, v) in user.iter() {
                context
                    .insert(k, v)
                    .map_err(|e| S3Error::invalid_argument(format!("encryption context: {e}")))?;
            }
        }
        let kms_box = self.kms_as(&ctx.principal);
        let kms = &*kms_box;
        let err = |e| key_error(e, true, named.as_deref().unwrap_or("alias/aws/s3"));
        if algorithm == DefaultAlgorithm::AwsKmsDsse {
            let (inner, w1) = kms.generate_data_key(&key_id, &context).map_err(err)?;
            let (outer, w2) = kms.generate_data_key(&key_id, &context).map_err(err)?;
            let meta = ObjectMeta::new(SseMode::DsseKms, context, vec![w1, w2]);
            let headers = self.response_headers_for(&meta, None, sse.context.is_some());
            return Ok(WritePlan {
                meta,
                keys: ObjectKeys {
                    inner,
                    outer: Some(outer),
                    salt: Mutex::new(None),
                },
                headers,
            });
        }
        // The bucket's flag applies to SSE-KMS writes that do not say otherwise (a default of
        // DSSE-KMS never uses bucket keys).
        let bucket_key = sse.bucket_key.unwrap_or(
            default.bucket_key_enabled
                && (default.algorithm == DefaultAlgorithm::AwsKms || from_request),
        );
        let (keys, wrapped) = if bucket_key {
            // The data key and the data's salt in one draw (a draw of up to 64 bytes costs one
            // system call, the same as the salt alone).
            let mut r = zeroize::Zeroizing::new([0u8; 32 + 24]);
            getrandom::fill(r.as_mut())
                .expect("the operating system's random number generator failed");
            let dek = DataKey::from_bytes(r[..32].try_into().expect("32 bytes"));
            let w = self
                .bucket_keys
                .wrap(
                    kms,
                    &key_id,
                    &ctx.bucket_arn(),
                    &ctx.principal,
                    &context,
                    &dek,
                )
                .map_err(err)?;
            self.note_local(Op::BucketKeyWrap, &w, &context, &ctx.principal, Ok(()))?;
            let keys = ObjectKeys {
                inner: dek,
                outer: None,
                salt: Mutex::new(Some(r[32..].try_into().expect("24 bytes"))),
            };
            (keys, w)
        } else {
            let (dek, w) = kms.generate_data_key(&key_id, &context).map_err(err)?;
            (ObjectKeys::one(dek), w)
        };
        let meta = ObjectMeta::new(SseMode::SseKms, context, vec![wrapped]);
        let headers = self.response_headers_for(&meta, None, sse.context.is_some());
        Ok(WritePlan {
            meta,
            keys,
            headers,
        })
    }

    /// Creates an engine-managed key on first use: 0 the SSE-S3 root, 1 the aws/s3 default.
    fn ensure(&self, which: usize, principal: &str) -> Result<(), S3Error> {
        if self.ensured.lock().unwrap_or_else(|p| p.into_inner())[which] {
            return Ok(());
        }
        let (provider, id, spec) = if which == 0 {
            (
                self.s3_as(principal),
                SSE_S3_ROOT_KEY,
                KeySpec {
                    id: Some(SSE_S3_ROOT_KEY.into()),
                    description: "ssekit SSE-S3 root key (engine-managed)".into(),
                    // KMS rotates every 90 days at the shortest: there the root gets 90.
                    rotation_period_days: Some(if self.s3.name() == "kms" {
                        self.config.sse_s3_rotation_days.max(90)
                    } else {
                        self.config.sse_s3_rotation_days
                    }),
                },
            )
        } else {
            (
                self.kms_as(principal),
                AWS_S3_DEFAULT_KEY,
                KeySpec {
                    id: Some(AWS_S3_DEFAULT_KEY.into()),
                    description: "ssekit default SSE-KMS key (S3's aws/s3)".into(),
                    rotation_period_days: Some(365),
                },
            )
        };
        let r = match provider.describe(id) {
            Err(KeyError::NotFound(_)) => match provider.create_key(&spec) {
                Err(KeyError::AlreadyExists(_)) => Ok(()),
                other => other.map(|_| ()),
            },
            other => other.map(|_| ()),
        };
        r.map_err(|e| key_error(e, which == 1, id))?;
        self.ensured.lock().unwrap_or_else(|p| p.into_inner())[which] = true;
        Ok(())
    }

    /// The provider's id for a KMS key as a request or a bucket names it (an id, `alias/NAME`, or an
    /// ARN of this engine's region and account); `None` is `aws/s3`.
    fn resolve_kms_key(&self, named: Option<&str>, principal: &str) -> Result<String, S3Error> {
        let Some(named) = named else {
            self.ensure(1, principal)?;
            return Ok(AWS_S3_DEFAULT_KEY.to_owned());
        };
        if named == "alias/aws/s3" || named.ends_with(":alias/aws/s3") {
            self.ensure(1, principal)?;
            return Ok(AWS_S3_DEFAULT_KEY.to_owned());
        }
        if names_engine_root(named) {
            // The SSE-S3 root is the engine's own: no request may use it as a customer key.
            return Err(S3Error::new(
                "KMS.NotFoundException",
                400,
                format!("Invalid keyId '{}'", quote(named)),
            ));
        }
        if self.kms.name() == "kms" {
            // AWS KMS resolves ids, aliases and ARNs itself.
            return Ok(named.to_owned());
        }
        let not_found = || {
            S3Error::new(
                "KMS.NotFoundException",
                400,
                format!("Invalid keyId '{}'", quote(named)),
            )
        };
        if let Some(rest) = named.strip_prefix("arn:aws:kms:") {
            let mut it = rest.splitn(3, ':');
            let (region, account, resource) = (it.next(), it.next(), it.next());
            if region != Some(self.config.region.as_str())
                || account != Some(self.config.account.as_str())
            {
                return Err(not_found());
            }
            let resource = resource.ok_or_else(not_found)?;
            return resource
                .strip_prefix("key/")
                .or_else(|| resource.strip_prefix("alias/"))
                .map(str::to_owned)
                .ok_or_else(not_found);
        }
        Ok(named.strip_prefix("alias/").unwrap_or(named).to_owned())
    }

    /// The full ARN of a provider's key id, as S3 echoes it.
    fn key_arn(&self, key_id: &str) -> String {
        if key_id.starts_with("arn:") {
            key_id.to_owned()
        } else {
            let mut arn = String::with_capacity(self.arn_prefix.len() + key_id.len());
            arn.push_str(&self.arn_prefix);
            arn.push_str(key_id);
            arn
        }
    }

    /// The SSE response headers S3 sends for a stored object: the mode, the KMS key ARN and the
    /// bucket-key flag, or for SSE-C the algorithm and the request's key MD5. `with_context` adds the
    /// encryption context (S3 returns it on writes that gave one).
    fn response_headers_for(
        &self,
        meta: &ObjectMeta,
        customer_key: Option<&CustomerKey>,
        with_context: bool,
    ) -> ResponseHeaders {
        let mut h = Vec::with_capacity(3);
        let mut push = |n: &'static str, v: String| h.push((n, v));
        match meta.mode {
            SseMode::SseS3 => push(headers::SSE, "AES256".into()),
            SseMode::SseKms | SseMode::DsseKms => {
                push(headers::SSE, meta.mode.s3_name().into());
                if let Some(w) = meta.keys.first() {
                    push(headers::KMS_KEY_ID, self.key_arn(&w.key_id));
                    if w.provider == bucket_key::PROVIDER {
                        push(headers::BUCKET_KEY, "true".into());
                    }
                }
                if with_context {
                    let map: serde_json::Map<String, serde_json::Value> = meta
                        .context
                        .iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                        .collect();
                    push(
                        headers::CONTEXT,
                        BASE64.encode(serde_json::Value::Object(map).to_string()),
                    );
                }
            }
            SseMode::SseC => {
                push(headers::C_ALGORITHM, "AES256".into());
                if let Some(ck) = customer_key {
                    push(
                        "x-amz-server-side-encryption-customer-key-MD5",
                        ck.md5.clone(),
                    );
                }
            }
            _ => {}
        }
        h
    }

    /// Plans a read of a stored object: GetObject (the data keys unwrapped, ready to open) or
    /// HeadObject (the SSE-C key checked, nothing unwrapped). `meta` is the object's stored metadata.
    ///
    /// # Errors
    ///
    /// The policy's 403; 400 InvalidArgument for `x-amz-server-side-encryption*` headers; SSE-C: 400
    /// InvalidRequest without the key (or with one for an object that has none), 403 AccessDenied
    /// for a wrong one; the provider's errors; 500 InternalError for metadata that does not open.
    pub fn plan_read(
        &self,
        op: Operation,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
        meta: &ObjectMeta,
    ) -> Result<ReadPlan, S3Error> {
        if !matches!(op, Operation::GetObject | Operation::HeadObject) {
            return Err(S3Error::internal(format!(
                "plan_read does not serve {}",
                op.name()
            )));
        }
        self.authorize(op, headers, ctx, bucket)?;
        if headers.has_sse_or_kms() {
            return Err(S3Error::invalid_argument(format!(
                "{} does not take x-amz-server-side-encryption headers: the object's own encryption is used",
                op.name()
            )));
        }
        let ck = customer_key_group(
            headers,
            [headers::C_ALGORITHM, headers::C_KEY, headers::C_KEY_MD5],
            ctx.secure,
        )?;
        let mut plan = self.read_keys(op == Operation::GetObject, ck.as_ref(), ctx, meta, false)?;
        if op == Operation::HeadObject {
            // An SSE-C HEAD unwrapped the data key to check the customer's key; it opens nothing.
            plan.keys = None;
        }
        Ok(plan)
    }

    /// Plans a CopyObject: the source's read (its SSE-C key from the
    /// `x-amz-copy-source-server-side-encryption-customer-*` headers) and the target's write (the
    /// request's mode, else the target bucket's default: the source's mode is not kept).
    ///
    /// # Errors
    ///
    /// As [`SseEngine::plan_read`] for the source and [`SseEngine::plan_write`] for the target.
    pub fn plan_copy(
        &self,
        headers: &Headers,
        target: &RequestContext,
        target_bucket: &BucketConfig,
        source: CopySource<'_>,
    ) -> Result<(ReadPlan, WritePlan), S3Error> {
        self.authorize(Operation::CopyObject, headers, target, target_bucket)?;
        self.authorize_source(&source)?;
        let sse = SseHeaders::parse(headers, target.secure)?;
        let read = self.read_keys(
            true,
            sse.copy_source_key.as_ref(),
            source.ctx,
            source.meta,
            true,
        )?;
        let write = self.write_keys(&sse, target, target_bucket)?;
        Ok((read, write))
    }

    /// A copy reads its source: the source bucket's policy must allow `s3:GetObject` on it.
    fn authorize_source(&self, source: &CopySource<'_>) -> Result<(), S3Error> {
        self.authorize(
            Operation::GetObject,
            &Headers::new(),
            source.ctx,
            source.bucket,
        )
    }

    fn read_keys(
        &self,
        unwrap: bool,
        ck: Option<&CustomerKey>,
        ctx: &RequestContext,
        meta: &ObjectMeta,
        copy_source: bool,
    ) -> Result<ReadPlan, S3Error> {
        check_name(meta, ctx)?;
        let keys = match meta.mode {
            SseMode::SseC => {
                let Some(ck) = ck else {
                    return Err(S3Error::invalid_request(if copy_source {
                        "The source object of the COPY operation is encrypted with a customer-provided key: give it in the x-amz-copy-source-server-side-encryption-customer-* headers."
                    } else {
                        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                    }));
                };
                Some(self.ssec_keys(
                    ck,
                    meta,
                    &ctx.principal,
                    S3Error::access_denied("Access Denied"),
                )?)
            }
            _ if ck.is_some() => {
                return Err(S3Error::invalid_request(
                    "The encryption parameters are not applicable to this object.",
                ));
            }
            _ if !unwrap => None,
            _ => Some(self.unwrap_keys(ctx, meta)?),
        };
        Ok(ReadPlan {
            headers: self.response_headers_for(meta, ck, false),
            meta: meta.clone(),
            keys,
        })
    }

    fn ssec_keys(
        &self,
        ck: &CustomerKey,
        meta: &ObjectMeta,
        principal: &str,
        wrong: S3Error,
    ) -> Result<ObjectKeys, S3Error> {
        let [w] = meta.keys.as_slice() else {
            return Err(S3Error::internal(
                "the object's metadata holds no SSE-C key record",
            ));
        };
        let r = ssec::unwrap(ck, w, &meta.context);
        let failed = match &r {
            Ok(_) => None,
            Err(ssec::SsecError::WrongKey) => Some(KeyError::UnwrapFailed),
            Err(ssec::SsecError::Corrupt) => {
                Some(KeyError::Corrupt("the SSE-C key record is damaged".into()))
            }
        };
        self.note_local(
            Op::CustomerKeyUnwrap,
            w,
            &meta.context,
            principal,
            failed.as_ref().map_or(Ok(()), Err),
        )?;
        match r {
            Ok(inner) => Ok(ObjectKeys::one(inner)),
            Err(ssec::SsecError::WrongKey) => Err(wrong),
            Err(ssec::SsecError::Corrupt) => Err(S3Error::internal(
                "the object's SSE-C key record is damaged",
            )),
        }
    }

    /// Unwraps an SSE-S3, SSE-KMS or DSSE-KMS object's data key(s).
    fn unwrap_keys(&self, ctx: &RequestContext, meta: &ObjectMeta) -> Result<ObjectKeys, S3Error> {
        let (kms_p, s3_p) = (self.kms_as(&ctx.principal), self.s3_as(&ctx.principal));
        let one = |w: &WrappedKey, kms: bool| -> Result<DataKey, S3Error> {
            let provider: &dyn KeyProvider = if kms { &*kms_p } else { &*s3_p };
            let r = if w.provider == bucket_key::PROVIDER {
                let r = self.bucket_keys.unwrap(
                    provider,
                    w,
                    &ctx.bucket_arn(),
                    &ctx.principal,
                    &meta.context,
                );
                self.note_local(
                    Op::BucketKeyUnwrap,
                    w,
                    &meta.context,
                    &ctx.principal,
                    r.as_ref().map(|_| ()),
                )?;
                r
            } else {
                w.expect_provider(provider.name())
                    .and_then(|()| provider.unwrap(w, &meta.context))
            };
            r.map_err(|e| key_error(e, kms, &self.key_arn(&w.key_id)))
        };
        match (meta.mode, meta.keys.as_slice()) {
            (SseMode::SseS3, [w]) => Ok(ObjectKeys::one(one(w, false)?)),
            (SseMode::SseKms, [w]) => Ok(ObjectKeys::one(one(w, true)?)),
            (SseMode::DsseKms, [w1, w2]) => Ok(ObjectKeys {
                inner: one(w1, true)?,
                outer: Some(one(w2, true)?),
                salt: Mutex::new(None),
            }),
            (SseMode::Client, _) => Err(S3Error::invalid_request(
                "the object was encrypted by its client: the server cannot open it",
            )),
            _ => Err(S3Error::internal(
                "the object's metadata does not hold the keys its mode needs",
            )),
        }
    }

    /// Plans an UploadPart of the upload whose stored metadata (from
    /// [`WritePlan::upload_meta`]) is `upload`: an SSE-C upload's part must carry the upload's key.
    ///
    /// # Errors
    ///
    /// The policy's 403; 400 InvalidArgument for a part number outside 1..=10000 or
    /// `x-amz-server-side-encryption*` headers; SSE-C: 400 InvalidRequest for a missing or different
    /// key; the provider's errors.
    pub fn plan_part(
        &self,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
        upload: &ObjectMeta,
        part: u32,
    ) -> Result<PartPlan, S3Error> {
        self.authorize_upload(Operation::UploadPart, headers, ctx, bucket, upload)?;
        self.part_keys(headers, ctx, upload, part)
    }

    fn part_keys(
        &self,
        headers: &Headers,
        ctx: &RequestContext,
        upload: &ObjectMeta,
        part: u32,
    ) -> Result<PartPlan, S3Error> {
        if part == 0 || part > MAX_PART_NUMBER {
            return Err(S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            ));
        }
        let (ck, keys) = self.upload_request_keys("UploadPart", headers, ctx, upload)?;
        Ok(PartPlan {
            part,
            headers: self.response_headers_for(upload, ck.as_ref(), false),
            keys,
        })
    }

    /// The keys of a request on an upload in progress (`op`: UploadPart, CompleteMultipartUpload),
    /// which takes no `x-amz-server-side-encryption*` header and, for an SSE-C upload, the upload's key.
    fn upload_request_keys(
        &self,
        op: &str,
        headers: &Headers,
        ctx: &RequestContext,
        upload: &ObjectMeta,
    ) -> Result<(Option<CustomerKey>, ObjectKeys), S3Error> {
        if headers.has_sse_or_kms() {
            return Err(S3Error::invalid_argument(format!(
                "{op} does not take x-amz-server-side-encryption headers: the upload's encryption is used"
            )));
        }
        let ck = customer_key_group(
            headers,
            [headers::C_ALGORITHM, headers::C_KEY, headers::C_KEY_MD5],
            ctx.secure,
        )?;
        let keys = self.upload_keys(ck.as_ref(), ctx, upload)?;
        Ok((ck, keys))
    }

    fn upload_keys(
        &self,
        ck: Option<&CustomerKey>,
        ctx: &RequestContext,
        upload: &ObjectMeta,
    ) -> Result<ObjectKeys, S3Error> {
        check_name(upload, ctx)?;
        match (upload.mode, ck) {
            (SseMode::SseC, None) => Err(S3Error::invalid_request(
                "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.",
            )),
            (SseMode::SseC, Some(ck)) => self.ssec_keys(
                ck,
                upload,
                &ctx.principal,
                S3Error::invalid_request(
                    "The provided encryption parameters did not match the ones used originally.",
                ),
            ),
            (_, Some(_)) => Err(S3Error::invalid_request(
                "The multipart upload initiate did not request encryption with a customer-provided key: the part must not carry one.",
            )),
            (_, None) => self.unwrap_keys(ctx, upload),
        }
    }

    /// Plans an UploadPartCopy: the source's read and the part's seal.
    ///
    /// # Errors
    ///
    /// As [`SseEngine::plan_copy`] for the source and [`SseEngine::plan_part`] for the part.
    pub fn plan_part_copy(
        &self,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
        upload: &ObjectMeta,
        part: u32,
        source: CopySource<'_>,
    ) -> Result<(ReadPlan, PartPlan), S3Error> {
        self.authorize_upload(Operation::UploadPartCopy, headers, ctx, bucket, upload)?;
        self.authorize_source(&source)?;
        let src_key = customer_key_group(
            headers,
            [
                headers::SRC_C_ALGORITHM,
                headers::SRC_C_KEY,
                headers::SRC_C_KEY_MD5,
            ],
            ctx.secure,
        )?;
        let read = self.read_keys(true, src_key.as_ref(), source.ctx, source.meta, true)?;
        let part = self.part_keys(headers, ctx, upload, part)?;
        Ok((read, part))
    }

    /// CompleteMultipartUpload: writes the part table (ascending part numbers, each part's plaintext
    /// size) into the upload's metadata and authenticates it. An SSE-C upload needs its key here
    /// too: the metadata's MAC is under the data key.
    ///
    /// # Errors
    ///
    /// The policy's 403; 400 InvalidPartOrder, MalformedXML (no parts), EntityTooLarge; SSE-C as
    /// [`SseEngine::plan_part`]; the provider's errors.
    pub fn complete(
        &self,
        headers: &Headers,
        ctx: &RequestContext,
        bucket: &BucketConfig,
        upload: &ObjectMeta,
        parts: &[PartEntry],
    ) -> Result<(ObjectMeta, ResponseHeaders), S3Error> {
        self.authorize_upload(
            Operation::CompleteMultipartUpload,
            headers,
            ctx,
            bucket,
            upload,
        )?;
        let size = check_parts(parts)?;
        let (ck, keys) =
            self.upload_request_keys("CompleteMultipartUpload", headers, ctx, upload)?;
        let mut meta = upload.clone();
        meta.parts = parts.to_vec();
        meta.size = size;
        meta.authenticate(&keys.inner)
            .map_err(|e| S3Error::internal(format!("bad upload metadata: {e}")))?;
        let headers = self.response_headers_for(&meta, ck.as_ref(), false);
        Ok((meta, headers))
    }

    /// The SSE response headers for a stored object (HEAD and GET give the same; for SSE-C, pass
    /// the request's key to echo its MD5).
    pub fn response_headers(
        &self,
        meta: &ObjectMeta,
        customer_key: Option<&CustomerKey>,
    ) -> ResponseHeaders {
        self.response_headers_for(meta, customer_key, false)
    }
}

impl WritePlan {
    /// The mode chosen.
    pub fn mode(&self) -> SseMode {
        self.meta.mode
    }

    /// The metadata so far (for CreateMultipartUpload, what to store with the upload; not yet
    /// authenticated).
    pub fn upload_meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The response headers for this write.
    pub fn response_headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The stored size of a body of `plaintext_len` bytes under this plan.
    pub fn stored_len(&self, plaintext_len: u64) -> u64 {
        self.keys.stored_len(plaintext_len)
    }

    /// Seals a single-part object's body.
    ///
    /// # Errors
    ///
    /// 400 EntityTooLarge past the format's limit.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, S3Error> {
        self.keys.seal_part(0, plaintext).map(|(m, _)| m)
    }

    /// The metadata of the single-part object of `size` bytes sealed by [`WritePlan::seal`],
    /// authenticated: what to store beside the data.
    ///
    /// # Errors
    ///
    /// 400 EntityTooLarge past the format's limit.
    pub fn finish(mut self, size: u64) -> Result<ObjectMeta, S3Error> {
        self.meta.size = size;
        self.meta.parts.clear();
        self.meta
            .authenticate(&self.keys.inner)
            .map_err(|e| S3Error::new("EntityTooLarge", 400, e.to_string()))?;
        Ok(self.meta)
    }

    /// A streaming writer of part `part` (0 for a single-part object) into `out`; memory stays
    /// bounded whatever the size.
    ///
    /// # Errors
    ///
    /// 400 InvalidArgument for a part number over 10000; `out`'s write error as 500.
    pub fn part_writer<W: Write>(&self, out: W, part: u32) -> Result<ObjectWriter<W>, S3Error> {
        if part > MAX_PART_NUMBER {
            return Err(S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            ));
        }
        match &self.keys.outer {
            None => SealWriter::new_part(out, &self.keys.inner, part)
                .map(|w| ObjectWriter::One(Box::new(w))),
            Some(outer) => object::layered_writer(out, &self.keys.inner, outer, part)
                .map(|w| ObjectWriter::Two(Box::new(w))),
        }
        .map_err(object_error)
    }

    /// The metadata of a multipart object sealed part by part with [`WritePlan::part_writer`] (the
    /// part table in ascending order), authenticated.
    ///
    /// # Errors
    ///
    /// 400 InvalidPartOrder, EntityTooLarge.
    pub fn finish_parts(mut self, parts: Vec<PartEntry>) -> Result<ObjectMeta, S3Error> {
        self.meta.size = check_parts(&parts)?;
        self.meta.parts = parts;
        self.meta
            .authenticate(&self.keys.inner)
            .map_err(|e| S3Error::new("EntityTooLarge", 400, e.to_string()))?;
        Ok(self.meta)
    }

    /// [`WritePlan::seal`] and [`WritePlan::finish`] in one: the stored data and its metadata.
    ///
    /// # Errors
    ///
    /// As [`WritePlan::seal`].
    pub fn seal_object(self, plaintext: &[u8]) -> Result<(Vec<u8>, ObjectMeta), S3Error> {
        let data = self.seal(plaintext)?;
        Ok((data, self.finish(plaintext.len() as u64)?))
    }
}

impl ReadPlan {
    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The object's plaintext size, as clients see it (the metadata's; authenticated once opened).
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    /// The SSE response headers.
    pub fn response_headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    pub(super) fn keys(&self) -> Result<&ObjectKeys, S3Error> {
        self.keys
            .as_ref()
            .ok_or_else(|| S3Error::internal("a HEAD plan opens nothing"))
    }

    /// Opens the whole stored object (every part).
    ///
    /// # Errors
    ///
    /// 500 InternalError when the metadata or data does not authenticate.
    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(&keys.inner).map_err(object_error)?;
        match &keys.outer {
            None => v.open(stored),
            Some(outer) => v.open_layered(outer, stored),
        }
        .map_err(object_error)
    }

    /// Opens one part's stored data (GET with `partNumber`).
    ///
    /// # Errors
    ///
    /// 400 InvalidPartNumber for a part the object does not have; as [`ReadPlan::open`].
    pub fn open_part(&self, part: u32, stored: &[u8]) -> Result<Vec<u8>, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(&keys.inner).map_err(object_error)?;
        v.part_size(part).map_err(|_| {
            S3Error::new(
                "InvalidPartNumber",
                416,
                "The requested partnumber is not satisfiable",
            )
        })?;
        match &keys.outer {
            None => v.open_part(part, stored),
            Some(outer) => v.open_layered_part(outer, part, stored),
        }
        .map_err(object_error)
    }

    /// A streaming reader of part `part`'s stored data (0: a single-part object), reading exactly
    /// the part's authenticated stored length from `src`.
    ///
    /// # Errors
    ///
    /// 500 InternalError when the metadata does not verify or the part is not in it.
    pub fn part_reader<R: Read>(&self, src: R, part: u32) -> Result<ObjectReader<R>, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(&keys.inner).map_err(object_error)?;
        match &keys.outer {
            None => v
                .part_reader(src, part)
                .map(|r| ObjectReader::One(Box::new(r))),
            Some(outer) => v
                .layered_part_reader(src, outer, part)
                .map(|r| ObjectReader::Two(Box::new(r))),
        }
        .map_err(object_error)
    }

    /// The stored length of part `part` (0: a single-part object) in the object's layers.
    ///
    /// # Errors
    ///
    /// 500 InternalError when the part is not in the metadata.
    pub fn stored_part_len(&self, part: u32) -> Result<u64, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(&keys.inner).map_err(object_error)?;
        let size = v.part_size(part).map_err(object_error)?;
        if keys.outer.is_some() {
            object::checked_layered_len(size)
        } else {
            object::checked_sealed_len(size)
        }
        .map_err(object_error)
    }

    /// Opens only the chunks (of both layers, for DSSE-KMS) a range needs, reading them from
    /// `source`, the object's stored data of `stored_len` bytes.
    ///
    /// # Errors
    ///
    /// 416 InvalidRange for a range past the end; as [`ReadPlan::open`].
    pub fn open_range<S: ReadAt + ?Sized>(
        &self,
        stored_len: u64,
        range: ByteRange,
        source: &S,
    ) -> Result<RangeRead, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(&keys.inner).map_err(object_error)?;
        match &keys.outer {
            None => v.open_range(stored_len, range, source),
            Some(outer) => v.open_range_layered(outer, stored_len, range, source),
        }
        .map_err(object_error)
    }
}

impl PartPlan {
    /// The part number.
    pub fn part(&self) -> u32 {
        self.part
    }

    /// The response headers for this UploadPart.
    pub fn response_headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The stored size of a part of `plaintext_len` bytes.
    pub fn stored_len(&self, plaintext_len: u64) -> u64 {
        self.keys.stored_len(plaintext_len)
    }

    /// Seals the part's body, with a fresh salt (a re-uploaded part never repeats a key and nonce);
    /// returns the stored bytes and the part's row for [`SseEngine::complete`], which names this
    /// upload of the part by its salt (another upload of the same number does not open in its
    /// place). A server keeps the row with the part, as S3 keeps its ETag.
    ///
    /// # Errors
    ///
    /// 400 EntityTooLarge past the format's limit.
    pub fn seal(&self, plaintext: &[u8]) -> Result<(Vec<u8>, PartEntry), S3Error> {
        let (data, salt) = self.keys.seal_part(self.part, plaintext)?;
        let entry = PartEntry {
            number: self.part,
            size: plaintext.len() as u64,
            salt,
        };
        Ok((data, entry))
    }
}

/// Checks a part table as CompleteMultipartUpload does; returns the object's size.
fn check_parts(parts: &[PartEntry]) -> Result<u64, S3Error> {
    if parts.is_empty() {
        return Err(S3Error::new(
            "MalformedXML",
            400,
            "The XML you provided was not well-formed or did not validate against our published schema: at least one part is needed",
        ));
    }
    if parts.windows(2).any(|w| w[0].number >= w[1].number)
        || parts
            .iter()
            .any(|p| p.number == 0 || p.number > MAX_PART_NUMBER)
    {
        return Err(S3Error::new(
            "InvalidPartOrder",
            400,
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
        ));
    }
    parts
        .iter()
        .try_fold(0u64, |a, p| a.checked_add(p.size))
        .filter(|&s| s <= object::MAX_OBJECT_SIZE)
        .ok_or_else(|| {
            S3Error::new(
                "EntityTooLarge",
                400,
                "Your proposed upload exceeds the maximum allowed object size.",
            )
        })
}

/// True when a KMS key id, in any of its forms (id, `alias/NAME`, key or alias ARN), names the
/// engine's SSE-S3 root key.
pub(crate) fn names_engine_root(named: &str) -> bool {
    let last = named.rsplit([':', '/']).next().unwrap_or(named);
    last == SSE_S3_ROOT_KEY
}

/// The metadata's (authenticated) context names the object it was written for: metadata moved to
/// another name, or swapped between two objects by someone who can write the store, does not open
/// under the name asked for.
fn check_name(meta: &ObjectMeta, ctx: &RequestContext) -> Result<(), S3Error> {
    match meta.context.get("aws:s3:arn") {
        Some(arn) if arn != ctx.object_arn() => Err(S3Error::internal(format!(
            "the stored metadata belongs to another object (`{}`): it was moved or swapped in the store",
            quote(arn)
        ))),
        _ => Ok(()),
    }
}

/// A provider's error as S3 reports it. `kms`: the key is a customer's KMS key (SSE-KMS, DSSE-KMS),
/// whose state errors S3 passes on; an SSE-S3 root key's are the server's own fault.
fn key_error(e: KeyError, kms: bool, key: &str) -> S3Error {
    let key = quote(key);
    match e {
        // `Audited`'s refusal: the call's line could not be written, so the key was not used.
        KeyError::Io(m) if m.starts_with("audit log: ") => S3Error::new(
            "ServiceUnavailable",
            503,
            format!("the audit log cannot be written, the key is not used: {m}"),
        ),
        KeyError::Unavailable { .. } | KeyError::Device { .. } => S3Error::new(
            "ServiceUnavailable",
            503,
            format!("the key service is unavailable, retry later: {e}"),
        ),
        KeyError::NotFound(_) | KeyError::Malformed(_) if kms => S3Error::new(
            "KMS.NotFoundException",
            400,
            format!("Invalid keyId '{key}'"),
        ),
        KeyError::Disabled(_) if kms => S3Error::new(
            "KMS.DisabledException",
            400,
            format!("The KMS key '{key}' is disabled."),
        ),
        KeyError::PendingDeletion { .. }
        | KeyError::Destroyed(_)
        | KeyError::InvalidState { .. }
            if kms =>
        {
            S3Error::new(
                "KMS.KMSInvalidStateException",
                400,
                format!("The KMS key '{key}' is not in a usable state: {e}"),
            )
        }
        other => S3Error::internal(format!("the object's keys failed: {other}")),
    }
}

/// An object-format error as S3 reports it: a range past the end is the client's (416), a body too
/// large for the format is the client's (400), anything else is the stored object's fault (500).
pub(crate) fn object_error(e: object::Error) -> S3Error {
    let cause = Some(e.clone());
    let e = match e {
        object::Error::RangeNotSatisfiable { .. } => S3Error::new(
            "InvalidRange",
            416,
            "The requested range is not satisfiable",
        ),
        object::Error::TooLarge => S3Error::new(
            "EntityTooLarge",
            400,
            "Your proposed upload exceeds the maximum allowed object size.",
        ),
        other => S3Error::internal(format!("the stored object does not open: {other}")),
    };
    S3Error { cause, ..e }
}
