//! The CLI's S3 flags (`--sse`, `--kms-key-id`, `--bucket-key`, `--sse-c-key-file`, `--bucket`,
//! `--object`): turned into S3 request headers and served by `ssekit::engine::sse`, so `put`, `get`
//! and `inspect` answer as S3 would (the same modes, the same errors).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::providers::Providers;
use ssekit::engine::sse::{
    self, BucketConfig, CustomerKey, Headers, Operation, RequestContext, S3Error, SseEngine,
};
use ssekit::keys::{EncryptionContext, KeyProvider};
use ssekit::object::ObjectMeta;

/// The bucket a `put` names when `--bucket` is not given.
pub const DEFAULT_BUCKET: &str = "local";

/// S3 encryption flags, shared by `put`, `get` and `inspect`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SseFlags {
    /// Server-side encryption mode, as S3's x-amz-server-side-encryption header: AES256 (SSE-S3),
    /// aws:kms (SSE-KMS) or aws:kms:dsse (DSSE-KMS). On get and inspect S3 refuses it, and so do we.
    #[arg(long, value_name = "MODE")]
    pub sse: Option<String>,
    /// The KMS key of aws:kms or aws:kms:dsse: an id, alias/NAME or a key ARN (default: the engine's
    /// aws/s3 key).
    #[arg(long, value_name = "ID")]
    pub kms_key_id: Option<String>,
    /// Use an S3 Bucket Key (aws:kms only).
    #[arg(long)]
    pub bucket_key: bool,
    /// SSE-C: the customer's key, a file of 32 raw bytes or their base64. Never stored.
    #[arg(long, value_name = "FILE")]
    pub sse_c_key_file: Option<PathBuf>,
    /// The bucket the object is in (its name goes into the encryption context); default `local`.
    #[arg(long)]
    pub bucket: Option<String>,
    /// The object's key in the bucket; default: the output file's name (put), or the name the object
    /// was sealed under (get, inspect).
    #[arg(long)]
    pub object: Option<String>,
}

impl SseFlags {
    /// True when any S3 flag was given.
    pub fn any(&self) -> bool {
        self.sse.is_some()
            || self.kms_key_id.is_some()
            || self.bucket_key
            || self.sse_c_key_file.is_some()
            || self.bucket.is_some()
            || self.object.is_some()
    }

    /// The request headers these flags stand for, with the caller's context pairs as S3's
    /// `…-context` header.
    pub fn headers(&self, context: &EncryptionContext) -> Result<Headers, String> {
        let mut h = Headers::new();
        if let Some(m) = &self.sse {
            h.insert("x-amz-server-side-encryption", m);
        }
        if let Some(id) = &self.kms_key_id {
            h.insert("x-amz-server-side-encryption-aws-kms-key-id", id);
        }
        if self.bucket_key {
            h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
        }
        if !context.is_empty() {
            let map: serde_json::Map<String, serde_json::Value> = context
                .iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect();
            h.insert(
                "x-amz-server-side-encryption-context",
                &B64.encode(serde_json::Value::Object(map).to_string()),
            );
        }
        if let Some(path) = &self.sse_c_key_file {
            for (n, v) in read_customer_key(path)?.headers() {
                h.insert(n, &v);
            }
        }
        Ok(h)
    }
}

/// An SSE-C key file: 32 raw bytes, or the base64 of 32 bytes (surrounding whitespace ignored). Only
/// a regular file, readable by its owner alone, of at most 64 bytes: a key others can read is not a
/// secret, and a FIFO or a device would block or never end.
fn read_customer_key(path: &std::path::Path) -> Result<CustomerKey, String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let name = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("--sse-c-key-file {name}: {e}"))?;
    let m = f
        .metadata()
        .map_err(|e| format!("--sse-c-key-file {name}: {e}"))?;
    if !m.is_file() {
        return Err(format!("--sse-c-key-file {name}: not a regular file"));
    }
    if m.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "--sse-c-key-file {name}: readable or writable by others; run `chmod 600 {name}`"
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(65));
    f.take(65)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("--sse-c-key-file {name}: {e}"))?;
    if let Ok(raw) = <&[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(CustomerKey::from_bytes(raw));
    }
    let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
    let decoded = Zeroizing::new(B64.decode(text).unwrap_or_default());
    <&[u8; 32]>::try_from(decoded.as_slice())
        .map(CustomerKey::from_bytes)
        .map_err(|_| format!("--sse-c-key-file {name}: must hold 32 raw bytes or their base64"))
}

/// The principal the CLI acts as: the local user.
pub fn principal() -> String {
    format!("local:uid:{}", ssekit::keys::home::euid())
}

/// An S3 error as one line.
pub fn s3(e: S3Error) -> String {
    e.to_string()
}

/// True when the object was written through the S3 layer (its context names its S3 ARN, or its keys
/// are SSE-C's or a bucket key's): it opens only through that layer.
pub fn is_s3_object(meta: &ObjectMeta) -> bool {
    meta.context.get("aws:s3:arn").is_some()
        || meta
            .keys
            .iter()
            .any(|k| k.provider == "sse-c" || k.provider == sse::bucket_key::PROVIDER)
}

/// The request context of a `put`: `--bucket`, `--object` (default: the output's file name).
pub fn put_context(flags: &SseFlags, output: &str) -> RequestContext {
    let object = flags.object.clone().unwrap_or_else(|| {
        std::path::Path::new(output)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "object".into())
    });
    RequestContext::new(flags.bucket.as_deref().unwrap_or(DEFAULT_BUCKET), &object)
        .principal(&principal())
        // Nothing crosses a network: the key file is read from the user's own disk.
        .secure(true)
}

/// The request context of a read: the bucket and object the metadata was sealed under (from its
/// `aws:s3:arn`), unless `--bucket`/`--object` say otherwise.
pub fn read_context(flags: &SseFlags, meta: &ObjectMeta) -> RequestContext {
    let arn = meta
        .context
        .get("aws:s3:arn")
        .and_then(|a| a.strip_prefix("arn:aws:s3:::"))
        .unwrap_or("");
    let (bucket, key) = arn.split_once('/').unwrap_or((DEFAULT_BUCKET, ""));
    RequestContext::new(
        flags.bucket.as_deref().unwrap_or(bucket),
        flags.object.as_deref().unwrap_or(key),
    )
    .principal(&principal())
    .secure(true)
}

/// An engine over the chosen provider (for writes), recording to the audit log with the user as
/// principal.
pub fn write_engine(ps: &Providers) -> Result<SseEngine, String> {
    let (provider, log) = ps.for_s3(None)?;
    Ok(SseEngine::new(provider).with_audit(log))
}

/// An engine over the provider that wrapped the object's keys (for reads).
pub fn read_engine(ps: &Providers, meta: &ObjectMeta) -> Result<SseEngine, String> {
    let (provider, log): (Arc<dyn KeyProvider>, _) = match meta.keys.first() {
        Some(k) if k.provider == sse::bucket_key::PROVIDER => {
            let inner = sse::bucket_key::BucketKeys::inner(k).map_err(|e| e.to_string())?;
            ps.for_s3(Some(&inner.provider))?
        }
        Some(k) if k.provider != "sse-c" => ps.for_s3(Some(&k.provider))?,
        _ => ps.for_s3(None)?,
    };
    Ok(SseEngine::new(provider).with_audit(log))
}

/// Plans the write of a `put`.
pub fn plan_put(
    ps: &Providers,
    flags: &SseFlags,
    context: &EncryptionContext,
    output: &str,
) -> Result<sse::WritePlan, String> {
    let engine = write_engine(ps)?;
    engine
        .plan_write(
            Operation::PutObject,
            &flags.headers(context)?,
            &put_context(flags, output),
            &BucketConfig::default(),
        )
        .map_err(s3)
}

/// Plans a GET (or, for `inspect`, a HEAD) of an S3-layer object.
pub fn plan_read(
    ps: &Providers,
    flags: &SseFlags,
    meta: &ObjectMeta,
    op: Operation,
) -> Result<sse::ReadPlan, String> {
    let engine = read_engine(ps, meta)?;
    engine
        .plan_read(
            op,
            &flags.headers(&EncryptionContext::new())?,
            &read_context(flags, meta),
            &BucketConfig::default(),
            meta,
        )
        .map_err(s3)
}
