//! Every raw pointer from C is read or written here, under the contract the header states for each
//! function: a non-NULL pointer points to memory valid for the given length (or to a live handle of
//! the named type made by this library), not written by another thread during the call; an
//! output pointer points to writable storage for one value. NULL is checked here, never assumed.

use std::ffi::c_char;

use crate::error::Fail;

/// The `len` bytes at `p` (NULL with length 0 is the empty string).
pub(crate) fn bytes<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!("`{what}`: a length of {len} bytes")));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes there for the call's duration
    // (the header's contract); the length fits an allocation.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The `len` writable bytes at `p`.
pub(crate) fn bytes_mut<'a>(p: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8], Fail> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!("`{what}`: a length of {len} bytes")));
    }
    // SAFETY: non-NULL, and the caller promises `len` writable bytes there, used by no one else
    // during the call (the header's contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// Refuses an input and an output buffer that overlap (Rust may not alias them; the `_in_place`
/// functions are for that).
pub(crate) fn disjoint(
    input: *const u8,
    input_len: usize,
    out: *const u8,
    out_len: usize,
) -> Result<(), Fail> {
    let (a, b) = (input as usize, out as usize);
    if input_len == 0
        || out_len == 0
        || a.saturating_add(input_len) <= b
        || b.saturating_add(out_len) <= a
    {
        return Ok(());
    }
    Err(Fail::invalid(
        "the output buffer overlaps the input: use the _in_place function",
    ))
}

/// Refuses an output buffer of `cap` bytes where `need` are written (nothing is consumed or written
/// before this check).
pub(crate) fn room(need: u64, cap: usize) -> Result<(), Fail> {
    if (cap as u64) < need {
        return Err(Fail::buffer(need, cap));
    }
    Ok(())
}

/// The UTF-8 text of `len` bytes at `p`.
pub(crate) fn text<'a>(p: *const c_char, len: usize, what: &str) -> Result<&'a str, Fail> {
    std::str::from_utf8(bytes(p.cast(), len, what)?)
        .map_err(|_| Fail::invalid(format!("`{what}` is not UTF-8")))
}

/// As [`text`], `None` for a NULL pointer.
pub(crate) fn opt_text<'a>(
    p: *const c_char,
    len: usize,
    what: &str,
) -> Result<Option<&'a str>, Fail> {
    if p.is_null() {
        return Ok(None);
    }
    text(p, len, what).map(Some)
}

/// The handle at `p`.
pub(crate) fn get<'a, T>(p: *const T, what: &str) -> Result<&'a T, Fail> {
    // SAFETY: a non-NULL handle pointer was made by this library (`into_raw`) and not yet freed,
    // the header's contract; shared handles are only read through `&`.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null(what))
}

/// The handle at `p`, for a call that changes it (the header says such handles are not shared
/// between threads during the call).
pub(crate) fn get_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Fail> {
    // SAFETY: as `get`; the caller promises no other use of the handle during the call.
    unsafe { p.as_mut() }.ok_or_else(|| Fail::null(what))
}

/// An output parameter, checked for NULL before any work; written only on success.
pub(crate) struct Out<T>(*mut T);

pub(crate) fn out<T>(p: *mut T, what: &str) -> Result<Out<T>, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    Ok(Out(p))
}

impl<T> Out<T> {
    pub(crate) fn write(self, v: T) {
        // SAFETY: non-NULL (checked in `out`), and the caller promises storage for one `T`; the old
        // value is not read or dropped (it is uninitialised or a plain value).
        unsafe { self.0.write(v) }
    }
}

/// An optional output parameter (NULL: not wanted).
pub(crate) fn write_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: as `Out::write`.
        unsafe { p.write(v) }
    }
}

/// A new handle for C: freed by the matching `_free`.
pub(crate) fn into_raw<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Frees a handle made by [`into_raw`]; NULL is ignored.
pub(crate) fn free<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: made by `into_raw` for this type and not freed before (the header's contract:
        // each handle is freed once).
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Takes back a handle made by [`into_raw`] (the call consumes it). `p` must not be NULL.
pub(crate) fn take<T>(p: *mut T) -> T {
    // SAFETY: non-NULL (the caller checked), made by `into_raw` for this type and not freed before;
    // the header says the call consumes it.
    *unsafe { Box::from_raw(p) }
}

/// A server's audit callback and its userdata.
pub(crate) struct AuditCallback {
    f: unsafe extern "C" fn(*mut std::ffi::c_void, *const c_char, usize) -> i32,
    userdata: *mut std::ffi::c_void,
}

// SAFETY: the header requires the callback and its userdata to be usable from any thread, at once
// (ssekit_audit_callback's contract); the library only passes the pointer back.
unsafe impl Send for AuditCallback {}
// SAFETY: as above.
unsafe impl Sync for AuditCallback {}

impl AuditCallback {
    pub(crate) fn new(
        f: unsafe extern "C" fn(*mut std::ffi::c_void, *const c_char, usize) -> i32,
        userdata: *mut std::ffi::c_void,
    ) -> Self {
        AuditCallback { f, userdata }
    }

    /// Hands `line` to the callback; its non-zero return is a failed delivery.
    pub(crate) fn call(&self, line: &str) -> Result<(), String> {
        // SAFETY: a function pointer the server gave for this signature, called as its contract
        // says: `line` is valid for `line.len()` bytes during the call, `userdata` is the server's.
        let r = unsafe { (self.f)(self.userdata, line.as_ptr().cast(), line.len()) };
        if r == 0 {
            Ok(())
        } else {
            Err(format!("the audit callback returned {r}"))
        }
    }
}

/// The `count` values of type `T` at `p` (a C array; NULL with count 0 is empty).
pub(crate) fn items<'a, T>(p: *const T, count: usize, what: &str) -> Result<&'a [T], Fail> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if !p.is_aligned()
        || count
            .checked_mul(size_of::<T>())
            .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(Fail::invalid(format!(
            "`{what}`: a misaligned or oversized array"
        )));
    }
    // SAFETY: non-NULL, aligned, and the caller promises `count` initialised values there for the
    // call's duration (the header's contract).
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}
