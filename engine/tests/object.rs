//! The object format end to end: round trips at every interesting size through every interface,
//! multipart, range reads against slicing the plaintext, metadata parsing, and tampering of every kind.

use std::io::{Cursor, Read, Write};

use rand::{Rng, RngCore, SeedableRng, rngs::StdRng, seq::SliceRandom};
use ssekit_engine::keys::{DataKey, EncryptionContext, WrappedKey};
use ssekit_engine::object::{
    self, ByteRange, CHUNK_LEN, Error, HEADER_LEN, MetaError, ObjectMeta, OpenReader, PartEntry,
    ReadAt, SEALED_CHUNK_LEN, SealWriter, SseMode,
};

const C: usize = CHUNK_LEN;

fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Sizes that matter: empty, one byte, around one chunk, many chunks, and around a streaming batch
/// (256 chunks) and the parallel threshold.
fn sizes() -> Vec<usize> {
    let mut s = vec![
        0,
        1,
        15,
        16,
        17,
        C - 1,
        C,
        C + 1,
        2 * C,
        3 * C + 5,
        4 * C - 1,
        4 * C,
        4 * C + 1,
        100 * C + 7,
    ];
    for b in [256 * C, 512 * C] {
        s.extend([b - 1, b, b + 1]);
    }
    s
}

fn stream_seal(dek: &DataKey, pt: &[u8], write_size: usize) -> Vec<u8> {
    let mut w = SealWriter::new(Vec::new(), dek).unwrap();
    for piece in pt.chunks(write_size.max(1)) {
        w.write_all(piece).unwrap();
    }
    let (out, n) = w.finish().unwrap();
    assert_eq!(n, pt.len() as u64);
    out
}

fn stream_open(dek: &DataKey, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = OpenReader::new(Cursor::new(sealed), dek)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn round_trips_at_every_size_and_interface() {
    let dek = DataKey::generate();
    for n in sizes() {
        let pt = data(n, n as u64);
        let sealed = object::seal(&dek, &pt).unwrap();
        assert_eq!(sealed.len() as u64, object::sealed_len(n as u64), "n={n}");
        assert_eq!(
            object::plaintext_len(sealed.len() as u64).unwrap(),
            n as u64
        );
        assert_eq!(object::open(&dek, &sealed).unwrap(), pt, "whole n={n}");
        assert_eq!(stream_open(&dek, &sealed).unwrap(), pt, "stream n={n}");
        for ws in [1000, C, 3 * C + 1, 256 * C + 3] {
            if n > 40 * C && ws < C {
                continue; // byte-sized writes of big objects only cost time
            }
            let s2 = stream_seal(&dek, &pt, ws);
            assert_eq!(s2.len(), sealed.len());
            assert_eq!(object::open(&dek, &s2).unwrap(), pt, "writer n={n} ws={ws}");
        }
        let mut out = vec![0u8; n];
        object::open_into(&dek, &sealed, &mut out).unwrap();
        assert_eq!(out, pt);
        // In place: sealed where the plaintext lies, opened by every other interface, and back.
        let mut buf = slotted(&pt);
        object::seal_in_place(&dek, &mut buf).unwrap();
        assert_eq!(object::open(&dek, &buf).unwrap(), pt, "in place n={n}");
        let mut buf = sealed.clone();
        assert_eq!(object::open_in_place(&dek, &mut buf).unwrap(), n);
        assert_eq!(from_slots(&buf, n), pt, "open in place n={n}");
    }
}

/// A buffer laid out as the sealed object with `pt` in its chunk slots, the rest junk.
fn slotted(pt: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xeeu8; object::sealed_len(pt.len() as u64) as usize];
    let mut at = 0;
    for slot in object::chunk_slots(pt.len()) {
        let n = slot.len();
        buf[slot].copy_from_slice(&pt[at..at + n]);
        at += n;
    }
    assert_eq!(at, pt.len());
    buf
}

fn from_slots(buf: &[u8], n: usize) -> Vec<u8> {
    object::chunk_slots(n)
        .flat_map(|s| buf[s].to_vec())
        .collect()
}

#[test]
fn chunk_slots_tile_the_plaintext() {
    for n in sizes() {
        let slots: Vec<_> = object::chunk_slots(n).collect();
        assert_eq!(slots.len(), n.div_ceil(C), "n={n}");
        assert_eq!(slots.iter().map(|s| s.len()).sum::<usize>(), n);
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(s.start, HEADER_LEN + i * SEALED_CHUNK_LEN);
            // Each slot is followed by its tag, inside the sealed length.
            assert!(s.end + 16 <= object::sealed_len(n as u64) as usize);
        }
    }
}

#[test]
fn in_place_rejects_bad_lengths_and_wipes_on_failure() {
    let dek = DataKey::generate();
    // No message is 57 bytes long, nor one ending in a full chunk.
    for len in [
        0,
        HEADER_LEN,
        HEADER_LEN + 15,
        HEADER_LEN + SEALED_CHUNK_LEN,
    ] {
        let mut buf = vec![0u8; len];
        assert!(matches!(
            object::seal_in_place(&dek, &mut buf),
            Err(Error::BadLayout(_))
        ));
        assert_eq!(object::open_in_place(&dek, &mut buf), Err(Error::Truncated));
    }
    let pt = data(9 * C + 10, 77);
    let mut sealed = slotted(&pt);
    object::seal_part_in_place(&dek, 3, &mut sealed).unwrap();
    // The part number is bound: only part 3 opens it.
    assert_eq!(
        object::open_in_place(&dek, &mut sealed.clone()),
        Err(Error::WrongKey)
    );
    let mut ok = sealed.clone();
    assert_eq!(object::open_part_in_place(&dek, 3, &mut ok), Ok(pt.len()));
    assert_eq!(from_slots(&ok, pt.len()), pt);
    // A wrong key is told apart before anything is decrypted.
    assert_eq!(
        object::open_part_in_place(&DataKey::generate(), 3, &mut sealed.clone()),
        Err(Error::WrongKey)
    );
    // One flipped byte in the last chunk: every chunk that did open is wiped again.
    let mut bad = sealed.clone();
    let at = bad.len() - 20;
    bad[at] ^= 1;
    assert_eq!(
        object::open_part_in_place(&dek, 3, &mut bad),
        Err(Error::Tampered { chunk: 9 })
    );
    assert!(from_slots(&bad, pt.len()).iter().all(|&b| b == 0));
}

#[test]
fn seal_runs_on_every_pool_size_with_the_same_result() {
    let dek = DataKey::generate();
    let pt = data(37 * C + 99, 3);
    let sealed = object::seal(&dek, &pt).unwrap();
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let again = pool.install(|| object::open(&dek, &sealed)).unwrap();
        assert_eq!(again, pt);
        let s = pool.install(|| object::seal(&dek, &pt)).unwrap();
        assert_eq!(object::open(&dek, &s).unwrap(), pt);
    }
}

#[test]
fn multipart_sealed_in_shuffled_order() {
    let dek = DataKey::generate();
    let mut rng = StdRng::seed_from_u64(9);
    let sizes = [5 * C + 3, C, 0, 17, 2 * C];
    let parts: Vec<(u32, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as u32 + 1, data(n, 100 + i as u64)))
        .collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.shuffle(&mut rng);
    let mut sealed_parts = vec![Vec::new(); parts.len()];
    // Parts sealed independently, in any order, on other threads.
    std::thread::scope(|s| {
        let handles: Vec<_> = order
            .iter()
            .map(|&i| {
                let (num, pt) = &parts[i];
                let dek = &dek;
                (
                    i,
                    s.spawn(move || object::seal_part(dek, *num, pt).unwrap()),
                )
            })
            .collect();
        for (i, h) in handles {
            sealed_parts[i] = h.join().unwrap();
        }
    });
    let stored: Vec<u8> = sealed_parts.concat();
    let table: Vec<PartEntry> = parts
        .iter()
        .map(|(n, p)| PartEntry {
            number: *n,
            size: p.len() as u64,
        })
        .collect();
    let whole: Vec<u8> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(object::open_parts(&dek, &table, &stored).unwrap(), whole);
    // By range, across part boundaries.
    for _ in 0..200 {
        let a = rng.random_range(0..whole.len() as u64);
        let b = rng.random_range(a..whole.len() as u64);
        let r = object::open_range(
            &dek,
            stored.len() as u64,
            &table,
            ByteRange::Inclusive { first: a, last: b },
            &stored[..],
        )
        .unwrap();
        assert_eq!(r.plaintext, &whole[a as usize..=b as usize]);
    }
    // Swapped parts fail: part 1's message stored where part 2's belongs.
    let mut swapped = sealed_parts.clone();
    swapped.swap(0, 3);
    let table_swapped: Vec<PartEntry> = [0usize, 1, 2, 3, 4]
        .iter()
        .map(|&i| PartEntry {
            number: i as u32 + 1,
            size: parts[[3, 1, 2, 0, 4][i]].1.len() as u64,
        })
        .collect();
    assert_eq!(
        object::open_parts(&dek, &table_swapped, &swapped.concat()),
        Err(Error::WrongKey)
    );
    // A part sealed as another number fails, and a re-sealed part never repeats its bytes.
    let again = object::seal_part(&dek, 1, &parts[0].1).unwrap();
    assert_ne!(again, sealed_parts[0]);
    assert_eq!(object::open_part(&dek, 2, &again), Err(Error::WrongKey));
    // Part numbers out of range, and a table that does not fit the data.
    assert!(matches!(
        object::seal_part(&dek, 10_001, b""),
        Err(Error::BadLayout(_))
    ));
    let mut short = table.clone();
    short[0].size -= 1;
    assert!(matches!(
        object::open_parts(&dek, &short, &stored),
        Err(Error::BadLayout(_))
    ));
}

struct Counting<'a> {
    data: &'a [u8],
    bytes: std::cell::Cell<u64>,
}

impl ReadAt for Counting<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.data.read_exact_at(buf, offset)
    }
}

#[test]
fn ranges_at_every_chunk_boundary_match_slicing() {
    let dek = DataKey::generate();
    for n in [0usize, 1, C - 1, C, C + 1, 5 * C, 5 * C + 100] {
        let pt = data(n, 7);
        let sealed = object::seal(&dek, &pt).unwrap();
        let len = n as u64;
        let mut points: Vec<u64> = (0..=n / C + 1)
            .flat_map(|k| [k * C, k * C + 1])
            .flat_map(|p| [p.saturating_sub(1) as u64, p as u64])
            .collect();
        points.extend([0, len.saturating_sub(1), len, len + 10]);
        points.sort();
        points.dedup();
        for &a in &points {
            for &b in &points {
                if a > b {
                    continue;
                }
                let r = object::open_range(
                    &dek,
                    sealed.len() as u64,
                    &[],
                    ByteRange::Inclusive { first: a, last: b },
                    &sealed[..],
                );
                if a >= len {
                    assert_eq!(
                        r.unwrap_err(),
                        Error::RangeNotSatisfiable { size: len },
                        "n={n} {a}-{b}"
                    );
                } else {
                    let r = r.unwrap();
                    let end = (b + 1).min(len) as usize;
                    assert_eq!(r.plaintext, &pt[a as usize..end], "n={n} {a}-{b}");
                    assert_eq!(r.range, a..end as u64);
                }
            }
            // Suffix and open-ended forms.
            let r = object::open_range(
                &dek,
                sealed.len() as u64,
                &[],
                ByteRange::Suffix(a),
                &sealed[..],
            );
            if a == 0 || len == 0 {
                assert!(matches!(r, Err(Error::RangeNotSatisfiable { .. })));
            } else {
                assert_eq!(r.unwrap().plaintext, &pt[n - (a as usize).min(n)..]);
            }
            let r = object::open_range(
                &dek,
                sealed.len() as u64,
                &[],
                ByteRange::From(a),
                &sealed[..],
            );
            if a >= len {
                assert!(matches!(r, Err(Error::RangeNotSatisfiable { .. })));
            } else {
                assert_eq!(r.unwrap().plaintext, &pt[a as usize..]);
            }
        }
    }
}

#[test]
fn range_plans_fetch_only_what_they_need() {
    let size = 5 * C as u64 + 100;
    let stored = object::sealed_len(size);
    // One byte in the middle: header + one chunk.
    let p = object::plan_range(
        ByteRange::Inclusive {
            first: 2 * C as u64 + 5,
            last: 2 * C as u64 + 5,
        },
        stored,
        &[],
    )
    .unwrap();
    assert_eq!(p.chunk_count(), 1);
    assert_eq!(p.fetch_len(), (HEADER_LEN + SEALED_CHUNK_LEN) as u64);
    assert_eq!(
        p.fetches[0].chunks.start,
        (HEADER_LEN + 2 * SEALED_CHUNK_LEN) as u64
    );
    // Relative to the end: the final chunk is always included.
    let p = object::plan_range(ByteRange::Suffix(1), stored, &[]).unwrap();
    assert_eq!(p.chunk_count(), 1);
    assert_eq!(p.fetches[0].chunks.end, stored);
    // A range ending on the last full chunk of a chunk-aligned object still authenticates the
    // (empty) final chunk when it is relative to the end.
    let aligned = object::sealed_len(4 * C as u64);
    let p = object::plan_range(ByteRange::From(3 * C as u64), aligned, &[]).unwrap();
    assert_eq!(p.chunk_count(), 2);
    let p = object::plan_range(
        ByteRange::Inclusive {
            first: 0,
            last: 4 * C as u64 - 1,
        },
        aligned,
        &[],
    )
    .unwrap();
    assert_eq!(p.chunk_count(), 4);
    // Errors.
    assert_eq!(
        object::plan_range(ByteRange::Inclusive { first: 9, last: 3 }, stored, &[]),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        object::plan_range(ByteRange::From(0), aligned - 16, &[]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        ByteRange::parse("bytes=5-9").unwrap(),
        ByteRange::Inclusive { first: 5, last: 9 }
    );
    assert_eq!(ByteRange::parse("-7").unwrap(), ByteRange::Suffix(7));
    assert_eq!(ByteRange::parse("7-").unwrap(), ByteRange::From(7));
    for bad in ["", "-", "a-b", "9-3", "1-2-3", "+1-2", " 1-2"] {
        assert!(ByteRange::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn one_byte_of_a_gibibyte_object_opens_exactly_one_chunk() {
    let dek = DataKey::generate();
    let pt = vec![0x42u8; 1 << 30];
    let sealed = object::seal(&dek, &pt).unwrap();
    drop(pt);
    let src = Counting {
        data: &sealed,
        bytes: 0.into(),
    };
    let at = (1u64 << 29) + 12_345;
    let r = object::open_range(
        &dek,
        sealed.len() as u64,
        &[],
        ByteRange::Inclusive {
            first: at,
            last: at,
        },
        &src,
    )
    .unwrap();
    assert_eq!(r.plaintext, [0x42]);
    assert_eq!(r.chunks_opened, 1);
    assert_eq!(src.bytes.get(), (HEADER_LEN + SEALED_CHUNK_LEN) as u64);
}

fn expect_failure(dek: &DataKey, sealed: &[u8], what: &str) {
    let whole = object::open(dek, sealed);
    assert!(whole.is_err(), "{what}: whole open succeeded");
    let mut buf = sealed.to_vec();
    assert!(
        object::open_in_place(dek, &mut buf).is_err(),
        "{what}: open in place succeeded"
    );
    let streamed = std::panic::catch_unwind(|| stream_open(dek, sealed));
    assert!(
        matches!(streamed, Ok(Err(_))),
        "{what}: streaming open did not fail cleanly"
    );
}

#[test]
fn tampering_of_every_kind_fails_without_panic() {
    let dek = DataKey::generate();
    let pt = data(3 * C + 500, 5);
    let sealed = object::seal(&dek, &pt).unwrap();
    let small = object::seal(&dek, b"a small object").unwrap();
    // Every byte of a small object, flipped.
    for i in 0..small.len() {
        let mut t = small.clone();
        t[i] ^= 0x01;
        let e = object::open(&dek, &t).unwrap_err();
        if i < HEADER_LEN {
            assert_eq!(e, Error::WrongKey, "byte {i}");
        } else {
            assert_eq!(e, Error::Tampered { chunk: 0 }, "byte {i}");
        }
        expect_failure(&dek, &t, &format!("flip {i}"));
    }
    // Truncation at and between chunk boundaries.
    for cut in [
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 15,
        HEADER_LEN + SEALED_CHUNK_LEN,
        HEADER_LEN + SEALED_CHUNK_LEN + 1,
        HEADER_LEN + 2 * SEALED_CHUNK_LEN,
        sealed.len() - 1,
    ] {
        expect_failure(&dek, &sealed[..cut], &format!("cut at {cut}"));
    }
    let chunk = |k: usize| {
        HEADER_LEN + k * SEALED_CHUNK_LEN
            ..(HEADER_LEN + (k + 1) * SEALED_CHUNK_LEN).min(sealed.len())
    };
    let rebuild = |order: &[usize]| {
        let mut v = sealed[..HEADER_LEN].to_vec();
        for &k in order {
            v.extend_from_slice(&sealed[chunk(k)]);
        }
        v
    };
    expect_failure(&dek, &rebuild(&[0, 1, 3]), "chunk 2 dropped");
    expect_failure(&dek, &rebuild(&[0, 1, 2]), "final chunk dropped");
    expect_failure(&dek, &rebuild(&[0, 1, 1, 2, 3]), "chunk 1 duplicated");
    expect_failure(&dek, &rebuild(&[1, 0, 2, 3]), "chunks 0 and 1 swapped");
    expect_failure(&dek, &rebuild(&[0, 1, 2, 3, 3]), "final chunk repeated");
    let mut extended = sealed.clone();
    extended.extend_from_slice(&[0u8; 16]);
    expect_failure(&dek, &extended, "trailing bytes");
    // Splicing a chunk from another object under the same data key.
    let other = object::seal(&dek, &data(3 * C + 500, 6)).unwrap();
    let mut spliced = sealed.clone();
    spliced[chunk(1)].copy_from_slice(&other[chunk(1)]);
    assert_eq!(
        object::open(&dek, &spliced),
        Err(Error::Tampered { chunk: 1 })
    );
    expect_failure(&dek, &spliced, "spliced chunk");
    // Another object's header on this data.
    let mut header_swap = sealed.clone();
    header_swap[..HEADER_LEN].copy_from_slice(&other[..HEADER_LEN]);
    expect_failure(&dek, &header_swap, "swapped header");
    // Wrong key: reported as such, before any chunk.
    assert_eq!(
        object::open(&DataKey::generate(), &sealed),
        Err(Error::WrongKey)
    );
    assert_eq!(object::open_part(&dek, 1, &sealed), Err(Error::WrongKey));
    // A failed whole open releases nothing.
    let mut out = vec![0xffu8; pt.len()];
    assert!(object::open_into(&dek, &spliced, &mut out).is_err());
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn streaming_reader_releases_only_authenticated_chunks_and_keeps_failing() {
    let dek = DataKey::generate();
    let pt = data(300 * C + 9, 8); // more than one batch
    let mut sealed = object::seal(&dek, &pt).unwrap();
    let bad = 270; // in the second batch
    sealed[HEADER_LEN + bad * SEALED_CHUNK_LEN + 3] ^= 4;
    let mut r = OpenReader::new(Cursor::new(&sealed), &dek).unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(Error::from(e), Error::Tampered { chunk: bad as u64 });
    assert_eq!(out, &pt[..bad * C]);
    for _ in 0..3 {
        assert_eq!(
            Error::from(r.read(&mut [0u8; 10]).unwrap_err()),
            Error::Tampered { chunk: bad as u64 }
        );
    }
}

fn sample_meta(parts: Vec<PartEntry>) -> ObjectMeta {
    ObjectMeta {
        mode: SseMode::SseKms,
        size: parts
            .iter()
            .map(|p| p.size)
            .sum::<u64>()
            .max(if parts.is_empty() { 1234 } else { 0 }),
        context: EncryptionContext::from_pairs([("bucket", "b1"), ("key", "photos/cat.jpg")])
            .unwrap(),
        keys: vec![WrappedKey {
            provider: "local".into(),
            key_id: "default".into(),
            key_version: 3,
            algorithm: "AES256-GCM".into(),
            ciphertext: vec![7; 60],
        }],
        parts,
    }
}

#[test]
fn meta_round_trips_and_rejects_every_malformation() {
    for m in [
        sample_meta(vec![]),
        sample_meta(vec![
            PartEntry { number: 1, size: 5 },
            PartEntry { number: 7, size: 0 },
            PartEntry {
                number: 10_000,
                size: 1 << 40,
            },
        ]),
    ] {
        let b = m.to_bytes().unwrap();
        assert_eq!(ObjectMeta::from_bytes(&b).unwrap(), m);
        assert_eq!(ObjectMeta::from_base64(&m.to_base64().unwrap()).unwrap(), m);
        // Every strict prefix is rejected, as is every extension.
        for cut in 0..b.len() {
            assert!(ObjectMeta::from_bytes(&b[..cut]).is_err(), "prefix {cut}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(
            ObjectMeta::from_bytes(&longer),
            Err(MetaError::TrailingBytes(1))
        );
        // Every single-byte change parses to something else or fails; never panics.
        for i in 0..b.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut t = b.clone();
                t[i] ^= x;
                if let Ok(other) = ObjectMeta::from_bytes(&t) {
                    assert_ne!(other, m);
                }
            }
        }
    }
    let good = sample_meta(vec![]).to_bytes().unwrap();
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(
        ObjectMeta::from_bytes(&v),
        Err(MetaError::UnsupportedVersion(2))
    );
    let mut v = good.clone();
    v[1] = 9;
    assert_eq!(ObjectMeta::from_bytes(&v), Err(MetaError::UnknownMode(9)));
    assert_eq!(
        ObjectMeta::from_base64("not base64!"),
        Err(MetaError::Base64)
    );
    // Parts not ascending, numbers out of range, sizes not adding up: refused both ways.
    let bad = sample_meta(vec![
        PartEntry { number: 2, size: 1 },
        PartEntry { number: 2, size: 1 },
    ]);
    assert_eq!(bad.to_bytes(), Err(MetaError::BadPartTable));
    let mut bad = sample_meta(vec![PartEntry { number: 1, size: 1 }]);
    bad.size = 2;
    assert_eq!(bad.to_bytes(), Err(MetaError::SizeMismatch));
    // A length field claiming more than is there allocates nothing large and fails.
    let mut huge = good[..10].to_vec();
    huge.extend_from_slice(&[0xff, 0xff]);
    assert!(ObjectMeta::from_bytes(&huge).is_err());
}

#[test]
fn container_header_round_trips_and_rejects_garbage() {
    let m = sample_meta(vec![]);
    let mut file = Vec::new();
    let n = object::write_container_header(&mut file, &m).unwrap();
    assert_eq!(n as usize, file.len());
    file.extend_from_slice(b"data");
    let (back, start) = object::read_container_header(&mut Cursor::new(&file)).unwrap();
    assert_eq!((back, start), (m, n));
    assert_eq!(
        object::read_container_header(&mut Cursor::new(b"SSEQ\x01\0\0\0\0")).unwrap_err(),
        MetaError::BadMagic
    );
    assert_eq!(
        object::read_container_header(&mut Cursor::new(b"SSEK\x02\0\0\0\0")).unwrap_err(),
        MetaError::UnsupportedContainer(2)
    );
    assert!(matches!(
        object::read_container_header(&mut Cursor::new(b"SSEK\x01\xff\xff\xff\xff")).unwrap_err(),
        MetaError::TooLong(_)
    ));
    assert!(matches!(
        object::read_container_header(&mut Cursor::new(&file[..20])).unwrap_err(),
        MetaError::Truncated(_)
    ));
}
