//! A fixed loop of seals or opens for profilers (`perf record`, `valgrind --tool=callgrind`), which want
//! one hot loop rather than a benchmark harness.
//!
//! `cargo run --release -p ssekit-engine --example profile_gcm -- <backend> <op> <bytes> <iterations>`
//!
//! `<backend>` is a backend name or `rustcrypto-aes-gcm` (the portable backend's peer; `seal` and
//! `copy-open` only).
//! `<op>`: `seal`, `par-seal`, `par-split` (forced split, `PROFILE_CHUNK` bytes per piece), `copy-seal`
//! and `copy-open` (copy in, then seal or open, as the benchmark times open), `open-fail` (the failure
//! path: hash, decrypt, compare, wipe), `ghash` (an empty message with the buffer as AAD).

use std::time::Instant;

use ssekit_engine::aead::{Aes256Gcm, Backend};

/// Where the copy-in destination starts: a different offset modulo 4 KiB from the source, as in the
/// benchmark (equal offsets make memcpy crawl through 4K aliasing).
const DST_OFFSET: usize = 1088;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, op, len, iters] = args.as_slice() else {
        eprintln!("usage: profile_gcm <backend> <op> <bytes> <iterations> (ops: see the source)");
        std::process::exit(2);
    };
    let len: usize = len.parse().expect("bytes");
    let iters: u64 = iters.parse().expect("iterations");
    if backend == "rustcrypto-aes-gcm" {
        return rustcrypto(op, len, iters);
    }
    let backend = Backend::from_name(backend).expect("backend name");
    let k = Aes256Gcm::with_backend(&[9; 32], backend).expect("backend available");
    let nonce = [3u8; 12];
    let mut buf = vec![0x11u8; len];
    let start = Instant::now();
    match op.as_str() {
        "seal" => {
            for _ in 0..iters {
                std::hint::black_box(k.seal_in_place(&nonce, b"aad", &mut buf));
            }
        }
        "par-seal" => {
            for _ in 0..iters {
                std::hint::black_box(k.par_seal_in_place(&nonce, b"aad", &mut buf));
            }
        }
        "par-split" => {
            // Forced split into one piece per pool thread, whatever the size: finds the size below
            // which the parallel call should stay on one thread.
            let chunk = std::env::var("PROFILE_CHUNK")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| len.div_ceil(rayon::current_num_threads()).max(16));
            for _ in 0..iters {
                std::hint::black_box(k.par_seal_in_place_chunked(&nonce, b"aad", &mut buf, chunk))
                    .expect("length");
            }
        }
        "copy-open" => {
            // As the benchmark times open: copy a sealed message in, then open it (tag valid).
            let mut sealed = buf.clone();
            let tag = k.seal_in_place(&nonce, b"aad", &mut sealed);
            let mut dst = vec![0u8; len + DST_OFFSET];
            for _ in 0..iters {
                let d = &mut dst[DST_OFFSET..];
                d.copy_from_slice(&sealed);
                k.open_in_place(&nonce, b"aad", d, &tag).expect("valid tag");
            }
        }
        "copy-seal" => {
            // The same copy, then a seal: isolates open's cost from the copy's.
            let src = buf.clone();
            let mut dst = vec![0u8; len + DST_OFFSET];
            for _ in 0..iters {
                let d = &mut dst[DST_OFFSET..];
                d.copy_from_slice(&src);
                std::hint::black_box(k.seal_in_place(&nonce, b"aad", d));
            }
        }
        "ghash" => {
            // GHASH alone: an empty message with the buffer as AAD.
            for _ in 0..iters {
                std::hint::black_box(k.seal_in_place(&nonce, &buf, &mut []));
            }
        }
        "open-fail" => {
            // Every open fails (a zero tag) after doing all the work: hash, decrypt, compare, wipe.
            let tag = [0u8; 16];
            for _ in 0..iters {
                let _ = std::hint::black_box(k.open_in_place(&nonce, b"aad", &mut buf, &tag));
            }
        }
        _ => panic!("unknown op"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} {op} {len} B x {iters}: {:.2} GB/s",
        backend.name(),
        (len as f64 * iters as f64) / secs / 1e9
    );
}

/// The same loops over RustCrypto's `aes-gcm`, the portable backend's peer: `seal`, and `copy-open` as
/// ours (a valid tag, so its open does all the work: `aes-gcm` checks the tag before decrypting, and a
/// failing open would skip the decryption ours does).
fn rustcrypto(op: &str, len: usize, iters: u64) {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let k = aes_gcm::Aes256Gcm::new(&[9; 32].into());
    let nonce = [3u8; 12];
    let mut buf = vec![0x11u8; len];
    let start = Instant::now();
    match op {
        "seal" => {
            for _ in 0..iters {
                let t = k.encrypt_inout_detached(&nonce.into(), b"aad", (&mut buf[..]).into());
                std::hint::black_box(t.is_ok());
            }
        }
        "copy-open" => {
            let mut sealed = buf.clone();
            let tag = k
                .encrypt_inout_detached(&nonce.into(), b"aad", (&mut sealed[..]).into())
                .expect("seal");
            let mut dst = vec![0u8; len + DST_OFFSET];
            for _ in 0..iters {
                let d = &mut dst[DST_OFFSET..];
                d.copy_from_slice(&sealed);
                k.decrypt_inout_detached(&nonce.into(), b"aad", d.into(), &tag)
                    .expect("valid tag");
            }
        }
        _ => panic!("rustcrypto-aes-gcm: only seal and copy-open"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rustcrypto-aes-gcm {op} {len} B x {iters}: {:.2} GB/s",
        (len as f64 * iters as f64) / secs / 1e9
    );
}
