//! The bucket policy on the raw request: its condition keys come from the headers as sent, before
//! any of them is validated (S3's order: a PUT with `AES192` is denied by a policy, not refused as a
//! bad header).

use super::policy::{self, Evaluation, Policy, PolicyRequest};
use super::{BucketConfig, Headers, Operation, RequestContext, S3Error, headers};

/// Headers whose raw values are condition keys, and the keys they fill.
const KEYS: [(&str, &str); 3] = [
    (headers::SSE, policy::KEY_SSE),
    (headers::KMS_KEY_ID, policy::KEY_SSE_KMS_KEY_ID),
    (headers::C_ALGORITHM, policy::KEY_SSE_CUSTOMER_ALGORITHM),
];

/// Longest SSE header value accepted (the context header: [`MAX_CONTEXT_HEADER`]).
const MAX_SSE_VALUE: usize = 2048;
/// Longest `x-amz-server-side-encryption-context` value accepted.
const MAX_CONTEXT_HEADER: usize = 16 * 1024;
/// Most SSE headers one request may carry.
const MAX_SSE_HEADERS: usize = 16;
/// S3's longest object key.
const MAX_KEY_LEN: usize = 1024;

/// Checks what every request must satisfy before anything else looks at it (the policy included,
/// whose wildcard matching costs in proportion to the values): a bucket name that cannot be confused
/// with a bucket and key (no `/`, no control characters, at most 255 bytes), an object key of 1 to
/// 1024 bytes, and SSE headers of bounded number and length.
///
/// # Errors
///
/// 400 InvalidBucketName, KeyTooLongError or InvalidArgument.
pub(crate) fn check_request(headers: &Headers, ctx: &RequestContext) -> Result<(), S3Error> {
    let b = &ctx.bucket;
    if b.is_empty() || b.len() > 255 || b.contains('/') || b.chars().any(char::is_control) {
        return Err(S3Error::new(
            "InvalidBucketName",
            400,
            format!("The specified bucket is not valid: `{}`", super::quote(b)),
        ));
    }
    if ctx.key.is_empty() {
        return Err(S3Error::invalid_argument("an object key is needed"));
    }
    if ctx.key.len() > MAX_KEY_LEN {
        return Err(S3Error::new("KeyTooLongError", 400, "Your key is too long"));
    }
    let mut n = 0;
    for (name, value) in headers.iter() {
        let lower = name.as_bytes();
        let sse = lower.len() >= 28
            && (lower[..28].eq_ignore_ascii_case(b"x-amz-server-side-encryption")
                || (lower.len() >= 40
                    && lower[..40]
                        .eq_ignore_ascii_case(b"x-amz-copy-source-server-side-encryption")));
        if !sse {
            continue;
        }
        n += 1;
        let max = if name.eq_ignore_ascii_case(headers::CONTEXT) {
            MAX_CONTEXT_HEADER
        } else {
            MAX_SSE_VALUE
        };
        if value.len() > max || n > MAX_SSE_HEADERS {
            return Err(S3Error::invalid_argument(format!(
                "SSE headers too large: at most {MAX_SSE_HEADERS} of them, each at most {max} bytes ({})",
                super::quote(name)
            )));
        }
    }
    Ok(())
}

/// Evaluates `bucket`'s policy, if it has one, for `op` on `ctx`'s object. `extra` adds condition
/// values the headers do not carry (a part's upload's encryption).
pub(crate) fn authorize(
    op: Operation,
    headers: &Headers,
    ctx: &RequestContext,
    bucket: &BucketConfig,
    default_allow: bool,
    extra: &[(&str, &str)],
) -> Result<(), S3Error> {
    let Some(policy) = &bucket.policy else {
        return Ok(());
    };
    let resource = ctx.object_arn();
    let eval = evaluate_policy(
        policy,
        op.action(),
        &resource,
        &ctx.principal,
        ctx.secure,
        headers,
        extra,
    );
    if eval.allowed(default_allow) {
        Ok(())
    } else {
        // S3 does not tell the caller which statement denied it; `ssekit policy check` does.
        Err(S3Error::access_denied("Access Denied"))
    }
}

/// Evaluates `policy` for a request as the S3 layer does: `aws:SecureTransport` from `secure`,
/// `aws:PrincipalArn` from `principal`, the SSE condition keys from the raw `headers` (and `extra`).
/// For tools (`ssekit policy check`) and servers that authorize on their own.
pub fn evaluate_policy<'p>(
    policy: &'p Policy,
    action: &str,
    resource: &str,
    principal: &str,
    secure: bool,
    headers: &Headers,
    extra: &[(&str, &str)],
) -> Evaluation<'p> {
    let mut conditions: Vec<(&str, &str)> = Vec::with_capacity(6);
    conditions.push((
        policy::KEY_SECURE_TRANSPORT,
        if secure { "true" } else { "false" },
    ));
    if principal != "*" && !principal.is_empty() {
        conditions.push((policy::KEY_PRINCIPAL_ARN, principal));
    }
    conditions.extend_from_slice(extra);
    for (name, value) in headers.iter() {
        if let Some((_, key)) = KEYS.iter().find(|(h, _)| name.eq_ignore_ascii_case(h)) {
            conditions.push((key, value));
        }
    }
    policy.evaluate(&PolicyRequest {
        principal,
        action,
        resource,
        conditions: &conditions,
    })
}
