//! Streaming: a sealer or opener per request body, fed in pieces of any size, writing into the
//! caller's buffers. Each call's output length is known before the call (`_update_len`,
//! `_finish_len`); a call with a short buffer changes nothing.

use ::ssekit_engine::sse::{PartOpener, PartSealer};

use crate::error::{Fail, boundary};
use crate::plan::ssekit_read_plan;
use crate::ptr;
use crate::request::ssekit_part_entry;
use crate::{error::guard, ssekit_result};

/// Seals one part (or a single-part object) from plaintext pushed in pieces. Holds at most one
/// partial 16 KiB chunk: every full chunk is sealed and written out as soon as it is complete. One
/// per body; not shared between threads. Free it with `ssekit_sealer_free`.
pub struct ssekit_sealer {
    inner: PartSealer,
    done: bool,
}

impl ssekit_sealer {
    pub(crate) fn new(inner: PartSealer) -> *mut ssekit_sealer {
        ptr::into_raw(ssekit_sealer { inner, done: false })
    }
}

/// The exact number of bytes `ssekit_sealer_update` writes for `input_len` more plaintext bytes,
/// in `*len_out` (at most `input_len` + 16 KiB + 16 bytes per chunk + 56).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_update_len(
    sealer: *const ssekit_sealer,
    input_len: usize,
    len_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(len_out, "len_out")?;
        out.write(ptr::get(sealer, "sealer")?.inner.update_len(input_len));
        Ok(())
    })
}

/// Takes `input_len` plaintext bytes and writes the stored bytes of every chunk they complete into
/// `out` (`out_cap` bytes, at least `ssekit_sealer_update_len`; not overlapping `input`); the count
/// goes to `*written_out` (often 0 for small pieces).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_update(
    sealer: *mut ssekit_sealer,
    input: *const u8,
    input_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let s = ptr::get_mut(sealer, "sealer")?;
        if s.done {
            return Err(Fail::state("the sealer is finished"));
        }
        ptr::disjoint(input, input_len, out, out_cap)?;
        let need = s.inner.update_len(input_len);
        ptr::room(need as u64, out_cap)?;
        let input = ptr::bytes(input, input_len, "input")?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        w.write(s.inner.update(input, dst).map_err(data_error)?);
        Ok(())
    })
}

/// The exact number of bytes `ssekit_sealer_finish` writes, in `*len_out`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_finish_len(
    sealer: *const ssekit_sealer,
    len_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(len_out, "len_out")?;
        let s = ptr::get(sealer, "sealer")?;
        out.write(if s.done { 0 } else { s.inner.finish_len() });
        Ok(())
    })
}

/// Seals the final chunk into `out` (at least `ssekit_sealer_finish_len` bytes): the count goes to
/// `*written_out` and, when `entry_out` is not NULL, the part's row (for `ssekit_engine_complete`)
/// to `*entry_out`. The plaintext size is `entry_out->size`. The sealer takes nothing more.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_finish(
    sealer: *mut ssekit_sealer,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
    entry_out: *mut ssekit_part_entry,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let s = ptr::get_mut(sealer, "sealer")?;
        if s.done {
            return Err(Fail::state("the sealer is finished"));
        }
        let need = s.inner.finish_len();
        ptr::room(need as u64, out_cap)?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        let (n, entry) = s.inner.finish(dst).map_err(data_error)?;
        s.done = true;
        w.write(n);
        ptr::write_opt(entry_out, entry.into());
        Ok(())
    })
}

/// Plaintext bytes taken so far (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_plaintext_len(sealer: *const ssekit_sealer) -> u64 {
    guard(0, || {
        ptr::get(sealer, "sealer").map_or(0, |s| s.inner.plaintext_len())
    })
}

/// Frees a sealer (NULL is ignored). An unfinished sealer's output is not a complete object.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_sealer_free(sealer: *mut ssekit_sealer) {
    guard((), || ptr::free(sealer));
}

/// Opens one part (or a single-part object) from stored bytes pushed in pieces. A chunk's
/// plaintext is released only once it authenticated; after a failure every call fails the same
/// way; `ssekit_opener_finish` says whether the whole part arrived. Free it with
/// `ssekit_opener_free`.
pub struct ssekit_opener {
    inner: PartOpener,
}

/// A streaming opener of part `part` (0: a single-part object) of the plan's object. On success
/// `*opener_out` is a new opener (free it with `ssekit_opener_free`); the plan may be freed first.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_opener(
    plan: *const ssekit_read_plan,
    part: u32,
    opener_out: *mut *mut ssekit_opener,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(opener_out, "opener_out")?;
        let p = ptr::get(plan, "plan")?;
        out.write(ptr::into_raw(ssekit_opener {
            inner: p.plan.opener(part).map_err(data_error)?,
        }));
        Ok(())
    })
}

/// The stored bytes the opener takes in all (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_stored_len(opener: *const ssekit_opener) -> u64 {
    guard(0, || {
        ptr::get(opener, "opener").map_or(0, |o| o.inner.stored_len())
    })
}

/// The plaintext size of the part (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_size(opener: *const ssekit_opener) -> u64 {
    guard(0, || {
        ptr::get(opener, "opener").map_or(0, |o| o.inner.size())
    })
}

/// The number of plaintext bytes `ssekit_opener_update` writes for `input_len` more stored bytes,
/// in `*len_out` (exact when the data authenticates; at most `input_len` + 16 KiB, or `input_len` +
/// 32 KiB + 32 for DSSE-KMS, whose two layers each hold back a partial chunk).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_update_len(
    opener: *const ssekit_opener,
    input_len: usize,
    len_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(len_out, "len_out")?;
        out.write(ptr::get(opener, "opener")?.inner.update_len(input_len));
        Ok(())
    })
}

/// Takes `input_len` stored bytes and writes the plaintext of every chunk they complete into `out`
/// (at least `ssekit_opener_update_len` bytes; not overlapping `input`); the count goes to
/// `*written_out`. On a failure (`SSEKIT_RESULT_WRONG_KEY`, `_TAMPERED`, `_PART_REPLACED`,
/// `_LENGTH_MISMATCH` for bytes past the end) `out` holds nothing of this call.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_update(
    opener: *mut ssekit_opener,
    input: *const u8,
    input_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let o = ptr::get_mut(opener, "opener")?;
        ptr::disjoint(input, input_len, out, out_cap)?;
        let need = o.inner.update_len(input_len);
        ptr::room(need as u64, out_cap)?;
        let input = ptr::bytes(input, input_len, "input")?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        w.write(o.inner.update(input, dst).map_err(data_error)?);
        Ok(())
    })
}

/// Checks that the whole part arrived and authenticated: `SSEKIT_RESULT_TRUNCATED` when stored
/// bytes are missing, or an earlier failure again. Until this returns OK, treat what was released as
/// possibly incomplete (each chunk of it is authentic).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_finish(opener: *mut ssekit_opener) -> ssekit_result {
    boundary(|| {
        let o = ptr::get_mut(opener, "opener")?;
        o.inner.finish().map_err(data_error)
    })
}

/// Frees an opener (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_opener_free(opener: *mut ssekit_opener) {
    guard((), || ptr::free(opener));
}

/// The S3 layer reports a stored object that does not open as S3's 500; the ABI says why.
pub(crate) fn data_error(e: ::ssekit_engine::sse::S3Error) -> Fail {
    crate::error::data_fail(e)
}
