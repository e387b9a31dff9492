//! A fixed loop of seals or opens for profilers (`perf record`, `valgrind --tool=callgrind`), which want
//! one hot loop rather than a benchmark harness.
//!
//! `cargo run --release -p ssekit-engine --example profile_gcm -- <backend> <seal|par-seal|open> <bytes> <iterations>`

use std::time::Instant;

use ssekit_engine::aead::{Aes256Gcm, Backend};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, op, len, iters] = args.as_slice() else {
        eprintln!("usage: profile_gcm <backend> <seal|par-seal|open> <bytes> <iterations>");
        std::process::exit(2);
    };
    let backend = Backend::from_name(backend).expect("backend name");
    let len: usize = len.parse().expect("bytes");
    let iters: u64 = iters.parse().expect("iterations");
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
        "open" => {
            // Opens fail (the tag is not checked against a seal) but do all the work: hash, decrypt,
            // compare, wipe. Re-seal outside the measured region is not worth it for a profile.
            let tag = [0u8; 16];
            for _ in 0..iters {
                let _ = std::hint::black_box(k.open_in_place(&nonce, b"aad", &mut buf, &tag));
            }
        }
        _ => panic!("op must be seal, par-seal or open"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} {op} {len} B x {iters}: {:.2} GB/s",
        backend.name(),
        (len as f64 * iters as f64) / secs / 1e9
    );
}
