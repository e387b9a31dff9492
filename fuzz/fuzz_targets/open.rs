//! Metadata, layouts and opens: the input drives an `ObjectMeta` with any part table (any part
//! numbers, any sizes up to u64::MAX, around the format's limit), stored data, a data key and byte
//! ranges of all three forms. Three ways in, by the first byte:
//!
//! - hostile metadata: plans ranges on it unverified ([`object::plan_range`], the pure planner, over
//!   any stored length), round-trips its encoding, verifies its (forged) MAC, then authenticates it
//!   and opens the rest of the input through every [`Verified`] open;
//! - the same, with the part table made to add up to the size, so it gets past the table checks;
//! - a valid object (single-part or multipart, sealed here with salts from the input, so runs repeat),
//!   its data and metadata then altered or not, so the opens reach chunk decryption.
//!
//! Nothing may panic. A plan's chunk indices stay below 2^38 and its fetches inside the stored data; a
//! successful open returns exactly the authenticated size (a part's: the part's size; a range's: the
//! range's length); every open agrees with the whole open when both succeed; an untouched object opens
//! to its plaintext by every way. Opens allocate the authenticated size, so the harness opens only
//! metadata of at most [`OPEN_CAP`] bytes (larger ones only with data too short for them, which must
//! fail before allocating), and gives every range read the real data's length.
#![no_main]

use std::io::Read;

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use ssekit_engine::keys::{DataKey, EncryptionContext};
use ssekit_engine::object::{
    self, ByteRange, CHUNK_LEN, Error, HEADER_LEN, MAX_OBJECT_SIZE, MetaAuth, ObjectMeta,
    PartEntry, RangePlan, SEALED_CHUNK_LEN, SseMode, Verified,
};

/// Largest authenticated size the harness opens with data that could hold it.
const OPEN_CAP: u64 = 1 << 20;
/// Largest valid object the harness seals.
const SEAL_CAP: u64 = 160 * 1024;
/// Chunk indices are below 2^38 (the format's limit, and the nonce's counter).
const MAX_CHUNKS: u64 = 1 << 38;
const C: u64 = CHUNK_LEN as u64;
const S: u64 = SEALED_CHUNK_LEN as u64;

/// A u64 the fuzzer would rarely find alone: the limits, chunk boundaries, values near `near`.
fn num(u: &mut Unstructured<'_>, near: &[u64]) -> AResult<u64> {
    const FIXED: [u64; 18] = [
        0,
        1,
        C - 1,
        C,
        C + 1,
        2 * C,
        MAX_OBJECT_SIZE - 1,
        MAX_OBJECT_SIZE,
        MAX_OBJECT_SIZE + 1,
        MAX_OBJECT_SIZE / 2,
        (MAX_CHUNKS - 1) * C,
        i64::MAX as u64,
        1 << 63,
        u64::MAX / S,
        u64::MAX / 2,
        u64::MAX - 1,
        u64::MAX,
        1 << 32,
    ];
    Ok(match u.int_in_range(0u8..=7)? {
        0 | 1 => u.arbitrary()?,
        2 => u64::from(u.arbitrary::<u16>()?),
        3 | 4 => FIXED[u.choose_index(FIXED.len())?],
        _ if near.is_empty() => u.arbitrary()?,
        _ => {
            let base = near[u.choose_index(near.len())?];
            let delta = i64::from(u.int_in_range(-40i8..=40)?);
            base.wrapping_add_signed(delta)
        }
    })
}

fn range(u: &mut Unstructured<'_>, near: &[u64]) -> AResult<ByteRange> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => {
            let first = num(u, near)?;
            let last = if u.ratio(1, 4)? {
                num(u, near)?
            } else {
                first.saturating_add(num(u, &[0, C, 2 * C])?)
            };
            ByteRange::Inclusive { first, last }
        }
        1 => ByteRange::From(num(u, near)?),
        _ => ByteRange::Suffix(num(u, near)?),
    })
}

fn dek(u: &mut Unstructured<'_>) -> AResult<DataKey> {
    let k: [u8; 32] = if u.ratio(1, 2)? {
        [7u8; 32]
    } else {
        u.arbitrary()?
    };
    Ok(DataKey::from_bytes(&k))
}

fn mode(u: &mut Unstructured<'_>) -> AResult<SseMode> {
    let all = [
        SseMode::SseS3,
        SseMode::SseKms,
        SseMode::DsseKms,
        SseMode::SseC,
        SseMode::Client,
    ];
    Ok(all[u.choose_index(all.len())?])
}

/// `sealed_len` of any length, wrapping (the format's `sealed_len` is for lengths a buffer has; with
/// overflow checks it panics past 2^63).
fn wrapping_sealed_len(n: u64) -> u64 {
    (HEADER_LEN as u64 + ssekit_engine::aead::TAG_LEN as u64 + n % C)
        .wrapping_add((n / C).wrapping_mul(S))
}

/// The stored length the table gives (wrapping: the table may be anything).
fn table_stored_len(meta: &ObjectMeta) -> u64 {
    if meta.parts.is_empty() {
        wrapping_sealed_len(meta.size)
    } else {
        meta.parts
            .iter()
            .fold(0u64, |s, p| s.wrapping_add(wrapping_sealed_len(p.size)))
    }
}

/// Hostile metadata: any size, any part table, any MAC.
fn hostile_meta(u: &mut Unstructured<'_>, data_len: u64, add_up: bool) -> AResult<ObjectMeta> {
    let mut context = EncryptionContext::new();
    if u.ratio(1, 4)? {
        let _ = context.insert("bucket", "b");
    }
    let mut meta = ObjectMeta::new(mode(u)?, context, Vec::new());
    let fit = object::plaintext_len(data_len).unwrap_or(0);
    meta.size = num(u, &[fit, MAX_OBJECT_SIZE, u64::MAX])?;
    let rows = match u.int_in_range(0u8..=15)? {
        0..=4 => 0,
        15 => usize::from(u.int_in_range(9_990u16..=10_010)?),
        n => usize::from(n - 4),
    };
    let ascending = u.ratio(3, 4)?;
    let mut number = 0u32;
    for _ in 0..rows {
        number = if ascending && rows <= 10_000 {
            let step = if rows > 64 {
                1
            } else {
                u.int_in_range(1u32..=3)?
            };
            number.saturating_add(step)
        } else {
            match u.int_in_range(0u8..=3)? {
                0 => u.arbitrary()?,
                1 => [0, 1, 9_999, 10_000, 10_001, u32::MAX][u.choose_index(6)?],
                _ => number.wrapping_add(u.int_in_range(0u32..=2)?),
            }
        };
        let size = if rows > 64 {
            u64::from(u.arbitrary::<u8>()?)
        } else {
            num(u, &[meta.size, fit])?
        };
        // A salt from the input (a crafted table names any salt it likes).
        let salt: [u8; 24] = if u.arbitrary()? { [0; 24] } else { u.arbitrary()? };
        meta.parts.push(PartEntry { number, size, salt });
    }
    if add_up && !meta.parts.is_empty() {
        // Make the table add up (mod 2^64), so the size check passes or fails only by overflow.
        let rest = meta.parts[..meta.parts.len() - 1]
            .iter()
            .fold(0u64, |s, p| s.wrapping_add(p.size));
        if u.ratio(1, 2)? {
            meta.parts.last_mut().expect("rows").size = meta.size.wrapping_sub(rest);
        } else {
            meta.size = rest.wrapping_add(meta.parts.last().expect("rows").size);
        }
    }
    if u.ratio(1, 2)? {
        meta.auth = MetaAuth {
            commitment: u.arbitrary()?,
            mac: u.arbitrary()?,
        };
    }
    Ok(meta)
}

/// A plan that succeeded must be one `open_range` can follow without overflowing or leaving the data.
fn check_plan(meta: &ObjectMeta, r: ByteRange, stored_len: u64, plan: &RangePlan) {
    let (want, _) = r.resolve(meta.size).expect("a plan resolves its range");
    assert_eq!(plan.plaintext, want);
    assert_eq!(plan.size, meta.size);
    assert!(want.end <= meta.size && want.start < want.end);
    assert!(
        !plan.fetches.is_empty(),
        "a satisfiable range fetches something"
    );
    let mut take = 0u64;
    let mut prev_part = None;
    for f in &plan.fetches {
        assert!(
            prev_part.is_none_or(|p| p < f.part),
            "parts fetched in order, once"
        );
        prev_part = Some(f.part);
        assert_eq!(f.header.end - f.header.start, HEADER_LEN as u64);
        assert!(f.header.end <= f.chunks.start && f.chunks.start < f.chunks.end);
        assert!(
            f.chunks.end <= stored_len,
            "fetch past the stored data: {f:?} of {stored_len}"
        );
        assert!(
            f.first_chunk < MAX_CHUNKS,
            "chunk index {} out of the format",
            f.first_chunk
        );
        assert_eq!(f.chunks.start - f.header.end, f.first_chunk * S);
        let n = (f.chunks.end - f.chunks.start).div_ceil(S);
        assert!(
            f.first_chunk + n <= MAX_CHUNKS,
            "last chunk index out of the format: {f:?}"
        );
        assert!(f.skip < C);
        assert!(f.skip + f.take <= (f.chunks.end - f.chunks.start), "{f:?}");
        take += f.take;
    }
    assert_eq!(take, want.end - want.start);
    // Every chunk, even an empty final one, holds a tag.
    assert!(plan.chunk_count() <= stored_len / ssekit_engine::aead::TAG_LEN as u64);
}

/// The plaintext an in-place open left in `buf`'s chunk slots (part by part for a multipart object).
fn slots(meta: &ObjectMeta, buf: &[u8]) -> Vec<u8> {
    let sizes: Vec<u64> = if meta.parts.is_empty() {
        vec![meta.size]
    } else {
        meta.parts.iter().map(|p| p.size).collect()
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    for size in sizes {
        for s in object::chunk_slots(size as usize) {
            out.extend_from_slice(&buf[at + s.start..at + s.end]);
        }
        at += object::sealed_len(size) as usize;
    }
    out
}

fn slots_zeroed(meta: &ObjectMeta, buf: &[u8]) -> bool {
    slots(meta, buf).iter().all(|&b| b == 0)
}

/// Every open of verified metadata over `data`; `expect`: the plaintext when the object is untouched.
fn opens(v: Verified<'_>, data: &[u8], ranges: &[ByteRange], expect: Option<&[u8]>) {
    let meta = v.meta();
    let size = v.size();
    let small = size <= OPEN_CAP;
    // Larger authenticated sizes only with data too short to hold them: every open must refuse it
    // before allocating the size.
    assert!(small || (data.len() as u64) < size);
    let whole = v.open(data);
    match &whole {
        Ok(w) => assert_eq!(w.len() as u64, size),
        Err(_) => assert!(
            expect.is_none(),
            "an untouched object fails to open: {whole:?}"
        ),
    }
    if let Some(e) = expect {
        assert_eq!(whole.as_deref().ok(), Some(e));
    }
    if small {
        let mut out = vec![0xa5u8; size as usize];
        let into = v.open_into(data, &mut out);
        match (&into, &whole) {
            (Ok(()), Ok(w)) => assert_eq!(&out, w),
            (Err(e), Err(f)) => {
                assert_eq!(e, f);
                assert!(
                    out.iter().all(|&b| b == 0xa5) || out.iter().all(|&b| b == 0),
                    "out not wiped"
                );
            }
            _ => panic!("open_into {into:?}, open {:?}", whole.as_ref().map(|_| ())),
        }
    }
    let mut buf = data.to_vec();
    match (v.open_in_place(&mut buf), &whole) {
        (Ok(n), Ok(w)) => {
            assert_eq!(n as u64, size);
            assert_eq!(&slots(meta, &buf), w);
        }
        (Err(e), Err(f)) => {
            assert_eq!(&e, f);
            if matches!(e, Error::Tampered { .. }) {
                assert!(
                    slots_zeroed(meta, &buf),
                    "in place: plaintext left after {e:?}"
                );
            }
        }
        (r, w) => panic!("in place {r:?}, whole {:?}", w.as_ref().map(|_| ())),
    }
    // Part by part: each part's stored span as the table places it (clamped to the data).
    let mut numbers: Vec<(u32, u64, u64)> = Vec::new(); // (part, plaintext start, stored start)
    if meta.parts.is_empty() {
        numbers.push((0, 0, 0));
    } else {
        let (mut p, mut s) = (0u64, 0u64);
        for e in meta.parts.iter().take(16) {
            numbers.push((e.number, p, s));
            p = p.wrapping_add(e.size);
            s = s.wrapping_add(object::sealed_len(e.size));
        }
    }
    for &(part, pt_start, st_start) in &numbers {
        let psize = v.part_size(part).expect("a part of the table");
        let st_end = st_start.saturating_add(object::sealed_len(psize));
        let from = (st_start.min(data.len() as u64)) as usize;
        let to = (st_end.min(data.len() as u64)) as usize;
        let slice = &data[from..to];
        let one = v.open_part(part, slice);
        if let Ok(o) = &one {
            assert_eq!(o.len() as u64, psize);
        }
        if let Ok(w) = &whole {
            let o = one
                .as_ref()
                .expect("a part of an object that opens whole opens");
            assert_eq!(&w[pt_start as usize..(pt_start + psize) as usize], &o[..]);
        }
        let mut pbuf = slice.to_vec();
        match (v.open_part_in_place(part, &mut pbuf), &one) {
            (Ok(n), Ok(o)) => {
                assert_eq!(n as u64, psize);
                let got: Vec<u8> = object::chunk_slots(n)
                    .flat_map(|s| pbuf[s].to_vec())
                    .collect();
                assert_eq!(&got, o);
            }
            (Err(e), Err(f)) => assert_eq!(&e, f),
            (r, o) => panic!(
                "part {part} in place {r:?}, open_part {:?}",
                o.as_ref().map(|_| ())
            ),
        }
        // The stream reads exactly the part's stored length, whatever follows it.
        {
            let streamed = v.part_reader(&data[from..], part).and_then(|mut r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map_err(Error::from)?;
                Ok(out)
            });
            if let Ok(s) = &streamed {
                assert_eq!(s.len() as u64, psize);
            }
            if let Ok(o) = &one {
                assert_eq!(streamed.as_ref().ok(), Some(o), "stream of part {part}");
            }
            if part == 0 {
                let r = v.reader(data).and_then(|mut r| {
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).map_err(Error::from)?;
                    Ok(out)
                });
                assert_eq!(r, streamed);
            }
        }
    }
    let stored_len = data.len() as u64;
    for &r in ranges {
        let plan = v.plan_range(r, stored_len);
        assert_eq!(plan, object::plan_range(meta, r, stored_len));
        if let Ok(p) = &plan {
            check_plan(meta, r, stored_len, p);
        }
        let read = v.open_range(stored_len, r, data);
        if let Ok(rr) = &read {
            let p = plan.as_ref().expect("a range read follows a plan");
            assert_eq!(rr.range, p.plaintext);
            assert_eq!(rr.size, size);
            assert_eq!(rr.plaintext.len() as u64, rr.range.end - rr.range.start);
            assert_eq!(rr.chunks_opened, p.chunk_count());
        }
        if let Ok(w) = &whole {
            if r.resolve(size).is_ok() {
                let rr = read
                    .as_ref()
                    .expect("a range of an object that opens whole opens");
                assert_eq!(
                    &rr.plaintext[..],
                    &w[rr.range.start as usize..rr.range.end as usize]
                );
            } else {
                assert_eq!(read.as_ref().err(), r.resolve(size).err().as_ref());
            }
        }
    }
}

/// Hostile metadata: planned unverified, encoded, verified, then authenticated and opened.
fn hostile(u: &mut Unstructured<'_>, add_up: bool) -> AResult<()> {
    let dek = dek(u)?;
    let data_len = u64::from(u.arbitrary::<u16>()?) % 8192;
    let mut meta = hostile_meta(u, data_len, add_up)?;
    let table = table_stored_len(&meta);
    let mut ranges = Vec::new();
    for _ in 0..u.int_in_range(1u8..=4)? {
        ranges.push(range(u, &[meta.size, meta.size / 2, C, MAX_OBJECT_SIZE])?);
    }
    // The pure planner on unverified metadata, over any stored length.
    for &r in &ranges {
        let stored_len = if u.ratio(1, 2)? {
            table
        } else {
            num(u, &[table, data_len, wrapping_sealed_len(meta.size)])?
        };
        if let Ok(p) = object::plan_range(&meta, r, stored_len) {
            check_plan(&meta, r, stored_len, &p);
        }
    }
    match meta.to_bytes() {
        Ok(b) => {
            assert_eq!(ObjectMeta::from_bytes(&b).as_ref(), Ok(&meta));
            let b64 = meta.to_base64().expect("encodes");
            assert_eq!(ObjectMeta::from_base64(&b64).as_ref(), Ok(&meta));
        }
        Err(e) => {
            assert!(matches!(meta.verify(&dek), Err(Error::Metadata(f)) if f == e));
            assert_eq!(meta.clone().authenticate(&dek), Err(e));
            return Ok(());
        }
    }
    // A MAC from the input does not verify (the fuzzer cannot forge HMAC-SHA-256).
    if meta.auth != MetaAuth::default() || u.ratio(1, 8)? {
        assert!(meta.verify(&dek).is_err(), "a forged MAC verified");
    }
    meta.authenticate(&dek).expect("what encodes authenticates");
    let back = ObjectMeta::from_bytes(&meta.to_bytes().expect("encodes")).expect("parses");
    assert_eq!(back, meta);
    let v = back.verify(&dek).expect("authenticated metadata verifies");
    assert!(meta.verify(&DataKey::from_bytes(&[8u8; 32])).is_err() || dek.expose() == &[8u8; 32]);
    // Arbitrary stored data (at most 8 KiB: shorter than any size over OPEN_CAP).
    let rest = u.bytes(u.len())?;
    opens(v, &rest[..rest.len().min(8192)], &ranges, None);
    Ok(())
}

/// A valid object, sealed here, then altered by the input or not.
fn valid(u: &mut Unstructured<'_>) -> AResult<()> {
    let dek = dek(u)?;
    let multipart = u.ratio(2, 3)?;
    let n_parts = if multipart {
        u.int_in_range(1usize..=4)?
    } else {
        1
    };
    let mut meta = ObjectMeta::new(mode(u)?, EncryptionContext::new(), Vec::new());
    let mut stored = Vec::new();
    let mut plain = Vec::new();
    let seed: u8 = u.arbitrary()?;
    let mut number = 0u32;
    for _ in 0..n_parts {
        let want = match u.int_in_range(0u8..=3)? {
            0 => [0, 1, C - 1, C, C + 1, 2 * C, 3 * C - 1][u.choose_index(7)?],
            _ => u64::from(u.arbitrary::<u16>()?),
        };
        let size = want.min(SEAL_CAP - plain.len() as u64);
        let pt: Vec<u8> = (0..size)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        number = if multipart {
            number + u.int_in_range(1u32..=3)?
        } else {
            0
        };
        let salt: [u8; 24] = u.arbitrary()?;
        let sealed = object::__seal_message_with_salt(
            dek.expose(),
            &object::part_context(number),
            &salt,
            &pt,
        )
        .expect("seal");
        stored.extend_from_slice(&sealed);
        plain.extend_from_slice(&pt);
        if multipart {
            meta.parts.push(PartEntry { number, size, salt });
        }
    }
    meta.size = plain.len() as u64;
    meta.authenticate(&dek).expect("authenticates");
    let mut ranges = Vec::new();
    for _ in 0..u.int_in_range(1u8..=4)? {
        ranges.push(range(u, &[meta.size, meta.size / 2, C, 2 * C])?);
    }
    // Alterations: of the stored data, of the metadata (then re-authenticated or not: metadata
    // authenticated over data it does not describe exercises the layout checks past verification).
    let (original_stored, original_meta) = (stored.clone(), meta.clone());
    let mut authenticated = meta.clone();
    for _ in 0..u.int_in_range(0u8..=3)? {
        match u.int_in_range(0u8..=6)? {
            0 | 1 if !stored.is_empty() => {
                let at = u.choose_index(stored.len())?;
                stored[at] ^= u.int_in_range(1u8..=255)?;
            }
            2 => {
                let n = u.choose_index(stored.len() + 1)?;
                stored.truncate(n);
            }
            3 => {
                let n = u.int_in_range(0usize..=64)?;
                let extra = u.bytes(n.min(u.len()))?;
                stored.extend_from_slice(extra);
            }
            4 if !meta.parts.is_empty() => {
                let i = u.choose_index(meta.parts.len())?;
                let p = &mut meta.parts[i];
                if u.ratio(1, 2)? {
                    p.number = u.int_in_range(0u32..=10_001)?;
                } else {
                    p.size = num(u, &[p.size, meta.size])?;
                }
            }
            5 => meta.size = num(u, &[meta.size])?,
            _ => meta.mode = mode(u)?,
        }
        // Metadata verifies exactly when it is what was last authenticated.
        assert_eq!(meta.verify(&dek).is_ok(), meta == authenticated, "{meta:?}");
        if meta != authenticated && u.ratio(1, 2)? && meta.size <= OPEN_CAP {
            if meta.authenticate(&dek).is_err() {
                return Ok(());
            }
            authenticated = meta.clone();
        }
    }
    let touched = stored != original_stored || meta != original_meta;
    let Ok(v) = meta.verify(&dek) else {
        assert!(
            meta != authenticated,
            "authenticated metadata fails to verify"
        );
        return Ok(());
    };
    if v.size() > OPEN_CAP && stored.len() as u64 >= v.size() {
        return Ok(());
    }
    opens(v, &stored, &ranges, (!touched).then_some(&plain[..]));
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0u8..=2) {
        Ok(0) => hostile(&mut u, false),
        Ok(1) => hostile(&mut u, true),
        _ => valid(&mut u),
    };
});
