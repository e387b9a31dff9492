//! Helpers shared by the AEAD test binaries.
#![allow(dead_code)]

use std::sync::OnceLock;

use ssekit_engine::aead::{Aes256Gcm, Backend};

/// Every backend this CPU has; the suites run on each.
pub fn backends() -> Vec<Backend> {
    let b = Backend::available();
    assert_eq!(b.last(), Some(&Backend::Portable));
    b
}

/// A key on each available backend.
pub fn keys(key: &[u8; 32]) -> Vec<Aes256Gcm> {
    backends()
        .into_iter()
        .map(|b| Aes256Gcm::with_backend(key, b).expect("available backend"))
        .collect()
}

/// Rayon pools with 1..=8 threads, built once per test binary.
pub fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        (1..=8)
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .expect("thread pool")
            })
            .collect()
    });
    &pools[threads.clamp(1, 8) - 1]
}

/// The ways to run a message through a key, so each suite checks all of them.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// `seal_in_place` / `open_in_place`.
    Single,
    /// `par_seal_in_place` / `par_open_in_place` with the automatic split, on a pool of `threads`.
    Par { threads: usize },
    /// `par_*_chunked` with pieces of `chunk` bytes on a pool of `threads`.
    Chunked { threads: usize, chunk: usize },
    /// `seal_into` / `open_into`: from a copy of the buffer, 7 bytes off its alignment, back into it.
    Copy,
}

/// Calls that split even short messages into many pieces, so the parallel path is exercised.
pub const CALLS: [Call; 6] = [
    Call::Single,
    Call::Copy,
    Call::Par { threads: 2 },
    Call::Chunked {
        threads: 3,
        chunk: 16,
    },
    Call::Chunked {
        threads: 2,
        chunk: 48,
    },
    Call::Chunked {
        threads: 4,
        chunk: 128,
    },
];

pub fn seal(k: &Aes256Gcm, call: Call, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    match call {
        Call::Single => k.seal_in_place(nonce, aad, buf),
        Call::Par { threads } => pool(threads).install(|| k.par_seal_in_place(nonce, aad, buf)),
        Call::Chunked { threads, chunk } => pool(threads)
            .install(|| k.par_seal_in_place_chunked(nonce, aad, buf, chunk))
            .expect("length within limits"),
        Call::Copy => {
            let src = misaligned_copy(buf);
            k.seal_into(nonce, aad, &src[7..], buf)
                .expect("length within limits")
        }
    }
}

/// `buf` at offset 7 of a fresh vector.
fn misaligned_copy(buf: &[u8]) -> Vec<u8> {
    let mut src = vec![0xeeu8; buf.len() + 7];
    src[7..].copy_from_slice(buf);
    src
}

pub fn open(
    k: &Aes256Gcm,
    call: Call,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<(), ssekit_engine::aead::Error> {
    match call {
        Call::Single => k.open_in_place(nonce, aad, buf, tag),
        Call::Par { threads } => {
            pool(threads).install(|| k.par_open_in_place(nonce, aad, buf, tag))
        }
        Call::Chunked { threads, chunk } => {
            pool(threads).install(|| k.par_open_in_place_chunked(nonce, aad, buf, tag, chunk))
        }
        Call::Copy => {
            let src = misaligned_copy(buf);
            k.open_into(nonce, aad, &src[7..], tag, buf)
        }
    }
}
