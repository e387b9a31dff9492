//! The S3 semantics layer, table-driven: every mode × every operation, and every error cell with S3's
//! exact code and status (docs/S3.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ssekit_engine::keys::{Counted, KeyProvider, KeySpec, LocalKeyring};
use ssekit_engine::object::{ByteRange, ObjectMeta, PartEntry, ReadAt, SseMode};
use ssekit_engine::sse::{
    BucketConfig, BucketEncryption, CopySource, CustomerKey, DefaultAlgorithm, Headers, Operation,
    RequestContext, S3Error, SseEngine,
};

struct Rig {
    _dir: tempfile::TempDir,
    provider: Arc<Counted<LocalKeyring>>,
    engine: SseEngine,
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(dir.path().join("home")).unwrap();
    for id in ["k1", "k2", "off", "doomed"] {
        ring.create_key(&KeySpec {
            id: Some(id.into()),
            description: "test".into(),
            rotation_period_days: None,
        })
        .unwrap();
    }
    ring.disable("off").unwrap();
    ring.schedule_deletion("doomed", 7).unwrap();
    let provider = Arc::new(Counted::new(ring));
    let engine = SseEngine::new(provider.clone());
    Rig {
        _dir: dir,
        provider,
        engine,
    }
}

fn ctx(key: &str) -> RequestContext {
    RequestContext::new("bkt", key)
        .principal(ALICE)
        .secure(true)
}

/// A copy's source in an unconfigured bucket.
fn src<'a>(c: &'a RequestContext, meta: &'a ObjectMeta) -> CopySource<'a> {
    static NONE: std::sync::OnceLock<BucketConfig> = std::sync::OnceLock::new();
    CopySource {
        ctx: c,
        bucket: NONE.get_or_init(BucketConfig::default),
        meta,
    }
}

fn key_a() -> CustomerKey {
    CustomerKey::from_bytes(&[0xA5; 32])
}

fn key_b() -> CustomerKey {
    CustomerKey::from_bytes(&[0x5A; 32])
}

/// The write modes of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    S3,
    Kms,
    KmsBucketKey,
    Dsse,
    SseC,
}

const MODES: [Mode; 5] = [
    Mode::S3,
    Mode::Kms,
    Mode::KmsBucketKey,
    Mode::Dsse,
    Mode::SseC,
];

fn write_headers(m: Mode) -> Headers {
    let mut h = Headers::new();
    match m {
        Mode::S3 => h.insert("x-amz-server-side-encryption", "AES256"),
        Mode::Kms => {
            h.insert("X-Amz-Server-Side-Encryption", "aws:kms");
            h.insert("x-amz-server-side-encryption-aws-kms-key-id", "k1");
        }
        Mode::KmsBucketKey => {
            h.insert("x-amz-server-side-encryption", "aws:kms");
            h.insert(
                "x-amz-server-side-encryption-aws-kms-key-id",
                "arn:aws:kms:us-east-1:000000000000:key/k1",
            );
            h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
        }
        Mode::Dsse => {
            h.insert("x-amz-server-side-encryption", "aws:kms:dsse");
            h.insert("x-amz-server-side-encryption-aws-kms-key-id", "alias/k1");
        }
        Mode::SseC => {
            for (n, v) in key_a().headers() {
                h.insert(n, &v);
            }
        }
    }
    h
}

/// What a read of an object written in mode `m` must carry.
fn read_headers(m: Mode) -> Headers {
    let mut h = Headers::new();
    if m == Mode::SseC {
        for (n, v) in key_a().headers() {
            h.insert(n, &v);
        }
    }
    h
}

fn copy_source_headers(m: Mode) -> Vec<(String, String)> {
    if m == Mode::SseC {
        key_a()
            .copy_source_headers()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect()
    } else {
        Vec::new()
    }
}

fn expected_headers(m: Mode) -> Vec<(&'static str, String)> {
    let arn = "arn:aws:kms:us-east-1:000000000000:key/k1".to_owned();
    let p = |n: &'static str, v: &str| (n, v.to_owned());
    match m {
        Mode::S3 => vec![p("x-amz-server-side-encryption", "AES256")],
        Mode::Kms => vec![
            p("x-amz-server-side-encryption", "aws:kms"),
            p("x-amz-server-side-encryption-aws-kms-key-id", &arn),
        ],
        Mode::KmsBucketKey => vec![
            p("x-amz-server-side-encryption", "aws:kms"),
            p("x-amz-server-side-encryption-aws-kms-key-id", &arn),
            p("x-amz-server-side-encryption-bucket-key-enabled", "true"),
        ],
        Mode::Dsse => vec![
            p("x-amz-server-side-encryption", "aws:kms:dsse"),
            p("x-amz-server-side-encryption-aws-kms-key-id", &arn),
        ],
        Mode::SseC => vec![
            p("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            p(
                "x-amz-server-side-encryption-customer-key-MD5",
                key_a().md5(),
            ),
        ],
    }
}

fn sse_mode(m: Mode) -> SseMode {
    match m {
        Mode::S3 => SseMode::SseS3,
        Mode::Kms | Mode::KmsBucketKey => SseMode::SseKms,
        Mode::Dsse => SseMode::DsseKms,
        Mode::SseC => SseMode::SseC,
    }
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn put(r: &Rig, m: Mode, key: &str, data: &[u8]) -> (Vec<u8>, ObjectMeta) {
    let plan = r
        .engine
        .plan_write(
            Operation::PutObject,
            &write_headers(m),
            &ctx(key),
            &BucketConfig::default(),
        )
        .unwrap();
    assert_eq!(plan.mode(), sse_mode(m));
    assert_eq!(
        plan.response_headers(),
        expected_headers(m).as_slice(),
        "{m:?}"
    );
    let stored_len = plan.stored_len(data.len() as u64);
    let (stored, meta) = plan.seal_object(data).unwrap();
    assert_eq!(stored.len() as u64, stored_len);
    (stored, meta)
}

fn get(r: &Rig, m: Mode, key: &str, meta: &ObjectMeta) -> ssekit_engine::sse::ReadPlan {
    r.engine
        .plan_read(
            Operation::GetObject,
            &read_headers(m),
            &ctx(key),
            &BucketConfig::default(),
            meta,
        )
        .unwrap()
}

/// A stored object that counts the bytes read from it.
struct Counting<'a>(&'a [u8], AtomicU64);

impl ReadAt for Counting<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.1.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.0.read_exact_at(buf, offset)
    }
}

fn code(e: &S3Error) -> (&'static str, u16) {
    (e.code, e.status)
}

#[test]
fn every_mode_puts_gets_heads_and_reads_ranges() {
    let r = rig();
    for m in MODES {
        for n in [0usize, 1, 16_383, 16_384, 100_000] {
            let data = body(n, 7);
            let (stored, meta) = put(&r, m, "obj", &data);
            assert_eq!(meta.mode, sse_mode(m));
            if n >= 16 {
                assert!(
                    !stored.windows(16).any(|w| w == &data[..16]),
                    "{m:?}: plaintext stored"
                );
            }
            let g = get(&r, m, "obj", &meta);
            assert_eq!(g.open(&stored).unwrap(), data, "{m:?} {n}");
            assert_eq!(g.response_headers(), expected_headers(m).as_slice());
            let h = r
                .engine
                .plan_read(
                    Operation::HeadObject,
                    &read_headers(m),
                    &ctx("obj"),
                    &BucketConfig::default(),
                    &meta,
                )
                .unwrap();
            assert_eq!(h.response_headers(), expected_headers(m).as_slice());
            assert_eq!(h.size(), n as u64);
            // A HEAD plan opens nothing, in any mode (SSE-C's checked its key and kept nothing).
            assert!(h.open(&stored).is_err(), "{m:?}: HEAD opened data");
            assert!(h.opener(0).is_err(), "{m:?}: HEAD streams data");
            if n == 0 {
                let e = g
                    .open_range(stored.len() as u64, ByteRange::From(0), stored.as_slice())
                    .unwrap_err();
                assert_eq!(code(&e), ("InvalidRange", 416));
                continue;
            }
            for range in [
                ByteRange::Inclusive { first: 0, last: 0 },
                ByteRange::Inclusive {
                    first: n as u64 / 2,
                    last: n as u64 / 2 + 20_000,
                },
                ByteRange::Suffix(5),
                ByteRange::From(n as u64 - 1),
            ] {
                let src = Counting(&stored, AtomicU64::new(0));
                let rr = g.open_range(stored.len() as u64, range, &src).unwrap();
                let want = &data[rr.range.start as usize..rr.range.end as usize];
                assert_eq!(rr.plaintext, want, "{m:?} {n} {range:?}");
                if n == 100_000 && matches!(range, ByteRange::Inclusive { first: 0, last: 0 }) {
                    // One inner chunk (and, for DSSE, the outer chunks holding it): far less than
                    // the object.
                    assert!(
                        src.1.load(Ordering::Relaxed) <= 4 * 16_400,
                        "{m:?} read {}",
                        src.1.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }
}

#[test]
fn dsse_ranges_open_only_the_outer_chunks_they_need() {
    let r = rig();
    let data = body(4 << 20, 3);
    let (stored, meta) = put(&r, Mode::Dsse, "big", &data);
    let g = get(&r, Mode::Dsse, "big", &meta);
    let src = Counting(&stored, AtomicU64::new(0));
    let at = 3 << 20;
    let rr = g
        .open_range(
            stored.len() as u64,
            ByteRange::Inclusive {
                first: at,
                last: at + 99,
            },
            &src,
        )
        .unwrap();
    assert_eq!(rr.plaintext, &data[at as usize..at as usize + 100]);
    assert_eq!(rr.chunks_opened, 1);
    // The inner header (one outer chunk) and the inner chunk (at most two outer chunks).
    let read = src.1.load(Ordering::Relaxed);
    assert!(read <= 4 * 16_400, "read {read} of {}", stored.len());
}

#[test]
fn multipart_in_every_mode_parts_from_threads_out_of_order() {
    let r = rig();
    for m in MODES {
        let create = r
            .engine
            .plan_write(
                Operation::CreateMultipartUpload,
                &write_headers(m),
                &ctx("mp"),
                &BucketConfig::default(),
            )
            .unwrap();
        assert_eq!(create.response_headers(), expected_headers(m).as_slice());
        let upload = create.upload_meta().clone();
        let sizes = [70_000usize, 16_384, 5, 40_000];
        let parts: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| body(n, i as u8))
            .collect();
        // Parts sealed on four threads, in reverse order, each through its own plan (as on four
        // servers); part 2 is uploaded twice and the second upload kept.
        type Uploads = ((Vec<u8>, PartEntry), (Vec<u8>, PartEntry));
        let sealed: Vec<(u32, Uploads)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..parts.len())
                .rev()
                .map(|i| {
                    let (engine, upload, part) = (&r.engine, &upload, &parts[i]);
                    s.spawn(move || {
                        let n = i as u32 + 1;
                        let plan = engine
                            .plan_part(
                                &read_headers(m),
                                &ctx("mp"),
                                &BucketConfig::default(),
                                upload,
                                n,
                            )
                            .unwrap();
                        let first = plan.seal(part).unwrap();
                        let again = plan.seal(part).unwrap();
                        assert_ne!(first.0[..56], again.0[..56], "a re-upload gets a new salt");
                        assert_ne!(first.1, again.1, "and its own row");
                        (
                            n,
                            if n == 2 {
                                (again, first)
                            } else {
                                (first, again)
                            },
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sealed = sealed;
        sealed.sort_by_key(|(n, _)| *n);
        // The kept upload of each part, and the other one (for part 2, the first upload).
        type Kept = Vec<(u32, Vec<u8>, PartEntry)>;
        let (kept, other): (Kept, Vec<Vec<u8>>) = sealed
            .into_iter()
            .map(|(n, ((d, e), (d2, _)))| ((n, d, e), d2))
            .unzip();
        let sealed: Vec<(u32, Vec<u8>)> = kept.iter().map(|(n, d, _)| (*n, d.clone())).collect();
        let table: Vec<PartEntry> = kept.iter().map(|(_, _, e)| *e).collect();
        assert_eq!(
            table.iter().map(|e| e.size).collect::<Vec<_>>(),
            sizes.map(|n| n as u64)
        );
        let (meta, headers) = r
            .engine
            .complete(
                &read_headers(m),
                &ctx("mp"),
                &BucketConfig::default(),
                &upload,
                &table,
            )
            .unwrap();
        assert_eq!(headers, expected_headers(m));
        let stored: Vec<u8> = sealed.iter().flat_map(|(_, d)| d.clone()).collect();
        let whole: Vec<u8> = parts.concat();
        let g = get(&r, m, "mp", &meta);
        assert_eq!(g.open(&stored).unwrap(), whole, "{m:?}");
        // The other upload of part 2 put in the kept one's place (same number, same size, same
        // data key): refused, whole, by part, by range and streaming.
        let replaced: Vec<u8> = [&sealed[0].1, &other[1], &sealed[2].1, &sealed[3].1]
            .iter()
            .flat_map(|d| d.to_vec())
            .collect();
        assert_eq!(g.open(&replaced).unwrap_err().status, 500, "{m:?}");
        assert_eq!(g.open_part(2, &other[1]).unwrap_err().status, 500);
        assert!(
            g.open_range(
                replaced.len() as u64,
                ByteRange::Inclusive {
                    first: 70_000,
                    last: 70_010
                },
                replaced.as_slice()
            )
            .is_err()
        );
        {
            use std::io::Read;
            let mut out = Vec::new();
            assert!(
                g.part_reader(other[1].as_slice(), 2)
                    .map(|mut r| r.read_to_end(&mut out))
                    .map_or(true, |r| r.is_err())
            );
            assert!(out.is_empty());
        }
        assert_eq!(g.open_part(3, &sealed[2].1).unwrap(), parts[2]);
        let e = g.open_part(9, &sealed[2].1).unwrap_err();
        assert_eq!(code(&e), ("InvalidPartNumber", 416));
        let rr = g
            .open_range(
                stored.len() as u64,
                ByteRange::Inclusive {
                    first: 69_990,
                    last: 86_400,
                },
                stored.as_slice(),
            )
            .unwrap();
        assert_eq!(rr.plaintext, &whole[69_990..=86_400]);
        // A part dropped from the stored data, or the table edited, does not open.
        let short: Vec<u8> = [&sealed[0].1, &sealed[1].1, &sealed[3].1]
            .iter()
            .flat_map(|d| d.to_vec())
            .collect();
        assert_eq!(g.open(&short).unwrap_err().status, 500);
        let mut edited = meta.clone();
        edited.parts.remove(2);
        edited.size -= 5;
        let ge = get(&r, m, "mp", &edited);
        assert_eq!(ge.open(&short).unwrap_err().status, 500);
        // A part out of order or none at all.
        let mut bad = table.clone();
        bad.swap(0, 1);
        let e = r
            .engine
            .complete(
                &read_headers(m),
                &ctx("mp"),
                &BucketConfig::default(),
                &upload,
                &bad,
            )
            .unwrap_err();
        assert_eq!(code(&e), ("InvalidPartOrder", 400));
        let e = r
            .engine
            .complete(
                &read_headers(m),
                &ctx("mp"),
                &BucketConfig::default(),
                &upload,
                &[],
            )
            .unwrap_err();
        assert_eq!(code(&e), ("MalformedXML", 400));
    }
}

#[test]
fn copy_from_every_mode_into_every_mode() {
    let r = rig();
    let sctx = ctx("src");
    let data = body(50_000, 9);
    for from in MODES {
        let (stored, meta) = put(&r, from, "src", &data);
        for to in MODES {
            let mut h = write_headers(to);
            for (n, v) in copy_source_headers(from) {
                h.insert(&n, &v);
            }
            let (read, write) = r
                .engine
                .plan_copy(&h, &ctx("dst"), &BucketConfig::default(), src(&sctx, &meta))
                .unwrap();
            let plain = read.open(&stored).unwrap();
            assert_eq!(write.response_headers(), expected_headers(to).as_slice());
            let (copied, cmeta) = write.seal_object(&plain).unwrap();
            assert_eq!(cmeta.mode, sse_mode(to));
            assert_eq!(
                get(&r, to, "dst", &cmeta).open(&copied).unwrap(),
                data,
                "{from:?} -> {to:?}"
            );
        }
        // Without the source's SSE-C key, a copy of an SSE-C object is refused.
        if from == Mode::SseC {
            let e = r
                .engine
                .plan_copy(
                    &write_headers(Mode::S3),
                    &ctx("dst"),
                    &BucketConfig::default(),
                    src(&sctx, &meta),
                )
                .unwrap_err();
            assert_eq!(code(&e), ("InvalidRequest", 400));
            let mut h = Headers::new();
            for (n, v) in key_b().copy_source_headers() {
                h.insert(n, &v);
            }
            let e = r
                .engine
                .plan_copy(&h, &ctx("dst"), &BucketConfig::default(), src(&sctx, &meta))
                .unwrap_err();
            assert_eq!(code(&e), ("AccessDenied", 403));
        }
    }
}

#[test]
fn upload_part_copy_from_every_mode_into_every_mode() {
    let r = rig();
    let sctx = ctx("src");
    let data = body(40_000, 1);
    for from in MODES {
        let (stored, smeta) = put(&r, from, "src", &data);
        for to in MODES {
            let create = r
                .engine
                .plan_write(
                    Operation::CreateMultipartUpload,
                    &write_headers(to),
                    &ctx("dst"),
                    &BucketConfig::default(),
                )
                .unwrap();
            let upload = create.upload_meta().clone();
            let mut h = read_headers(to);
            for (n, v) in copy_source_headers(from) {
                h.insert(&n, &v);
            }
            let (read, part) = r
                .engine
                .plan_part_copy(
                    &h,
                    &ctx("dst"),
                    &BucketConfig::default(),
                    &upload,
                    1,
                    src(&sctx, &smeta),
                )
                .unwrap();
            let rr = read
                .open_range(
                    stored.len() as u64,
                    ByteRange::Inclusive {
                        first: 100,
                        last: 30_099,
                    },
                    stored.as_slice(),
                )
                .unwrap();
            let (sealed, entry) = part.seal(&rr.plaintext).unwrap();
            assert_eq!(entry.size, 30_000);
            let (meta, _) = r
                .engine
                .complete(
                    &read_headers(to),
                    &ctx("dst"),
                    &BucketConfig::default(),
                    &upload,
                    &[entry],
                )
                .unwrap();
            assert_eq!(
                get(&r, to, "dst", &meta).open(&sealed).unwrap(),
                &data[100..30_100],
                "{from:?} -> {to:?}"
            );
        }
    }
}

fn with(mut h: Headers, pairs: &[(&str, &str)]) -> Headers {
    for (n, v) in pairs {
        h.insert(n, v);
    }
    h
}

/// A write's outcome: the mode chosen, or S3's code and status.
type Outcome = Result<SseMode, (&'static str, u16)>;

fn put_err(r: &Rig, h: &Headers, secure: bool) -> Outcome {
    r.engine
        .plan_write(
            Operation::PutObject,
            h,
            &ctx("e").secure(secure),
            &BucketConfig::default(),
        )
        .map(|p| p.mode())
        .map_err(|e| code(&e))
}

/// The error table: every header case of a write, in every mode where it applies.
#[test]
fn write_error_table() {
    let r = rig();
    let ssec = |alg: &str, key: &str, md5: &str| {
        let mut h = Headers::new();
        if !alg.is_empty() {
            h.insert("x-amz-server-side-encryption-customer-algorithm", alg);
        }
        if !key.is_empty() {
            h.insert("x-amz-server-side-encryption-customer-key", key);
        }
        if !md5.is_empty() {
            h.insert("x-amz-server-side-encryption-customer-key-md5", md5);
        }
        h
    };
    let good = key_a().headers();
    let (k, md5) = (good[1].1.as_str(), good[2].1.as_str());
    let short = B64.encode([1u8; 16]);
    let short_md5 = B64.encode(<md5::Md5 as md5::Digest>::digest([1u8; 16]));
    let kms = |id: &str| {
        with(
            Headers::new(),
            &[
                ("x-amz-server-side-encryption", "aws:kms"),
                ("x-amz-server-side-encryption-aws-kms-key-id", id),
            ],
        )
    };
    let dsse = |id: &str| {
        with(
            Headers::new(),
            &[
                ("x-amz-server-side-encryption", "aws:kms:dsse"),
                ("x-amz-server-side-encryption-aws-kms-key-id", id),
            ],
        )
    };
    let bk = |h: Headers| {
        with(
            h,
            &[("x-amz-server-side-encryption-bucket-key-enabled", "true")],
        )
    };
    use SseMode::*;
    let invalid = Err(("InvalidArgument", 400));
    let table: Vec<(&str, Headers, bool, Outcome)> = vec![
        (
            "no headers: the bucket default, SSE-S3",
            Headers::new(),
            false,
            Ok(SseS3),
        ),
        ("SSE-S3", write_headers(Mode::S3), false, Ok(SseS3)),
        ("SSE-KMS", kms("k1"), false, Ok(SseKms)),
        (
            "SSE-KMS default key",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption", "aws:kms")],
            ),
            false,
            Ok(SseKms),
        ),
        ("DSSE-KMS", dsse("k1"), false, Ok(DsseKms)),
        ("SSE-C", ssec("AES256", k, md5), true, Ok(SseC)),
        // SSE-C cells.
        (
            "SSE-C over plain HTTP",
            ssec("AES256", k, md5),
            false,
            Err(("InvalidRequest", 400)),
        ),
        (
            "SSE-C wrong algorithm",
            ssec("AES128", k, md5),
            true,
            Err(("InvalidEncryptionAlgorithmError", 400)),
        ),
        (
            "SSE-C lower-case algorithm",
            ssec("aes256", k, md5),
            true,
            Err(("InvalidEncryptionAlgorithmError", 400)),
        ),
        (
            "SSE-C key without algorithm",
            ssec("", k, md5),
            true,
            invalid,
        ),
        (
            "SSE-C algorithm without key",
            ssec("AES256", "", md5),
            true,
            invalid,
        ),
        (
            "SSE-C short key",
            ssec("AES256", &short, &short_md5),
            true,
            invalid,
        ),
        (
            "SSE-C bad base64",
            ssec("AES256", "!!!not base64!!!", md5),
            true,
            invalid,
        ),
        (
            "SSE-C bad MD5",
            ssec("AES256", k, &short_md5),
            true,
            invalid,
        ),
        (
            "SSE-C MD5 not base64",
            ssec("AES256", k, "zz%%"),
            true,
            invalid,
        ),
        ("SSE-C missing MD5", ssec("AES256", k, ""), true, invalid),
        (
            "SSE-C plus SSE",
            with(
                ssec("AES256", k, md5),
                &[("x-amz-server-side-encryption", "AES256")],
            ),
            true,
            invalid,
        ),
        (
            "SSE-C plus aws:kms",
            with(
                ssec("AES256", k, md5),
                &[("x-amz-server-side-encryption", "aws:kms")],
            ),
            true,
            invalid,
        ),
        (
            "SSE-C key repeated",
            with(
                ssec("AES256", k, md5),
                &[("X-Amz-Server-Side-Encryption-Customer-Key", k)],
            ),
            true,
            invalid,
        ),
        // SSE header cells.
        (
            "unknown value aes:kms",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption", "aes:kms")],
            ),
            false,
            invalid,
        ),
        (
            "unknown value AES192",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption", "AES192")],
            ),
            false,
            invalid,
        ),
        (
            "lower-case aes256",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption", "aes256")],
            ),
            false,
            invalid,
        ),
        (
            "AES256 with a KMS key id",
            with(
                write_headers(Mode::S3),
                &[("x-amz-server-side-encryption-aws-kms-key-id", "k1")],
            ),
            false,
            invalid,
        ),
        (
            "KMS key id without aws:kms",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption-aws-kms-key-id", "k1")],
            ),
            false,
            invalid,
        ),
        (
            "context without aws:kms",
            with(
                Headers::new(),
                &[("x-amz-server-side-encryption-context", "e30=")],
            ),
            false,
            invalid,
        ),
        (
            "context not base64",
            with(kms("k1"), &[("x-amz-server-side-encryption-context", "{}")]),
            false,
            invalid,
        ),
        (
            "context not an object",
            with(
                kms("k1"),
                &[("x-amz-server-side-encryption-context", &B64.encode("[1]"))],
            ),
            false,
            invalid,
        ),
        (
            "context value not a string",
            with(
                kms("k1"),
                &[(
                    "x-amz-server-side-encryption-context",
                    &B64.encode(r#"{"a":1}"#),
                )],
            ),
            false,
            invalid,
        ),
        (
            "context reserved key",
            with(
                kms("k1"),
                &[(
                    "x-amz-server-side-encryption-context",
                    &B64.encode(r#"{"aws:s3:arn":"x"}"#),
                )],
            ),
            false,
            invalid,
        ),
        (
            "context",
            with(
                kms("k1"),
                &[(
                    "x-amz-server-side-encryption-context",
                    &B64.encode(r#"{"team":"blue"}"#),
                )],
            ),
            false,
            Ok(SseKms),
        ),
        (
            "bucket key flag not a boolean",
            kms("k1").tap_insert("x-amz-server-side-encryption-bucket-key-enabled", "yes"),
            false,
            invalid,
        ),
        ("bucket key with DSSE", bk(dsse("k1")), false, invalid),
        ("bucket key with SSE-KMS", bk(kms("k1")), false, Ok(SseKms)),
        (
            "SSE repeated",
            with(
                write_headers(Mode::S3),
                &[("x-amz-server-side-encryption", "AES256")],
            ),
            false,
            invalid,
        ),
        // Key state cells, for both KMS modes, with and without bucket keys.
        (
            "SSE-KMS unknown key",
            kms("nosuch"),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "SSE-KMS unknown key ARN",
            kms("arn:aws:kms:us-east-1:000000000000:key/nosuch"),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "SSE-KMS key of another account",
            kms("arn:aws:kms:us-east-1:999999999999:key/k1"),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "SSE-KMS malformed key id",
            kms("a b"),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "SSE-KMS disabled key",
            kms("off"),
            false,
            Err(("KMS.DisabledException", 400)),
        ),
        (
            "SSE-KMS key pending deletion",
            kms("doomed"),
            false,
            Err(("KMS.KMSInvalidStateException", 400)),
        ),
        (
            "bucket key: unknown key",
            bk(kms("nosuch")),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "bucket key: disabled key",
            bk(kms("off")),
            false,
            Err(("KMS.DisabledException", 400)),
        ),
        (
            "bucket key: pending deletion",
            bk(kms("doomed")),
            false,
            Err(("KMS.KMSInvalidStateException", 400)),
        ),
        (
            "DSSE unknown key",
            dsse("nosuch"),
            false,
            Err(("KMS.NotFoundException", 400)),
        ),
        (
            "DSSE disabled key",
            dsse("off"),
            false,
            Err(("KMS.DisabledException", 400)),
        ),
        (
            "DSSE key pending deletion",
            dsse("doomed"),
            false,
            Err(("KMS.KMSInvalidStateException", 400)),
        ),
    ];
    for (name, h, secure, want) in &table {
        assert_eq!(&put_err(&r, h, *secure), want, "{name}");
    }
}

trait TapInsert {
    fn tap_insert(self, n: &str, v: &str) -> Self;
}

impl TapInsert for Headers {
    fn tap_insert(mut self, n: &str, v: &str) -> Self {
        self.insert(n, v);
        self
    }
}

/// Reads: SSE headers on GET/HEAD, missing and wrong SSE-C keys, SSE-C keys on other objects, keys
/// disabled or pending deletion after the write.
#[test]
fn read_error_table() {
    let r = rig();
    let data = body(1000, 0);
    for m in MODES {
        let (_, meta) = put(&r, m, "o", &data);
        for op in [Operation::GetObject, Operation::HeadObject] {
            let read = |h: Headers, secure: bool| {
                r.engine
                    .plan_read(
                        op,
                        &h,
                        &ctx("o").secure(secure),
                        &BucketConfig::default(),
                        &meta,
                    )
                    .map(|_| ())
                    .map_err(|e| code(&e))
            };
            assert_eq!(read(read_headers(m), true), Ok(()), "{m:?} {op:?}");
            assert_eq!(
                read(
                    with(
                        read_headers(m),
                        &[("x-amz-server-side-encryption", "AES256")]
                    ),
                    true
                ),
                Err(("InvalidArgument", 400)),
                "{m:?} {op:?}: SSE header on a read"
            );
            assert_eq!(
                read(
                    with(
                        read_headers(m),
                        &[("x-amz-server-side-encryption-aws-kms-key-id", "k1")]
                    ),
                    true
                ),
                Err(("InvalidArgument", 400))
            );
            let mut wrong = Headers::new();
            for (n, v) in key_b().headers() {
                wrong.insert(n, &v);
            }
            if m == Mode::SseC {
                assert_eq!(read(Headers::new(), true), Err(("InvalidRequest", 400)));
                assert_eq!(read(wrong, true), Err(("AccessDenied", 403)));
                assert_eq!(read(read_headers(m), false), Err(("InvalidRequest", 400)));
                let mut bad_md5 = Headers::new();
                let [a, k, _] = key_a().headers();
                bad_md5.insert(a.0, &a.1);
                bad_md5.insert(k.0, &k.1);
                bad_md5.insert(
                    "x-amz-server-side-encryption-customer-key-MD5",
                    key_b().md5(),
                );
                assert_eq!(read(bad_md5, true), Err(("InvalidArgument", 400)));
            } else {
                assert_eq!(read(wrong, true), Err(("InvalidRequest", 400)), "{m:?}");
            }
        }
    }
    // The key disabled, or scheduled for deletion, after the write: GET fails as S3 says, HEAD
    // (which unwraps nothing) still answers.
    for m in [Mode::Kms, Mode::Dsse] {
        let (_, meta) = put(&r, m, "later", &data);
        r.provider.disable("k1").unwrap();
        let e = r
            .engine
            .plan_read(
                Operation::GetObject,
                &Headers::new(),
                &ctx("later"),
                &BucketConfig::default(),
                &meta,
            )
            .unwrap_err();
        assert_eq!(code(&e), ("KMS.DisabledException", 400));
        assert!(
            r.engine
                .plan_read(
                    Operation::HeadObject,
                    &Headers::new(),
                    &ctx("later"),
                    &BucketConfig::default(),
                    &meta
                )
                .is_ok()
        );
        r.provider.enable("k1").unwrap();
    }
}

/// UploadPart of an SSE-C upload: the same key on every part; errors for a missing or different one.
#[test]
fn upload_part_key_rules() {
    let r = rig();
    let bucket = BucketConfig::default();
    let create = |m: Mode| {
        r.engine
            .plan_write(
                Operation::CreateMultipartUpload,
                &write_headers(m),
                &ctx("u"),
                &bucket,
            )
            .unwrap()
            .upload_meta()
            .clone()
    };
    let ssec_upload = create(Mode::SseC);
    let part = |h: &Headers, up: &ObjectMeta, n: u32| {
        r.engine
            .plan_part(h, &ctx("u"), &bucket, up, n)
            .map(|_| ())
            .map_err(|e| code(&e))
    };
    let mut b = Headers::new();
    for (n, v) in key_b().headers() {
        b.insert(n, &v);
    }
    assert_eq!(part(&read_headers(Mode::SseC), &ssec_upload, 1), Ok(()));
    assert_eq!(
        part(&Headers::new(), &ssec_upload, 1),
        Err(("InvalidRequest", 400))
    );
    assert_eq!(part(&b, &ssec_upload, 1), Err(("InvalidRequest", 400)));
    assert_eq!(
        part(&read_headers(Mode::SseC), &ssec_upload, 0),
        Err(("InvalidArgument", 400))
    );
    assert_eq!(
        part(&read_headers(Mode::SseC), &ssec_upload, 10_001),
        Err(("InvalidArgument", 400))
    );
    let kms_upload = create(Mode::Kms);
    assert_eq!(part(&Headers::new(), &kms_upload, 10_000), Ok(()));
    assert_eq!(part(&b, &kms_upload, 1), Err(("InvalidRequest", 400)));
    assert_eq!(
        part(&write_headers(Mode::S3), &kms_upload, 1),
        Err(("InvalidArgument", 400))
    );
    // Complete of an SSE-C upload needs the key (the MAC is under the data key).
    let e = r
        .engine
        .complete(
            &Headers::new(),
            &ctx("u"),
            &bucket,
            &ssec_upload,
            &[PartEntry {
                number: 1,
                size: 1,
                salt: [0; 24],
            }],
        )
        .unwrap_err();
    assert_eq!(code(&e), ("InvalidRequest", 400));
}

/// Bucket default encryption: applied when a request names no mode, overridden when it names one.
#[test]
fn bucket_default_encryption() {
    let r = rig();
    let kms_default = BucketConfig {
        encryption: Some(BucketEncryption {
            algorithm: DefaultAlgorithm::AwsKms,
            kms_key_id: Some("k2".into()),
            bucket_key_enabled: true,
        }),
        policy: None,
    };
    assert_eq!(
        BucketConfig::default().effective_encryption(),
        BucketEncryption::s3_default()
    );
    let plan = |h: &Headers, b: &BucketConfig| {
        r.engine
            .plan_write(Operation::PutObject, h, &ctx("d"), b)
            .unwrap()
    };
    let p = plan(&Headers::new(), &kms_default);
    assert_eq!(p.mode(), SseMode::SseKms);
    let h = p.response_headers();
    assert_eq!(h[1].1, "arn:aws:kms:us-east-1:000000000000:key/k2");
    assert_eq!(
        h[2],
        (
            "x-amz-server-side-encryption-bucket-key-enabled",
            "true".into()
        )
    );
    // The request's mode wins; its bucket-key flag wins too.
    assert_eq!(
        plan(&write_headers(Mode::S3), &kms_default).mode(),
        SseMode::SseS3
    );
    let p = plan(
        &with(
            kms_default_headers(),
            &[("x-amz-server-side-encryption-bucket-key-enabled", "false")],
        ),
        &kms_default,
    );
    assert_eq!(p.response_headers().len(), 2);
    assert_eq!(
        p.response_headers()[1].1,
        "arn:aws:kms:us-east-1:000000000000:key/k2"
    );
    // aws:kms on a bucket defaulting to SSE-S3 uses aws/s3, created on first use.
    let p = plan(&kms_default_headers(), &BucketConfig::default());
    assert_eq!(
        p.response_headers()[1].1,
        "arn:aws:kms:us-east-1:000000000000:key/ssekit-aws-s3"
    );
    assert!(r.provider.describe("ssekit-aws-s3").is_ok());
    // The SSE-S3 root is the engine's own, created with a 30-day rotation.
    plan(&Headers::new(), &BucketConfig::default());
    let root = r.provider.describe("ssekit-sse-s3").unwrap();
    assert_eq!(root.rotation_period_days, Some(30));
    // Configurations are checked as PutBucketEncryption checks them, and round-trip as JSON.
    let bad = BucketEncryption {
        algorithm: DefaultAlgorithm::Aes256,
        kms_key_id: Some("k1".into()),
        bucket_key_enabled: false,
    };
    assert_eq!(code(&bad.validate().unwrap_err()), ("InvalidArgument", 400));
    let c = kms_default.encryption.clone().unwrap();
    assert_eq!(BucketEncryption::from_json(&c.to_json()).unwrap(), c);
    assert!(BucketEncryption::from_json(&bad.to_json()).is_err());
    assert!(BucketEncryption::from_json(r#"{"algorithm":"AES256","extra":1}"#).is_err());
}

fn kms_default_headers() -> Headers {
    with(
        Headers::new(),
        &[("x-amz-server-side-encryption", "aws:kms")],
    )
}

/// The KMS encryption context: the object's ARN merged with the caller's, echoed on the write, and
/// binding the wrap to the object.
#[test]
fn kms_context_is_the_object_arn_and_the_callers() {
    let r = rig();
    let user = B64.encode(r#"{"team":"blue","ticket":"42"}"#);
    let h = with(
        write_headers(Mode::Kms),
        &[("x-amz-server-side-encryption-context", &user)],
    );
    let plan = r
        .engine
        .plan_write(
            Operation::PutObject,
            &h,
            &ctx("c"),
            &BucketConfig::default(),
        )
        .unwrap();
    let echoed = plan
        .response_headers()
        .iter()
        .find(|(n, _)| *n == "x-amz-server-side-encryption-context")
        .map(|(_, v)| v.clone())
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&B64.decode(echoed).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"aws:s3:arn": "arn:aws:s3:::bkt/c", "team": "blue", "ticket": "42"})
    );
    let (stored, meta) = plan.seal_object(b"ctx").unwrap();
    assert_eq!(meta.context.get("aws:s3:arn"), Some("arn:aws:s3:::bkt/c"));
    assert_eq!(meta.context.get("team"), Some("blue"));
    assert_eq!(
        get(&r, Mode::Kms, "c", &meta).open(&stored).unwrap(),
        b"ctx"
    );
    // The metadata moved to another object's name does not open there (the MAC covers the context;
    // a context rewritten to the new name does not unwrap).
    let mut moved = meta.clone();
    moved
        .context
        .insert("aws:s3:arn", "arn:aws:s3:::bkt/other")
        .unwrap();
    let e = r
        .engine
        .plan_read(
            Operation::GetObject,
            &Headers::new(),
            &ctx("other"),
            &BucketConfig::default(),
            &moved,
        )
        .unwrap_err();
    assert_eq!(e.status, 500);
}

/// Bucket keys: 10,000 PUTs and GETs make a handful of provider calls against 20,000 without; two
/// requesters never share a bucket key; every object's data key is its own.
#[test]
fn bucket_keys_cut_provider_calls_without_sharing_data_keys() {
    const N: usize = 10_000;
    let run = |bucket_key: bool| {
        let r = rig();
        let mut h = write_headers(Mode::Kms);
        if bucket_key {
            h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
        }
        let data = [7u8; 64];
        let mut commitments = std::collections::HashSet::new();
        r.provider.reset();
        for i in 0..N {
            let key = format!("o{i}");
            let plan = r
                .engine
                .plan_write(
                    Operation::PutObject,
                    &h,
                    &ctx(&key),
                    &BucketConfig::default(),
                )
                .unwrap();
            let (stored, meta) = plan.seal_object(&data).unwrap();
            assert!(
                commitments.insert(meta.auth.commitment),
                "a data key repeated"
            );
            let g = r
                .engine
                .plan_read(
                    Operation::GetObject,
                    &Headers::new(),
                    &ctx(&key),
                    &BucketConfig::default(),
                    &meta,
                )
                .unwrap();
            assert_eq!(g.open(&stored).unwrap(), data);
        }
        r.provider.counts()
    };
    let without = run(false);
    assert_eq!(without.total(), 2 * N as u64, "{without:?}");
    let with_bk = run(true);
    assert!(with_bk.total() <= 5, "{with_bk:?}");
    assert_eq!(with_bk.generate, 1);
}

#[test]
fn two_requesters_never_share_a_bucket_key() {
    let r = rig();
    let mut h = write_headers(Mode::Kms);
    h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
    let put_as = |who: &str, key: &str| {
        r.engine
            .plan_write(
                Operation::PutObject,
                &h,
                &ctx(key).principal(who),
                &BucketConfig::default(),
            )
            .unwrap()
            .seal_object(b"x")
            .unwrap()
    };
    r.provider.reset();
    let (sa, ma) = put_as(ALICE, "a");
    let (_, ma2) = put_as(ALICE, "a2");
    let (_, mb) = put_as(BOB, "b");
    assert_eq!(r.provider.counts().generate, 2);
    let inner = |m: &ObjectMeta| {
        ssekit_engine::sse::bucket_key::BucketKeys::inner(&m.keys[0])
            .unwrap()
            .ciphertext
    };
    assert_eq!(
        inner(&ma),
        inner(&ma2),
        "one requester's objects share its bucket key"
    );
    assert_ne!(inner(&ma), inner(&mb), "two requesters never do");
    assert_ne!(ma.auth.commitment, ma2.auth.commitment);
    // Bob reading Alice's object does not use Alice's cached bucket key: the provider is asked.
    r.provider.reset();
    let g = r
        .engine
        .plan_read(
            Operation::GetObject,
            &Headers::new(),
            &ctx("a").principal(BOB),
            &BucketConfig::default(),
            &ma,
        )
        .unwrap();
    assert_eq!(g.open(&sa).unwrap(), b"x");
    assert_eq!(r.provider.counts().unwrap, 1);
    // A bucket-key wrapped key moved to another object does not unwrap.
    let mut moved = ma.clone();
    moved
        .context
        .insert("aws:s3:arn", "arn:aws:s3:::bkt/zz")
        .unwrap();
    let e = r
        .engine
        .plan_read(
            Operation::GetObject,
            &Headers::new(),
            &ctx("zz"),
            &BucketConfig::default(),
            &moved,
        )
        .unwrap_err();
    assert_eq!(e.status, 500);
}

#[test]
fn tampered_or_wrong_metadata_is_an_internal_error_not_plaintext() {
    let r = rig();
    let data = body(40_000, 5);
    for m in MODES {
        let (mut stored, meta) = put(&r, m, "t", &data);
        let g = get(&r, m, "t", &meta);
        let mut bigger = meta.clone();
        bigger.size += 1;
        assert_eq!(
            get(&r, m, "t", &bigger).open(&stored).unwrap_err().status,
            500
        );
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert_eq!(g.open(&stored).unwrap_err().status, 500, "{m:?}");
        stored[last] ^= 1;
        stored[100] ^= 1;
        assert_eq!(g.open(&stored).unwrap_err().status, 500, "{m:?}");
        assert_eq!(
            g.open(&stored[..stored.len() - 16]).unwrap_err().status,
            500
        );
    }
}

#[test]
fn no_key_material_in_debug_or_errors() {
    let r = rig();
    let k = key_a();
    let hex: String = [0xA5u8; 4].iter().map(|b| format!("{b:02x}")).collect();
    let b64 = B64.encode([0xA5u8; 32]);
    let plan = r
        .engine
        .plan_write(
            Operation::PutObject,
            &write_headers(Mode::SseC),
            &ctx("s"),
            &BucketConfig::default(),
        )
        .unwrap();
    for s in [
        format!("{plan:?}"),
        format!("{k:?}"),
        format!("{:?}", write_headers(Mode::SseC)),
        format!("{:?}", r.engine),
    ] {
        assert!(!s.contains(&b64) && !s.contains(&hex), "{s}");
    }
    let (_, meta) = plan.seal_object(b"s").unwrap();
    assert!(
        !meta
            .to_bytes()
            .unwrap()
            .windows(32)
            .any(|w| w == [0xA5; 32])
    );
}

/// Streaming: every mode sealed through `part_writer` (single-part and multipart) in odd-sized
/// writes, opened through `part_reader`, byte-identical to the whole-buffer calls' result.
#[test]
fn streaming_writers_and_readers_in_every_mode() {
    use std::io::{Read, Write};
    let r = rig();
    let data = body(300_000, 4);
    for m in MODES {
        let plan = r
            .engine
            .plan_write(
                Operation::PutObject,
                &write_headers(m),
                &ctx("s"),
                &BucketConfig::default(),
            )
            .unwrap();
        let mut w = plan.part_writer(Vec::new(), 0).unwrap();
        for piece in data.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        let (stored, n) = w.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(stored.len() as u64, plan.stored_len(n));
        let meta = plan.finish(n).unwrap();
        let g = get(&r, m, "s", &meta);
        assert_eq!(g.stored_part_len(0).unwrap(), stored.len() as u64);
        let mut out = Vec::new();
        g.part_reader(stored.as_slice(), 0)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data, "{m:?}");
        assert_eq!(g.open(&stored).unwrap(), data);
        // A flipped byte: the reader fails and releases nothing past the last good chunk.
        let mut bad = stored.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let mut out = Vec::new();
        assert!(
            g.part_reader(bad.as_slice(), 0)
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
        assert!(out.len() < data.len() && data.starts_with(&out));

        // Multipart, two parts through writers.
        let plan = r
            .engine
            .plan_write(
                Operation::PutObject,
                &write_headers(m),
                &ctx("s2"),
                &BucketConfig::default(),
            )
            .unwrap();
        let mut stored = Vec::new();
        let mut table = Vec::new();
        for (i, piece) in [&data[..100_000], &data[100_000..]].iter().enumerate() {
            let mut w = plan.part_writer(Vec::new(), i as u32 + 1).unwrap();
            w.write_all(piece).unwrap();
            let salt = w.salt();
            let (bytes, n) = w.finish().unwrap();
            table.push(PartEntry {
                number: i as u32 + 1,
                size: n,
                salt,
            });
            stored.extend(bytes);
        }
        let meta = plan.finish_parts(table).unwrap();
        assert_eq!(
            get(&r, m, "s2", &meta).open(&stored).unwrap(),
            data,
            "{m:?}"
        );
    }
}

/// The seed study notes' policy, byte for byte.
const SEED_POLICY: &str = include_str!("data/seed_policy.json");

fn policy_bucket(json: &str) -> BucketConfig {
    BucketConfig {
        encryption: None,
        policy: Some(ssekit_engine::sse::policy::Policy::parse(json).unwrap()),
    }
}

/// Bucket policies run on the raw request, before the SSE headers are checked: the seed policy
/// denies a PUT with `AES192` (403), not refuses it as a bad header (400).
#[test]
fn bucket_policies_are_evaluated_on_the_raw_request() {
    let r = rig();
    let b = policy_bucket(SEED_POLICY);
    let c = RequestContext::new("my-secure-bucket", "doc.pdf")
        .principal(ALICE)
        .secure(true);
    let put = |h: &Headers| {
        r.engine
            .plan_write(Operation::PutObject, h, &c, &b)
            .map(|p| p.mode())
            .map_err(|e| code(&e))
    };
    let sse = |v: &str| with(Headers::new(), &[("x-amz-server-side-encryption", v)]);
    let denied = Err(("AccessDenied", 403));
    assert_eq!(
        put(&Headers::new()),
        denied,
        "no header: denied even though the default encrypts"
    );
    assert_eq!(
        put(&sse("AES192")),
        denied,
        "the policy answers before the header check"
    );
    assert_eq!(put(&sse("aws:kms")), denied);
    assert_eq!(put(&write_headers(Mode::SseC)), denied);
    assert_eq!(put(&sse("AES256")), Ok(SseMode::SseS3));
    // Without the policy, AES192 is S3's 400.
    assert_eq!(
        put_err(&r, &sse("AES192"), true),
        Err(("InvalidArgument", 400))
    );
    // Another bucket, and GETs, are not the statement's.
    let other = RequestContext::new("other-bucket", "doc.pdf").secure(true);
    assert!(
        r.engine
            .plan_write(Operation::PutObject, &Headers::new(), &other, &b)
            .is_ok()
    );
    let (_, meta) = r
        .engine
        .plan_write(Operation::PutObject, &sse("AES256"), &c, &b)
        .unwrap()
        .seal_object(b"pdf")
        .unwrap();
    assert!(
        r.engine
            .plan_read(Operation::GetObject, &Headers::new(), &c, &b, &meta)
            .is_ok()
    );
    // Multipart: CreateMultipartUpload carries the header; the parts and Complete are judged by
    // the upload's own encryption.
    let up = r
        .engine
        .plan_write(Operation::CreateMultipartUpload, &sse("AES256"), &c, &b)
        .unwrap()
        .upload_meta()
        .clone();
    let part = r.engine.plan_part(&Headers::new(), &c, &b, &up, 1).unwrap();
    let (sealed, entry) = part.seal(b"part one").unwrap();
    let (meta, _) = r
        .engine
        .complete(&Headers::new(), &c, &b, &up, &[entry])
        .unwrap();
    let g = r
        .engine
        .plan_read(Operation::GetObject, &Headers::new(), &c, &b, &meta)
        .unwrap();
    assert_eq!(g.open(&sealed).unwrap(), b"part one");
    assert_eq!(
        r.engine
            .plan_write(Operation::CreateMultipartUpload, &sse("aws:kms"), &c, &b)
            .map(|p| p.mode())
            .map_err(|e| code(&e)),
        denied
    );
}

#[test]
fn secure_transport_ssec_and_default_deny_policies() {
    let r = rig();
    let tls = policy_bucket(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny",
        "Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"],
        "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    let (_, meta) = put(&r, Mode::S3, "t", b"tls");
    for op in [Operation::GetObject, Operation::HeadObject] {
        let e = r
            .engine
            .plan_read(op, &Headers::new(), &ctx("t").secure(false), &tls, &meta)
            .unwrap_err();
        assert_eq!(code(&e), ("AccessDenied", 403));
        assert!(
            r.engine
                .plan_read(op, &Headers::new(), &ctx("t"), &tls, &meta)
                .is_ok()
        );
    }
    let e = r
        .engine
        .plan_write(
            Operation::PutObject,
            &Headers::new(),
            &ctx("t").secure(false),
            &tls,
        )
        .unwrap_err();
    assert_eq!(code(&e), ("AccessDenied", 403));

    let require_ssec = policy_bucket(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"RequireSSEC","Effect":"Deny","Principal":"*",
        "Action":"s3:PutObject","Resource":"arn:aws:s3:::bkt/*",
        "Condition":{"Null":{"s3:x-amz-server-side-encryption-customer-algorithm":"true"}}}]}"#,
    );
    let w = |h: &Headers| {
        r.engine
            .plan_write(Operation::PutObject, h, &ctx("c"), &require_ssec)
            .map(|p| p.mode())
            .map_err(|e| code(&e))
    };
    assert_eq!(w(&write_headers(Mode::S3)), Err(("AccessDenied", 403)));
    assert_eq!(w(&write_headers(Mode::SseC)), Ok(SseMode::SseC));

    let kms_key_only = policy_bucket(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyK2","Effect":"Deny","Principal":"*",
        "Action":"s3:PutObject","Resource":"arn:aws:s3:::bkt/*",
        "Condition":{"StringNotEqualsIfExists":{"s3:x-amz-server-side-encryption-aws-kms-key-id":
        "arn:aws:kms:us-east-1:000000000000:key/k2"}}}]}"#,
    );
    let kms = |id: &str| {
        let h = with(
            Headers::new(),
            &[
                ("x-amz-server-side-encryption", "aws:kms"),
                ("x-amz-server-side-encryption-aws-kms-key-id", id),
            ],
        );
        r.engine
            .plan_write(Operation::PutObject, &h, &ctx("k"), &kms_key_only)
            .map(|_| ())
            .map_err(|e| code(&e))
    };
    assert_eq!(kms("arn:aws:kms:us-east-1:000000000000:key/k2"), Ok(()));
    assert_eq!(
        kms("arn:aws:kms:us-east-1:000000000000:key/k1"),
        Err(("AccessDenied", 403))
    );

    // An engine whose policies default to deny: only what a statement allows.
    let strict = SseEngine::with_config(
        r.provider.clone(),
        r.provider.clone(),
        ssekit_engine::sse::SseConfig {
            default_allow: false,
            ..Default::default()
        },
    );
    let allow_alice = policy_bucket(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Alice","Effect":"Allow",
        "Principal":{{"AWS":"{ALICE}"}},"Action":"s3:*","Resource":"arn:aws:s3:::bkt/*"}}]}}"#
    ));
    let as_who = |who: &str| {
        strict
            .plan_write(
                Operation::PutObject,
                &Headers::new(),
                &ctx("s").principal(who),
                &allow_alice,
            )
            .map(|_| ())
            .map_err(|e| code(&e))
    };
    assert_eq!(as_who(ALICE), Ok(()));
    assert_eq!(as_who(BOB), Err(("AccessDenied", 403)));
}

/// An object's stored data and metadata moved to another name (or two swapped) by someone who can
/// write the store do not open there: the authenticated context names the object.
#[test]
fn objects_swapped_in_the_store_do_not_open_under_the_other_name() {
    let r = rig();
    for m in MODES {
        let (stored, meta) = put(&r, m, "a", b"content of a");
        let e = r
            .engine
            .plan_read(
                Operation::GetObject,
                &read_headers(m),
                &ctx("b"),
                &BucketConfig::default(),
                &meta,
            )
            .unwrap_err();
        assert_eq!(e.status, 500, "{m:?}");
        let other_bucket = RequestContext::new("bkt2", "a")
            .principal(ALICE)
            .secure(true);
        assert!(
            r.engine
                .plan_read(
                    Operation::HeadObject,
                    &read_headers(m),
                    &other_bucket,
                    &BucketConfig::default(),
                    &meta
                )
                .is_err()
        );
        assert_eq!(
            get(&r, m, "a", &meta).open(&stored).unwrap(),
            b"content of a"
        );
        // An upload's metadata used for another object's parts.
        let up = r
            .engine
            .plan_write(
                Operation::CreateMultipartUpload,
                &write_headers(m),
                &ctx("a"),
                &BucketConfig::default(),
            )
            .unwrap()
            .upload_meta()
            .clone();
        assert!(
            r.engine
                .plan_part(
                    &read_headers(m),
                    &ctx("b"),
                    &BucketConfig::default(),
                    &up,
                    1
                )
                .is_err()
        );
    }
}

/// With an audit log, every provider call the S3 layer makes is one line, attributed to the
/// request's principal and, through the context, to the object; the lines form one valid chain.
#[test]
fn every_provider_call_of_the_s3_layer_is_in_the_audit_log() {
    use ssekit_engine::audit::{AuditLog, VerifyOptions, verify_readers};
    let r = rig();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let log = AuditLog::to_callback(move |l: &str| {
        sink.lock().unwrap().push(l.to_owned());
        Ok(())
    });
    let engine = SseEngine::new(r.provider.clone()).with_audit(log);
    let bucket = BucketConfig::default();
    r.provider.reset();
    let mut expect = Vec::new();
    for (m, who) in [
        (Mode::S3, ALICE),
        (Mode::Kms, ALICE),
        (Mode::KmsBucketKey, BOB),
        (Mode::Dsse, BOB),
        (Mode::SseC, ALICE),
    ] {
        let key = format!("audited-{m:?}");
        let c = ctx(&key).principal(who);
        let (stored, meta) = engine
            .plan_write(Operation::PutObject, &write_headers(m), &c, &bucket)
            .unwrap()
            .seal_object(b"audited")
            .unwrap();
        let g = engine
            .plan_read(Operation::GetObject, &read_headers(m), &c, &bucket, &meta)
            .unwrap();
        assert_eq!(g.open(&stored).unwrap(), b"audited");
        expect.push((key, who, m));
    }
    // A wrong SSE-C key is recorded as a failed use, naming the object.
    let (_, c_meta) = put(&r, Mode::SseC, "ssec-wrong", b"x");
    let mut wrong = Headers::new();
    for (n, v) in key_b().headers() {
        wrong.insert(n, &v);
    }
    let e = engine
        .plan_read(
            Operation::GetObject,
            &wrong,
            &ctx("ssec-wrong"),
            &bucket,
            &c_meta,
        )
        .unwrap_err();
    assert_eq!(e.status, 403);
    let lines = lines.lock().unwrap().clone();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every provider call is a line (the engine's first-use creation of its SSE-S3 root included),
    // and so is every key use that called none (bucket keys, SSE-C).
    let local = parsed
        .iter()
        .filter(|v| {
            v["op"].as_str().unwrap().starts_with("bucket_key_")
                || v["op"].as_str().unwrap().starts_with("sse_c_")
        })
        .count() as u64;
    // A lifecycle call (the root's creation) is two lines: `requested`, then its outcome.
    assert_eq!(
        lines.len() as u64,
        r.provider.counts().key_uses() + 2 * r.provider.counts().lifecycle + local,
        "{lines:#?}"
    );
    for (key, who, m) in &expect {
        let arn = format!("arn:aws:s3:::bkt/{key}");
        let of_object: Vec<&serde_json::Value> = parsed
            .iter()
            .filter(|v| v["context"]["aws:s3:arn"] == arn.as_str())
            .collect();
        let ops: Vec<&str> = of_object
            .iter()
            .map(|v| v["op"].as_str().unwrap())
            .collect();
        let want: &[&str] = match m {
            Mode::S3 | Mode::Kms => &["generate", "unwrap"],
            Mode::Dsse => &["generate", "generate", "unwrap", "unwrap"],
            Mode::KmsBucketKey => &["bucket_key_wrap", "bucket_key_unwrap"],
            Mode::SseC => &["sse_c_wrap", "sse_c_unwrap"],
        };
        assert_eq!(ops, want, "{m:?}");
        assert!(
            of_object
                .iter()
                .all(|v| v["principal"] == *who && v["outcome"] == "ok")
        );
    }
    let failed: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["context"]["aws:s3:arn"] == "arn:aws:s3:::bkt/ssec-wrong")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["op"], "sse_c_unwrap");
    assert_eq!(failed[0]["outcome"], "UnwrapFailed");
    let bucket_key_line = parsed
        .iter()
        .find(|v| v["context"]["aws:s3:arn"] == "arn:aws:s3:::bkt")
        .expect("the bucket key's generation");
    assert_eq!(bucket_key_line["op"], "generate");
    assert_eq!(bucket_key_line["principal"], BOB);
    let text = lines.join("\n") + "\n";
    let summary = verify_readers(
        [("callback".to_owned(), text.as_bytes())],
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(summary.lines, lines.len() as u64);
    // A failed call is recorded too, with its outcome.
    let e = engine
        .plan_write(
            Operation::PutObject,
            &with(
                Headers::new(),
                &[
                    ("x-amz-server-side-encryption", "aws:kms"),
                    ("x-amz-server-side-encryption-aws-kms-key-id", "off"),
                ],
            ),
            &ctx("denied").principal(ALICE),
            &bucket,
        )
        .unwrap_err();
    assert_eq!(e.code, "KMS.DisabledException");
}

/// A log that cannot be written stops every key use, those under a cached bucket key and SSE-C's
/// included: nothing is encrypted or decrypted without its line.
#[test]
fn a_failing_audit_log_stops_bucket_key_and_sse_c_uses_too() {
    use ssekit_engine::audit::AuditLog;
    use std::sync::atomic::AtomicBool;
    let r = rig();
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let log = AuditLog::to_callback(move |_: &str| {
        if flag.load(Ordering::SeqCst) {
            Err("disk full".to_owned())
        } else {
            Ok(())
        }
    });
    let engine = SseEngine::new(r.provider.clone()).with_audit(log);
    let b = BucketConfig::default();
    let mut objects = Vec::new();
    for m in [
        Mode::KmsBucketKey,
        Mode::SseC,
        Mode::Kms,
        Mode::S3,
        Mode::Dsse,
    ] {
        let c = ctx(&format!("f-{m:?}"));
        let (stored, meta) = engine
            .plan_write(Operation::PutObject, &write_headers(m), &c, &b)
            .unwrap()
            .seal_object(b"logged")
            .unwrap();
        objects.push((m, c, stored, meta));
    }
    down.store(true, Ordering::SeqCst);
    for (m, c, _, meta) in &objects {
        let e = engine
            .plan_write(Operation::PutObject, &write_headers(*m), c, &b)
            .unwrap_err();
        assert_eq!((e.code, e.status), ("ServiceUnavailable", 503), "{m:?} put");
        let e = engine
            .plan_read(Operation::GetObject, &read_headers(*m), c, &b, meta)
            .unwrap_err();
        assert_eq!(e.status, 503, "{m:?} get");
    }
    down.store(false, Ordering::SeqCst);
    for (m, c, stored, meta) in &objects {
        let g = engine
            .plan_read(Operation::GetObject, &read_headers(*m), c, &b, meta)
            .unwrap();
        assert_eq!(g.open(stored).unwrap(), b"logged");
    }
}

/// What the review of the S3 layer found: copies obey the source bucket's policy; the engine's
/// SSE-S3 root cannot be named as a customer key; bucket names cannot fold into object keys; request
/// values are bounded before the policy's wildcards run over them.
#[test]
fn copies_names_and_limits() {
    let r = rig();
    let (stored, meta) = put(&r, Mode::Kms, "doc", b"top secret");
    let deny_get = policy_bucket(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoReads","Effect":"Deny","Principal":"*",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/*"}]}"#,
    );
    let source_ctx = ctx("doc");
    let denied_source = CopySource {
        ctx: &source_ctx,
        bucket: &deny_get,
        meta: &meta,
    };
    let target = RequestContext::new("mine", "copy")
        .principal(ALICE)
        .secure(true);
    let e = r
        .engine
        .plan_copy(
            &Headers::new(),
            &target,
            &BucketConfig::default(),
            denied_source,
        )
        .unwrap_err();
    assert_eq!(code(&e), ("AccessDenied", 403));
    let up = r
        .engine
        .plan_write(
            Operation::CreateMultipartUpload,
            &Headers::new(),
            &target,
            &BucketConfig::default(),
        )
        .unwrap()
        .upload_meta()
        .clone();
    let e = r
        .engine
        .plan_part_copy(
            &Headers::new(),
            &target,
            &BucketConfig::default(),
            &up,
            1,
            denied_source,
        )
        .unwrap_err();
    assert_eq!(code(&e), ("AccessDenied", 403));
    let (read, _) = r
        .engine
        .plan_copy(
            &Headers::new(),
            &target,
            &BucketConfig::default(),
            src(&source_ctx, &meta),
        )
        .unwrap();
    assert_eq!(read.open(&stored).unwrap(), b"top secret");

    for id in [
        "ssekit-sse-s3",
        "alias/ssekit-sse-s3",
        "arn:aws:kms:us-east-1:000000000000:key/ssekit-sse-s3",
        "arn:aws:kms:us-east-1:000000000000:alias/ssekit-sse-s3",
    ] {
        let h = with(
            Headers::new(),
            &[
                ("x-amz-server-side-encryption", "aws:kms"),
                ("x-amz-server-side-encryption-aws-kms-key-id", id),
            ],
        );
        assert_eq!(
            put_err(&r, &h, true),
            Err(("KMS.NotFoundException", 400)),
            "{id}"
        );
        let cfg = BucketEncryption {
            algorithm: DefaultAlgorithm::AwsKms,
            kms_key_id: Some(id.into()),
            bucket_key_enabled: false,
        };
        assert!(cfg.validate().is_err(), "{id}");
    }

    let slash = RequestContext::new("a/b", "c").secure(true);
    let e = r
        .engine
        .plan_write(
            Operation::PutObject,
            &Headers::new(),
            &slash,
            &BucketConfig::default(),
        )
        .unwrap_err();
    assert_eq!(code(&e), ("InvalidBucketName", 400));
    let long_key = RequestContext::new("bkt", &"k".repeat(1025)).secure(true);
    let e = r
        .engine
        .plan_write(
            Operation::PutObject,
            &Headers::new(),
            &long_key,
            &BucketConfig::default(),
        )
        .unwrap_err();
    assert_eq!(code(&e), ("KeyTooLongError", 400));
    let huge = "a".repeat(60_000);
    for h in [
        with(
            Headers::new(),
            &[("x-amz-server-side-encryption-aws-kms-key-id", &huge)],
        ),
        with(
            Headers::new(),
            &[(
                "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key",
                &huge,
            )],
        ),
        Headers::from_pairs(vec![("x-amz-server-side-encryption", "AES256"); 17]),
    ] {
        // Refused before the policy runs: the seed policy would deny them, but not first.
        let e = r
            .engine
            .plan_write(
                Operation::PutObject,
                &h,
                &RequestContext::new("my-secure-bucket", "k").secure(true),
                &policy_bucket(SEED_POLICY),
            )
            .unwrap_err();
        assert_eq!(code(&e), ("InvalidArgument", 400));
    }
    let e = put_err(
        &r,
        &with(
            write_headers(Mode::Kms),
            &[(
                "x-amz-server-side-encryption-context",
                &B64.encode(r#"{"AWS:s3:arn":"x"}"#),
            )],
        ),
        true,
    );
    assert_eq!(e, Err(("InvalidArgument", 400)));
    // Complete refuses SSE headers, as UploadPart does.
    let e = r
        .engine
        .complete(
            &write_headers(Mode::S3),
            &target,
            &BucketConfig::default(),
            &up,
            &[PartEntry {
                number: 1,
                size: 0,
                salt: [0; 24],
            }],
        )
        .unwrap_err();
    assert_eq!(code(&e), ("InvalidArgument", 400));
}

/// Names that would reorder or break a line for someone reading the log are escaped in it.
#[test]
fn audit_lines_escape_bidirectional_and_separator_characters() {
    use ssekit_engine::audit::AuditLog;
    let r = rig();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let log = AuditLog::to_callback(move |l: &str| {
        sink.lock().unwrap().push(l.to_owned());
        Ok(())
    });
    let engine = SseEngine::new(r.provider.clone()).with_audit(log);
    let c = ctx("k\u{202e}gpj.exe\u{2028}x").principal("alice\u{2066}\u{feff}");
    engine
        .plan_write(
            Operation::PutObject,
            &write_headers(Mode::Kms),
            &c,
            &BucketConfig::default(),
        )
        .unwrap();
    let lines = lines.lock().unwrap();
    assert!(!lines.is_empty());
    for l in lines.iter() {
        for ch in ['\u{202e}', '\u{2028}', '\u{2066}', '\u{feff}'] {
            assert!(!l.contains(ch), "{l}");
        }
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["principal"], "alice\u{2066}\u{feff}");
    }
    assert!(lines.iter().any(|l| l.contains("\\u202e")));
}
