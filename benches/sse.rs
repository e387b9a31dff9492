#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The S3 layer's cost per request, same run:
//!
//! - `sse/put-4KiB/…`: a whole SSE PUT of a 4 KiB object: policy and headers, a fresh data key
//!   wrapped as the mode says, the object sealed and its metadata authenticated. Against
//!   `dek-in-hand` (the same object sealed and authenticated with a data key already in hand: the
//!   floor), and ring, aws-lc-rs and RustCrypto's aes-gcm sealing the same 4 KiB as one GCM message
//!   with a key already expanded (what a hand-rolled SSE would at least cost). The provider is the
//!   local keyring (for PKCS#11 and KMS, see the providers bench of ssekit-hsm).
//! - `sse/request/…`: the seed policy evaluated on a PUT's raw headers, the SSE headers parsed, and
//!   both (what every request pays before any key is touched).
//!
//! Then the bucket-key PUT and `dek-in-hand` timed alternately, one of each per round, for a ratio
//! the VM's drift cannot skew (the `interleaved` line on stderr).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ssekit::engine::sse::policy::Policy;
use ssekit::engine::sse::{
    BucketConfig, Headers, Operation, RequestContext, SseEngine, SseHeaders, evaluate_policy,
};
use ssekit::keys::{DataKey, EncryptionContext, KeyProvider, KeySpec, LocalKeyring};
use ssekit::object::{self, ObjectMeta, SseMode};

const SEED_POLICY: &str = include_str!("../engine/tests/data/seed_policy.json");

fn quick() -> bool {
    std::env::var_os("SSEKIT_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--test")
}

/// The floor: the same object (same context, same envelope record) sealed and authenticated with a
/// data key already in hand and its wrapped form already made: everything a PUT does but obtaining
/// and wrapping the key.
fn dek_in_hand(dek: &DataKey, template: &ObjectMeta, body: &[u8]) -> (Vec<u8>, ObjectMeta) {
    let sealed = object::seal(dek, body).unwrap();
    let mut meta = ObjectMeta::new(
        SseMode::SseKms,
        template.context.clone(),
        template.keys.clone(),
    );
    meta.size = body.len() as u64;
    meta.authenticate(dek).unwrap();
    (sealed, meta)
}

/// The bare floor: the object sealed with an empty context and no envelope.
fn dek_in_hand_bare(dek: &DataKey, body: &[u8]) -> (Vec<u8>, ObjectMeta) {
    let sealed = object::seal(dek, body).unwrap();
    let mut meta = ObjectMeta::new(SseMode::SseKms, EncryptionContext::new(), Vec::new());
    meta.size = body.len() as u64;
    meta.authenticate(dek).unwrap();
    (sealed, meta)
}

/// A PUT's headers as an SDK sends them: the SSE ones among the usual others.
fn put_headers(extra: &[(&str, &str)]) -> Headers {
    let mut h = Headers::from_pairs([
        ("host", "my-secure-bucket.s3.us-east-1.amazonaws.com"),
        ("content-type", "application/octet-stream"),
        ("content-length", "4096"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("x-amz-date", "20261203T070000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        ),
    ]);
    for (n, v) in extra {
        h.insert(n, v);
    }
    h
}

fn puts(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    let ring_kr = LocalKeyring::open(home.path().join("home")).unwrap();
    ring_kr
        .create_key(&KeySpec {
            id: Some("bench".into()),
            description: String::new(),
            rotation_period_days: None,
        })
        .unwrap();
    let engine = SseEngine::new(Arc::new(ring_kr));
    let ctx = RequestContext::new("my-secure-bucket", "photos/cat.jpg")
        .principal("arn:aws:iam::111122223333:user/alice")
        .secure(true);
    let bucket = BucketConfig::default();
    let body = vec![0x42u8; 4096];
    let kms = [
        ("x-amz-server-side-encryption", "aws:kms"),
        ("x-amz-server-side-encryption-aws-kms-key-id", "bench"),
    ];
    let bk = put_headers(&[
        kms[0],
        kms[1],
        ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
    ]);
    let direct = put_headers(&kms);
    let s3 = put_headers(&[("x-amz-server-side-encryption", "AES256")]);

    let mut g = c.benchmark_group("sse/put-4KiB");
    g.warm_up_time(Duration::from_millis(if quick() { 50 } else { 500 }));
    g.measurement_time(Duration::from_millis(if quick() { 100 } else { 3000 }));
    g.throughput(Throughput::Bytes(body.len() as u64));
    let put = |h: &Headers| {
        engine
            .plan_write(Operation::PutObject, h, &ctx, &bucket)
            .unwrap()
            .seal_object(&body)
            .unwrap()
    };
    let dek = DataKey::generate();
    let (_, template) = put(&bk);
    g.bench_function("dek-in-hand", |b| {
        b.iter(|| black_box(dek_in_hand(&dek, &template, black_box(&body))))
    });
    g.bench_function("dek-in-hand-bare", |b| {
        b.iter(|| black_box(dek_in_hand_bare(&dek, black_box(&body))))
    });
    g.bench_function("sse-kms-bucket-key", |b| b.iter(|| black_box(put(&bk))));
    g.bench_function("sse-kms-bucket-key-seal-only", |b| {
        b.iter_batched(
            || {
                engine
                    .plan_write(Operation::PutObject, &bk, &ctx, &bucket)
                    .unwrap()
            },
            |plan| black_box(plan.seal_object(&body).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("sse-kms-bucket-key-plan-only", |b| {
        b.iter(|| {
            black_box(
                engine
                    .plan_write(Operation::PutObject, &bk, &ctx, &bucket)
                    .unwrap(),
            )
        })
    });
    g.bench_function("sse-kms", |b| b.iter(|| black_box(put(&direct))));
    g.bench_function("sse-s3", |b| b.iter(|| black_box(put(&s3))));
    // Peers: one GCM message of the same 4 KiB, key already expanded, nonce given.
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
    );
    let mut buf = body.clone();
    g.bench_function("peer-ring-gcm", |b| {
        b.iter(|| {
            let nonce = ring::aead::Nonce::assume_unique_for_key([1u8; 12]);
            black_box(
                ring_key
                    .seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), &mut buf)
                    .unwrap(),
            )
        })
    });
    let lc_key = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
    );
    g.bench_function("peer-aws-lc-rs-gcm", |b| {
        b.iter(|| {
            let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key([1u8; 12]);
            black_box(
                lc_key
                    .seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::empty(), &mut buf)
                    .unwrap(),
            )
        })
    });
    {
        use aes_gcm::aead::{AeadInOut, KeyInit};
        let rc = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        g.bench_function("peer-rustcrypto-aes-gcm", |b| {
            b.iter(|| {
                black_box(
                    rc.encrypt_inout_detached(&[1u8; 12].into(), b"", buf.as_mut_slice().into())
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
    interleaved(&dek, &template, &body, || put(&bk));
}

fn interleaved(
    dek: &DataKey,
    template: &ObjectMeta,
    body: &[u8],
    put: impl Fn() -> (Vec<u8>, ObjectMeta),
) {
    let rounds = if quick() { 2_000 } else { 200_000 };
    let (mut base, mut ours) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(dek_in_hand(dek, template, body));
        base += t.elapsed();
        let t = Instant::now();
        black_box(put());
        ours += t.elapsed();
    }
    eprintln!(
        "interleaved sse/put-4KiB: dek-in-hand {:.2} us, sse-kms-bucket-key {:.2} us, ratio {:.3}x",
        base.as_secs_f64() * 1e6 / rounds as f64,
        ours.as_secs_f64() * 1e6 / rounds as f64,
        base.as_secs_f64() / ours.as_secs_f64()
    );
}

fn requests(c: &mut Criterion) {
    let policy = Policy::parse(SEED_POLICY).unwrap();
    let h = put_headers(&[("x-amz-server-side-encryption", "AES256")]);
    let arn = "arn:aws:s3:::my-secure-bucket/photos/cat.jpg";
    let who = "arn:aws:iam::111122223333:user/alice";
    let mut g = c.benchmark_group("sse/request");
    g.warm_up_time(Duration::from_millis(if quick() { 50 } else { 500 }));
    g.measurement_time(Duration::from_millis(if quick() { 100 } else { 2000 }));
    g.bench_function("seed-policy", |b| {
        b.iter(|| {
            black_box(evaluate_policy(
                &policy,
                "s3:PutObject",
                arn,
                who,
                true,
                black_box(&h),
                &[],
            ))
            .decision
        })
    });
    let kms = put_headers(&[
        ("x-amz-server-side-encryption", "aws:kms"),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            "arn:aws:kms:us-east-1:000000000000:key/bench",
        ),
        ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
    ]);
    g.bench_function("parse-headers", |b| {
        b.iter(|| black_box(SseHeaders::parse(black_box(&kms), true).unwrap()))
    });
    g.bench_function("seed-policy+parse-headers", |b| {
        b.iter(|| {
            let e = evaluate_policy(&policy, "s3:PutObject", arn, who, true, &h, &[]);
            black_box((e.decision, SseHeaders::parse(black_box(&h), true).unwrap()))
        })
    });
    g.finish();
}

criterion_group!(benches, puts, requests);
criterion_main!(benches);
