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
