//! ssekit's C ABI (`libssekit.so`, `libssekit.a`, `ffi/include/ssekit.h`): the S3 semantics layer, the
//! object format and the key providers for servers written in C, C++, Go or Python. docs/FFI.md is
//! the guide; every function's comment in the header says who owns what and which `_free` releases it.
//!
//! Conventions (those of rustls-ffi):
//! - Every fallible function returns an [`ssekit_result`]; outputs are out-parameters written only
//!   on success. Numbers are grouped in blocks and never renumbered.
//! - Handles are opaque; each `_new`/`_build`/`_plan_*` has a `_free`, which accepts NULL.
//! - Byte strings are a pointer and a length (not NUL-terminated); a NULL pointer with length 0 is
//!   the empty string.
//! - No export unwinds: a panic becomes [`ssekit_result::SSEKIT_RESULT_PANIC`].
//! - [`ssekit_last_error_message`] describes the last failure on the calling thread.
//!
//! The raw-pointer work is all in `ptr.rs`; the exported functions are safe Rust that go through it.

// The exports take raw pointers from C and are `extern "C" fn` without `unsafe`: C callers cannot
// see the difference, and every dereference goes through `ptr.rs`, whose contract the header states.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(non_camel_case_types)]

mod engine;
mod error;
mod plan;
mod ptr;
mod range;
mod request;
mod stream;

pub use engine::*;
pub use error::*;
pub use plan::*;
pub use range::*;
pub use request::*;
pub use stream::*;

// What the header promises about threads, checked by the compiler: the engine and a bucket's
// configuration are shared by every thread; a request's handles may move between threads.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn movable<T: Send>() {}
    shared::<ssekit_engine>();
    shared::<ssekit_bucket>();
    movable::<ssekit_request>();
    movable::<ssekit_write_plan>();
    movable::<ssekit_read_plan>();
    movable::<ssekit_part_plan>();
    movable::<ssekit_sealer>();
    movable::<ssekit_opener>();
    movable::<ssekit_range>();
    movable::<ssekit_meta>();
};

/// Sets the number of threads a large seal or open uses, the calling thread's included (the
/// process's one pool, shared by every engine, gets that many; the caller works alongside n - 1 of
/// them), instead of one per CPU. 1 keeps every call on its caller. Call it at start-up, before any
/// seal or open: afterwards the pool exists and this returns `SSEKIT_RESULT_INVALID_STATE`. 0 means
/// one per CPU. The pool's threads are started on first use and live until the process exits (a
/// server that forks should fork before).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_set_threads(threads: usize) -> ssekit_result {
    error::boundary(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ssekit-{i}"))
            .build_global()
            .map_err(|e| error::Fail::state(format!("the thread pool already exists: {e}")))
    })
}

/// The library's version, e.g. `"0.1.0"` (static, NUL-terminated; never free it).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The AES-GCM backend this process uses for bulk data (`"vaes-avx512"`, `"vaes-avx2"`, `"aesni"`,
/// `"portable"`; static, NUL-terminated). It follows `SSEKIT_BACKEND` when set to one this CPU has.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_backend_name() -> *const std::ffi::c_char {
    use ::ssekit_engine::aead::Backend;
    let b = std::env::var("SSEKIT_BACKEND")
        .ok()
        .and_then(|n| Backend::select(Some(&n)).ok())
        .unwrap_or_else(Backend::detect);
    match b {
        Backend::VaesAvx512 => c"vaes-avx512".as_ptr(),
        Backend::VaesAvx2 => c"vaes-avx2".as_ptr(),
        Backend::AesNiClmul => c"aesni".as_ptr(),
        Backend::Portable => c"portable".as_ptr(),
        _ => c"unknown".as_ptr(),
    }
}
