//! Range reads: from a plaintext range and the object's metadata to the stored byte ranges to fetch,
//! then the fetched bytes to the range's plaintext. Only the chunks the range needs are fetched and
//! decrypted (in both layers for DSSE-KMS).

use std::ffi::c_char;

use ::ssekit_engine::object::ByteRange;
use ::ssekit_engine::sse::{RangeFetches, parse_range_header};

use crate::error::{Fail, boundary, guard, ssekit_result};
use crate::plan::ssekit_read_plan;
use crate::ptr;
use crate::stream::data_error;

/// A planned range read: what to fetch and what the read returns. Free it with
/// `ssekit_range_free`.
pub struct ssekit_range {
    range: ByteRange,
    stored_len: u64,
    fetches: RangeFetches,
}

/// Plans a range read of the plan's object, stored as `stored_len` bytes, for the HTTP `Range`
/// header `range` (`bytes=A-B`, `bytes=A-`, `bytes=-N`). `SSEKIT_RESULT_INVALID_RANGE` for a header
/// S3 ignores (another unit, several ranges, a malformed one: S3 then returns the whole object);
/// `SSEKIT_RESULT_RANGE_NOT_SATISFIABLE` past the end (S3's 416). On success `*range_out` is a new
/// handle (free it with `ssekit_range_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_range(
    plan: *const ssekit_read_plan,
    range: *const c_char,
    range_len: usize,
    stored_len: u64,
    range_out: *mut *mut ssekit_range,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(range_out, "range_out")?;
        let p = ptr::get(plan, "plan")?;
        let header = ptr::text(range, range_len, "range")?;
        let r = parse_range_header(header).ok_or_else(|| {
            Fail::new(
                ssekit_result::SSEKIT_RESULT_INVALID_RANGE,
                format!("`{}` is not a range S3 reads", header.escape_debug()),
            )
        })?;
        let fetches = p.plan.range_fetches(r, stored_len).map_err(data_error)?;
        out.write(ptr::into_raw(ssekit_range {
            range: r,
            stored_len,
            fetches,
        }));
        Ok(())
    })
}

/// The plaintext the read returns, as offsets into the object: `[*start_out, *end_out)` (for
/// `Content-Range: bytes START-(END-1)/SIZE`), and the object's size in `*size_out`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_plaintext(
    range: *const ssekit_range,
    start_out: *mut u64,
    end_out: *mut u64,
    size_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let (s, e, z) = (
            ptr::out(start_out, "start_out")?,
            ptr::out(end_out, "end_out")?,
            ptr::out(size_out, "size_out")?,
        );
        let r = ptr::get(range, "range")?;
        s.write(r.fetches.plaintext.start);
        e.write(r.fetches.plaintext.end);
        z.write(r.fetches.size);
        Ok(())
    })
}

/// The number of stored byte ranges to fetch (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_fetch_count(range: *const ssekit_range) -> usize {
    guard(0, || {
        ptr::get(range, "range").map_or(0, |r| r.fetches.stored.len())
    })
}

/// Stored byte range `index` to fetch: `*offset_out` and `*len_out` into the object's stored data.
/// Fetch them all, in order, back to back into one buffer for `ssekit_range_open`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_fetch(
    range: *const ssekit_range,
    index: usize,
    offset_out: *mut u64,
    len_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let (o, l) = (
            ptr::out(offset_out, "offset_out")?,
            ptr::out(len_out, "len_out")?,
        );
        let r = ptr::get(range, "range")?;
        let f =
            r.fetches.stored.get(index).ok_or_else(|| {
                Fail::invalid(format!("fetch {index} of {}", r.fetches.stored.len()))
            })?;
        o.write(f.start);
        l.write(f.end - f.start);
        Ok(())
    })
}

/// The total of the stored bytes to fetch (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_fetch_total(range: *const ssekit_range) -> u64 {
    guard(0, || {
        ptr::get(range, "range").map_or(0, |r| {
            r.fetches.stored.iter().map(|f| f.end - f.start).sum()
        })
    })
}

/// Opens the range from `fetched` (`fetched_len` bytes: every range `ssekit_range_fetch` listed,
/// back to back) with `plan`, the read plan the range came from, into `out` (at least the range's
/// length, END - START; not overlapping `fetched`). The count goes to `*written_out`. Each chunk is
/// authenticated before anything is released.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_open(
    range: *const ssekit_range,
    plan: *const ssekit_read_plan,
    fetched: *const u8,
    fetched_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let r = ptr::get(range, "range")?;
        let p = ptr::get(plan, "plan")?;
        ptr::disjoint(fetched, fetched_len, out, out_cap)?;
        let need = r.fetches.plaintext.end - r.fetches.plaintext.start;
        ptr::room(need, out_cap)?;
        let input = ptr::bytes(fetched, fetched_len, "fetched")?;
        let read = p
            .plan
            .open_fetched(r.range, r.stored_len, input)
            .map_err(data_error)?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        dst[..read.plaintext.len()].copy_from_slice(&read.plaintext);
        w.write(read.plaintext.len());
        Ok(())
    })
}

/// Frees a range (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_range_free(range: *mut ssekit_range) {
    guard((), || ptr::free(range));
}
