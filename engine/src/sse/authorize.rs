//! The bucket policy on the raw request: its condition keys come from the headers as sent, before
//! any of them is validated (S3's order: a PUT with `AES192` is denied by a policy, not refused as a
//! bad header).

use super::policy::{self, PolicyRequest};
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
    let mut conditions: Vec<(&str, &str)> = Vec::with_capacity(6);
    conditions.push((
        policy::KEY_SECURE_TRANSPORT,
        if ctx.secure { "true" } else { "false" },
    ));
    if ctx.principal != "*" && !ctx.principal.is_empty() {
        conditions.push((policy::KEY_PRINCIPAL_ARN, &ctx.principal));
    }
    conditions.extend_from_slice(extra);
    for (name, value) in headers.iter() {
        if let Some((_, key)) = KEYS.iter().find(|(h, _)| name.eq_ignore_ascii_case(h)) {
            conditions.push((key, value));
        }
    }
    let eval = policy.evaluate(&PolicyRequest {
        principal: &ctx.principal,
        action: op.action(),
        resource: &resource,
        conditions: &conditions,
    });
    if eval.allowed(default_allow) {
        Ok(())
    } else {
        // S3 does not tell the caller which statement denied it; `ssekit policy check` does.
        Err(S3Error::access_denied("Access Denied"))
    }
}
