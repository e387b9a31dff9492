#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The object format against the raw cipher, same size, same run, same rayon pool:
//!
//! - `object/256MiB/par_seal_in_place` and `…/par_open_in_place`: one 256 MiB AES-256-GCM message on
//!   the detected backend (open timed alone, the ciphertext copied in untimed first).
//! - `…/object-seal_in_place` and `…/object-open_in_place`: the same bytes as a Cobblestone-256 object
//!   (16 KiB chunks, key derivation, commitment, a tag per chunk), in place in a buffer laid out as the
//!   sealed object (open: the sealed object copied in untimed first, as for the raw row). Each timed
//!   open is a whole GET: it verifies the object's metadata (an HKDF and an HMAC of a few dozen
//!   bytes, microseconds, under 0.01% of the row) and opens through the
//!   [`Verified`](object::Verified) it returns, as a server does per request.
//! - `…/object-seal_into` and `…/object-open_into`: the same, from one buffer into another (one more
//!   stream of memory traffic than in place: read the source, fetch and write the destination).
//!
//! Then the same calls timed alternately, one of each per round, for ratios the VM's drift cannot skew
//! (the `interleaved` lines on stderr).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use ssekit::aead::Aes256Gcm;
use ssekit::keys::{DataKey, EncryptionContext};
use ssekit::object::{self, ObjectMeta, SseMode};

const LEN: usize = 256 << 20;

fn quick() -> bool {
    std::env::var_os("SSEKIT_BENCH_QUICK").is_some()
}

/// The authenticated metadata of a single-part object of `LEN` bytes.
fn meta(dek: &DataKey) -> ObjectMeta {
    let mut m = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), Vec::new());
    m.size = LEN as u64;
    m.authenticate(dek).unwrap();
    m
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
    let meta = meta(&dek);
    let plain = vec![0x5au8; LEN];
    let mut sealed = vec![0u8; object::sealed_len(LEN as u64) as usize];
    let mut slotted = slotted(&plain);
    g.bench_function("object-seal_in_place", |b| {
        b.iter(|| object::seal_in_place(&dek, &mut slotted).unwrap())
    });
    object::seal_into(&dek, &plain, &mut sealed).unwrap();
    g.bench_function("object-open_in_place", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                copy(&mut slotted, &sealed);
                let start = Instant::now();
                black_box(
                    meta.verify(&dek)
                        .unwrap()
                        .open_in_place(&mut slotted)
                        .unwrap(),
                );
                spent += start.elapsed();
            }
            spent
        })
    });
    drop(slotted);
    g.bench_function("object-seal_into", |b| {
        b.iter(|| object::seal_into(&dek, &plain, &mut sealed).unwrap())
    });
    object::seal_into(&dek, &plain, &mut sealed).unwrap();
    g.bench_function("object-open_into", |b| {
        b.iter(|| {
            meta.verify(&dek)
                .unwrap()
                .open_into(&sealed, &mut buf)
                .unwrap()
        })
    });
    g.finish();
    interleaved(&gcm, &dek);
}

/// A buffer laid out as the sealed object with `plain` in its chunk slots.
fn slotted(plain: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; object::sealed_len(plain.len() as u64) as usize];
    for (i, slot) in object::chunk_slots(plain.len()).enumerate() {
        let n = slot.len();
        buf[slot].copy_from_slice(&plain[i * object::CHUNK_LEN..][..n]);
    }
    buf
}

/// The calls above timed alternately, one of each per round, so the VM's drift (several percent
/// within seconds) hits all alike; prints each object call's median per-round ratio to the raw call.
fn interleaved(gcm: &Aes256Gcm, dek: &DataKey) {
    let rounds = if quick() { 3 } else { 40 };
    let meta = meta(dek);
    let nonce = [3u8; 12];
    let plain = vec![0x5au8; LEN];
    let mut buf = vec![0x5au8; LEN];
    let mut slotted = slotted(&plain);
    let mut sealed = vec![0u8; object::sealed_len(LEN as u64) as usize];
    object::seal_into(dek, &plain, &mut sealed).unwrap();
    let mut sealed_raw = plain.clone();
    let tag = gcm.seal_in_place(&nonce, b"", &mut sealed_raw);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64()
    };
    // Per round: [raw, object in place, object into another buffer], for seal and for open.
    let (mut seal, mut open) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        seal.push([
            time(&mut || {
                black_box(gcm.par_seal_in_place(&nonce, b"", &mut buf));
            }),
            time(&mut || object::seal_in_place(dek, &mut slotted).unwrap()),
            time(&mut || object::seal_into(dek, &plain, &mut sealed).unwrap()),
        ]);
        copy(&mut buf, &sealed_raw);
        let raw = time(&mut || gcm.par_open_in_place(&nonce, b"", &mut buf, &tag).unwrap());
        copy(&mut slotted, &sealed);
        let in_place = time(&mut || {
            black_box(
                meta.verify(dek)
                    .unwrap()
                    .open_in_place(&mut slotted)
                    .unwrap(),
            );
        });
        let into = time(&mut || {
            meta.verify(dek)
                .unwrap()
                .open_into(&sealed, &mut buf)
                .unwrap()
        });
        open.push([raw, in_place, into]);
    }
    let gib = |t: f64| LEN as f64 / t / (1u64 << 30) as f64;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() / 4], v[3 * v.len() / 4])
    };
    for (name, rows) in [("seal", seal), ("open", open)] {
        let (raw, ..) = median(rows.iter().map(|r| r[0]).collect());
        eprintln!(
            "interleaved object/256MiB/{name}: raw {:.2} GiB/s",
            gib(raw)
        );
        for (col, what) in [(1, "in_place"), (2, "into")] {
            let (t, ..) = median(rows.iter().map(|r| r[col]).collect());
            let (ratio, q1, q3) = median(rows.iter().map(|r| r[0] / r[col]).collect());
            eprintln!(
                "interleaved object/256MiB/{name}/{what}: {:.2} GiB/s, ratio to raw: median {ratio:.3} \
                 (quartiles {q1:.3}..{q3:.3}, {} rounds)",
                gib(t),
                rows.len()
            );
        }
    }
}

criterion_group!(benches, object_vs_raw);
criterion_main!(benches);
