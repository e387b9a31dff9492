//! The S3 layer's bodies into a caller's buffers: `seal_into`/`seal_in_place`, `open_into`/
//! `open_in_place`, the push-model `PartSealer`/`PartOpener` fed in pieces of any size, and range
//! reads as stored ranges to fetch then opened from the fetched bytes; in every mode (DSSE-KMS's two
//! layers included), single-part and multipart, each cross-checked against the whole-buffer paths.

use std::sync::Arc;

use rand::{Rng, SeedableRng, rngs::StdRng};
use ssekit_engine::keys::{KeyProvider, KeySpec, LocalKeyring};
use ssekit_engine::object::{ByteRange, Fetched, ObjectMeta, PartEntry, ReadAt};
use ssekit_engine::sse::{
    BucketConfig, CustomerKey, Headers, Operation, PartOpener, PartSealer, ReadPlan,
    RequestContext, SseEngine, WritePlan,
};

const MODES: [&str; 5] = ["AES256", "aws:kms", "aws:kms+bk", "aws:kms:dsse", "sse-c"];

struct Rig {
    _dir: tempfile::TempDir,
    engine: SseEngine,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(dir.path().join("home")).unwrap();
    ring.create_key(&KeySpec {
        id: Some("k1".into()),
        ..KeySpec::default()
    })
    .unwrap();
    Rig {
        engine: SseEngine::new(Arc::new(ring)),
        _dir: dir,
    }
}

fn ctx() -> RequestContext {
    RequestContext::new("bkt", "obj").secure(true)
}

fn customer_key() -> CustomerKey {
    CustomerKey::from_bytes(&[0x3C; 32])
}

fn write_headers(mode: &str) -> Headers {
    let mut h = Headers::new();
    match mode {
        "sse-c" => {
            for (n, v) in customer_key().headers() {
                h.insert(n, &v);
            }
        }
        "aws:kms+bk" => {
            h.insert("x-amz-server-side-encryption", "aws:kms");
            h.insert("x-amz-server-side-encryption-aws-kms-key-id", "k1");
            h.insert("x-amz-server-side-encryption-bucket-key-enabled", "true");
        }
        m => h.insert("x-amz-server-side-encryption", m),
    }
    h
}

fn read_headers(mode: &str) -> Headers {
    let mut h = Headers::new();
    if mode == "sse-c" {
        for (n, v) in customer_key().headers() {
            h.insert(n, &v);
        }
    }
    h
}

fn plan_write(r: &Rig, mode: &str, op: Operation) -> WritePlan {
    r.engine
        .plan_write(op, &write_headers(mode), &ctx(), &BucketConfig::default())
        .unwrap()
}

fn plan_read(r: &Rig, mode: &str, meta: &ObjectMeta) -> ReadPlan {
    r.engine
        .plan_read(
            Operation::GetObject,
            &read_headers(mode),
            &ctx(),
            &BucketConfig::default(),
            meta,
        )
        .unwrap()
}

fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Seals `data` through `s` in pieces drawn by `rng`; checks each call's length is the one announced
/// and that a short buffer takes nothing.
fn stream_seal(s: &mut PartSealer, data: &[u8], rng: &mut StdRng) -> (Vec<u8>, PartEntry) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = rng.random_range(1..=70_000usize).min(data.len() - at);
        let need = s.update_len(n);
        if need > 0 {
            let mut short = vec![0u8; need - 1];
            assert!(s.update(&data[at..at + n], &mut short).is_err());
        }
        let mut buf = vec![0u8; need];
        assert_eq!(s.update(&data[at..at + n], &mut buf).unwrap(), need);
        out.extend_from_slice(&buf);
        at += n;
    }
    let mut buf = vec![0u8; s.finish_len()];
    let (n, entry) = s.finish(&mut buf).unwrap();
    assert_eq!(n, buf.len());
    out.extend_from_slice(&buf);
    (out, entry)
}

fn stream_open(o: &mut PartOpener, stored: &[u8], rng: &mut StdRng) -> Vec<u8> {
    assert_eq!(o.stored_len(), stored.len() as u64);
    let mut out = Vec::new();
    let mut at = 0;
    while at < stored.len() {
        let n = rng.random_range(1..=40_000usize).min(stored.len() - at);
        let mut buf = vec![0u8; o.update_len(n)];
        let got = o.update(&stored[at..at + n], &mut buf).unwrap();
        assert_eq!(got, buf.len());
        out.extend_from_slice(&buf);
        at += n;
    }
    o.finish().unwrap();
    out
}

#[test]
fn every_mode_seals_and_opens_through_buffers_in_place_and_streams_alike() {
    let r = rig();
    let mut rng = StdRng::seed_from_u64(1);
    for mode in MODES {
        for len in [0usize, 1, 16_383, 16_384, 16_385, 200_001] {
            let data = body(len, len as u64);
            // Into a buffer.
            let plan = plan_write(&r, mode, Operation::PutObject);
            let n = plan.stored_len(len as u64) as usize;
            let mut stored = vec![0u8; n + 7];
            assert_eq!(plan.seal_into(&data, &mut stored).unwrap(), n);
            stored.truncate(n);
            let meta = plan.finish(len as u64).unwrap();
            let read = plan_read(&r, mode, &meta);
            assert_eq!(read.open(&stored).unwrap(), data, "{mode} {len}");
            let mut out = vec![0u8; len + 3];
            assert_eq!(read.open_into(&stored, &mut out).unwrap(), len);
            assert_eq!(&out[..len], &data[..]);
            let mut o = read.opener(0).unwrap();
            assert_eq!(
                stream_open(&mut o, &stored, &mut rng),
                data,
                "{mode} {len} stream"
            );
            let mut inplace = stored.clone();
            assert_eq!(read.open_in_place(&mut inplace).unwrap(), len);
            assert_eq!(&inplace[..len], &data[..], "{mode} {len} open in place");

            // In place.
            let plan = plan_write(&r, mode, Operation::PutObject);
            let mut buf = vec![0u8; plan.stored_len(len as u64) as usize];
            buf[..len].copy_from_slice(&data);
            assert_eq!(plan.seal_in_place(&mut buf, len).unwrap(), buf.len());
            let meta = plan.finish(len as u64).unwrap();
            assert_eq!(plan_read(&r, mode, &meta).open(&buf).unwrap(), data);

            // Streamed.
            let plan = plan_write(&r, mode, Operation::PutObject);
            let mut s = plan.sealer(0).unwrap();
            let (streamed, entry) = stream_seal(&mut s, &data, &mut rng);
            assert_eq!(entry.size, len as u64);
            assert_eq!(streamed.len() as u64, plan.stored_len(len as u64));
            let meta = plan.finish(len as u64).unwrap();
            assert_eq!(plan_read(&r, mode, &meta).open(&streamed).unwrap(), data);
        }
    }
}

#[test]
fn multipart_parts_stream_and_open_in_place_part_by_part() {
    let r = rig();
    let mut rng = StdRng::seed_from_u64(2);
    for mode in MODES {
        let upload = plan_write(&r, mode, Operation::CreateMultipartUpload);
        let upload_meta = upload.upload_meta().clone();
        let sizes = [5 << 20, 3 * 16_384 + 5, 1];
        let parts: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| body(n, 10 + i as u64))
            .collect();
        let mut stored = Vec::new();
        let mut rows = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let plan = r
                .engine
                .plan_part(
                    &read_headers(mode),
                    &ctx(),
                    &BucketConfig::default(),
                    &upload_meta,
                    i as u32 + 1,
                )
                .unwrap();
            let (data, row) = if i % 2 == 0 {
                let mut s = plan.sealer().unwrap();
                stream_seal(&mut s, p, &mut rng)
            } else {
                let mut out = vec![0u8; plan.stored_len(p.len() as u64) as usize];
                let (n, row) = plan.seal_into(p, &mut out).unwrap();
                assert_eq!(n, out.len());
                (out, row)
            };
            stored.push(data);
            rows.push(row);
        }
        let (meta, _) = r
            .engine
            .complete(
                &read_headers(mode),
                &ctx(),
                &BucketConfig::default(),
                &upload_meta,
                &rows,
            )
            .unwrap();
        let read = plan_read(&r, mode, &meta);
        let whole: Vec<u8> = stored.concat();
        assert_eq!(read.open(&whole).unwrap(), parts.concat(), "{mode}");
        let mut inplace = whole.clone();
        let n = read.open_in_place(&mut inplace).unwrap();
        assert_eq!(&inplace[..n], &parts.concat()[..], "{mode} in place");
        for (i, p) in parts.iter().enumerate() {
            let mut o = read.opener(i as u32 + 1).unwrap();
            assert_eq!(
                &stream_open(&mut o, &stored[i], &mut rng),
                p,
                "{mode} part {}",
                i + 1
            );
        }
        // The part openers check the row's salt: part 2's data does not open as part 1.
        let mut o = read.opener(1).unwrap();
        let mut buf = vec![0u8; o.update_len(stored[1].len())];
        assert!(o.update(&stored[1], &mut buf).is_err() || o.finish().is_err());
    }
}

#[test]
fn range_reads_fetch_only_the_listed_stored_bytes_in_every_mode() {
    let r = rig();
    let len = 300_000usize;
    let data = body(len, 7);
    let ranges = [
        ("bytes=0-0", 0..1),
        ("bytes=100000-100099", 100_000..100_100),
        ("bytes=16383-16384", 16_383..16_385),
        ("bytes=-10", len as u64 - 10..len as u64),
        ("bytes=299000-", 299_000..len as u64),
        ("bytes=0-999999", 0..len as u64),
    ];
    for mode in MODES {
        let plan = plan_write(&r, mode, Operation::PutObject);
        let stored = plan.seal(&data).unwrap();
        let meta = plan.finish(len as u64).unwrap();
        let read = plan_read(&r, mode, &meta);
        for (header, want) in ranges.clone() {
            let range = ssekit_engine::sse::parse_range_header(header).unwrap();
            let f = read.range_fetches(range, stored.len() as u64).unwrap();
            assert_eq!(f.plaintext, want, "{mode} {header}");
            let mut fetched = Vec::new();
            let mut prev_end = 0;
            for s in &f.stored {
                assert!(s.start >= prev_end && s.end <= stored.len() as u64);
                prev_end = s.end;
                fetched.extend_from_slice(&stored[s.start as usize..s.end as usize]);
            }
            if want.end - want.start < 1000 {
                assert!(
                    fetched.len() < 100_000,
                    "{mode} {header}: a small range fetched {} of {} bytes",
                    fetched.len(),
                    stored.len()
                );
            }
            let got = read
                .open_fetched(range, stored.len() as u64, &fetched)
                .unwrap();
            assert_eq!(got.plaintext, &data[want.start as usize..want.end as usize]);
            // A byte of the fetched data flipped is caught; bytes missing are refused.
            if !fetched.is_empty() {
                let mut bad = fetched.clone();
                let k = bad.len() - 1;
                bad[k] ^= 1;
                assert!(read.open_fetched(range, stored.len() as u64, &bad).is_err());
                assert!(
                    read.open_fetched(range, stored.len() as u64, &fetched[1..])
                        .is_err()
                );
            }
        }
        let past = ByteRange::parse("400000-").unwrap();
        assert_eq!(
            read.range_fetches(past, stored.len() as u64)
                .unwrap_err()
                .status,
            416
        );
    }
}

#[test]
fn fetched_bytes_serve_only_what_was_fetched() {
    let data: Vec<u8> = (0..100u8).collect();
    let f = Fetched::new(vec![10..20, 50..60], &data[..20]).unwrap();
    let mut b = [0u8; 5];
    f.read_exact_at(&mut b, 12).unwrap();
    assert_eq!(b, [2, 3, 4, 5, 6]);
    f.read_exact_at(&mut b, 55).unwrap();
    assert_eq!(b, [15, 16, 17, 18, 19]);
    assert!(f.read_exact_at(&mut b, 17).is_err(), "across a gap");
    assert!(f.read_exact_at(&mut b, 30).is_err(), "in a gap");
    assert!(f.read_exact_at(&mut b, 58).is_err(), "past the end");
    assert!(Fetched::new(vec![10..20, 30..31], &data[..10]).is_err());
    assert!(Fetched::new(vec![50..60, 10..20], &data[..20]).is_err());
}

#[test]
fn a_stream_refuses_tampered_truncated_and_extended_data_and_releases_nothing_of_a_bad_chunk() {
    let r = rig();
    for mode in MODES {
        let data = body(100_000, 3);
        let plan = plan_write(&r, mode, Operation::PutObject);
        let stored = plan.seal(&data).unwrap();
        let meta = plan.finish(data.len() as u64).unwrap();
        let read = plan_read(&r, mode, &meta);
        let mut bad = stored.clone();
        bad[stored.len() / 2] ^= 0x40;
        let mut o = read.opener(0).unwrap();
        let mut out = vec![0u8; o.update_len(bad.len())];
        assert!(o.update(&bad, &mut out).is_err(), "{mode}");
        assert!(
            out.iter().all(|&b| b == 0),
            "{mode}: plaintext of a failed call"
        );
        assert!(o.finish().is_err());
        let mut o = read.opener(0).unwrap();
        let mut out = vec![0u8; o.update_len(stored.len() - 1)];
        o.update(&stored[..stored.len() - 1], &mut out).unwrap();
        assert!(o.finish().is_err(), "{mode}: truncated");
        let mut o = read.opener(0).unwrap();
        let mut long = stored.clone();
        long.push(0);
        let mut out = vec![0u8; o.update_len(long.len())];
        assert!(o.update(&long, &mut out).is_err(), "{mode}: extended");
        let mut short =
            vec![0u8; plan_write(&r, mode, Operation::PutObject).stored_len(10) as usize - 1];
        assert!(
            plan_write(&r, mode, Operation::PutObject)
                .seal_into(&data[..10], &mut short)
                .is_err()
        );
    }
}
