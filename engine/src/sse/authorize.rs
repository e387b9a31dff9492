//! The bucket policy on the raw request (wired to `policy` once it lands).

use super::{BucketConfig, Headers, Operation, RequestContext, S3Error};

pub(crate) fn authorize(
    _op: Operation,
    _headers: &Headers,
    _ctx: &RequestContext,
    bucket: &BucketConfig,
    _default_allow: bool,
) -> Result<(), S3Error> {
    let _ = &bucket.policy;
    Ok(())
}
