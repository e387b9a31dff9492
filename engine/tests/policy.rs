//! Bucket policies: a table of (policy, request, decision, deciding Sid) covering every element,
//! operator and principal form; malformed documents refused with a typed error; random documents
//! and requests never panic; the wildcard matcher's work stays bounded on hostile patterns.

use proptest::prelude::*;
use ssekit_engine::sse::policy::{
    ConditionContext, ConditionValues, Decision, KEY_PRINCIPAL_ARN, KEY_SECURE_TRANSPORT, KEY_SSE,
    KEY_SSE_CUSTOMER_ALGORITHM, KEY_SSE_KMS_KEY_ID, KEY_USERNAME, MAX_POLICY_BYTES, Policy,
    PolicyError, PolicyRequest, Version, wildcard_match, wildcard_match_counted,
};

/// The seed policy, byte for byte as the S3 layer's brief gives it.
const SEED: &str = include_str!("data/seed_policy.json");

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const ROLE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/writer/session-1";
const MALLORY: &str = "arn:aws:iam::444455556666:user/mallory";
const ANON: &str = "";
const PUT: &str = "s3:PutObject";
const GET: &str = "s3:GetObject";
const OBJ: &str = "arn:aws:s3:::my-secure-bucket/photos/cat.jpg";
const BUCKET: &str = "arn:aws:s3:::my-secure-bucket";

fn parse(json: &str) -> Policy {
    match Policy::parse(json) {
        Ok(p) => p,
        Err(e) => panic!("policy refused: {e}\n{json}"),
    }
}

/// Evaluates and returns (decision, sid).
fn eval(
    p: &Policy,
    principal: &str,
    action: &str,
    resource: &str,
    conds: &dyn ConditionValues,
) -> (Decision, Option<String>) {
    let e = p.evaluate(&PolicyRequest {
        principal,
        action,
        resource,
        conditions: conds,
    });
    assert_eq!(e.statement.is_some(), e.decision != Decision::NoMatch);
    assert_eq!(e.sid, e.statement.and_then(|i| p.sid(i)));
    (e.decision, e.sid.map(str::to_owned))
}

use Decision::{Allow, ExplicitDeny as Deny, NoMatch};

/// One statement with the given effect, principal, action and resource JSON, and a condition block.
fn stmt(
    sid: &str,
    effect: &str,
    principal: &str,
    action: &str,
    resource: &str,
    cond: &str,
) -> String {
    let cond = if cond.is_empty() {
        String::new()
    } else {
        format!(r#", "Condition": {cond}"#)
    };
    format!(r#"{{"Sid": "{sid}", "Effect": "{effect}", {principal}, {action}, {resource}{cond}}}"#)
}

fn doc(statements: &[String]) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    )
}

/// A policy with one statement for `cond`: Allow (or Deny) anyone s3:PutObject on the bucket's
/// objects when the condition holds.
fn cond_policy(effect: &str, cond: &str) -> Policy {
    parse(&doc(&[stmt(
        "S",
        effect,
        r#""Principal": "*""#,
        r#""Action": "s3:PutObject""#,
        r#""Resource": "arn:aws:s3:::my-secure-bucket/*""#,
        cond,
    )]))
}

/// Whether an Allow statement with `cond` applies to a PUT with `conds`.
fn holds(cond: &str, conds: &dyn ConditionValues) -> bool {
    let allow = cond_policy("Allow", cond);
    let deny = cond_policy("Deny", cond);
    let a = eval(&allow, ALICE, PUT, OBJ, conds).0 == Allow;
    let d = eval(&deny, ALICE, PUT, OBJ, conds).0 == Deny;
    // With single-valued keys the Allow and Deny readings agree.
    assert_eq!(a, d, "{cond} {conds:?}");
    a
}

#[test]
fn seed_policy_as_written() {
    let p = parse(SEED);
    assert_eq!(p.version(), Version::V2012_10_17);
    assert_eq!(p.len(), 1);
    let deny = (Deny, Some("DenyUnencryptedPut".to_owned()));
    let none = (NoMatch, None);
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &()), deny, "no header");
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &[(KEY_SSE, "AES256")]), none);
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &[(KEY_SSE, "AES192")]), deny);
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &[(KEY_SSE, "aws:kms")]), deny);
    // Values compare case-sensitively.
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &[(KEY_SSE, "aes256")]), deny);
    // The header name (condition key) is case-insensitive.
    assert_eq!(
        eval(
            &p,
            ALICE,
            PUT,
            OBJ,
            &[("S3:X-Amz-Server-Side-Encryption", "AES256")]
        ),
        none
    );
    assert_eq!(
        eval(&p, ALICE, GET, OBJ, &()),
        none,
        "GET: action does not match"
    );
    assert_eq!(
        eval(&p, ALICE, "S3:PUTOBJECT", OBJ, &()),
        deny,
        "actions are case-insensitive"
    );
    assert_eq!(
        eval(&p, ALICE, PUT, "arn:aws:s3:::other-bucket/k", &()),
        none,
        "another bucket"
    );
    assert_eq!(
        eval(&p, ALICE, PUT, BUCKET, &()),
        none,
        "the bucket itself is not bucket/*"
    );
    assert_eq!(eval(&p, ANON, PUT, OBJ, &()), deny, "anonymous");
    assert_eq!(eval(&p, "*", PUT, OBJ, &()), deny, "anonymous");
    assert!(!eval_allowed(&p, &(), true));
    assert!(eval_allowed(&p, &[(KEY_SSE, "AES256")], true));
    assert!(!eval_allowed(&p, &[(KEY_SSE, "AES256")], false));

    let mut ctx = ConditionContext::new();
    ctx.insert(KEY_SSE, "AES192");
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &ctx), deny);
    ctx.remove(KEY_SSE);
    ctx.insert("S3:x-AMZ-server-side-encryption", "AES256");
    assert_eq!(ctx.get(KEY_SSE).collect::<Vec<_>>(), ["AES256"]);
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &ctx), none);
}

fn eval_allowed(p: &Policy, conds: &dyn ConditionValues, default_allow: bool) -> bool {
    p.evaluate(&PolicyRequest {
        principal: ALICE,
        action: PUT,
        resource: OBJ,
        conditions: conds,
    })
    .allowed(default_allow)
}

#[test]
fn deny_wins_over_allow_in_either_order() {
    let allow = stmt(
        "AllowAlice",
        "Allow",
        r#""Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
        r#""Action": "s3:*""#,
        r#""Resource": "arn:aws:s3:::my-secure-bucket/*""#,
        "",
    );
    let deny = stmt(
        "DenyPut",
        "Deny",
        r#""Principal": "*""#,
        r#""Action": "s3:PutObject""#,
        r#""Resource": "*""#,
        "",
    );
    for p in [
        parse(&doc(&[allow.clone(), deny.clone()])),
        parse(&doc(&[deny.clone(), allow.clone()])),
        parse(&doc(&[
            allow.clone(),
            allow.clone(),
            deny.clone(),
            allow.clone(),
        ])),
    ] {
        assert_eq!(
            eval(&p, ALICE, PUT, OBJ, &()),
            (Deny, Some("DenyPut".into()))
        );
        assert_eq!(
            eval(&p, ALICE, GET, OBJ, &()),
            (Allow, Some("AllowAlice".into()))
        );
        assert_eq!(eval(&p, BOB, GET, OBJ, &()), (NoMatch, None));
    }
    // The deciding statement's index is the first applicable Allow.
    let p = parse(&doc(&[deny.clone(), allow.clone(), allow]));
    let e = p.evaluate(&PolicyRequest {
        principal: ALICE,
        action: GET,
        resource: OBJ,
        conditions: &(),
    });
    assert_eq!((e.decision, e.statement), (Allow, Some(1)));
}

#[test]
fn allow_only_and_default_decides() {
    let p = parse(&doc(&[stmt(
        "PublicRead",
        "Allow",
        r#""Principal": "*""#,
        r#""Action": ["s3:GetObject", "s3:GetObjectVersion"]"#,
        r#""Resource": ["arn:aws:s3:::my-secure-bucket/*"]"#,
        "",
    )]));
    assert_eq!(
        eval(&p, ANON, GET, OBJ, &()),
        (Allow, Some("PublicRead".into()))
    );
    assert_eq!(
        eval(&p, ANON, "s3:getobjectversion", OBJ, &()),
        (Allow, Some("PublicRead".into()))
    );
    let put = p.evaluate(&PolicyRequest {
        principal: ANON,
        action: PUT,
        resource: OBJ,
        conditions: &(),
    });
    assert_eq!(put.decision, NoMatch);
    assert_eq!((put.statement, put.sid), (None, None));
    assert!(put.allowed(true));
    assert!(!put.allowed(false));
    let get = p.evaluate(&PolicyRequest {
        principal: ANON,
        action: GET,
        resource: OBJ,
        conditions: &(),
    });
    assert!(get.allowed(false));
}

#[test]
fn not_action_not_resource_not_principal() {
    // Deny everything but reads.
    let p = parse(&doc(&[stmt(
        "OnlyReads",
        "Deny",
        r#""Principal": "*""#,
        r#""NotAction": ["s3:Get*", "s3:List*"]"#,
        r#""Resource": "*""#,
        "",
    )]));
    assert_eq!(eval(&p, ALICE, GET, OBJ, &()).0, NoMatch);
    assert_eq!(eval(&p, ALICE, "s3:ListBucket", BUCKET, &()).0, NoMatch);
    assert_eq!(
        eval(&p, ALICE, PUT, OBJ, &()),
        (Deny, Some("OnlyReads".into()))
    );
    assert_eq!(eval(&p, ALICE, "s3:DeleteObject", OBJ, &()).0, Deny);

    // Deny everything outside the public/ prefix.
    let p = parse(&doc(&[stmt(
        "OnlyPublic",
        "Deny",
        r#""Principal": "*""#,
        r#""Action": "s3:GetObject""#,
        r#""NotResource": "arn:aws:s3:::my-secure-bucket/public/*""#,
        "",
    )]));
    assert_eq!(
        eval(
            &p,
            ALICE,
            GET,
            "arn:aws:s3:::my-secure-bucket/public/a",
            &()
        )
        .0,
        NoMatch
    );
    assert_eq!(eval(&p, ALICE, GET, OBJ, &()).0, Deny);

    // Deny everyone but alice and the whole of account 444455556666.
    let p = parse(&doc(&[stmt(
        "OnlyAlice",
        "Deny",
        r#""NotPrincipal": {"AWS": ["arn:aws:iam::111122223333:user/alice", "444455556666"]}"#,
        r#""Action": "s3:*""#,
        r#""Resource": "*""#,
        "",
    )]));
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &()).0, NoMatch);
    assert_eq!(eval(&p, MALLORY, PUT, OBJ, &()).0, NoMatch);
    assert_eq!(eval(&p, BOB, PUT, OBJ, &()).0, Deny);
    assert_eq!(eval(&p, ROLE_SESSION, PUT, OBJ, &()).0, Deny);
    assert_eq!(
        eval(&p, ANON, PUT, OBJ, &()).0,
        Deny,
        "anonymous is not alice"
    );

    // NotPrincipal with Allow: everyone but bob.
    let p = parse(&doc(&[stmt(
        "NotBob",
        "Allow",
        r#""NotPrincipal": {"AWS": "arn:aws:iam::111122223333:user/bob"}"#,
        r#""Action": "s3:GetObject""#,
        r#""Resource": "*""#,
        "",
    )]));
    assert_eq!(eval(&p, ALICE, GET, OBJ, &()).0, Allow);
    assert_eq!(eval(&p, BOB, GET, OBJ, &()).0, NoMatch);
}

#[test]
fn wildcards_in_action_and_resource() {
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        // (Action, Resource, request action, request resource, applies)
        ("s3:*", "*", "s3:PutObject", OBJ, true),
        ("*", "*", "s3:PutObject", OBJ, true),
        ("s3:Get*", "*", "s3:GetObject", OBJ, true),
        ("s3:Get*", "*", "S3:GETOBJECTACL", OBJ, true),
        ("s3:get*", "*", "s3:GetObject", OBJ, true),
        ("s3:Get*", "*", "s3:PutObject", OBJ, false),
        ("s3:*Object", "*", "s3:DeleteObject", OBJ, true),
        ("s3:*Object", "*", "s3:DeleteObjects", OBJ, false),
        ("s3:?etObject", "*", "s3:GetObject", OBJ, true),
        ("s3:?etObject", "*", "s3:GGetObject", OBJ, false),
        ("s3:GetObjec?", "*", "s3:getobjecT", OBJ, true),
        ("ec2:*", "*", "s3:GetObject", OBJ, false),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket/*",
            GET,
            OBJ,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::MY-SECURE-BUCKET/*",
            GET,
            OBJ,
            false,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket/photos/*.jpg",
            GET,
            OBJ,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket/photos/*.JPG",
            GET,
            OBJ,
            false,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket/photos/ca?.jpg",
            GET,
            OBJ,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket/photos/c?.jpg",
            GET,
            OBJ,
            false,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket*",
            GET,
            OBJ,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket*",
            GET,
            BUCKET,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket",
            GET,
            BUCKET,
            true,
        ),
        (
            "s3:GetObject",
            "arn:aws:s3:::my-secure-bucket",
            GET,
            OBJ,
            false,
        ),
        ("s3:GetObject", "arn:aws:s3:::*-bucket/*", GET, OBJ, true),
        ("s3:GetObject", "arn:aws:s3:::*", GET, OBJ, true),
    ];
    for &(action, resource, ra, rr, applies) in cases {
        let p = parse(&doc(&[stmt(
            "W",
            "Allow",
            r#""Principal": "*""#,
            &format!(r#""Action": "{action}""#),
            &format!(r#""Resource": "{resource}""#),
            "",
        )]));
        let want = if applies { Allow } else { NoMatch };
        assert_eq!(
            eval(&p, ALICE, ra, rr, &()).0,
            want,
            "{action} {resource} vs {ra} {rr}"
        );
    }
}

#[test]
fn principal_forms() {
    let cases: &[(&str, &str, bool)] = &[
        (r#""*""#, ALICE, true),
        (r#""*""#, ANON, true),
        (r#"{"AWS": "*"}"#, ALICE, true),
        (r#"{"AWS": "*"}"#, ANON, true),
        (r#"{"AWS": "*"}"#, "*", true),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
            ALICE,
            true,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
            BOB,
            false,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
            ANON,
            false,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/Alice"}"#,
            ALICE,
            false,
        ),
        (
            r#"{"AWS": ["arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:user/alice"]}"#,
            ALICE,
            true,
        ),
        (
            r#"{"AWS": ["arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:user/alice"]}"#,
            MALLORY,
            false,
        ),
        (r#"{"AWS": "111122223333"}"#, ALICE, true),
        (r#"{"AWS": "111122223333"}"#, ROLE_SESSION, true),
        (
            r#"{"AWS": "111122223333"}"#,
            "arn:aws:iam::111122223333:role/writer",
            true,
        ),
        (
            r#"{"AWS": "111122223333"}"#,
            "arn:aws:iam::111122223333:root",
            true,
        ),
        (r#"{"AWS": "111122223333"}"#, "111122223333", true),
        (r#"{"AWS": "111122223333"}"#, MALLORY, false),
        (r#"{"AWS": "111122223333"}"#, ANON, false),
        // Not an IAM/STS principal of the account, only a resource in it.
        (
            r#"{"AWS": "111122223333"}"#,
            "arn:aws:s3:::111122223333",
            false,
        ),
        (
            r#"{"AWS": "111122223333"}"#,
            "arn:aws:lambda:us-east-1:111122223333:function:f",
            false,
        ),
        (r#"{"AWS": "arn:aws:iam::111122223333:root"}"#, ALICE, true),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:root"}"#,
            ROLE_SESSION,
            true,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:root"}"#,
            MALLORY,
            false,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:root"}"#,
            "arn:aws-cn:iam::111122223333:user/a",
            false,
        ),
        // A role ARN matches the role, not its sessions (as in AWS).
        (
            r#"{"AWS": "arn:aws:iam::111122223333:role/writer"}"#,
            ROLE_SESSION,
            false,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:role/writer"}"#,
            "arn:aws:iam::111122223333:role/writer",
            true,
        ),
        (
            r#"{"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
            true,
        ),
        (
            r#"{"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
            ALICE,
            false,
        ),
        (
            r#"{"Service": ["logging.s3.amazonaws.com", "cloudtrail.amazonaws.com"]}"#,
            "cloudtrail.amazonaws.com",
            true,
        ),
        (r#"{"Service": "cloudtrail.amazonaws.com"}"#, ALICE, false),
        (
            r#"{"AWS": "444455556666", "Service": "cloudtrail.amazonaws.com"}"#,
            MALLORY,
            true,
        ),
    ];
    for &(principal, who, applies) in cases {
        let p = parse(&doc(&[stmt(
            "P",
            "Allow",
            &format!(r#""Principal": {principal}"#),
            r#""Action": "s3:GetObject""#,
            r#""Resource": "*""#,
            "",
        )]));
        let want = if applies { Allow } else { NoMatch };
        assert_eq!(
            eval(&p, who, GET, OBJ, &()).0,
            want,
            "{principal} vs {who:?}"
        );
    }
}

#[test]
fn every_operator_matching_non_matching_absent() {
    const K: &str = "s3:x-amz-server-side-encryption";
    let m = [(K, "AES256")];
    let lower = [(K, "aes256")];
    let other = [(K, "aws:kms")];
    let absent = [("aws:SecureTransport", "true")];
    // (operator and values, matching, case-variant, other, absent)
    let cases: &[(&str, bool, bool, bool, bool)] = &[
        (
            r#""StringEquals": {"K": "AES256"}"#,
            true,
            false,
            false,
            false,
        ),
        (
            r#""StringNotEquals": {"K": "AES256"}"#,
            false,
            true,
            true,
            true,
        ),
        (
            r#""StringEqualsIgnoreCase": {"K": "aes256"}"#,
            true,
            true,
            false,
            false,
        ),
        (
            r#""StringNotEqualsIgnoreCase": {"K": "Aes256"}"#,
            false,
            false,
            true,
            true,
        ),
        (r#""StringLike": {"K": "AES*"}"#, true, false, false, false),
        (
            r#""StringLike": {"K": "?ES25?"}"#,
            true,
            false,
            false,
            false,
        ),
        (r#""StringNotLike": {"K": "AES*"}"#, false, true, true, true),
        (
            r#""StringEqualsIfExists": {"K": "AES256"}"#,
            true,
            false,
            false,
            true,
        ),
        (
            r#""StringNotEqualsIfExists": {"K": "AES256"}"#,
            false,
            true,
            true,
            true,
        ),
        (
            r#""StringEqualsIgnoreCaseIfExists": {"K": "AES256"}"#,
            true,
            true,
            false,
            true,
        ),
        (
            r#""StringNotEqualsIgnoreCaseIfExists": {"K": "AES256"}"#,
            false,
            false,
            true,
            true,
        ),
        (
            r#""StringLikeIfExists": {"K": "AES*"}"#,
            true,
            false,
            false,
            true,
        ),
        (
            r#""StringNotLikeIfExists": {"K": "AES*"}"#,
            false,
            true,
            true,
            true,
        ),
        (r#""Null": {"K": "true"}"#, false, false, false, true),
        (r#""Null": {"K": "false"}"#, true, true, true, false),
        (r#""Null": {"K": true}"#, false, false, false, true),
        (r#""Null": {"K": false}"#, true, true, true, false),
    ];
    for &(op, want_m, want_lower, want_other, want_absent) in cases {
        let cond = format!("{{{}}}", op.replace("\"K\"", &format!("\"{K}\"")));
        assert_eq!(holds(&cond, &m), want_m, "{op} with AES256");
        assert_eq!(holds(&cond, &lower), want_lower, "{op} with aes256");
        assert_eq!(holds(&cond, &other), want_other, "{op} with aws:kms");
        assert_eq!(
            holds(&cond, &absent),
            want_absent,
            "{op} with the key absent"
        );
        assert_eq!(holds(&cond, &()), want_absent, "{op} with no keys at all");
    }
}

#[test]
fn bool_and_deny_insecure_transport() {
    let p = parse(
        r#"{
        "Version": "2012-10-17",
        "Id": "SecureTransportOnly",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::my-secure-bucket", "arn:aws:s3:::my-secure-bucket/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    }"#,
    );
    assert_eq!(p.id(), Some("SecureTransportOnly"));
    let deny = (Deny, Some("DenyInsecureTransport".to_owned()));
    assert_eq!(
        eval(&p, ALICE, GET, OBJ, &[(KEY_SECURE_TRANSPORT, "false")]),
        deny
    );
    assert_eq!(
        eval(
            &p,
            ALICE,
            "s3:ListBucket",
            BUCKET,
            &[(KEY_SECURE_TRANSPORT, "FALSE")]
        ),
        deny
    );
    assert_eq!(
        eval(&p, ALICE, GET, OBJ, &[(KEY_SECURE_TRANSPORT, "true")]).0,
        NoMatch
    );
    // Bool is a positive operator: absent is false (use BoolIfExists or Null to catch that).
    assert_eq!(eval(&p, ALICE, GET, OBJ, &()).0, NoMatch);
    // A value that is not a boolean matches neither.
    assert_eq!(
        eval(&p, ALICE, GET, OBJ, &[(KEY_SECURE_TRANSPORT, "no")]).0,
        NoMatch
    );

    let t = [(KEY_SECURE_TRANSPORT, "true")];
    let f = [(KEY_SECURE_TRANSPORT, "false")];
    let odd = [(KEY_SECURE_TRANSPORT, "maybe")];
    let cases: &[(&str, bool, bool, bool, bool)] = &[
        // (condition, with true, with false, with a non-boolean, absent)
        (
            r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
            true,
            false,
            false,
            false,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": true}}"#,
            true,
            false,
            false,
            false,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": "TRUE"}}"#,
            true,
            false,
            false,
            false,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": false}}"#,
            false,
            true,
            false,
            false,
        ),
        (
            r#"{"BoolIfExists": {"aws:SecureTransport": "true"}}"#,
            true,
            false,
            false,
            true,
        ),
        (
            r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#,
            false,
            true,
            false,
            true,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": [true, false]}}"#,
            true,
            true,
            false,
            false,
        ),
    ];
    for &(cond, wt, wf, wodd, wabsent) in cases {
        assert_eq!(holds(cond, &t), wt, "{cond} true");
        assert_eq!(holds(cond, &f), wf, "{cond} false");
        assert_eq!(holds(cond, &odd), wodd, "{cond} maybe");
        assert_eq!(holds(cond, &()), wabsent, "{cond} absent");
    }
}

#[test]
fn values_or_keys_and_operators_and() {
    let or = r#"{"StringEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms"]}}"#;
    assert!(holds(or, &[(KEY_SSE, "AES256")]));
    assert!(holds(or, &[(KEY_SSE, "aws:kms")]));
    assert!(!holds(or, &[(KEY_SSE, "aws:kms:dsse")]));
    let nor = r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms"]}}"#;
    assert!(!holds(nor, &[(KEY_SSE, "AES256")]));
    assert!(!holds(nor, &[(KEY_SSE, "aws:kms")]));
    assert!(holds(nor, &[(KEY_SSE, "AES192")]));
    let nlike = r#"{"StringNotLike": {"s3:x-amz-server-side-encryption": ["AES*", "aws:*"]}}"#;
    assert!(!holds(nlike, &[(KEY_SSE, "aws:kms")]));
    assert!(holds(nlike, &[(KEY_SSE, "none")]));

    let keys = r#"{"StringEquals": {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:111122223333:key/k1"
    }}"#;
    let kms = (KEY_SSE, "aws:kms");
    let k1 = (
        KEY_SSE_KMS_KEY_ID,
        "arn:aws:kms:us-east-1:111122223333:key/k1",
    );
    let k2 = (
        KEY_SSE_KMS_KEY_ID,
        "arn:aws:kms:us-east-1:111122223333:key/k2",
    );
    assert!(holds(keys, &[kms, k1]));
    assert!(!holds(keys, &[kms, k2]));
    assert!(!holds(keys, &[kms]));
    assert!(!holds(keys, &[k1]));

    let ops = r#"{
        "StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
        "Bool": {"aws:SecureTransport": "true"},
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}
    }"#;
    let tls = (KEY_SECURE_TRANSPORT, "true");
    assert!(holds(ops, &[kms, tls]));
    assert!(!holds(ops, &[kms, (KEY_SECURE_TRANSPORT, "false")]));
    assert!(!holds(ops, &[(KEY_SSE, "AES256"), tls]));
    assert!(!holds(
        ops,
        &[kms, tls, (KEY_SSE_CUSTOMER_ALGORITHM, "AES256")]
    ));
}

#[test]
fn condition_keys_are_case_insensitive() {
    let cond = r#"{"StringEquals": {"S3:X-AMZ-Server-Side-Encryption": "AES256"}}"#;
    assert!(holds(cond, &[(KEY_SSE, "AES256")]));
    assert!(holds(
        cond,
        &[("s3:x-amz-server-side-encryption", "AES256")]
    ));
    assert!(holds(
        cond,
        &[("S3:X-AMZ-SERVER-SIDE-ENCRYPTION", "AES256")]
    ));
    let ctx = ConditionContext::new().with("s3:X-Amz-Server-Side-Encryption", "AES256");
    assert!(holds(cond, &ctx));
    let cond = r#"{"Bool": {"AWS:SECURETRANSPORT": "false"}}"#;
    assert!(holds(cond, &[("aws:securetransport", "false")]));
    // Operators and element names are case-sensitive.
    for bad in [
        r#"{"stringequals": {"s3:x-amz-server-side-encryption": "AES256"}}"#,
        r#"{"StringEqualsIfexists": {"s3:x-amz-server-side-encryption": "AES256"}}"#,
        r#"{"BOOL": {"aws:SecureTransport": "false"}}"#,
    ] {
        let json = doc(&[stmt(
            "S",
            "Allow",
            r#""Principal": "*""#,
            r#""Action": "*""#,
            r#""Resource": "*""#,
            bad,
        )]);
        assert!(Policy::parse(&json).is_err(), "{bad}");
    }
    let json = r#"{"Version": "2012-10-17", "Statement": {"effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}"#;
    assert!(Policy::parse(json).is_err());
}

#[test]
fn kms_key_policy_requires_a_specific_key() {
    let p = parse(
        r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RequireKMS",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::my-secure-bucket/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}
            },
            {
                "Sid": "RequireKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::my-secure-bucket/*",
                "Condition": {"StringNotEquals": {
                    "s3:x-amz-server-side-encryption-aws-kms-key-id":
                        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                }}
            }
        ]
    }"#,
    );
    let key = (
        KEY_SSE_KMS_KEY_ID,
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    );
    let kms = (KEY_SSE, "aws:kms");
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &[kms, key]).0, NoMatch);
    assert_eq!(
        eval(
            &p,
            ALICE,
            PUT,
            OBJ,
            &[
                kms,
                (
                    KEY_SSE_KMS_KEY_ID,
                    "arn:aws:kms:us-east-1:111122223333:key/other"
                )
            ]
        ),
        (Deny, Some("RequireKey".into()))
    );
    assert_eq!(
        eval(&p, ALICE, PUT, OBJ, &[kms]),
        (Deny, Some("RequireKey".into()))
    );
    assert_eq!(
        eval(&p, ALICE, PUT, OBJ, &[(KEY_SSE, "AES256"), key]),
        (Deny, Some("RequireKMS".into()))
    );
    assert_eq!(
        eval(&p, ALICE, PUT, OBJ, &[key]),
        (Deny, Some("RequireKMS".into()))
    );
    assert_eq!(eval(&p, ALICE, GET, OBJ, &[]).0, NoMatch);
}

#[test]
fn condition_values_of_other_json_types_are_stringified() {
    let cond = r#"{"StringEquals": {"s3:max-keys": 10, "aws:MultiFactorAuthPresent": true}}"#;
    assert!(holds(
        cond,
        &[
            ("s3:max-keys", "10"),
            ("aws:MultiFactorAuthPresent", "true")
        ]
    ));
    assert!(!holds(
        cond,
        &[
            ("s3:max-keys", "10.0"),
            ("aws:MultiFactorAuthPresent", "true")
        ]
    ));
    let cond = r#"{"StringEquals": {"s3:max-keys": [-1, 18446744073709551615]}}"#;
    assert!(holds(cond, &[("s3:max-keys", "-1")]));
    assert!(holds(cond, &[("s3:max-keys", "18446744073709551615")]));
}

#[test]
fn principal_and_username_keys_are_ordinary_condition_keys() {
    let cond = r#"{"StringLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/*"}, "StringNotEquals": {"aws:username": "bob"}}"#;
    assert!(holds(
        cond,
        &[(KEY_PRINCIPAL_ARN, ALICE), (KEY_USERNAME, "alice")]
    ));
    assert!(!holds(
        cond,
        &[(KEY_PRINCIPAL_ARN, BOB), (KEY_USERNAME, "bob")]
    ));
    assert!(!holds(
        cond,
        &[(KEY_PRINCIPAL_ARN, MALLORY), (KEY_USERNAME, "mallory")]
    ));
}

#[test]
fn a_key_with_several_values_is_read_the_way_that_refuses_more() {
    // Deny unless AES256: a request carrying AES256 and AES192 is denied.
    let p = parse(SEED);
    let two = ConditionContext::new()
        .with(KEY_SSE, "AES256")
        .with(KEY_SSE, "AES192");
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &two).0, Deny);
    let both_good = [(KEY_SSE, "AES256"), (KEY_SSE, "AES256")];
    assert_eq!(eval(&p, ALICE, PUT, OBJ, &both_good).0, NoMatch);
    // Allow only AES256: the same request is not allowed.
    let allow = cond_policy(
        "Allow",
        r#"{"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}"#,
    );
    assert_eq!(eval(&allow, ALICE, PUT, OBJ, &two).0, NoMatch);
    assert_eq!(eval(&allow, ALICE, PUT, OBJ, &both_good).0, Allow);
    // Deny aws:kms: a request carrying AES256 and aws:kms is denied.
    let deny_kms = cond_policy(
        "Deny",
        r#"{"StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}"#,
    );
    let mixed = [(KEY_SSE, "AES256"), (KEY_SSE, "aws:kms")];
    assert_eq!(eval(&deny_kms, ALICE, PUT, OBJ, &mixed).0, Deny);
    // Allow unless aws:kms: not allowed.
    let allow_not_kms = cond_policy(
        "Allow",
        r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}"#,
    );
    assert_eq!(eval(&allow_not_kms, ALICE, PUT, OBJ, &mixed).0, NoMatch);
    assert_eq!(
        eval(&allow_not_kms, ALICE, PUT, OBJ, &[(KEY_SSE, "AES256")]).0,
        Allow
    );
}

#[test]
fn version_2008_and_missing_version() {
    let p = parse(
        r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${literal}"}}"#,
    );
    assert_eq!(p.version(), Version::V2008_10_17);
    assert_eq!(
        eval(&p, ANON, GET, "arn:aws:s3:::b/${literal}", &()),
        (Allow, None)
    );
    let p = parse(
        r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}}"#,
    );
    assert_eq!(p.version(), Version::V2008_10_17);
    assert_eq!(p.id(), None);
    assert!(!p.is_empty());
    let q: Policy = SEED.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.sid(0), Some("DenyUnencryptedPut"));
    assert_eq!(q.sid(1), None);
}

/// A valid statement's parts, for building malformed documents.
const P: &str = r#""Principal": "*""#;
const A: &str = r#""Action": "s3:GetObject""#;
const R: &str = r#""Resource": "*""#;

#[test]
fn malformed_policies_are_refused() {
    let st = |extra: &str| {
        format!(r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", {extra}}}]}}"#)
    };
    let with_cond = |cond: &str| st(&format!("{P}, {A}, {R}, \"Condition\": {cond}"));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_valid_prefix = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", {P}, {A}, {R}, "Condition": {{"StringEquals": {{"k": [[[[["x"]]]]]}}}}}}]}}"#
    );
    let big = format!(
        r#"{{"Version": "2012-10-17", "Id": "{}", "Statement": {{"Effect": "Allow", {P}, {A}, {R}}}}}"#,
        "x".repeat(MAX_POLICY_BYTES)
    );
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "this is not json".into()),
        ("empty", String::new()),
        ("truncated", SEED[..SEED.len() - 3].into()),
        ("trailing garbage", format!("{SEED} x")),
        ("not an object", "[]".into()),
        ("a string", r#""policy""#.into()),
        ("no Statement", r#"{"Version": "2012-10-17"}"#.into()),
        (
            "empty Statement",
            r#"{"Version": "2012-10-17", "Statement": []}"#.into(),
        ),
        (
            "Statement a string",
            r#"{"Version": "2012-10-17", "Statement": "x"}"#.into(),
        ),
        (
            "statement not an object",
            r#"{"Version": "2012-10-17", "Statement": ["x"]}"#.into(),
        ),
        (
            "unknown top element",
            SEED.replacen("\"Version\"", "\"Extra\": 1, \"Version\"", 1),
        ),
        (
            "unknown version",
            SEED.replacen("2012-10-17", "2012-10-18", 1),
        ),
        (
            "version a number",
            SEED.replacen("\"2012-10-17\"", "2012", 1),
        ),
        (
            "Id a number",
            SEED.replacen("\"Version\"", "\"Id\": 7, \"Version\"", 1),
        ),
        (
            "duplicate member",
            SEED.replacen("\"Sid\"", "\"Effect\": \"Allow\", \"Sid\"", 1),
        ),
        (
            "duplicate top member",
            SEED.replacen(
                "\"Version\": \"2012-10-17\",",
                "\"Version\": \"2012-10-17\", \"Version\": \"2012-10-17\",",
                1,
            ),
        ),
        (
            "missing Effect",
            SEED.replacen("\"Effect\": \"Deny\",", "", 1),
        ),
        ("bad Effect", SEED.replacen("\"Deny\"", "\"Forbid\"", 1)),
        (
            "Effect lower case",
            SEED.replacen("\"Deny\"", "\"deny\"", 1),
        ),
        ("Effect not a string", SEED.replacen("\"Deny\"", "true", 1)),
        (
            "Sid not a string",
            SEED.replacen("\"DenyUnencryptedPut\"", "[]", 1),
        ),
        (
            "unknown statement element",
            SEED.replacen("\"Sid\"", "\"Comment\": \"x\", \"Sid\"", 1),
        ),
        (
            "Principal and NotPrincipal",
            st(&format!("{P}, \"NotPrincipal\": \"*\", {A}, {R}")),
        ),
        ("no Principal", st(&format!("{A}, {R}"))),
        ("Action missing", st(&format!("{P}, {R}"))),
        (
            "Action and NotAction",
            st(&format!("{P}, {A}, \"NotAction\": \"s3:*\", {R}")),
        ),
        ("Resource missing", st(&format!("{P}, {A}"))),
        (
            "Resource and NotResource",
            st(&format!("{P}, {A}, {R}, \"NotResource\": \"*\"")),
        ),
        ("Action a number", st(&format!("{P}, \"Action\": 3, {R}"))),
        (
            "Action array of numbers",
            st(&format!("{P}, \"Action\": [3], {R}")),
        ),
        (
            "Action empty array",
            st(&format!("{P}, \"Action\": [], {R}")),
        ),
        (
            "Action empty string",
            st(&format!("{P}, \"Action\": \"\", {R}")),
        ),
        (
            "Action without service",
            st(&format!("{P}, \"Action\": \"GetObject\", {R}")),
        ),
        (
            "Resource not an ARN",
            st(&format!("{P}, {A}, \"Resource\": \"my-bucket/*\"")),
        ),
        (
            "Resource an object",
            st(&format!("{P}, {A}, \"Resource\": {{}}")),
        ),
        (
            "policy variable",
            st(&format!(
                "{P}, {A}, \"Resource\": \"arn:aws:s3:::b/${{aws:username}}/*\""
            )),
        ),
        (
            "principal string not *",
            st(&format!("\"Principal\": \"{ALICE}\", {A}, {R}")),
        ),
        (
            "principal empty object",
            st(&format!("\"Principal\": {{}}, {A}, {R}")),
        ),
        (
            "principal Federated",
            st(&format!(
                "\"Principal\": {{\"Federated\": \"x\"}}, {A}, {R}"
            )),
        ),
        (
            "principal aws lower case",
            st(&format!("\"Principal\": {{\"aws\": \"*\"}}, {A}, {R}")),
        ),
        (
            "principal wildcard in ARN",
            st(&format!(
                "\"Principal\": {{\"AWS\": \"arn:aws:iam::111122223333:user/*\"}}, {A}, {R}"
            )),
        ),
        (
            "principal ? in ARN",
            st(&format!(
                "\"Principal\": {{\"AWS\": \"arn:aws:iam::111122223333:user/a?\"}}, {A}, {R}"
            )),
        ),
        (
            "principal not an ARN",
            st(&format!("\"Principal\": {{\"AWS\": \"alice\"}}, {A}, {R}")),
        ),
        (
            "principal short account",
            st(&format!("\"Principal\": {{\"AWS\": \"12345\"}}, {A}, {R}")),
        ),
        (
            "principal number",
            st(&format!(
                "\"Principal\": {{\"AWS\": 111122223333}}, {A}, {R}"
            )),
        ),
        (
            "principal array",
            st(&format!("\"Principal\": [\"*\"], {A}, {R}")),
        ),
        (
            "principal empty array",
            st(&format!("\"Principal\": {{\"AWS\": []}}, {A}, {R}")),
        ),
        (
            "service wildcard",
            st(&format!("\"Principal\": {{\"Service\": \"*\"}}, {A}, {R}")),
        ),
        (
            "unknown operator",
            with_cond(r#"{"StringMatches": {"k": "v"}}"#),
        ),
        (
            "ForAnyValue",
            with_cond(r#"{"ForAnyValue:StringEquals": {"k": "v"}}"#),
        ),
        (
            "ForAllValues",
            with_cond(r#"{"ForAllValues:StringLike": {"k": "v"}}"#),
        ),
        (
            "numeric operator",
            with_cond(r#"{"NumericLessThan": {"s3:max-keys": 10}}"#),
        ),
        (
            "date operator",
            with_cond(r#"{"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}"#),
        ),
        (
            "ip operator",
            with_cond(r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#),
        ),
        (
            "arn operator",
            with_cond(r#"{"ArnLike": {"aws:SourceArn": "arn:*"}}"#),
        ),
        (
            "NullIfExists",
            with_cond(r#"{"NullIfExists": {"k": "true"}}"#),
        ),
        (
            "IfExists alone",
            with_cond(r#"{"IfExists": {"k": "true"}}"#),
        ),
        ("Null not a boolean", with_cond(r#"{"Null": {"k": "yes"}}"#)),
        ("Bool not a boolean", with_cond(r#"{"Bool": {"k": "yes"}}"#)),
        ("condition a string", with_cond(r#""StringEquals""#)),
        (
            "operator block an array",
            with_cond(r#"{"StringEquals": ["k", "v"]}"#),
        ),
        ("operator block empty", with_cond(r#"{"StringEquals": {}}"#)),
        (
            "condition value an object",
            with_cond(r#"{"StringEquals": {"k": {"v": 1}}}"#),
        ),
        (
            "condition value null",
            with_cond(r#"{"StringEquals": {"k": null}}"#),
        ),
        (
            "condition value nested array",
            with_cond(r#"{"StringEquals": {"k": [["v"]]}}"#),
        ),
        (
            "condition value empty array",
            with_cond(r#"{"StringNotEquals": {"k": []}}"#),
        ),
        (
            "condition value float",
            with_cond(r#"{"StringEquals": {"k": 1.5}}"#),
        ),
        (
            "condition key twice, two spellings",
            with_cond(r#"{"StringEquals": {"aws:username": "a", "AWS:UserName": "b"}}"#),
        ),
        (
            "duplicate operator",
            with_cond(r#"{"StringEquals": {"k": "a"}, "StringEquals": {"k": "b"}}"#),
        ),
        (
            "empty condition key",
            with_cond(r#"{"StringEquals": {"": "a"}}"#),
        ),
        (
            "condition policy variable",
            with_cond(r#"{"StringLike": {"k": "home/${aws:username}/*"}}"#),
        ),
        ("deep nesting", deep),
        ("nesting past the limit in a value", deep_valid_prefix),
        ("over-long input", big),
    ];
    for (what, json) in &cases {
        match Policy::parse(json) {
            Ok(p) => panic!("{what}: accepted {p:?}"),
            Err(e) => {
                assert_eq!(e.s3_code(), "MalformedPolicy");
                let msg = e.to_string();
                assert!(msg.len() > 10, "{what}: unhelpful message {msg:?}");
            }
        }
    }
    assert!(matches!(
        Policy::parse(&cases.last().unwrap().1),
        Err(PolicyError::TooLarge { .. })
    ));
    assert!(matches!(
        Policy::parse(&"[".repeat(100_000)),
        Err(PolicyError::TooLarge { .. }) | Err(PolicyError::TooDeep)
    ));
    assert_eq!(
        Policy::parse(&"[".repeat(20)).unwrap_err(),
        PolicyError::TooDeep
    );
    match Policy::parse(&with_cond(r#"{"ForAnyValue:StringEquals": {"k": "v"}}"#)) {
        Err(PolicyError::Invalid { at, reason }) => {
            assert_eq!(at, "Statement[0].Condition");
            assert!(reason.contains("ForAnyValue:StringEquals"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match Policy::parse(&SEED.replacen("\"Deny\"", "\"Forbid\"", 1)) {
        Err(PolicyError::Invalid { at, .. }) => assert_eq!(at, "Statement[0].Effect"),
        other => panic!("{other:?}"),
    }
    // Brackets inside strings do not count as nesting.
    let p = parse(&SEED.replacen("DenyUnencryptedPut", &"[{".repeat(50), 1));
    assert_eq!(p.sid(0), Some("[{".repeat(50).as_str()));
    // Exactly at the size limit is accepted.
    let pad = MAX_POLICY_BYTES - SEED.len();
    let at_limit = format!("{SEED}{}", " ".repeat(pad));
    assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
    parse(&at_limit);
    assert!(matches!(
        Policy::parse(&format!("{at_limit} ")),
        Err(PolicyError::TooLarge { len }) if len == MAX_POLICY_BYTES + 1
    ));
}

#[test]
fn glob_matcher_is_bounded_on_pathological_patterns() {
    let text = "a".repeat(10_000);
    let pattern = "*a*a*a*a*a*b";
    let (m, steps) = wildcard_match_counted(pattern, &text);
    assert!(!m);
    // Backtracking to the last star only: at most |pattern| · |text| steps, far from exponential.
    assert!(
        steps <= (pattern.len() * text.len()) as u64,
        "{steps} steps"
    );
    let (m, steps) = wildcard_match_counted(&"*a".repeat(500), &"a".repeat(5_000));
    assert!(m);
    assert!(steps <= 1000 * 5_000, "{steps}");
    let (m, steps) = wildcard_match_counted(&format!("{}b", "*a".repeat(500)), &"a".repeat(5_000));
    assert!(!m);
    assert!(steps <= 1001 * 5_000, "{steps}");
    let (m, steps) = wildcard_match_counted(&"?".repeat(20_000), &"a".repeat(20_000));
    assert!(m);
    assert!(steps <= 20_000, "{steps}");

    // The same hostile pattern inside a policy, against a long resource.
    let p = parse(&doc(&[stmt(
        "Slow",
        "Deny",
        P,
        r#""Action": "s3:*a*a*a*a*a*a*a*a*a*a""#,
        r#""Resource": "arn:*a*a*a*a*a*a*a*a*a*a""#,
        r#"{"StringLike": {"k": "*a*a*a*a*a*a*a*a*a*a*b"}}"#,
    )]));
    // Action and resource match (after scanning 10 000 characters); the condition then fails.
    let many = "a".repeat(10_000);
    let (action, resource) = (format!("s3:{many}"), format!("arn:{many}"));
    assert_eq!(
        eval(&p, ALICE, &action, &resource, &[("k", many.as_str())]).0,
        NoMatch
    );
    let with_b = format!("{many}b");
    assert_eq!(
        eval(&p, ALICE, &action, &resource, &[("k", with_b.as_str())]),
        (Deny, Some("Slow".into()))
    );
}

#[test]
fn glob_semantics() {
    let cases: &[(&str, &str, bool)] = &[
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("?", "", false),
        ("?", "é", true),
        ("a*", "a", true),
        ("a*b", "ab", true),
        ("a*b", "axxb", true),
        ("a*b", "axxbc", false),
        ("a*b*c", "abbbc", true),
        ("*.jpg", "cat.jpg", true),
        ("*.jpg", "cat.jpeg", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("**", "anything", true),
        ("*?", "", false),
        ("*?", "x", true),
        ("A", "a", false),
        ("日本*", "日本語", true),
        ("日?語", "日本語", true),
    ];
    for &(p, t, want) in cases {
        assert_eq!(wildcard_match(p, t), want, "{p:?} vs {t:?}");
    }
}

fn arb_policy_seed() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SEED.to_owned()),
        Just(doc(&[
            stmt(
                "A",
                "Allow",
                r#""Principal": {"AWS": ["111122223333", "arn:aws:iam::444455556666:root"]}"#,
                r#""NotAction": ["s3:Get*", "s3:?ist*"]"#,
                r#""NotResource": "arn:aws:s3:::b/*""#,
                r#"{"StringLikeIfExists": {"k": ["a*", "?b"]}, "Null": {"n": true}, "Bool": {"aws:SecureTransport": false}}"#
            ),
            stmt(
                "D",
                "Deny",
                r#""NotPrincipal": {"CanonicalUser": "abc", "Service": "s.amazonaws.com"}"#,
                r#""Action": "*""#,
                r#""Resource": ["*"]"#,
                r#"{"StringNotEqualsIgnoreCase": {"k": ["X", 1, true]}}"#
            ),
        ])),
    ]
}

fn mutate(s: &str, ops: &[(usize, u8, u8)]) -> String {
    let mut b = s.as_bytes().to_vec();
    for &(pos, kind, byte) in ops {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let i = pos % b.len();
        match kind % 4 {
            0 => b[i] = byte,
            1 => {
                b.remove(i);
            }
            2 => b.insert(i, byte),
            _ => {
                let j = (i + byte as usize) % b.len();
                b.swap(i, j);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"{}[]\":,*?$\\ tfn0123456789aAsS-".to_vec()),
        any::<u8>(),
    ]
}

fn requests_never_panic(
    p: &Policy,
    principal: &str,
    action: &str,
    resource: &str,
    k: &str,
    v: &str,
) {
    let ctx = ConditionContext::new()
        .with(k, v)
        .with("aws:SecureTransport", v);
    for conds in [&ctx as &dyn ConditionValues, &(), &[(k, v), (k, "AES256")]] {
        let e = p.evaluate(&PolicyRequest {
            principal,
            action,
            resource,
            conditions: conds,
        });
        assert_eq!(e.statement.is_some(), e.decision != Decision::NoMatch);
        if let Some(i) = e.statement {
            assert!(i < p.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_random_text(s in proptest::collection::vec(json_byte(), 0..300)) {
        let s = String::from_utf8_lossy(&s);
        if let Ok(p) = Policy::parse(&s) {
            requests_never_panic(&p, ALICE, PUT, OBJ, KEY_SSE, "AES256");
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_policies(
        seed in arb_policy_seed(),
        ops in proptest::collection::vec((any::<usize>(), any::<u8>(), json_byte()), 1..6),
        principal in "(\\*|arn:aws:(iam|sts)::(111122223333|444455556666):(root|user/a|assumed-role/r/s)|[a-z:.*]{0,12})",
        action in "(s3:[A-Za-z*?]{0,12}|[a-z:*]{0,8})",
        resource in "(arn:aws:s3:::[a-z/*?]{0,16}|\\PC{0,8})",
        k in "[A-Za-z:-]{0,10}",
        v in "\\PC{0,12}",
    ) {
        let s = mutate(&seed, &ops);
        if let Ok(p) = Policy::parse(&s) {
            requests_never_panic(&p, &principal, &action, &resource, &k, &v);
        }
    }

    #[test]
    fn evaluate_never_panics_on_random_requests(
        seed in arb_policy_seed(),
        principal in "\\PC{0,40}",
        action in "\\PC{0,20}",
        resource in "\\PC{0,40}",
        k in "\\PC{0,20}",
        v in "\\PC{0,20}",
    ) {
        let p = parse(&seed);
        requests_never_panic(&p, &principal, &action, &resource, &k, &v);
    }

    #[test]
    fn glob_agrees_with_a_reference_matcher(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
        prop_assert_eq!(wildcard_match(&p, &t), reference_glob(p.as_bytes(), t.as_bytes()));
    }
}

/// Exponential but obviously right: the specification of `*` and `?`.
fn reference_glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| reference_glob(rest, &t[i..])),
        Some((b'?', rest)) => !t.is_empty() && reference_glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference_glob(rest, &t[1..]),
    }
}

#[test]
fn policies_are_shareable_and_debuggable() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Policy>();
    shareable::<PolicyError>();
    shareable::<ConditionContext>();
    let p = parse(SEED);
    let q = p.clone();
    let shared = std::sync::Arc::new(q);
    let t = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            shared
                .evaluate(&PolicyRequest {
                    principal: ANON,
                    action: PUT,
                    resource: OBJ,
                    conditions: &(),
                })
                .decision
        })
    };
    assert_eq!(t.join().ok(), Some(Deny));
    let debug = format!("{p:?}");
    assert!(debug.contains("DenyUnencryptedPut"), "{debug}");
    let req = PolicyRequest {
        principal: ALICE,
        action: PUT,
        resource: OBJ,
        conditions: &[(KEY_SSE, "AES256")],
    };
    assert!(format!("{req:?}").contains("AES256"));
    assert!(format!("{:?}", p.evaluate(&req)).contains("NoMatch"));
}
