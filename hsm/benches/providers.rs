#![allow(missing_docs)] // criterion_group! generates undocumented items

//! Key providers under load: unwraps per second through SoftHSM2 against a bare `cryptoki` loop
//! making the same PKCS#11 calls (1 and 2 threads), what the data-key cache does to repeated
//! unwraps, and 4 KiB objects sealed per second with a data key from each provider (local keyring,
//! SoftHSM2, the KMS server) with and without the cache.
//!
//! Needs the token of `SSEKIT_PKCS11_*` and the KMS of `SSEKIT_KMS_ENDPOINT` (scripts/test.sh sets
//! both up and runs this once with `--test`); see docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ssekit_engine::keys::{
    CachePolicy, CachingProvider, EncryptionContext, KeyProvider, KeySpec, LocalKeyring, WrappedKey,
};
use ssekit_engine::object::{self, ObjectMeta, SseMode};
use ssekit_engine::sse::{BucketConfig, Headers, Operation, RequestContext, SseEngine};
use ssekit_hsm::{Binding, KmsConfig, KmsProvider, Pkcs11Config, Pkcs11Provider};
use std::sync::Arc;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run this through scripts/test.sh or set SSEKIT_PKCS11_* and SSEKIT_KMS_ENDPOINT"
        )
    })
}

fn pkcs11(home: &std::path::Path, binding: Binding) -> Pkcs11Provider {
    Pkcs11Provider::open(&Pkcs11Config {
        module: var("SSEKIT_PKCS11_MODULE").into(),
        token_label: var("SSEKIT_PKCS11_TOKEN_LABEL"),
        pin: var("SSEKIT_PKCS11_PIN").into(),
        home: home.to_path_buf(),
        pool_size: 8,
        binding: Some(binding),
    })
    .unwrap()
}

/// `cargo bench -- --test`: one pass of everything, no timing.
fn quick() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn key_id(what: &str) -> String {
    format!("bench-{what}-{}", std::process::id())
}

fn ctx() -> EncryptionContext {
    EncryptionContext::from_pairs([("bucket", "bench"), ("key", "object")]).unwrap()
}

/// A session of the benchmark's own on the same token (the provider initialised the module, so
/// this context does not finalise it when dropped), logged in, and the KEK `label`.
fn raw_session(label: &str) -> (Pkcs11, Session, ObjectHandle) {
    let ctx = Pkcs11::new(var("SSEKIT_PKCS11_MODULE")).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let want = var("SSEKIT_PKCS11_TOKEN_LABEL");
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == want)
        .unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    // The application may be logged in already (by the provider): that is fine.
    let _ = s.login(
        UserType::User,
        Some(&AuthPin::new(var("SSEKIT_PKCS11_PIN").into())),
    );
    let kek = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    (ctx, s, kek)
}

/// Runs `iters` calls of `op` spread over `threads` threads, each with its own state from `setup`
/// (made before the clock starts); the time they took.
fn spread<S: Send>(
    iters: u64,
    threads: u64,
    setup: impl Fn() -> S,
    op: impl Fn(&mut S) + Sync,
) -> Duration {
    let states: Vec<S> = (0..threads).map(|_| setup()).collect();
    let start = Instant::now();
    std::thread::scope(|sc| {
        for (t, mut st) in states.into_iter().enumerate() {
            let n = iters / threads + u64::from((t as u64) < iters % threads);
            let op = &op;
            sc.spawn(move || {
                for _ in 0..n {
                    op(&mut st);
                }
            });
        }
    });
    start.elapsed()
}

fn unwraps(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("unwrap_softhsm2");
    g.throughput(Throughput::Elements(1));
    for binding in [Binding::HsmGcm, Binding::AesKwpHmac] {
        let name = match binding {
            Binding::HsmGcm => "gcm",
            Binding::AesKwpHmac => "kwp",
        };
        let p = pkcs11(&home.path().join(name), binding);
        let id = key_id(name);
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let cx = ctx();
        let (_, w) = p.generate_data_key(&id, &cx).unwrap();
        let aad = ssekit_hsm::binding_data(&id, 1, &cx);
        let label = format!("{id}/v1");
        for threads in [1u64, 2] {
            g.bench_function(format!("{name}/bare_cryptoki/{threads}t"), |b| {
                b.iter_custom(|iters| {
                    spread(
                        iters,
                        threads,
                        || raw_session(&label),
                        |(_, s, kek)| bare_unwrap(binding, s, *kek, &w, &aad),
                    )
                })
            });
            g.bench_function(format!("{name}/provider/{threads}t"), |b| {
                b.iter_custom(|iters| {
                    spread(
                        iters,
                        threads,
                        || (),
                        |()| {
                            black_box(p.unwrap(&w, &cx).unwrap());
                        },
                    )
                })
            });
            // The ratio again, the two sides alternating in short rounds so the VM's drift hits
            // both alike (criterion measures one after the other).
            let (mut bare, mut ours) = (Duration::ZERO, Duration::ZERO);
            let (rounds, n) = if quick() { (1, 10) } else { (20, 1000) };
            for _ in 0..rounds {
                bare += spread(
                    n,
                    threads,
                    || raw_session(&label),
                    |(_, s, kek)| bare_unwrap(binding, s, *kek, &w, &aad),
                );
                ours += spread(
                    n,
                    threads,
                    || (),
                    |()| {
                        black_box(p.unwrap(&w, &cx).unwrap());
                    },
                );
            }
            let rate = |t: Duration| (rounds as u64 * n) as f64 / t.as_secs_f64();
            println!(
                "interleaved unwrap_softhsm2/{name}/{threads}t: bare {:.0}/s, provider {:.0}/s, ratio {:.3}",
                rate(bare),
                rate(ours),
                rate(ours) / rate(bare)
            );
        }
    }
    // Repeated reads of one object with the cache on: no HSM call after the first.
    let cached = CachingProvider::new(
        pkcs11(&home.path().join("gcm"), Binding::HsmGcm),
        CachePolicy::default(),
    );
    let cx = ctx();
    let (_, w) = cached
        .inner()
        .generate_data_key(&key_id("gcm"), &cx)
        .unwrap();
    g.bench_function("gcm/provider_cached/1t", |b| {
        b.iter(|| black_box(cached.unwrap(&w, &cx).unwrap()))
    });
    // One HSM call per max_uses (10,000) reads of the object, none in between.
    let s = cached.stats();
    assert!(
        s.provider_calls <= 1 + s.hits / CachePolicy::default().max_uses,
        "{s:?}"
    );
    g.finish();
}

/// The PKCS#11 calls the provider makes for one unwrap, and nothing else.
fn bare_unwrap(binding: Binding, s: &Session, kek: ObjectHandle, w: &WrappedKey, aad: &[u8]) {
    let c = &w.ciphertext;
    match binding {
        Binding::HsmGcm => {
            let mut iv: [u8; 12] = c[..12].try_into().unwrap();
            let params = GcmParams::new(&mut iv, aad, 128.into()).unwrap();
            black_box(
                s.decrypt(&Mechanism::AesGcm(params), kek, &c[12..])
                    .unwrap(),
            );
        }
        Binding::AesKwpHmac => {
            let obj = s
                .unwrap_key(
                    &Mechanism::AesKeyWrapPad,
                    kek,
                    &c[..40],
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(false),
                        Attribute::Private(true),
                        Attribute::Sensitive(false),
                        Attribute::Extractable(true),
                    ],
                )
                .unwrap();
            black_box(s.get_attributes(obj, &[AttributeType::Value]).unwrap());
            s.destroy_object(obj).unwrap();
        }
    }
}

fn objects(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    let local = LocalKeyring::open(home.path().join("local")).unwrap();
    let hsm = pkcs11(&home.path().join("hsm"), Binding::HsmGcm);
    let kms = KmsProvider::new(&KmsConfig::from_env()).unwrap();
    let providers: Vec<(&str, Box<dyn KeyProvider>)> = vec![
        ("local", Box::new(local)),
        ("pkcs11", Box::new(hsm)),
        ("kms", Box::new(kms)),
    ];
    let plain = vec![0x42u8; 4096];
    let mut g = c.benchmark_group("seal_4k_objects");
    g.throughput(Throughput::Elements(1));
    for (name, p) in providers {
        let id = key_id(&format!("objects-{name}"));
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let cx = ctx();
        g.bench_function(format!("{name}/fresh_key"), |b| {
            b.iter(|| {
                let (dek, w) = p.generate_data_key(&id, &cx).unwrap();
                black_box((object::seal(&dek, &plain).unwrap(), w))
            })
        });
        // A whole SSE-KMS PUT through the S3 layer, with and without S3 Bucket Keys, against the
        // same object sealed with a data key already in hand (docs/BENCHMARKS.md).
        let p: Arc<dyn KeyProvider> = Arc::from(p);
        let engine = SseEngine::new(Arc::clone(&p));
        let rctx = RequestContext::new("bench", "object")
            .principal("arn:aws:iam::111122223333:user/bench")
            .secure(true);
        let headers = |bucket_key: bool| {
            let mut h = Headers::from_pairs([
                ("x-amz-server-side-encryption", "aws:kms"),
                ("x-amz-server-side-encryption-aws-kms-key-id", id.as_str()),
            ]);
            if bucket_key {
                h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
            }
            h
        };
        let put = |h: &Headers| {
            engine
                .plan_write(Operation::PutObject, h, &rctx, &BucketConfig::default())
                .unwrap()
                .seal_object(&plain)
                .unwrap()
        };
        let (bk, direct) = (headers(true), headers(false));
        let (_, template) = put(&bk);
        let dek = ssekit_engine::keys::DataKey::generate();
        g.bench_function(format!("{name}/sse-kms-dek-in-hand"), |b| {
            b.iter(|| {
                let sealed = object::seal(&dek, &plain).unwrap();
                let mut m = ObjectMeta::new(
                    SseMode::SseKms,
                    template.context.clone(),
                    template.keys.clone(),
                );
                m.size = plain.len() as u64;
                m.authenticate(&dek).unwrap();
                black_box((sealed, m))
            })
        });
        g.bench_function(format!("{name}/sse-kms-bucket-key"), |b| {
            b.iter(|| black_box(put(&bk)))
        });
        g.bench_function(format!("{name}/sse-kms"), |b| {
            b.iter(|| black_box(put(&direct)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = unwraps, objects
}
criterion_main!(benches);
