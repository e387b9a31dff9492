//! The `AesNiClmul` backend: AES-256-GCM on AES-NI and PCLMULQDQ with 128-bit registers.
//!
//! Eight counter blocks are in flight; while they pass through the 14 AES rounds, the previous batch's
//! eight ciphertext blocks are multiplied by H^8 … H^1 and the products summed unreduced, so one
//! reduction serves eight blocks (aggregated reduction). Encryption and decryption share the loop.
//! docs/BENCHMARKS.md has the profile: on Zen 3 the loop runs at the floor set by the AES and CLMUL
//! instructions it must issue.
//!
//! GHASH is computed as POLYVAL (RFC 8452, appendix A): blocks byte-reversed, the hash key replaced by
//! `mulX(byte-reversed H)`. In that representation bit i of a register is the coefficient of x^i, so
//! PCLMULQDQ multiplies without the bit reflection GCM's own convention would need, and the product's
//! reduction is a Montgomery reduction by x^128: two folds by the constant 0xc2 << 56.

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::AesNiClmulCpu;
use crate::aead::{GcmKernel, GhashState, NONCE_LEN, TAG_LEN};

/// Blocks in flight in the main loop.
const WIDTH: usize = 8;

pub(crate) struct Key {
    /// AES-256 round keys.
    pub(super) rk: [__m128i; 15],
    /// `h[i]` = H^(i+1) in POLYVAL's representation.
    pub(super) h: [__m128i; WIDTH],
    /// `hk[i]` = low half ⊕ high half of `h[i]`, in both halves: the Karatsuba middle operand.
    hk: [__m128i; WIDTH],
    _cpu: AesNiClmulCpu,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.rk.zeroize();
        self.h.zeroize();
        self.hk.zeroize();
    }
}

impl Key {
    pub(crate) fn new(key: &[u8; 32], cpu: AesNiClmulCpu) -> Self {
        // SAFETY: `cpu` proves the CPU has every feature `setup` is compiled for.
        unsafe { setup(key, cpu) }
    }
}

impl GcmKernel for Key {
    fn ghash(&self, state: GhashState, data: &[u8]) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { ghash_bytes(self, state, data) }
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

    fn h_pow(&self, n: u64) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { h_pow(self, n) }
    }

    fn mul(&self, a: &GhashState, b: &GhashState) -> GhashState {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { mul_states(a, b) }
    }

    fn tag(
        &self,
        nonce: &[u8; NONCE_LEN],
        state: GhashState,
        aad_len: u64,
        msg_len: u64,
    ) -> [u8; TAG_LEN] {
        // SAFETY: `self._cpu` proves the CPU features (see `Key::new`).
        unsafe { tag(self, nonce, state, aad_len, msg_len) }
    }
}

// ---- small helpers: all inlined into the `#[target_feature]` entry points below ----

#[inline]
pub(super) fn load(b: &[u8; 16]) -> __m128i {
    // SAFETY: reads exactly the 16 bytes `b` borrows; unaligned loads are allowed. SSE2 is baseline.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline]
pub(super) fn store(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: writes exactly the 16 bytes `b` borrows mutably; unaligned stores are allowed.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

#[inline]
#[target_feature(enable = "ssse3")]
fn bswap(x: __m128i) -> __m128i {
    _mm_shuffle_epi8(
        x,
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    )
}

/// Unreduced Karatsuba product of `a` and a power of H: (low, middle, high) 128-bit parts.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn mul_parts(a: __m128i, h: __m128i, hk: __m128i) -> (__m128i, __m128i, __m128i) {
    let lo = _mm_clmulepi64_si128(a, h, 0x00);
    let hi = _mm_clmulepi64_si128(a, h, 0x11);
    let ak = _mm_xor_si128(a, _mm_shuffle_epi32(a, 0x4e));
    let mid = _mm_clmulepi64_si128(ak, hk, 0x00);
    (lo, mid, hi)
}

/// `(hi·x^128 ⊕ mid·x^64 ⊕ lo) · x^-128 mod P` where `mid` still holds the raw Karatsuba middle.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
pub(super) fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let mid = _mm_xor_si128(mid, _mm_xor_si128(lo, hi));
    let lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    let hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    // Fold the low 64 bits twice: each fold adds a multiple of P that clears 64 low bits.
    let poly = _mm_set_epi64x(0, 0xc200_0000_0000_0000_u64 as i64);
    let t = _mm_clmulepi64_si128(lo, poly, 0x00);
    let lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    let t = _mm_clmulepi64_si128(lo, poly, 0x00);
    let lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    _mm_xor_si128(hi, lo)
}

/// POLYVAL's dot product `a · b · x^-128`.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
pub(super) fn dot(a: __m128i, b: __m128i) -> __m128i {
    let bk = _mm_xor_si128(b, _mm_shuffle_epi32(b, 0x4e));
    let (lo, mid, hi) = mul_parts(a, b, bk);
    reduce(lo, mid, hi)
}

#[inline]
#[target_feature(enable = "aes")]
fn aes_block(rk: &[__m128i; 15], b: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(b, rk[0]);
    for k in &rk[1..14] {
        x = _mm_aesenc_si128(x, *k);
    }
    _mm_aesenclast_si128(x, rk[14])
}

/// One AES-256 key-schedule mixing step (FIPS 197 section 5.2): the running XOR of the previous round
/// key's words, then the transformed word `t`.
#[inline]
#[target_feature(enable = "sse2")]
fn mix(prev: __m128i, t: __m128i) -> __m128i {
    let mut x = prev;
    let mut s = _mm_slli_si128(prev, 4);
    x = _mm_xor_si128(x, s);
    s = _mm_slli_si128(s, 4);
    x = _mm_xor_si128(x, s);
    s = _mm_slli_si128(s, 4);
    x = _mm_xor_si128(x, s);
    _mm_xor_si128(x, t)
}

#[inline]
#[target_feature(enable = "aes,sse2")]
fn expand_key(key: &[u8; 32]) -> [__m128i; 15] {
    let (halves, _) = key.as_chunks::<16>();
    let mut rk = [_mm_setzero_si128(); 15];
    rk[0] = load(&halves[0]);
    rk[1] = load(&halves[1]);
    // Round keys 2i and 2i+1 from 2i-2 and 2i-1; the last step makes round key 14 only.
    macro_rules! even {
        ($i:literal, $rcon:literal) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], $rcon), 0xff);
            rk[$i] = mix(rk[$i - 2], t);
        };
    }
    macro_rules! odd {
        ($i:literal) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], 0x00), 0xaa);
            rk[$i] = mix(rk[$i - 2], t);
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
    rk
}

#[target_feature(enable = "aes,pclmulqdq,avx")]
fn setup(key: &[u8; 32], cpu: AesNiClmulCpu) -> Key {
    let rk = expand_key(key);
    let mut h_bytes = [0u8; 16];
    store(&mut h_bytes, aes_block(&rk, _mm_setzero_si128()));
    // mulX_POLYVAL(ByteReverse(H)): read big-endian (= byte-reversed, then little-endian), times x.
    let v = u128::from_be_bytes(h_bytes);
    h_bytes.zeroize();
    let carry = 0u128.wrapping_sub(v >> 127);
    let mut hx = ((v << 1) ^ (carry & 0xc200_0000_0000_0000_0000_0000_0000_0001)).to_le_bytes();
    let h1 = load(&hx);
    hx.zeroize();
    let mut h = [h1; WIDTH];
    for i in 1..WIDTH {
        h[i] = dot(h[i - 1], h1);
    }
    let hk = h.map(|p| _mm_xor_si128(p, _mm_shuffle_epi32(p, 0x4e)));
    Key {
        rk,
        h,
        hk,
        _cpu: cpu,
    }
}

/// Hashes `x` (byte-reversed blocks, `x.len() <= WIDTH`) into `acc` with one reduction.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn hash_blocks(k: &Key, acc: __m128i, x: &[__m128i]) -> __m128i {
    let n = x.len();
    if n == 0 {
        return acc;
    }
    let z = _mm_setzero_si128();
    let (mut lo, mut mid, mut hi) = (z, z, z);
    for (i, &b) in x.iter().enumerate() {
        let b = if i == 0 { _mm_xor_si128(b, acc) } else { b };
        let (l, m, h) = mul_parts(b, k.h[n - 1 - i], k.hk[n - 1 - i]);
        lo = _mm_xor_si128(lo, l);
        mid = _mm_xor_si128(mid, m);
        hi = _mm_xor_si128(hi, h);
    }
    reduce(lo, mid, hi)
}

#[target_feature(enable = "aes,pclmulqdq,avx")]
fn ghash_bytes(k: &Key, state: GhashState, data: &[u8]) -> GhashState {
    let mut acc = load(&state);
    let (blocks, tail) = data.as_chunks::<16>();
    let (batches, rest) = blocks.as_chunks::<WIDTH>();
    for batch in batches {
        let x = batch.map(|b| bswap(load(&b)));
        acc = hash_blocks(k, acc, &x);
    }
    let mut x = [_mm_setzero_si128(); WIDTH];
    for (xi, b) in x.iter_mut().zip(rest) {
        *xi = bswap(load(b));
    }
    let mut n = rest.len();
    if !tail.is_empty() {
        let mut pad = [0u8; 16];
        pad[..tail.len()].copy_from_slice(tail);
        x[n] = bswap(load(&pad));
        n += 1;
    }
    acc = hash_blocks(k, acc, &x[..n]);
    let mut out = [0u8; 16];
    store(&mut out, acc);
    out
}

/// The counter block for `counter`, byte-reversed so that the 32-bit counter sits in lane 0 and
/// `_mm_add_epi32` is GCM's inc32 (wrapping mod 2^32).
#[inline]
#[target_feature(enable = "ssse3")]
pub(super) fn counter_block(nonce: &[u8; NONCE_LEN], counter: u32) -> __m128i {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(nonce);
    b[12..].copy_from_slice(&counter.to_be_bytes());
    bswap(load(&b))
}

/// The next `WIDTH` counter blocks, already XORed with round key 0; advances `ctr`.
#[inline]
#[target_feature(enable = "ssse3")]
fn next_counters(k: &Key, ctr: &mut __m128i) -> [__m128i; WIDTH] {
    let mut b = [_mm_setzero_si128(); WIDTH];
    for (i, bi) in b.iter_mut().enumerate() {
        let c = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, i as i32));
        *bi = _mm_xor_si128(bswap(c), k.rk[0]);
    }
    *ctr = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, WIDTH as i32));
    b
}

/// Keeps the `WIDTH` AES states in registers at this point of the program. Without it LLVM's scheduler,
/// short of registers, reorders the round-major interleave into one block at a time through all 14
/// rounds, and the loop becomes bound by AESENC's latency instead of its throughput.
macro_rules! pin {
    ($b:expr) => {
        // SAFETY: an empty instruction sequence: reads and writes no memory, changes no flags; it only
        // tells the compiler the eight values are used and redefined here.
        unsafe {
            core::arch::asm!(
                "/* pin {0} {1} {2} {3} {4} {5} {6} {7} */",
                inout(xmm_reg) $b[0], inout(xmm_reg) $b[1], inout(xmm_reg) $b[2], inout(xmm_reg) $b[3],
                inout(xmm_reg) $b[4], inout(xmm_reg) $b[5], inout(xmm_reg) $b[6], inout(xmm_reg) $b[7],
                options(nomem, nostack, preserves_flags),
            )
        }
    };
}

/// AES rounds 1..=14 on `b`.
#[inline]
#[target_feature(enable = "aes")]
fn aes_rounds(k: &Key, b: &mut [__m128i; WIDTH]) {
    for rk in &k.rk[1..14] {
        for bi in b.iter_mut() {
            *bi = _mm_aesenc_si128(*bi, *rk);
        }
        pin!(b);
    }
    for bi in b.iter_mut() {
        *bi = _mm_aesenclast_si128(*bi, k.rk[14]);
    }
}

/// The stitched step: AES on the `WIDTH` counter blocks in `b` interleaved with GHASH of the `WIDTH`
/// blocks in `x` (byte-reversed, accumulator already folded into `x[0]`). Returns the keystream in `b`
/// and the new accumulator.
macro_rules! stitched {
    ($k:expr, $b:expr, $x:expr) => {{
        let k: &Key = $k;
        let b: &mut [__m128i; WIDTH] = $b;
        let x: &[__m128i; WIDTH] = $x;
        let z = _mm_setzero_si128();
        let (mut lo, mut mid, mut hi) = (z, z, z);
        macro_rules! round {
            ($r:literal) => {
                for bi in b.iter_mut() {
                    *bi = _mm_aesenc_si128(*bi, k.rk[$r]);
                }
                pin!(b);
            };
        }
        macro_rules! hash {
            ($j:literal) => {
                let (l, m, h) = mul_parts(x[$j], k.h[WIDTH - 1 - $j], k.hk[WIDTH - 1 - $j]);
                lo = _mm_xor_si128(lo, l);
                mid = _mm_xor_si128(mid, m);
                hi = _mm_xor_si128(hi, h);
            };
        }
        let acc = stitched_schedule!(round, hash, reduce(lo, mid, hi));
        for bi in b.iter_mut() {
            *bi = _mm_aesenclast_si128(*bi, k.rk[14]);
        }
        acc
    }};
}

/// CTR over `buf` from `counter`, with GHASH of the ciphertext (the output when `ENCRYPT`, the input
/// otherwise) absorbed into `state`.
///
/// The main loop hashes one batch behind: each batch's ciphertext is captured, byte-reversed, at the end
/// of the iteration that produces or consumes it, and multiplied in during the next batch's AES rounds.
#[target_feature(enable = "aes,pclmulqdq,avx")]
pub(super) fn crypt<const ENCRYPT: bool>(
    k: &Key,
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    state: GhashState,
    buf: &mut [u8],
) -> GhashState {
    let mut acc = load(&state);
    let mut ctr = counter_block(nonce, counter);
    let (blocks, tail) = buf.as_chunks_mut::<16>();
    let (batches, rest) = blocks.as_chunks_mut::<WIDTH>();
    // XORs the keystream in and captures the batch's ciphertext, byte-reversed, for hashing. A macro,
    // not a closure: a closure called from two places was left out of line (3% slower).
    macro_rules! xor_and_capture {
        ($batch:expr, $ks:expr, $pending:expr) => {
            for i in 0..WIDTH {
                let input = load(&$batch[i]);
                let output = _mm_xor_si128(input, $ks[i]);
                store(&mut $batch[i], output);
                $pending[i] = bswap(if ENCRYPT { output } else { input });
            }
        };
    }
    let mut batches = batches.iter_mut();
    if let Some(first) = batches.next() {
        // The first batch has no predecessor to hash: plain CTR.
        let mut ks = next_counters(k, &mut ctr);
        aes_rounds(k, &mut ks);
        let mut pending = [_mm_setzero_si128(); WIDTH];
        xor_and_capture!(first, ks, pending);
        for batch in batches {
            let mut ks = next_counters(k, &mut ctr);
            pending[0] = _mm_xor_si128(pending[0], acc);
            acc = stitched!(k, &mut ks, &pending);
            xor_and_capture!(batch, ks, pending);
        }
        acc = hash_blocks(k, acc, &pending);
    }
    acc = crypt_tail::<ENCRYPT>(k, &mut ctr, acc, rest, tail);
    let mut out = [0u8; 16];
    store(&mut out, acc);
    out
}

/// Fewer than `WIDTH` full blocks and a partial one: one keystream batch, one aggregated hash of the
/// ciphertext (zero-padded).
#[inline]
#[target_feature(enable = "aes,pclmulqdq,avx")]
fn crypt_tail<const ENCRYPT: bool>(
    k: &Key,
    ctr: &mut __m128i,
    acc: __m128i,
    rest: &mut [[u8; 16]],
    tail: &mut [u8],
) -> __m128i {
    let n = rest.len() + usize::from(!tail.is_empty());
    if n == 0 {
        return acc;
    }
    let mut ks = next_counters(k, ctr);
    aes_rounds(k, &mut ks);
    let mut x = [_mm_setzero_si128(); WIDTH];
    for (i, b) in rest.iter_mut().enumerate() {
        let input = load(b);
        let output = _mm_xor_si128(input, ks[i]);
        store(b, output);
        x[i] = bswap(if ENCRYPT { output } else { input });
    }
    if !tail.is_empty() {
        let len = tail.len();
        let mut pad = [0u8; 16];
        pad[..len].copy_from_slice(tail);
        let input = load(&pad);
        store(&mut pad, _mm_xor_si128(input, ks[n - 1]));
        tail.copy_from_slice(&pad[..len]);
        let ct = if ENCRYPT {
            pad[len..].fill(0);
            load(&pad)
        } else {
            input
        };
        pad.zeroize();
        x[n - 1] = bswap(ct);
    }
    hash_blocks(k, acc, &x[..n])
}

#[target_feature(enable = "aes,pclmulqdq,avx")]
fn h_pow(k: &Key, n: u64) -> GhashState {
    // Square-and-multiply with POLYVAL's dot product: dot(H^a, H^b) = H^(a+b) for the mulX'd key, and
    // dot's identity is x^128 mod P.
    let mut pow = _mm_set_epi64x(0xc200_0000_0000_0000_u64 as i64, 1);
    for bit in (0..(64 - n.leading_zeros())).rev() {
        pow = dot(pow, pow);
        if n >> bit & 1 == 1 {
            pow = dot(pow, k.h[0]);
        }
    }
    let mut out = [0u8; 16];
    store(&mut out, pow);
    out
}

#[target_feature(enable = "pclmulqdq,sse2")]
fn mul_states(a: &GhashState, b: &GhashState) -> GhashState {
    let mut out = [0u8; 16];
    store(&mut out, dot(load(a), load(b)));
    out
}

#[target_feature(enable = "aes,pclmulqdq,avx")]
fn tag(
    k: &Key,
    nonce: &[u8; NONCE_LEN],
    state: GhashState,
    aad_len: u64,
    msg_len: u64,
) -> [u8; TAG_LEN] {
    // The length block be64(aad bits) ‖ be64(msg bits), byte-reversed: msg bits low, aad bits high.
    let lens = _mm_set_epi64x((aad_len * 8) as i64, (msg_len * 8) as i64);
    let s = dot(_mm_xor_si128(load(&state), lens), k.h[0]);
    let ek_j0 = aes_block(&k.rk, bswap(counter_block(nonce, 1)));
    let mut out = [0u8; 16];
    store(&mut out, _mm_xor_si128(bswap(s), ek_j0));
    out
}
