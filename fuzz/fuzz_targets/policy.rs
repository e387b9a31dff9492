//! Bucket policies: parsing arbitrary text must never panic, and a policy that parses must evaluate
//! (without panicking) against a few fixed requests, with a decision and a deciding statement that
//! agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssekit_engine::sse::policy::{
    ConditionContext, ConditionValues, Decision, KEY_SECURE_TRANSPORT, KEY_SSE, KEY_SSE_KMS_KEY_ID,
    Policy, PolicyRequest,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    assert!(!policy.is_empty());
    let kms = ConditionContext::new()
        .with(KEY_SSE, "aws:kms")
        .with(
            KEY_SSE_KMS_KEY_ID,
            "arn:aws:kms:us-east-1:111122223333:key/k",
        )
        .with(KEY_SECURE_TRANSPORT, "true");
    let requests: [(&str, &str, &str, &dyn ConditionValues); 5] = [
        ("", "s3:PutObject", "arn:aws:s3:::my-secure-bucket/k", &()),
        (
            "arn:aws:iam::111122223333:user/alice",
            "s3:PutObject",
            "arn:aws:s3:::my-secure-bucket/a/b",
            &[(KEY_SSE, "AES256")],
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/r/s",
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket",
            &kms,
        ),
        (
            "*",
            "s3:ListBucket",
            "arn:aws:s3:::other",
            &[(KEY_SSE, "AES192"), (KEY_SECURE_TRANSPORT, "false")],
        ),
        // The input itself as every field: lets the fuzzer steer matching.
        (text, text, text, &[(text, text)]),
    ];
    for (principal, action, resource, conditions) in requests {
        let e = policy.evaluate(&PolicyRequest {
            principal,
            action,
            resource,
            conditions,
        });
        assert_eq!(e.statement.is_some(), e.decision != Decision::NoMatch);
        if let Some(i) = e.statement {
            assert!(i < policy.len());
            assert_eq!(e.sid, policy.sid(i));
        }
    }
});
