//! S3 server-side encryption semantics, independent of any HTTP crate: a storage server calls this
//! layer on every PUT, GET, HEAD, COPY and multipart request and behaves as Amazon S3 does, header for
//! header and error for error (docs/S3.md records each answer and where we had to choose).
//!
//! - In: the request's [`Headers`], the [`Operation`], a [`RequestContext`] (bucket, object key,
//!   principal, TLS or not) and the bucket's [`BucketConfig`] (default encryption, policy).
//! - Out: a typed plan ([`WritePlan`], [`ReadPlan`], [`PartPlan`]) that seals or opens the object's
//!   data, or an [`S3Error`] with S3's code, HTTP status and message; and the response headers S3
//!   returns for that operation.
//! - Modes: SSE-S3 (`AES256`, a data key wrapped under an engine-owned root key rotated every 30
//!   days), SSE-KMS (`aws:kms`, a named key, the bucket's, or the engine-managed `aws/s3` default),
//!   DSSE-KMS (`aws:kms:dsse`, two layers, two data keys, the outer one on another AES-GCM
//!   implementation) and SSE-C (the customer's key wraps a fresh data key and is never stored).
//! - S3 Bucket Keys ([`bucket_key`]): a bucket-level key from the provider, cached per requester for a
//!   bounded time, under which each object's own fresh data key is wrapped locally.
//! - Bucket policies ([`policy`]): evaluated on the raw request before its SSE headers are validated.
//!
//! ```
//! use std::sync::Arc;
//! use ssekit_engine::keys::LocalKeyring;
//! use ssekit_engine::sse::{BucketConfig, Headers, Operation, RequestContext, SseEngine};
//!
//! let home = tempfile::tempdir().unwrap();
//! let engine = SseEngine::new(Arc::new(LocalKeyring::open(home.path().join("keys")).unwrap()));
//! let ctx = RequestContext::new("photos", "cat.jpg").principal("arn:aws:iam::111122223333:user/alice").secure(true);
//! let bucket = BucketConfig::default();
//!
//! let put = Headers::from_pairs([("x-amz-server-side-encryption", "aws:kms")]);
//! let plan = engine.plan_write(Operation::PutObject, &put, &ctx, &bucket).unwrap();
//! let (stored, meta) = plan.seal_object(b"meow").unwrap();
//!
//! let get = engine.plan_read(Operation::GetObject, &Headers::new(), &ctx, &BucketConfig::default(), &meta).unwrap();
//! assert_eq!(get.open(&stored).unwrap(), b"meow");
//! assert_eq!(get.response_headers()[0], ("x-amz-server-side-encryption", "aws:kms".to_owned()));
//! ```

use std::fmt;

pub(crate) mod authorize;
pub mod bucket_key;
mod config;
mod engine;
mod headers;
pub mod policy;
mod ssec;
mod stream;

pub use authorize::evaluate_policy;
pub use config::{BucketConfig, BucketEncryption, DefaultAlgorithm};
pub use engine::{
    AWS_S3_DEFAULT_KEY, CopySource, ObjectKeys, ObjectReader, ObjectWriter, PartPlan, ReadPlan,
    ResponseHeaders, SSE_S3_ROOT_KEY, SseConfig, SseEngine, WritePlan,
};
pub use headers::{CustomerKey, Headers, SseHeaders, parse_range_header};
pub use stream::{PartOpener, PartSealer, RangeFetches};

/// The S3 request being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `PUT /bucket/key`.
    PutObject,
    /// `GET /bucket/key`.
    GetObject,
    /// `HEAD /bucket/key`.
    HeadObject,
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject,
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload,
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    UploadPart,
    /// UploadPart with `x-amz-copy-source`.
    UploadPartCopy,
    /// `POST /bucket/key?uploadId=U`.
    CompleteMultipartUpload,
    /// Browser upload: `POST /bucket` with form fields (pass the fields as headers).
    PostObject,
}

impl Operation {
    /// The IAM action a bucket policy sees for it.
    pub fn action(self) -> &'static str {
        match self {
            Operation::GetObject | Operation::HeadObject => "s3:GetObject",
            _ => "s3:PutObject",
        }
    }

    /// True for the operations that write an object (or a part of one).
    pub fn writes(self) -> bool {
        !matches!(self, Operation::GetObject | Operation::HeadObject)
    }

    /// The S3 API name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::PutObject => "PutObject",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::CopyObject => "CopyObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::PostObject => "PostObject",
        }
    }
}

/// Who asks, for what, and how: the part of a request that is not headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The authenticated principal (an IAM ARN, or `*` for an anonymous request).
    pub principal: String,
    /// True when the request came over TLS (SSE-C requires it; `aws:SecureTransport`).
    pub secure: bool,
}

impl RequestContext {
    /// A request for `bucket`/`key` by an anonymous principal over plain HTTP; refine with
    /// [`RequestContext::principal`] and [`RequestContext::secure`].
    pub fn new(bucket: &str, key: &str) -> Self {
        RequestContext {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            principal: "*".to_owned(),
            secure: false,
        }
    }

    /// Sets the principal.
    pub fn principal(mut self, principal: &str) -> Self {
        principal.clone_into(&mut self.principal);
        self
    }

    /// Sets whether the request came over TLS.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `arn:aws:s3:::bucket/key`: the object's ARN, the KMS encryption context S3 uses.
    pub fn object_arn(&self) -> String {
        format!("arn:aws:s3:::{}/{}", self.bucket, self.key)
    }

    /// `arn:aws:s3:::bucket`: the bucket's ARN, the context of a bucket key.
    pub fn bucket_arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.bucket)
    }
}

/// An S3 error: the code, HTTP status and message S3 answers with. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    /// S3's error code, e.g. `InvalidArgument`, `KMS.NotFoundException`.
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The message (escaped: it may quote request values).
    pub message: String,
    /// The object-format error behind it, when there is one (tampered or truncated data, a wrong
    /// key, a short buffer): what the C ABI reports as its own result code.
    pub cause: Option<crate::object::Error>,
}

impl S3Error {
    /// An error with this code, status and message.
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        S3Error {
            code,
            status,
            message: message.into(),
            cause: None,
        }
    }

    /// 400 InvalidArgument.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", 400, message)
    }

    /// 400 InvalidRequest.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new("InvalidRequest", 400, message)
    }

    /// 403 AccessDenied.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new("AccessDenied", 403, message)
    }

    /// 500 InternalError: the stored object or the server's own keys are at fault, not the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalError", 500, message)
    }

    /// True when the client should retry later (the 503s: a key service unreachable or throttling).
    pub fn retryable(&self) -> bool {
        self.status == 503
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for S3Error {}

/// A value from a request, quoted for a message: escaped, and cut at 256 characters.
pub(crate) fn quote(v: &str) -> String {
    let mut s: String = v.chars().take(256).collect::<String>();
    if v.chars().count() > 256 {
        s.push('…');
    }
    s.escape_debug().to_string()
}
