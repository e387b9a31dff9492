#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The object format against the raw cipher, same size, same run, same rayon pool:
//!
//! - `object/256MiB/par_seal_in_place` and `…/par_open_in_place`: one 256 MiB AES-256-GCM message on
//!   the detected backend (open timed alone, the ciphertext copied in untimed first).
//! - `…/object-seal_into` and `…/object-open_into`: the same bytes as a Cobblestone-256 object (16 KiB
//!   chunks, key derivation, commitment) into a caller's buffer, chunks spread over the pool.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use ssekit::aead::Aes256Gcm;
use ssekit::keys::DataKey;
use ssekit::object;

const LEN: usize = 256 << 20;

fn quick() -> bool {
    std::env::var_os("SSEKIT_BENCH_QUICK").is_some()
}

fn copy(dst: &mut [u8], src: &[u8]) {
    dst.par_chunks_mut(1 << 20)
        .zip(src.par_chunks(1 << 20))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

fn object_vs_raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("object/256MiB");
    g.warm_up_time(Duration::from_millis(if quick() { 100 } else { 700 }));
    g.measurement_time(Duration::from_millis(if quick() { 300 } else { 6000 }));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LEN as u64));
    eprintln!("rayon pool: {} threads", rayon::current_num_threads());

    let gcm = Aes256Gcm::new(&[9u8; 32]);
    let nonce = [3u8; 12];
    let mut buf = vec![0x5au8; LEN];
    g.bench_function(format!("par_seal_in_place-{}", gcm.backend()), |b| {
        b.iter(|| black_box(gcm.par_seal_in_place(&nonce, b"", &mut buf)))
    });
    let mut sealed_raw = vec![0x5au8; LEN];
    let tag = gcm.seal_in_place(&nonce, b"", &mut sealed_raw);
    g.bench_function(format!("par_open_in_place-{}", gcm.backend()), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                copy(&mut buf, &sealed_raw);
                let start = Instant::now();
                gcm.par_open_in_place(&nonce, b"", &mut buf, &tag).unwrap();
                spent += start.elapsed();
            }
            spent
        })
    });
    drop(sealed_raw);

    let dek = DataKey::from_bytes(&[9u8; 32]);
    let plain = vec![0x5au8; LEN];
    let mut sealed = vec![0u8; object::sealed_len(LEN as u64) as usize];
    g.bench_function("object-seal_into", |b| {
        b.iter(|| object::seal_into(&dek, &plain, &mut sealed).unwrap())
    });
    object::seal_into(&dek, &plain, &mut sealed).unwrap();
    g.bench_function("object-open_into", |b| {
        b.iter(|| object::open_into(&dek, &sealed, &mut buf).unwrap())
    });
    g.finish();
}

criterion_group!(benches, object_vs_raw);
criterion_main!(benches);
