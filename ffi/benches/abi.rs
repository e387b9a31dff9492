#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The C ABI's cost against the Rust API it wraps, same run:
//!
//! - `abi/seal-4KiB/…` and `abi/seal-1MiB/…`: one object body sealed into a caller's buffer with a
//!   plan in hand: `rust-api` (`WritePlan::seal_into`) against `c-abi` (`ssekit_write_plan_seal_into`,
//!   called through its C signature: the pointer checks, the panic boundary). ring, aws-lc-rs and
//!   RustCrypto's aes-gcm seal the same bytes as one GCM message, key already expanded.
//! - `abi/put-4KiB/…`: a whole SSE-S3 PUT (plan with a fresh data key, seal, metadata
//!   authenticated and encoded) through each.
//!
//! Then `rust-api` and `c-abi` 4 KiB seals timed alternately, one of each per round, for a ratio the
//! VM's drift cannot skew (the `interleaved` line on stderr).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::ssekit_engine::keys::{LocalKeyring, SystemClock};
use ::ssekit_engine::sse::{BucketConfig, Headers, Operation, RequestContext, SseEngine};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ssekit::*;

fn quick() -> bool {
    std::env::var_os("SSEKIT_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--test")
}

struct Abi {
    engine: *mut ssekit_engine,
    request: *mut ssekit_request,
    bucket: *mut ssekit_bucket,
}

impl Abi {
    fn new(dir: &std::path::Path) -> Abi {
        let d = dir.to_str().unwrap();
        let mut b = std::ptr::null_mut();
        assert_eq!(
            ssekit_engine_builder_new(&mut b),
            ssekit_result::SSEKIT_RESULT_OK
        );
        let r =
            ssekit_engine_builder_local_keyring(b, d.as_ptr().cast(), d.len(), std::ptr::null(), 0);
        assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        let mut engine = std::ptr::null_mut();
        assert_eq!(
            ssekit_engine_builder_build(b, &mut engine),
            ssekit_result::SSEKIT_RESULT_OK
        );
        let mut request = std::ptr::null_mut();
        let r = ssekit_request_new(
            ssekit_operation::SSEKIT_OPERATION_PUT_OBJECT as u32,
            "bench".as_ptr().cast(),
            5,
            "object".as_ptr().cast(),
            6,
            &mut request,
        );
        assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        let (n, v) = ("x-amz-server-side-encryption", "AES256");
        let r = ssekit_request_add_header(
            request,
            n.as_ptr().cast(),
            n.len(),
            v.as_ptr().cast(),
            v.len(),
        );
        assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        let mut bucket = std::ptr::null_mut();
        assert_eq!(
            ssekit_bucket_new(&mut bucket),
            ssekit_result::SSEKIT_RESULT_OK
        );
        Abi {
            engine,
            request,
            bucket,
        }
    }

    fn plan(&self) -> *mut ssekit_write_plan {
        let mut plan = std::ptr::null_mut();
        let r = ssekit_engine_plan_write(
            self.engine,
            self.request,
            self.bucket,
            &mut plan,
            std::ptr::null_mut(),
        );
        assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        plan
    }

    fn seal(plan: *const ssekit_write_plan, body: &[u8], out: &mut [u8]) -> usize {
        let mut n = 0;
        let r = ssekit_write_plan_seal_into(
            plan,
            body.as_ptr(),
            body.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        );
        debug_assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        n
    }

    /// A whole PUT: plan, seal, metadata authenticated and encoded, everything freed.
    fn put(&self, body: &[u8], out: &mut [u8]) -> usize {
        let plan = self.plan();
        let n = Abi::seal(plan, body, out);
        let mut meta = std::ptr::null_mut();
        let r = ssekit_write_plan_finish(plan, body.len() as u64, &mut meta);
        debug_assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        let mut bytes = std::ptr::null_mut();
        let r = ssekit_meta_encode(meta, &mut bytes);
        debug_assert_eq!(r, ssekit_result::SSEKIT_RESULT_OK);
        let m = ssekit_bytes_len(bytes);
        ssekit_bytes_free(bytes);
        ssekit_meta_free(meta);
        ssekit_write_plan_free(plan);
        n + m
    }
}

impl Drop for Abi {
    fn drop(&mut self) {
        ssekit_bucket_free(self.bucket);
        ssekit_request_free(self.request);
        ssekit_engine_free(self.engine);
    }
}

struct RustApi {
    engine: SseEngine,
    headers: Headers,
    ctx: RequestContext,
    bucket: BucketConfig,
}

impl RustApi {
    fn new(dir: &std::path::Path) -> RustApi {
        let ring = LocalKeyring::open_with(dir, None, Arc::new(SystemClock)).unwrap();
        RustApi {
            engine: SseEngine::new(Arc::new(ring)),
            headers: Headers::from_pairs([("x-amz-server-side-encryption", "AES256")]),
            ctx: RequestContext::new("bench", "object"),
            bucket: BucketConfig::default(),
        }
    }

    fn put(&self, body: &[u8], out: &mut [u8]) -> usize {
        let plan = self
            .engine
            .plan_write(Operation::PutObject, &self.headers, &self.ctx, &self.bucket)
            .unwrap();
        let n = plan.seal_into(body, out).unwrap();
        let meta = plan.finish(body.len() as u64).unwrap();
        n + meta.to_bytes().unwrap().len()
    }
}

fn peers(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, body: &[u8]) {
    let mut buf = body.to_vec();
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
    );
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

fn seals(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let abi = Abi::new(&dir.path().join("abi"));
    let rust = RustApi::new(&dir.path().join("rust"));
    for (name, len) in [("abi/seal-4KiB", 4096usize), ("abi/seal-1MiB", 1 << 20)] {
        let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = vec![0u8; len + len / 1024 + 1024];
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(len as u64));
        if quick() {
            g.warm_up_time(Duration::from_millis(50))
                .measurement_time(Duration::from_millis(100))
                .sample_size(10);
        }
        let rust_plan = rust
            .engine
            .plan_write(Operation::PutObject, &rust.headers, &rust.ctx, &rust.bucket)
            .unwrap();
        g.bench_function("rust-api", |b| {
            b.iter(|| black_box(rust_plan.seal_into(&body, &mut out).unwrap()))
        });
        let plan = abi.plan();
        g.bench_function("c-abi", |b| {
            b.iter(|| black_box(Abi::seal(plan, &body, &mut out)))
        });
        peers(&mut g, &body);
        g.finish();
        if len == 4096 {
            interleaved(&rust_plan, plan, &body, &mut out);
        }
        ssekit_write_plan_free(plan);
    }
    let body = vec![5u8; 4096];
    let mut out = vec![0u8; 8192];
    let mut g = c.benchmark_group("abi/put-4KiB");
    g.throughput(Throughput::Bytes(4096));
    if quick() {
        g.warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(100))
            .sample_size(10);
    }
    g.bench_function("rust-api", |b| {
        b.iter(|| black_box(rust.put(&body, &mut out)))
    });
    g.bench_function("c-abi", |b| b.iter(|| black_box(abi.put(&body, &mut out))));
    g.finish();
}

fn interleaved(
    rust_plan: &::ssekit_engine::sse::WritePlan,
    plan: *const ssekit_write_plan,
    body: &[u8],
    out: &mut [u8],
) {
    let rounds = if quick() { 2_000 } else { 400_000 };
    let (mut base, mut ours) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(rust_plan.seal_into(body, out).unwrap());
        base += t.elapsed();
        let t = Instant::now();
        black_box(Abi::seal(plan, body, out));
        ours += t.elapsed();
    }
    eprintln!(
        "interleaved abi/seal-4KiB: rust-api {:.3} us, c-abi {:.3} us, ratio {:.3}x",
        base.as_secs_f64() * 1e6 / rounds as f64,
        ours.as_secs_f64() * 1e6 / rounds as f64,
        base.as_secs_f64() / ours.as_secs_f64()
    );
}

criterion_group!(benches, seals);
criterion_main!(benches);
