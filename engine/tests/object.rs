//! The object format end to end: round trips at every interesting size through every interface,
//! multipart, range reads against slicing the plaintext, metadata parsing, and tampering of every kind.

use std::io::{Cursor, Read, Write};

use rand::{Rng, RngCore, SeedableRng, rngs::StdRng, seq::SliceRandom};
use ssekit_engine::keys::{DataKey, EncryptionContext, WrappedKey};
use ssekit_engine::object::{
    self, ByteRange, CHUNK_LEN, Error, HEADER_LEN, MetaAuth, MetaError, ObjectMeta, OpenReader,
    PartEntry, RangePlan, RangeRead, ReadAt, SEALED_CHUNK_LEN, SealWriter, SseMode,
};

const C: usize = CHUNK_LEN;

// The chunk layer through the object interfaces: each helper below opens under metadata
// authenticated for whatever length (or part table) the data has, so these suites test what the
// messages themselves catch. The metadata's own authentication (a size, mode or table that does
// not match the data) is tested in `metadata_mac_*` below.

/// Authenticated metadata for a single-part object stored as `sealed` (a size no message has: 0).
fn meta_for(dek: &DataKey, sealed_len: usize) -> ObjectMeta {
    meta_with(
        dek,
        object::plaintext_len(sealed_len as u64).unwrap_or(0),
        vec![],
    )
}

fn meta_with(dek: &DataKey, size: u64, parts: Vec<PartEntry>) -> ObjectMeta {
    let mut m = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), vec![]);
    m.size = size;
    m.parts = parts;
    m.authenticate(dek).unwrap();
    m
}

fn open(dek: &DataKey, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    meta_for(dek, sealed.len()).verify(dek)?.open(sealed)
}

fn open_into(dek: &DataKey, sealed: &[u8], out: &mut [u8]) -> Result<(), Error> {
    meta_for(dek, sealed.len())
        .verify(dek)?
        .open_into(sealed, out)
}

fn open_in_place(dek: &DataKey, buf: &mut [u8]) -> Result<usize, Error> {
    meta_for(dek, buf.len()).verify(dek)?.open_in_place(buf)
}

/// A one-part table holding part `part` of the length the data has.
fn part_meta(dek: &DataKey, part: u32, sealed: &[u8]) -> ObjectMeta {
    let size = object::plaintext_len(sealed.len() as u64).unwrap_or(0);
    let salt = sealed.get(..24).map_or([0; 24], |s| s.try_into().unwrap());
    meta_with(
        dek,
        size,
        vec![PartEntry {
            number: part,
            size,
            salt,
        }],
    )
}

fn open_part(dek: &DataKey, part: u32, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    part_meta(dek, part, sealed)
        .verify(dek)?
        .open_part(part, sealed)
}

fn open_part_in_place(dek: &DataKey, part: u32, buf: &mut [u8]) -> Result<usize, Error> {
    part_meta(dek, part, buf)
        .verify(dek)?
        .open_part_in_place(part, buf)
}

fn open_parts(dek: &DataKey, table: &[PartEntry], stored: &[u8]) -> Result<Vec<u8>, Error> {
    let size = table.iter().map(|p| p.size).sum();
    meta_with(dek, size, table.to_vec())
        .verify(dek)?
        .open(stored)
}

fn table_meta(dek: &DataKey, stored_len: u64, parts: &[PartEntry]) -> ObjectMeta {
    if parts.is_empty() {
        meta_for(dek, stored_len as usize)
    } else {
        meta_with(dek, parts.iter().map(|p| p.size).sum(), parts.to_vec())
    }
}

fn open_range<S: ReadAt + ?Sized>(
    dek: &DataKey,
    stored_len: u64,
    parts: &[PartEntry],
    range: ByteRange,
    source: &S,
) -> Result<RangeRead, Error> {
    table_meta(dek, stored_len, parts)
        .verify(dek)?
        .open_range(stored_len, range, source)
}

fn plan_range(range: ByteRange, stored_len: u64, parts: &[PartEntry]) -> Result<RangePlan, Error> {
    let m = table_meta(&DataKey::generate(), stored_len, parts);
    object::plan_range(&m, range, stored_len)
}

fn reader<R: Read>(inner: R, dek: &DataKey, sealed_len: usize) -> Result<OpenReader<R>, Error> {
    meta_for(dek, sealed_len).verify(dek)?.reader(inner)
}

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
    let mut r = reader(Cursor::new(sealed), dek, sealed.len())?;
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
        assert_eq!(open(&dek, &sealed).unwrap(), pt, "whole n={n}");
        assert_eq!(stream_open(&dek, &sealed).unwrap(), pt, "stream n={n}");
        for ws in [1000, C, 3 * C + 1, 256 * C + 3] {
            if n > 40 * C && ws < C {
                continue; // byte-sized writes of big objects only cost time
            }
            let s2 = stream_seal(&dek, &pt, ws);
            assert_eq!(s2.len(), sealed.len());
            assert_eq!(open(&dek, &s2).unwrap(), pt, "writer n={n} ws={ws}");
        }
        let mut out = vec![0u8; n];
        open_into(&dek, &sealed, &mut out).unwrap();
        assert_eq!(out, pt);
        // In place: sealed where the plaintext lies, opened by every other interface, and back.
        let mut buf = slotted(&pt);
        object::seal_in_place(&dek, &mut buf).unwrap();
        assert_eq!(open(&dek, &buf).unwrap(), pt, "in place n={n}");
        let mut buf = sealed.clone();
        assert_eq!(open_in_place(&dek, &mut buf).unwrap(), n);
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
        assert_eq!(open_in_place(&dek, &mut buf), Err(Error::Truncated));
    }
    let pt = data(9 * C + 10, 77);
    let mut sealed = slotted(&pt);
    object::seal_part_in_place(&dek, 3, &mut sealed).unwrap();
    // The part number is bound: only part 3 opens it.
    assert_eq!(
        open_in_place(&dek, &mut sealed.clone()),
        Err(Error::WrongKey)
    );
    let mut ok = sealed.clone();
    assert_eq!(open_part_in_place(&dek, 3, &mut ok), Ok(pt.len()));
    assert_eq!(from_slots(&ok, pt.len()), pt);
    // A wrong key is told apart before anything is decrypted.
    assert_eq!(
        open_part_in_place(&DataKey::generate(), 3, &mut sealed.clone()),
        Err(Error::WrongKey)
    );
    // One flipped byte in the last chunk: every chunk that did open is wiped again.
    let mut bad = sealed.clone();
    let at = bad.len() - 20;
    bad[at] ^= 1;
    assert_eq!(
        open_part_in_place(&dek, 3, &mut bad),
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
        let again = pool.install(|| open(&dek, &sealed)).unwrap();
        assert_eq!(again, pt);
        let s = pool.install(|| object::seal(&dek, &pt)).unwrap();
        assert_eq!(open(&dek, &s).unwrap(), pt);
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
        .zip(&sealed_parts)
        .map(|((n, p), m)| PartEntry::of_message(*n, p.len() as u64, m).unwrap())
        .collect();
    let whole: Vec<u8> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(open_parts(&dek, &table, &stored).unwrap(), whole);
    // By range, across part boundaries.
    for _ in 0..200 {
        let a = rng.random_range(0..whole.len() as u64);
        let b = rng.random_range(a..whole.len() as u64);
        let r = open_range(
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
        .map(|&i| {
            PartEntry::of_message(
                i as u32 + 1,
                parts[[3, 1, 2, 0, 4][i]].1.len() as u64,
                &swapped[i],
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        open_parts(&dek, &table_swapped, &swapped.concat()),
        Err(Error::WrongKey)
    );
    // A part sealed as another number fails, and a re-sealed part never repeats its bytes.
    let again = object::seal_part(&dek, 1, &parts[0].1).unwrap();
    assert_ne!(again, sealed_parts[0]);
    assert_eq!(open_part(&dek, 2, &again), Err(Error::WrongKey));
    // Part numbers out of range, and a table that does not fit the data.
    assert!(matches!(
        object::seal_part(&dek, 10_001, b""),
        Err(Error::BadLayout(_))
    ));
    let mut short = table.clone();
    short[0].size -= 1;
    assert!(matches!(
        open_parts(&dek, &short, &stored),
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
                let r = open_range(
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
            let r = open_range(
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
            let r = open_range(
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
    let p = plan_range(
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
    let p = plan_range(ByteRange::Suffix(1), stored, &[]).unwrap();
    assert_eq!(p.chunk_count(), 1);
    assert_eq!(p.fetches[0].chunks.end, stored);
    // A range ending on the last full chunk of a chunk-aligned object still authenticates the
    // (empty) final chunk when it is relative to the end.
    let aligned = object::sealed_len(4 * C as u64);
    let p = plan_range(ByteRange::From(3 * C as u64), aligned, &[]).unwrap();
    assert_eq!(p.chunk_count(), 2);
    let p = plan_range(
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
        plan_range(ByteRange::Inclusive { first: 9, last: 3 }, stored, &[]),
        Err(Error::InvalidRange)
    );
    assert_eq!(
        plan_range(ByteRange::From(0), aligned - 16, &[]).unwrap_err(),
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
    let r = open_range(
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
    let whole = open(dek, sealed);
    assert!(whole.is_err(), "{what}: whole open succeeded");
    let mut buf = sealed.to_vec();
    assert!(
        open_in_place(dek, &mut buf).is_err(),
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
        let e = open(&dek, &t).unwrap_err();
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
    assert_eq!(open(&dek, &spliced), Err(Error::Tampered { chunk: 1 }));
    expect_failure(&dek, &spliced, "spliced chunk");
    // Another object's header on this data.
    let mut header_swap = sealed.clone();
    header_swap[..HEADER_LEN].copy_from_slice(&other[..HEADER_LEN]);
    expect_failure(&dek, &header_swap, "swapped header");
    // Wrong key: reported as such, before any chunk.
    assert_eq!(open(&DataKey::generate(), &sealed), Err(Error::WrongKey));
    assert_eq!(open_part(&dek, 1, &sealed), Err(Error::WrongKey));
    // A failed whole open releases nothing.
    let mut out = vec![0xffu8; pt.len()];
    assert!(open_into(&dek, &spliced, &mut out).is_err());
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn streaming_reader_releases_only_authenticated_chunks_and_keeps_failing() {
    let dek = DataKey::generate();
    let pt = data(300 * C + 9, 8); // more than one batch
    let mut sealed = object::seal(&dek, &pt).unwrap();
    let bad = 270; // in the second batch
    sealed[HEADER_LEN + bad * SEALED_CHUNK_LEN + 3] ^= 4;
    let mut r = reader(Cursor::new(&sealed), &dek, sealed.len()).unwrap();
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

/// Two damaged chunks far apart (5 and 250 of 300) land in different batches of the parallel open,
/// which may finish in any order: every interface must report the lower one, and the streaming
/// reader must release exactly the chunks before it, on every pool size.
#[test]
fn the_first_of_two_damaged_chunks_is_reported_on_every_pool_size() {
    let dek = DataKey::generate();
    let pt = data(300 * C + 9, 21);
    let mut sealed = object::seal(&dek, &pt).unwrap();
    for bad in [250, 5] {
        sealed[HEADER_LEN + bad * SEALED_CHUNK_LEN + 7] ^= 0x40;
    }
    let first = Error::Tampered { chunk: 5 };
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(open(&dek, &sealed), Err(first.clone()), "{threads} threads");
            let mut out = vec![0u8; pt.len()];
            assert_eq!(open_into(&dek, &sealed, &mut out), Err(first.clone()));
            let mut buf = sealed.clone();
            assert_eq!(open_in_place(&dek, &mut buf), Err(first.clone()));
            let mut r = reader(Cursor::new(&sealed), &dek, sealed.len()).unwrap();
            let mut got = Vec::new();
            let e = r.read_to_end(&mut got).unwrap_err();
            assert_eq!(Error::from(e), first, "{threads} threads, streaming");
            assert!(
                got == pt[..5 * C],
                "{threads} threads: released {} bytes",
                got.len()
            );
        });
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
        auth: MetaAuth {
            commitment: [0xc0; 32],
            mac: [0x3a; 32],
        },
    }
}

#[test]
fn meta_round_trips_and_rejects_every_malformation() {
    for m in [
        sample_meta(vec![]),
        sample_meta(vec![
            PartEntry {
                number: 1,
                size: 5,
                salt: [1; 24],
            },
            PartEntry {
                number: 7,
                size: 0,
                salt: [7; 24],
            },
            PartEntry {
                number: 10_000,
                size: 1 << 40,
                salt: [0xee; 24],
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
    // Version 1 (no authentication), version 2 (no part salts) and unknown versions are not read.
    for version in [1, 2, 4] {
        let mut v = good.clone();
        v[0] = version;
        assert_eq!(
            ObjectMeta::from_bytes(&v),
            Err(MetaError::UnsupportedVersion(version))
        );
    }
    let mut v = good.clone();
    v[1] = 9;
    assert_eq!(ObjectMeta::from_bytes(&v), Err(MetaError::UnknownMode(9)));
    assert_eq!(
        ObjectMeta::from_base64("not base64!"),
        Err(MetaError::Base64)
    );
    // Parts not ascending, numbers out of range, sizes not adding up: refused both ways.
    let bad = sample_meta(vec![
        PartEntry {
            number: 2,
            size: 1,
            salt: [0; 24],
        },
        PartEntry {
            number: 2,
            size: 1,
            salt: [0; 24],
        },
    ]);
    assert_eq!(bad.to_bytes(), Err(MetaError::BadPartTable));
    let mut bad = sample_meta(vec![PartEntry {
        number: 1,
        size: 1,
        salt: [0; 24],
    }]);
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

/// A three-part object, its stored data and its authenticated metadata.
fn three_parts(dek: &DataKey) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, ObjectMeta) {
    let pts: Vec<Vec<u8>> = [2 * C + 5, 17, C]
        .iter()
        .map(|&n| data(n, n as u64))
        .collect();
    let sealed: Vec<Vec<u8>> = pts
        .iter()
        .enumerate()
        .map(|(i, p)| object::seal_part(dek, i as u32 + 1, p).unwrap())
        .collect();
    let table = pts
        .iter()
        .enumerate()
        .map(|(i, p)| PartEntry::of_message(i as u32 + 1, p.len() as u64, &sealed[i]).unwrap())
        .collect::<Vec<_>>();
    let mut m = sample_meta(table);
    m.authenticate(dek).unwrap();
    (pts, sealed, m)
}

#[test]
fn metadata_mac_covers_mode_size_context_and_part_table() {
    let dek = DataKey::generate();
    let (_, _, m) = three_parts(&dek);
    assert!(m.verify(&dek).is_ok());
    // Through the binary and base64 forms, the authentication survives.
    let back = ObjectMeta::from_bytes(&m.to_bytes().unwrap()).unwrap();
    assert!(back.verify(&dek).is_ok());
    assert_eq!(m.verify(&DataKey::generate()).unwrap_err(), Error::WrongKey);
    let never = ObjectMeta {
        auth: MetaAuth::default(),
        ..m.clone()
    };
    assert_eq!(never.verify(&dek).unwrap_err(), Error::WrongKey);

    type Edit = fn(&mut ObjectMeta);
    let edits: [(&str, Edit); 8] = [
        ("mode", |m| m.mode = SseMode::SseS3),
        ("context", |m| {
            m.context = EncryptionContext::from_pairs([("bucket", "b2")]).unwrap()
        }),
        ("drop middle part", |m| {
            let p = m.parts.remove(1);
            m.size -= p.size;
        }),
        ("drop last part", |m| {
            let p = m.parts.pop().unwrap();
            m.size -= p.size;
        }),
        ("add a part", |m| {
            m.parts.push(PartEntry {
                number: 4,
                size: 9,
                salt: [4; 24],
            });
            m.size += 9;
        }),
        ("renumber", |m| m.parts[2].number = 7),
        ("move bytes between parts", |m| {
            m.parts[0].size -= 1;
            m.parts[1].size += 1;
        }),
        ("mac bit", |m| m.auth.mac[31] ^= 1),
    ];
    for (what, edit) in edits {
        let mut t = m.clone();
        edit(&mut t);
        // Edited in memory, and as an attacker would, in the stored bytes.
        assert_eq!(
            t.verify(&dek).unwrap_err(),
            Error::MetadataTampered,
            "{what}"
        );
        let stored = ObjectMeta::from_bytes(&t.to_bytes().unwrap()).unwrap();
        assert_eq!(
            stored.verify(&dek).unwrap_err(),
            Error::MetadataTampered,
            "{what}"
        );
    }
    // A single-part object's size, both ways.
    let pt = data(3 * C + 1, 5);
    let sealed = object::seal(&dek, &pt).unwrap();
    let good = meta_with(&dek, pt.len() as u64, vec![]);
    assert_eq!(good.verify(&dek).unwrap().open(&sealed).unwrap(), pt);
    for size in [5, pt.len() as u64 - 1, pt.len() as u64 + 1, 0] {
        let t = ObjectMeta {
            size,
            ..good.clone()
        };
        assert_eq!(
            t.verify(&dek).unwrap_err(),
            Error::MetadataTampered,
            "size {size}"
        );
    }
    // The envelope is not covered: a rewrap (new wrapped keys) keeps the MAC.
    let mut rewrapped = m.clone();
    rewrapped.keys[0].key_version += 1;
    rewrapped.keys[0].ciphertext = vec![9; 60];
    assert!(rewrapped.verify(&dek).is_ok());
}

#[test]
fn verified_opens_check_the_data_against_the_authenticated_metadata() {
    let dek = DataKey::generate();
    let (pts, sealed, m) = three_parts(&dek);
    let v = m.verify(&dek).unwrap();
    let whole: Vec<u8> = pts.concat();
    let stored = sealed.concat();
    assert_eq!(v.open(&stored).unwrap(), whole);
    let mut buf = stored.clone();
    assert_eq!(v.open_in_place(&mut buf).unwrap(), whole.len());
    // Data with a part missing, or cut short, under the untouched metadata: refused before opening.
    let missing = [sealed[0].clone(), sealed[2].clone()].concat();
    assert!(matches!(v.open(&missing), Err(Error::BadLayout(_))));
    assert!(matches!(
        v.open(&stored[..stored.len() - 1]),
        Err(Error::BadLayout(_))
    ));
    let mut short = missing.clone();
    assert!(matches!(
        v.open_in_place(&mut short),
        Err(Error::BadLayout(_))
    ));
    // One part by number: its length must be the table's.
    assert_eq!(v.open_part(2, &sealed[1]).unwrap(), pts[1]);
    assert_eq!(
        v.open_part(1, &sealed[1]).unwrap_err(),
        Error::LengthMismatch {
            expected: pts[0].len() as u64,
            found: pts[1].len() as u64
        }
    );
    assert!(matches!(
        v.open_part(4, &sealed[1]),
        Err(Error::BadLayout(_))
    ));
    assert!(matches!(
        v.open_part(0, &sealed[1]),
        Err(Error::BadLayout(_))
    ));
    // Streaming a part reads exactly its length: longer or shorter data fails.
    let mut out = Vec::new();
    v.part_reader(Cursor::new(&sealed[0]), 1)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, pts[0]);
    let mut r = v
        .part_reader(
            Cursor::new(&sealed[0][..sealed[0].len() - SEALED_CHUNK_LEN]),
            1,
        )
        .unwrap();
    assert!(r.read_to_end(&mut Vec::new()).is_err());
    assert!(matches!(
        v.reader(Cursor::new(&stored)),
        Err(Error::BadLayout(_))
    ));
    // Ranges resolve against the authenticated size.
    let r = v
        .open_range(stored.len() as u64, ByteRange::Suffix(5), &stored[..])
        .unwrap();
    assert_eq!(r.plaintext, &whole[whole.len() - 5..]);
    assert_eq!(
        v.open_range(
            stored.len() as u64,
            ByteRange::From(whole.len() as u64),
            &stored[..]
        )
        .unwrap_err(),
        Error::RangeNotSatisfiable {
            size: whole.len() as u64
        }
    );
    // A single-part object: data of another length under the metadata.
    let pt = data(2 * C + 3, 8);
    let one = object::seal(&dek, &pt).unwrap();
    let m1 = meta_with(&dek, pt.len() as u64 - 1, vec![]);
    let v1 = m1.verify(&dek).unwrap();
    assert!(matches!(v1.open(&one), Err(Error::LengthMismatch { .. })));
    assert!(matches!(
        v1.open_range(
            one.len() as u64,
            ByteRange::Inclusive { first: 0, last: 3 },
            &one[..]
        ),
        Err(Error::LengthMismatch { .. })
    ));
}

/// The part size whose stored length, computed modulo 2^64, equals `stored`.
fn wrapping_part_size(stored: u64) -> u64 {
    let t = u128::from(stored - 72) + (1u128 << 64);
    let size = (t / 16400) * 16384 + t % 16400;
    assert!(t % 16400 < 16384);
    u64::try_from(size).unwrap()
}

#[test]
fn lengths_from_metadata_are_checked_never_wrapped() {
    let dek = DataKey::generate();
    let pt = data(100, 1);
    let sealed = object::seal_part(&dek, 1, &pt).unwrap();
    let huge = wrapping_part_size(sealed.len() as u64);
    assert!(huge > object::MAX_OBJECT_SIZE);
    assert_eq!(object::checked_sealed_len(huge), Err(Error::TooLarge));
    assert_eq!(
        object::checked_sealed_len(object::MAX_OBJECT_SIZE).unwrap(),
        object::sealed_len(object::MAX_OBJECT_SIZE)
    );
    let mut m = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), vec![]);
    m.parts = vec![PartEntry {
        number: 1,
        size: huge,
        salt: [0; 24],
    }];
    m.size = huge;
    // Neither written nor read, nor authenticated, nor planned: a typed error each time.
    assert_eq!(m.to_bytes(), Err(MetaError::TooLarge));
    assert_eq!(m.authenticate(&dek), Err(MetaError::TooLarge));
    assert_eq!(
        m.verify(&dek).unwrap_err(),
        Error::Metadata(MetaError::TooLarge)
    );
    for r in [
        ByteRange::From(0),
        ByteRange::Suffix(10),
        ByteRange::Inclusive { first: 0, last: 9 },
    ] {
        assert_eq!(
            object::plan_range(&m, r, sealed.len() as u64),
            Err(Error::TooLarge)
        );
    }
    let mut bytes = sample_meta(vec![]).to_bytes().unwrap();
    bytes[2..10].copy_from_slice(&huge.to_be_bytes());
    assert_eq!(ObjectMeta::from_bytes(&bytes), Err(MetaError::TooLarge));
    // At the limit: a plan, no overflow, and only the chunks the range needs.
    m.parts[0].size = object::MAX_OBJECT_SIZE;
    m.size = object::MAX_OBJECT_SIZE;
    let stored = object::sealed_len(object::MAX_OBJECT_SIZE);
    let p = object::plan_range(&m, ByteRange::Suffix(10), stored).unwrap();
    assert_eq!(p.chunk_count(), 1);
    assert_eq!(p.fetches[0].chunks.end, stored);
}

#[test]
fn raw_message_calls_refuse_an_objects_parts() {
    // An object's part opens only through the verified metadata: the raw calls, given an object
    // part's context, refuse before anything is decrypted.
    let dek = DataKey::generate();
    for part in [0, 3] {
        let sealed = object::seal_part(&dek, part, &data(100, 1)).unwrap();
        let ctx = object::part_context(part);
        assert!(matches!(
            object::open_message(dek.expose(), &ctx, &sealed),
            Err(Error::BadLayout(_))
        ));
        assert!(matches!(
            object::open_message_in_place(dek.expose(), &ctx, &mut sealed.clone()),
            Err(Error::BadLayout(_))
        ));
        assert!(matches!(
            OpenReader::for_message(Cursor::new(&sealed), dek.expose(), &ctx),
            Err(Error::BadLayout(_))
        ));
    }
    // Other contexts are raw messages, as before.
    let sealed = object::seal_message(dek.expose(), b"another framing", b"hi").unwrap();
    assert_eq!(
        object::open_message(dek.expose(), b"another framing", &sealed).unwrap(),
        b"hi"
    );
}
