//! The `VaesAvx2` backend: AES-256-GCM on VAES and VPCLMULQDQ with 256-bit registers (two blocks per
//! register), for CPUs like Zen 3 that have those instructions but not AVX-512.
//!
//! The main loop keeps 16 blocks in flight, in 8 registers: while they pass through the 14 AES rounds,
//! the previous 16 ciphertext blocks are multiplied by H^16 … H^1, two per VPCLMULQDQ (each 128-bit lane
//! its own block and power), and one reduction serves all 16. Everything that is not the main loop —
//! AAD, the powers of H, the tag, and the last 0..=255 bytes of a message (so all of a short one) — runs
//! on the 128-bit kernel in `aesni_clmul`, whose instructions every VAES CPU also has.
//!
//! GHASH is computed as POLYVAL, in the representation `aesni_clmul` documents.

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::VaesAvx2Cpu;
use super::aesni_clmul::{self, counter_block, load, reduce, store};
use crate::aead::{GcmKernel, GhashState, NONCE_LEN, TAG_LEN};

/// 256-bit registers in flight in the main loop.
const VECS: usize = 8;
/// Bytes per main-loop iteration: two blocks per register.
const BATCH: usize = VECS * 32;

pub(crate) struct Key {
    /// The 128-bit key: round keys, H^1..H^8, and everything outside the main loop.
    narrow: aesni_clmul::Key,
    /// Each AES round key in both 128-bit lanes.
    rk: [__m256i; 15],
    /// `h[j]`: the powers for register j of a batch, which holds blocks 2j (low lane) and 2j+1 (high
    /// lane): H^(16-2j) and H^(15-2j).
    h: [__m256i; VECS],
    /// Low half ⊕ high half of each lane of `h[j]`: the Karatsuba middle operands.
    hk: [__m256i; VECS],
    _cpu: VaesAvx2Cpu,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.rk.zeroize();
        self.h.zeroize();
        self.hk.zeroize();
    }
}

impl Key {
    pub(crate) fn new(key: &[u8; 32], cpu: VaesAvx2Cpu) -> Self {
        let narrow = aesni_clmul::Key::new(key, cpu.narrow());
        // SAFETY: `cpu` proves the CPU has every feature `setup` is compiled for.
        unsafe { setup(narrow, cpu) }
    }
}

impl GcmKernel for Key {
    fn ghash(&self, state: GhashState, data: &[u8]) -> GhashState {
        self.narrow.ghash(state, data)
    }

    fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { crypt::<true>(self, nonce, counter, state, buf) }
    }

    fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { crypt::<false>(self, nonce, counter, state, buf) }
    }

    fn encrypt_copy(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        src: &[u8],
        dst: &mut [u8],
    ) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { crypt_copy::<true>(self, nonce, counter, state, src, dst) }
    }

    fn decrypt_copy(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        src: &[u8],
        dst: &mut [u8],
    ) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { crypt_copy::<false>(self, nonce, counter, state, src, dst) }
    }

    fn min_parallel_len(&self) -> usize {
        // Twice as fast as the 128-bit kernel: splitting pays from 256 KiB (docs/BENCHMARKS.md).
        256 * 1024
    }

    fn h_pow(&self, n: u64) -> GhashState {
        self.narrow.h_pow(n)
    }

    fn mul(&self, a: &GhashState, b: &GhashState) -> GhashState {
        self.narrow.mul(a, b)
    }

    fn tag(
        &self,
        nonce: &[u8; NONCE_LEN],
        state: GhashState,
        aad_len: u64,
        msg_len: u64,
    ) -> [u8; TAG_LEN] {
        self.narrow.tag(nonce, state, aad_len, msg_len)
    }
}

#[target_feature(enable = "aes,pclmulqdq,avx,avx2,vaes,vpclmulqdq")]
fn setup(narrow: aesni_clmul::Key, cpu: VaesAvx2Cpu) -> Key {
    let rk = narrow.rk.map(|r| _mm256_broadcastsi128_si256(r));
    // H^1..H^16, continuing the powers the narrow key already holds.
    let have = narrow.h.len();
    let mut pows = [narrow.h[0]; 2 * VECS];
    pows[..have].copy_from_slice(&narrow.h);
    for i in have..2 * VECS {
        pows[i] = aesni_clmul::dot(pows[i - 1], pows[0]);
    }
    let h: [__m256i; VECS] =
        std::array::from_fn(|j| _mm256_set_m128i(pows[14 - 2 * j], pows[15 - 2 * j]));
    pows.zeroize();
    let hk = h.map(|p| _mm256_xor_si256(p, _mm256_shuffle_epi32(p, 0x4e)));
    Key {
        narrow,
        rk,
        h,
        hk,
        _cpu: cpu,
    }
}

#[inline]
#[target_feature(enable = "avx")]
fn load2(b: &[u8; 32]) -> __m256i {
    // SAFETY: reads exactly the 32 bytes `b` borrows; unaligned loads are allowed; AVX is enabled here
    // and so in every caller.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx")]
fn store2(b: &mut [u8; 32], v: __m256i) {
    // SAFETY: writes exactly the 32 bytes `b` borrows mutably; unaligned stores are allowed; AVX is
    // enabled here and so in every caller.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
}

/// Byte-reverses each 128-bit lane.
#[inline]
#[target_feature(enable = "avx2")]
fn bswap2(x: __m256i) -> __m256i {
    let m = _mm256_set_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, //
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    );
    _mm256_shuffle_epi8(x, m)
}

/// The next 16 counter blocks, two per register, already XORed with round key 0; advances `ctr` (the
/// byte-reversed counter block, 32-bit counter in lane 0, as `aesni_clmul` keeps it).
#[inline]
#[target_feature(enable = "avx2")]
fn next_counters(k: &Key, ctr: &mut __m128i) -> [__m256i; VECS] {
    let base = _mm256_add_epi32(
        _mm256_broadcastsi128_si256(*ctr),
        _mm256_set_epi32(0, 0, 0, 1, 0, 0, 0, 0),
    );
    let mut b = [_mm256_setzero_si256(); VECS];
    for (j, bj) in b.iter_mut().enumerate() {
        let step = 2 * j as i32;
        let c = _mm256_add_epi32(base, _mm256_set_epi32(0, 0, 0, step, 0, 0, 0, step));
        *bj = _mm256_xor_si256(bswap2(c), k.rk[0]);
    }
    *ctr = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, 2 * VECS as i32));
    b
}

/// Keeps the 8 AES states in registers here, for the reason `aesni_clmul`'s `pin!` gives.
macro_rules! pin {
    ($b:expr) => {
        // SAFETY: an empty instruction sequence: reads and writes no memory, changes no flags; it only
        // tells the compiler the eight values are used and redefined here.
        unsafe {
            core::arch::asm!(
                "/* pin {0} {1} {2} {3} {4} {5} {6} {7} */",
                inout(ymm_reg) $b[0], inout(ymm_reg) $b[1], inout(ymm_reg) $b[2], inout(ymm_reg) $b[3],
                inout(ymm_reg) $b[4], inout(ymm_reg) $b[5], inout(ymm_reg) $b[6], inout(ymm_reg) $b[7],
                options(nomem, nostack, preserves_flags),
            )
        }
    };
}

/// Unreduced Karatsuba products of both lanes of `x` with both lanes of a power pair.
#[inline]
#[target_feature(enable = "avx2,vpclmulqdq")]
fn mul_parts2(x: __m256i, h: __m256i, hk: __m256i) -> (__m256i, __m256i, __m256i) {
    let lo = _mm256_clmulepi64_epi128(x, h, 0x00);
    let hi = _mm256_clmulepi64_epi128(x, h, 0x11);
    let xk = _mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e));
    let mid = _mm256_clmulepi64_epi128(xk, hk, 0x00);
    (lo, mid, hi)
}

/// Sums the two lanes of each part and reduces: the new accumulator.
#[inline]
#[target_feature(enable = "avx2,pclmulqdq")]
fn fold_reduce(lo: __m256i, mid: __m256i, hi: __m256i) -> __m128i {
    let fold =
        |v: __m256i| _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    reduce(fold(lo), fold(mid), fold(hi))
}

/// `x` with the accumulator XORed into its low lane: the first block of a batch carries the digest in.
#[inline]
#[target_feature(enable = "avx2")]
fn with_acc(x: __m256i, acc: __m128i) -> __m256i {
    _mm256_xor_si256(x, _mm256_set_m128i(_mm_setzero_si128(), acc))
}

/// GHASH of 16 byte-reversed blocks (two per register, accumulator already folded into the low lane of
/// `x[0]`), not stitched: the last batch. Returns the new accumulator.
#[inline]
#[target_feature(enable = "avx2,pclmulqdq,vpclmulqdq")]
fn hash_batch(k: &Key, x: &[__m256i; VECS]) -> __m128i {
    let z = _mm256_setzero_si256();
    let (mut lo, mut mid, mut hi) = (z, z, z);
    for (j, &xj) in x.iter().enumerate() {
        let (l, m, h) = mul_parts2(xj, k.h[j], k.hk[j]);
        lo = _mm256_xor_si256(lo, l);
        mid = _mm256_xor_si256(mid, m);
        hi = _mm256_xor_si256(hi, h);
    }
    fold_reduce(lo, mid, hi)
}

/// AES rounds 1..=14 on the 8 registers of `b`.
#[inline]
#[target_feature(enable = "avx2,vaes")]
fn aes_rounds(k: &Key, b: &mut [__m256i; VECS]) {
    for rk in &k.rk[1..14] {
        for bj in b.iter_mut() {
            *bj = _mm256_aesenc_epi128(*bj, *rk);
        }
        pin!(b);
    }
    for bj in b.iter_mut() {
        *bj = _mm256_aesenclast_epi128(*bj, k.rk[14]);
    }
}

/// The stitched step: AES on the 16 counter blocks in `b` interleaved with GHASH of the 16 blocks in
/// `x` (byte-reversed, two per register, accumulator already folded into the low lane of `x[0]`).
/// Evaluates to the new accumulator and leaves the keystream in `b`.
macro_rules! stitched {
    ($k:expr, $b:expr, $x:expr) => {{
        let k: &Key = $k;
        let b: &mut [__m256i; VECS] = $b;
        let x: &[__m256i; VECS] = $x;
        let z = _mm256_setzero_si256();
        let (mut lo, mut mid, mut hi) = (z, z, z);
        macro_rules! round {
            ($r:literal) => {
                for bj in b.iter_mut() {
                    *bj = _mm256_aesenc_epi128(*bj, k.rk[$r]);
                }
                pin!(b);
            };
        }
        macro_rules! hash {
            ($j:literal) => {
                let (l, m, h) = mul_parts2(x[$j], k.h[$j], k.hk[$j]);
                lo = _mm256_xor_si256(lo, l);
                mid = _mm256_xor_si256(mid, m);
                hi = _mm256_xor_si256(hi, h);
            };
        }
        let acc = stitched_schedule!(round, hash, fold_reduce(lo, mid, hi));
        for bj in b.iter_mut() {
            *bj = _mm256_aesenclast_epi128(*bj, k.rk[14]);
        }
        acc
    }};
}

/// Where a batch's input comes from and its output goes: the same 256 bytes (in place), or a source and
/// a separate destination (the copying calls, which save a pass over memory).
trait BatchIo {
    fn input(&self, j: usize) -> __m256i;
    fn output(&mut self, j: usize, v: __m256i);
}

impl BatchIo for &mut [u8; BATCH] {
    #[inline(always)]
    fn input(&self, j: usize) -> __m256i {
        // SAFETY: the only callers are in `crypt_batches`, compiled with AVX.
        unsafe { load2(self[32 * j..][..32].try_into().expect("32 bytes")) }
    }
    #[inline(always)]
    fn output(&mut self, j: usize, v: __m256i) {
        // SAFETY: as in `input`.
        unsafe { store2((&mut self[32 * j..][..32]).try_into().expect("32 bytes"), v) }
    }
}

impl BatchIo for (&[u8; BATCH], &mut [u8; BATCH]) {
    #[inline(always)]
    fn input(&self, j: usize) -> __m256i {
        // SAFETY: as for the in-place batch.
        unsafe { load2(self.0[32 * j..][..32].try_into().expect("32 bytes")) }
    }
    #[inline(always)]
    fn output(&mut self, j: usize, v: __m256i) {
        // SAFETY: as for the in-place batch.
        unsafe {
            store2(
                (&mut self.1[32 * j..][..32]).try_into().expect("32 bytes"),
                v,
            )
        }
    }
}

/// CTR over `buf` from `counter`, with GHASH of the ciphertext (the output when `ENCRYPT`, the input
/// otherwise) absorbed into `state`: 256-byte batches here, hashed one batch behind as in
/// `aesni_clmul::crypt`; the last 0..=255 bytes on the 128-bit kernel.
#[target_feature(enable = "aes,pclmulqdq,avx,avx2,vaes,vpclmulqdq")]
fn crypt<const ENCRYPT: bool>(
    k: &Key,
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    state: GhashState,
    buf: &mut [u8],
) -> GhashState {
    let (batches, rest) = buf.as_chunks_mut::<BATCH>();
    let done_blocks = (batches.len() * (BATCH / 16)) as u32;
    let state = crypt_batches::<ENCRYPT, _>(k, nonce, counter, state, batches.iter_mut());
    // The caller keeps the message within GCM's limit, so the counter does not pass 2^32 - 1.
    aesni_clmul::crypt::<ENCRYPT>(
        &k.narrow,
        nonce,
        counter.wrapping_add(done_blocks),
        state,
        rest,
    )
}

/// [`crypt`] reading `src` and writing `dst` (the same length) in one pass.
#[target_feature(enable = "aes,pclmulqdq,avx,avx2,vaes,vpclmulqdq")]
fn crypt_copy<const ENCRYPT: bool>(
    k: &Key,
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    state: GhashState,
    src: &[u8],
    dst: &mut [u8],
) -> GhashState {
    assert_eq!(src.len(), dst.len(), "crypt_copy: lengths differ");
    let (src_batches, src_rest) = src.as_chunks::<BATCH>();
    let (dst_batches, dst_rest) = dst.as_chunks_mut::<BATCH>();
    let done_blocks = (src_batches.len() * (BATCH / 16)) as u32;
    let io = src_batches.iter().zip(dst_batches.iter_mut());
    let state = crypt_batches::<ENCRYPT, _>(k, nonce, counter, state, io);
    dst_rest.copy_from_slice(src_rest);
    aesni_clmul::crypt::<ENCRYPT>(
        &k.narrow,
        nonce,
        counter.wrapping_add(done_blocks),
        state,
        dst_rest,
    )
}

/// The 256-byte batches of [`crypt`] and [`crypt_copy`].
#[target_feature(enable = "aes,pclmulqdq,avx,avx2,vaes,vpclmulqdq")]
fn crypt_batches<const ENCRYPT: bool, B: BatchIo>(
    k: &Key,
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    state: GhashState,
    mut batches: impl Iterator<Item = B>,
) -> GhashState {
    let mut state = state;
    // XORs the keystream in and captures the batch's ciphertext, byte-reversed, for hashing.
    macro_rules! xor_and_capture {
        ($batch:expr, $ks:expr, $pending:expr) => {
            let mut batch = $batch;
            for j in 0..VECS {
                let input = batch.input(j);
                let output = _mm256_xor_si256(input, $ks[j]);
                batch.output(j, output);
                $pending[j] = bswap2(if ENCRYPT { output } else { input });
            }
        };
    }
    if let Some(first) = batches.next() {
        let mut acc = load(&state);
        let mut ctr = counter_block(nonce, counter);
        // The first batch has no predecessor to hash: plain CTR.
        let mut ks = next_counters(k, &mut ctr);
        aes_rounds(k, &mut ks);
        let mut pending = [_mm256_setzero_si256(); VECS];
        xor_and_capture!(first, ks, pending);
        for batch in batches {
            let mut ks = next_counters(k, &mut ctr);
            pending[0] = with_acc(pending[0], acc);
            acc = stitched!(k, &mut ks, &pending);
            xor_and_capture!(batch, ks, pending);
        }
        pending[0] = with_acc(pending[0], acc);
        acc = hash_batch(k, &pending);
        store(&mut state, acc);
    }
    state
}
