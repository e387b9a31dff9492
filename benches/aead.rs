#![allow(missing_docs)]
//! AES-256-GCM throughput: every backend this CPU has against ring, aws-lc-rs and RustCrypto's aes-gcm,
//! all measured in the same run.
//!
//! - `seal/<size>`, `open/<size>` at 4 KiB, 16 KiB, 64 KiB and 1 MiB, one core.
//! - `par-seal/256MiB`: our `par_seal_in_place` on the global rayon pool (set its size with
//!   `RAYON_NUM_THREADS`), our single-threaded seal, the peers single-threaded, and the peers on 1 MiB
//!   pieces spread over the same pool (how a server would parallelise them by hand: separate messages).
//! - `par-open/256MiB`: our `par_open_in_place`, the ciphertext copied in untimed before each open.
//!
//! Open is timed as "copy the ciphertext in, then open", for every implementation alike: opening in place
//! destroys the ciphertext. The copy's source and destination sit at different offsets modulo 4 KiB
//! (equal offsets make memcpy itself crawl on some CPUs through 4K aliasing).
//!
//! `SSEKIT_BENCH_QUICK=1` shortens the measurement (for smoke runs); `scripts/bench-report.py` turns
//! criterion's estimates into the ratio tables of docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use ssekit_engine::aead::{Aes256Gcm, Backend};

const KEY: [u8; 32] = [0x5a; 32];
const NONCE: [u8; 12] = [0xa5; 12];
const AAD: &[u8] = b"bucket/object";

/// A buffer of `len` bytes starting `offset` bytes past a 4 KiB boundary.
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, offset: usize) -> Self {
        let storage = vec![0u8; len + 8192];
        let base = storage.as_ptr() as usize;
        let start = base.next_multiple_of(4096) - base + offset;
        let mut a = Aligned {
            storage,
            start,
            len,
        };
        for (i, b) in a.get_mut().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        a
    }
    fn get(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Source and destination offsets for the open benchmarks: both cache-line aligned, 1088 bytes apart
/// modulo 4 KiB.
const SRC_OFFSET: usize = 0;
const DST_OFFSET: usize = 1088;

type SealFn = Box<dyn Fn(&mut [u8]) -> [u8; 16] + Send + Sync>;
/// Opens `ciphertext ‖ tag` in place.
type OpenFn = Box<dyn Fn(&mut [u8]) -> bool + Send + Sync>;

/// One implementation under test, as closures over a key.
struct Peer {
    name: String,
    seal: SealFn,
    open: OpenFn,
}

fn split_tag(buf: &mut [u8]) -> (&mut [u8], [u8; 16]) {
    let (ct, tag) = buf.split_at_mut(buf.len() - 16);
    (ct, (&*tag).try_into().unwrap())
}

fn ours(b: Backend) -> Peer {
    let k = std::sync::Arc::new(Aes256Gcm::with_backend(&KEY, b).expect("available"));
    let k2 = k.clone();
    Peer {
        name: format!("ssekit-{}", b.name()),
        seal: Box::new(move |buf| k.seal_in_place(&NONCE, AAD, buf)),
        open: Box::new(move |buf| {
            let (ct, tag) = split_tag(buf);
            k2.open_in_place(&NONCE, AAD, ct, &tag).is_ok()
        }),
    }
}

fn ring_peer() -> Peer {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
    let k = std::sync::Arc::new(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &KEY).unwrap(),
    ));
    let k2 = k.clone();
    Peer {
        name: "ring".into(),
        seal: Box::new(move |buf| {
            let t = k
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::from(AAD),
                    buf,
                )
                .unwrap();
            t.as_ref().try_into().unwrap()
        }),
        open: Box::new(move |buf| {
            let (ct, tag) = split_tag(buf);
            k2.open_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(AAD),
                Tag::from(tag),
                ct,
                0..,
            )
            .is_ok()
        }),
    }
}

fn aws_lc_peer() -> Peer {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = std::sync::Arc::new(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &KEY).unwrap(),
    ));
    let k2 = k.clone();
    Peer {
        name: "aws-lc-rs".into(),
        seal: Box::new(move |buf| {
            let t = k
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::from(AAD),
                    buf,
                )
                .unwrap();
            t.as_ref().try_into().unwrap()
        }),
        open: Box::new(move |buf| {
            k2.open_in_place(Nonce::assume_unique_for_key(NONCE), Aad::from(AAD), buf)
                .is_ok()
        }),
    }
}

fn rustcrypto_peer() -> Peer {
    let k = std::sync::Arc::new(aes_gcm::Aes256Gcm::new(&KEY.into()));
    let k2 = k.clone();
    Peer {
        name: "rustcrypto-aes-gcm".into(),
        seal: Box::new(move |buf| {
            k.encrypt_inout_detached(&NONCE.into(), AAD, buf.into())
                .unwrap()
                .into()
        }),
        open: Box::new(move |buf| {
            let (ct, tag) = split_tag(buf);
            k2.decrypt_inout_detached(&NONCE.into(), AAD, ct.into(), (&tag).into())
                .is_ok()
        }),
    }
}

fn all_peers() -> Vec<Peer> {
    let mut v: Vec<Peer> = Backend::available().into_iter().map(ours).collect();
    v.push(ring_peer());
    v.push(aws_lc_peer());
    v.push(rustcrypto_peer());
    v
}

fn quick() -> bool {
    std::env::var_os("SSEKIT_BENCH_QUICK").is_some()
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, long: bool) {
    let q = quick();
    g.warm_up_time(Duration::from_millis(if q { 100 } else { 700 }));
    g.measurement_time(Duration::from_millis(match (q, long) {
        (true, _) => 300,
        (false, false) => 2000,
        (false, true) => 6000,
    }));
    if long {
        g.sample_size(10);
    }
}

fn seal_open(c: &mut Criterion) {
    let peers = all_peers();
    for (label, len) in [
        ("4KiB", 4096),
        ("16KiB", 16384),
        ("64KiB", 65536),
        ("1MiB", 1 << 20),
    ] {
        let mut g = c.benchmark_group(format!("seal/{label}"));
        configure(&mut g, false);
        g.throughput(Throughput::Bytes(len as u64));
        for p in &peers {
            let mut buf = Aligned::new(len, SRC_OFFSET);
            g.bench_function(&p.name, |b| b.iter(|| black_box((p.seal)(buf.get_mut()))));
        }
        g.finish();

        let mut g = c.benchmark_group(format!("open/{label}"));
        configure(&mut g, false);
        g.throughput(Throughput::Bytes(len as u64));
        for p in &peers {
            let mut sealed = Aligned::new(len + 16, SRC_OFFSET);
            let (ct, tag) = sealed.get_mut().split_at_mut(len);
            tag.copy_from_slice(&(p.seal)(ct));
            let mut buf = Aligned::new(len + 16, DST_OFFSET);
            g.bench_function(&p.name, |b| {
                b.iter(|| {
                    buf.get_mut().copy_from_slice(sealed.get());
                    assert!((p.open)(buf.get_mut()));
                })
            });
        }
        g.finish();
    }
}

fn parallel(c: &mut Criterion) {
    const LEN: usize = 256 << 20;
    let threads = rayon::current_num_threads();
    eprintln!("rayon pool: {threads} threads");
    let mut g = c.benchmark_group("par-seal/256MiB");
    configure(&mut g, true);
    g.throughput(Throughput::Bytes(LEN as u64));
    let mut buf = Aligned::new(LEN, SRC_OFFSET);
    for b in Backend::available() {
        let k = Aes256Gcm::with_backend(&KEY, b).unwrap();
        g.bench_function(format!("ssekit-{}-par", b.name()), |bch| {
            bch.iter(|| black_box(k.par_seal_in_place(&NONCE, AAD, buf.get_mut())))
        });
        g.bench_function(format!("ssekit-{}", b.name()), |bch| {
            bch.iter(|| black_box(k.seal_in_place(&NONCE, AAD, buf.get_mut())))
        });
    }
    for p in [ring_peer(), aws_lc_peer(), rustcrypto_peer()] {
        g.bench_function(&p.name, |bch| {
            bch.iter(|| black_box((p.seal)(buf.get_mut())))
        });
        // Separate 1 MiB messages over the same pool: what a server could do by hand with a peer.
        g.bench_function(format!("{}-1MiB-pieces", p.name), |bch| {
            bch.iter(|| {
                buf.get_mut().par_chunks_mut(1 << 20).for_each(|piece| {
                    black_box((p.seal)(piece));
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("par-open/256MiB");
    configure(&mut g, true);
    g.throughput(Throughput::Bytes(LEN as u64));
    for b in Backend::available() {
        let k = Aes256Gcm::with_backend(&KEY, b).unwrap();
        let mut sealed = Aligned::new(LEN, SRC_OFFSET);
        let tag = k.seal_in_place(&NONCE, AAD, sealed.get_mut());
        let mut dst = Aligned::new(LEN, DST_OFFSET);
        g.bench_function(format!("ssekit-{}-par", b.name()), |bch| {
            // At this size the copy-in would be a third of the memory traffic, so it is done untimed
            // before each open and only the open is timed.
            bch.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    dst.get_mut()
                        .par_chunks_mut(1 << 20)
                        .zip(sealed.get().par_chunks(1 << 20))
                        .for_each(|(d, s)| d.copy_from_slice(s));
                    let start = Instant::now();
                    k.par_open_in_place(&NONCE, AAD, dst.get_mut(), &tag)
                        .unwrap();
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, seal_open, parallel);
criterion_main!(benches);
