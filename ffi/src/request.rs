//! What a server hands in (a request, a bucket's configuration, an object's stored metadata) and
//! what it gets back besides data (response headers, S3 errors, byte strings).

use std::ffi::{CString, c_char};

use ::ssekit_engine::object::{ObjectMeta, PartEntry, SseMode};
use ::ssekit_engine::sse::{
    self, BucketConfig, BucketEncryption, Headers, Operation, RequestContext, S3Error,
    policy::{Decision, Policy},
};

use crate::error::{Fail, boundary, guard, ssekit_result};
use crate::ptr;

/// The S3 operation a request is (`ssekit_request_new`'s `operation`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ssekit_operation {
    /// `PUT /bucket/key`.
    SSEKIT_OPERATION_PUT_OBJECT = 1,
    /// `GET /bucket/key`.
    SSEKIT_OPERATION_GET_OBJECT = 2,
    /// `HEAD /bucket/key`.
    SSEKIT_OPERATION_HEAD_OBJECT = 3,
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    SSEKIT_OPERATION_COPY_OBJECT = 4,
    /// `POST /bucket/key?uploads`.
    SSEKIT_OPERATION_CREATE_MULTIPART_UPLOAD = 5,
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    SSEKIT_OPERATION_UPLOAD_PART = 6,
    /// UploadPart with `x-amz-copy-source`.
    SSEKIT_OPERATION_UPLOAD_PART_COPY = 7,
    /// `POST /bucket/key?uploadId=U`.
    SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD = 8,
    /// A browser upload (`POST /bucket` with form fields, handed in as headers).
    SSEKIT_OPERATION_POST_OBJECT = 9,
}

fn operation(op: u32) -> Result<Operation, Fail> {
    Ok(match op {
        1 => Operation::PutObject,
        2 => Operation::GetObject,
        3 => Operation::HeadObject,
        4 => Operation::CopyObject,
        5 => Operation::CreateMultipartUpload,
        6 => Operation::UploadPart,
        7 => Operation::UploadPartCopy,
        8 => Operation::CompleteMultipartUpload,
        9 => Operation::PostObject,
        _ => return Err(Fail::invalid(format!("unknown operation {op}"))),
    })
}

/// How an object is encrypted (`ssekit_meta_mode`, `ssekit_write_plan_mode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ssekit_mode {
    /// SSE-S3 (`AES256`).
    SSEKIT_MODE_SSE_S3 = 1,
    /// SSE-KMS (`aws:kms`).
    SSEKIT_MODE_SSE_KMS = 2,
    /// DSSE-KMS (`aws:kms:dsse`): two layers.
    SSEKIT_MODE_DSSE_KMS = 3,
    /// SSE-C: the client's key.
    SSEKIT_MODE_SSE_C = 4,
    /// Client-side encrypted: stored as the client sent it.
    SSEKIT_MODE_CLIENT = 5,
}

pub(crate) fn mode_code(m: SseMode) -> u32 {
    (match m {
        SseMode::SseS3 => ssekit_mode::SSEKIT_MODE_SSE_S3,
        SseMode::SseKms => ssekit_mode::SSEKIT_MODE_SSE_KMS,
        SseMode::DsseKms => ssekit_mode::SSEKIT_MODE_DSSE_KMS,
        SseMode::SseC => ssekit_mode::SSEKIT_MODE_SSE_C,
        _ => ssekit_mode::SSEKIT_MODE_CLIENT,
    }) as u32
}

/// One S3 request as the S3 layer sees it: the operation, the bucket and key, the authenticated
/// principal, whether it came over TLS, and its headers. Built by the server per request; not
/// shared between threads while it is being changed.
pub struct ssekit_request {
    pub(crate) op: Operation,
    pub(crate) ctx: RequestContext,
    pub(crate) headers: Headers,
}

/// Makes a request for `operation` (an `ssekit_operation`) on `bucket`/`key` (UTF-8), with the
/// anonymous principal `*`, not over TLS, and no headers. On success `*request_out` is a new handle
/// the caller frees with `ssekit_request_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_request_new(
    operation: u32,
    bucket: *const c_char,
    bucket_len: usize,
    key: *const c_char,
    key_len: usize,
    request_out: *mut *mut ssekit_request,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(request_out, "request_out")?;
        let op = self::operation(operation)?;
        let bucket = ptr::text(bucket, bucket_len, "bucket")?;
        let key = ptr::text(key, key_len, "key")?;
        out.write(ptr::into_raw(ssekit_request {
            op,
            ctx: RequestContext::new(bucket, key),
            headers: Headers::new(),
        }));
        Ok(())
    })
}

/// Sets the authenticated principal (an IAM-style ARN; `*` for anonymous), as the server's own
/// authentication established it: bucket policies and the audit log see it.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_request_set_principal(
    request: *mut ssekit_request,
    principal: *const c_char,
    principal_len: usize,
) -> ssekit_result {
    boundary(|| {
        let r = ptr::get_mut(request, "request")?;
        r.ctx.principal = ptr::text(principal, principal_len, "principal")?.to_owned();
        Ok(())
    })
}

/// Says whether the request came over TLS (`aws:SecureTransport`; SSE-C is refused without it).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_request_set_secure(
    request: *mut ssekit_request,
    secure: bool,
) -> ssekit_result {
    boundary(|| {
        ptr::get_mut(request, "request")?.ctx.secure = secure;
        Ok(())
    })
}

/// Adds a request header (name matched case-insensitively; a repeated SSE header is refused by the
/// plan, as S3 does). `SSEKIT_RESULT_INVALID_PARAMETER` for a name that is not an HTTP token (no
/// spaces, no separators) or a value with CR, LF or NUL. Hand in every `x-amz-*` header and, for GET, `Range`; others are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_request_add_header(
    request: *mut ssekit_request,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> ssekit_result {
    boundary(|| {
        let r = ptr::get_mut(request, "request")?;
        let name = ptr::text(name, name_len, "name")?;
        let value = ptr::text(value, value_len, "value")?;
        // An HTTP field name is a token: " x-amz-server-side-encryption" or a name with a CR
        // would otherwise pass as another header and its SSE request be silently ignored.
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Fail::invalid(format!(
                "`{}` is not an HTTP header name",
                name.escape_debug()
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Fail::invalid("a header value with CR, LF or NUL"));
        }
        r.headers.insert(name, value);
        Ok(())
    })
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Frees a request (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_request_free(request: *mut ssekit_request) {
    guard((), || ptr::free(request));
}

/// A bucket's SSE configuration: its default encryption and its policy. Read by the plans of every
/// request on the bucket (share it between threads freely once set up; change it only while no
/// plan is using it, or make a new one).
#[derive(Default)]
pub struct ssekit_bucket {
    pub(crate) config: BucketConfig,
}

/// Makes a bucket configuration with no default encryption (S3's: SSE-S3) and no policy. On
/// success `*bucket_out` is a new handle the caller frees with `ssekit_bucket_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bucket_new(bucket_out: *mut *mut ssekit_bucket) -> ssekit_result {
    boundary(|| {
        ptr::out(bucket_out, "bucket_out")?.write(ptr::into_raw(ssekit_bucket::default()));
        Ok(())
    })
}

/// Sets the bucket's default encryption from its JSON form,
/// `{"algorithm":"AES256"|"aws:kms"|"aws:kms:dsse","kms_key_id":null|"ID","bucket_key_enabled":bool}`
/// (PutBucketEncryption, checked as S3 checks it). NULL `json` removes it (DeleteBucketEncryption).
///
/// Returns `SSEKIT_RESULT_MALFORMED_CONFIGURATION` for a document that does not parse or validate
/// (the bucket is unchanged).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bucket_set_encryption(
    bucket: *mut ssekit_bucket,
    json: *const c_char,
    json_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(bucket, "bucket")?;
        b.config.encryption = match ptr::opt_text(json, json_len, "json")? {
            None => None,
            Some(j) => Some(BucketEncryption::from_json(j).map_err(|e| {
                Fail::new(
                    ssekit_result::SSEKIT_RESULT_MALFORMED_CONFIGURATION,
                    e.message,
                )
            })?),
        };
        Ok(())
    })
}

/// Sets the bucket's policy (an S3 bucket policy document; docs/POLICY.md says what is evaluated).
/// NULL `json` removes it. Returns `SSEKIT_RESULT_MALFORMED_POLICY` for a document the evaluator
/// refuses (the bucket is unchanged).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bucket_set_policy(
    bucket: *mut ssekit_bucket,
    json: *const c_char,
    json_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(bucket, "bucket")?;
        b.config.policy = match ptr::opt_text(json, json_len, "json")? {
            None => None,
            Some(j) => Some(parse_policy(j)?),
        };
        Ok(())
    })
}

fn parse_policy(json: &str) -> Result<Policy, Fail> {
    Policy::parse(json)
        .map_err(|e| Fail::new(ssekit_result::SSEKIT_RESULT_MALFORMED_POLICY, e.to_string()))
}

/// The bucket's default encryption in the JSON form `ssekit_bucket_set_encryption` takes (S3's
/// default, SSE-S3, when none is set), as a new byte string in `*json_out` (GetBucketEncryption;
/// free it with `ssekit_bytes_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bucket_encryption(
    bucket: *const ssekit_bucket,
    json_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(json_out, "json_out")?;
        let b = ptr::get(bucket, "bucket")?;
        out.write(ssekit_bytes::new(
            b.config.effective_encryption().to_json().into_bytes(),
        ));
        Ok(())
    })
}

/// Frees a bucket configuration (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bucket_free(bucket: *mut ssekit_bucket) {
    guard((), || ptr::free(bucket));
}

/// What a policy says about a request (`ssekit_policy_check`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ssekit_decision {
    /// An Allow statement applies and no Deny does.
    SSEKIT_DECISION_ALLOW = 1,
    /// A Deny statement applies.
    SSEKIT_DECISION_DENY = 2,
    /// No statement applies: the server's default decides.
    SSEKIT_DECISION_NO_MATCH = 3,
}

/// Evaluates a bucket policy document on `request` (its operation's action, its object's ARN, its
/// principal, TLS flag and SSE headers), as the S3 layer does, without deciding what silence means:
/// writes an `ssekit_decision` to `*decision_out`. For tools and for servers that authorize on their
/// own; the plans evaluate the bucket's policy themselves.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_policy_check(
    policy_json: *const c_char,
    policy_json_len: usize,
    request: *const ssekit_request,
    decision_out: *mut u32,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(decision_out, "decision_out")?;
        let r = ptr::get(request, "request")?;
        let policy = parse_policy(ptr::text(policy_json, policy_json_len, "policy_json")?)?;
        let e = sse::evaluate_policy(
            &policy,
            r.op.action(),
            &r.ctx.object_arn(),
            &r.ctx.principal,
            r.ctx.secure,
            &r.headers,
            &[],
        );
        out.write(match e.decision {
            Decision::Allow => ssekit_decision::SSEKIT_DECISION_ALLOW,
            Decision::ExplicitDeny => ssekit_decision::SSEKIT_DECISION_DENY,
            Decision::NoMatch => ssekit_decision::SSEKIT_DECISION_NO_MATCH,
        } as u32);
        Ok(())
    })
}

/// An object's stored metadata: what a server keeps beside the ciphertext (its encoding from
/// `ssekit_meta_encode`) and hands back to read it.
pub struct ssekit_meta {
    pub(crate) meta: ObjectMeta,
}

/// Parses stored metadata (`ssekit_meta_encode`'s bytes). It is authenticated when a read plan
/// opens data with it, not here: who could have written the store could have written this too. On
/// success `*meta_out` is a new handle the caller frees with `ssekit_meta_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_parse(
    data: *const u8,
    len: usize,
    meta_out: *mut *mut ssekit_meta,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(meta_out, "meta_out")?;
        let meta = ObjectMeta::from_bytes(ptr::bytes(data, len, "data")?)?;
        out.write(ptr::into_raw(ssekit_meta { meta }));
        Ok(())
    })
}

/// Encodes metadata for storage, as a new byte string in `*bytes_out` (free it with
/// `ssekit_bytes_free`). At most 512 KiB.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_encode(
    meta: *const ssekit_meta,
    bytes_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(bytes_out, "bytes_out")?;
        let m = ptr::get(meta, "meta")?;
        out.write(ssekit_bytes::new(m.meta.to_bytes()?));
        Ok(())
    })
}

/// The object's plaintext size as the metadata says (authenticated only once data is opened);
/// 0 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_size(meta: *const ssekit_meta) -> u64 {
    guard(0, || ptr::get(meta, "meta").map_or(0, |m| m.meta.size))
}

/// The object's `ssekit_mode`; 0 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_mode(meta: *const ssekit_meta) -> u32 {
    guard(0, || {
        ptr::get(meta, "meta").map_or(0, |m| mode_code(m.meta.mode))
    })
}

/// The number of parts of a multipart object (0 for a single-part object or NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_part_count(meta: *const ssekit_meta) -> usize {
    guard(0, || {
        ptr::get(meta, "meta").map_or(0, |m| m.meta.parts.len())
    })
}

/// Frees metadata (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_meta_free(meta: *mut ssekit_meta) {
    guard((), || ptr::free(meta));
}

/// One row of a multipart object's part table: the part's number, plaintext size, and the salt
/// that names this upload of it. `ssekit_part_plan_seal_into` and `ssekit_sealer_finish` fill one
/// in; the server keeps it with the part (as it keeps the part's ETag) and hands the rows to
/// `ssekit_engine_complete`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ssekit_part_entry {
    /// The part number, 1..=10000.
    pub number: u32,
    /// The part's plaintext size.
    pub size: u64,
    /// The part's message salt.
    pub salt: [u8; 24],
}

impl From<PartEntry> for ssekit_part_entry {
    fn from(p: PartEntry) -> Self {
        ssekit_part_entry {
            number: p.number,
            size: p.size,
            salt: p.salt,
        }
    }
}

impl From<ssekit_part_entry> for PartEntry {
    fn from(p: ssekit_part_entry) -> Self {
        PartEntry {
            number: p.number,
            size: p.size,
            salt: p.salt,
        }
    }
}

/// A byte string the library made (metadata, JSON). Free it with `ssekit_bytes_free`.
pub struct ssekit_bytes {
    data: Vec<u8>,
}

impl ssekit_bytes {
    pub(crate) fn new(data: Vec<u8>) -> *mut ssekit_bytes {
        ptr::into_raw(ssekit_bytes { data })
    }
}

/// The bytes (valid until `ssekit_bytes_free`; NULL for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bytes_data(bytes: *const ssekit_bytes) -> *const u8 {
    guard(std::ptr::null(), || {
        ptr::get(bytes, "bytes").map_or(std::ptr::null(), |b| b.data.as_ptr())
    })
}

/// Their length (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bytes_len(bytes: *const ssekit_bytes) -> usize {
    guard(0, || ptr::get(bytes, "bytes").map_or(0, |b| b.data.len()))
}

/// Frees a byte string (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_bytes_free(bytes: *mut ssekit_bytes) {
    guard((), || ptr::free(bytes));
}

/// Response headers to send (`x-amz-server-side-encryption` and the rest), in order. Those a plan
/// returns are borrowed from it; those `ssekit_engine_complete` returns are the caller's to free
/// with `ssekit_headers_free`.
pub struct ssekit_headers {
    pub(crate) list: Vec<(&'static str, String)>,
}

/// The number of headers (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_headers_len(headers: *const ssekit_headers) -> usize {
    guard(0, || {
        ptr::get(headers, "headers").map_or(0, |h| h.list.len())
    })
}

/// Header `index`: its name and value (UTF-8, not NUL-terminated) borrowed from `headers` until it
/// is freed. `SSEKIT_RESULT_INVALID_PARAMETER` for an index past the end.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_headers_get(
    headers: *const ssekit_headers,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    value_out: *mut *const c_char,
    value_len_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let (n, nl) = (
            ptr::out(name_out, "name_out")?,
            ptr::out(name_len_out, "name_len_out")?,
        );
        let (v, vl) = (
            ptr::out(value_out, "value_out")?,
            ptr::out(value_len_out, "value_len_out")?,
        );
        let h = ptr::get(headers, "headers")?;
        let (name, value) = h
            .list
            .get(index)
            .ok_or_else(|| Fail::invalid(format!("header {index} of {}", h.list.len())))?;
        n.write(name.as_ptr().cast());
        nl.write(name.len());
        v.write(value.as_ptr().cast());
        vl.write(value.len());
        Ok(())
    })
}

/// Frees headers `ssekit_engine_complete` returned (NULL is ignored; never those a plan lends).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_headers_free(headers: *mut ssekit_headers) {
    guard((), || ptr::free(headers));
}

/// An S3 error for the server to send: S3's code (`AccessDenied`), HTTP status (403) and message.
/// The S3 layer's functions hand one back with `SSEKIT_RESULT_S3_ERROR` when their `error_out` is
/// not NULL; free it with `ssekit_s3_error_free`.
pub struct ssekit_s3_error {
    code: CString,
    status: u16,
    message: CString,
}

pub(crate) fn hand_back_s3_error(out: *mut *mut ssekit_s3_error, e: S3Error) {
    let clean = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
    let v = ptr::into_raw(ssekit_s3_error {
        code: clean(e.code),
        status: e.status,
        message: clean(&e.message),
    });
    if out.is_null() {
        ptr::free(v);
    } else {
        ptr::write_opt(out, v);
    }
}

/// S3's error code, e.g. `"AccessDenied"` (NUL-terminated, borrowed until the error is freed; `""`
/// for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_s3_error_code(error: *const ssekit_s3_error) -> *const c_char {
    guard(c"".as_ptr(), || {
        ptr::get(error, "error").map_or(c"".as_ptr(), |e| e.code.as_ptr())
    })
}

/// The HTTP status to answer with, e.g. 403 (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_s3_error_status(error: *const ssekit_s3_error) -> u16 {
    guard(0, || ptr::get(error, "error").map_or(0, |e| e.status))
}

/// The message for the error body (NUL-terminated, borrowed until the error is freed; `""` for
/// NULL). Never holds key material.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_s3_error_message(error: *const ssekit_s3_error) -> *const c_char {
    guard(c"".as_ptr(), || {
        ptr::get(error, "error").map_or(c"".as_ptr(), |e| e.message.as_ptr())
    })
}

/// Frees an S3 error (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_s3_error_free(error: *mut ssekit_s3_error) {
    guard((), || ptr::free(error));
}
