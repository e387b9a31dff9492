//! The portable backend: RustCrypto's `aes`, `ctr` and `ghash` composed into GCM (SP 800-38D section 7).
//!
//! It is the reference the fast backends are tested against, and the accelerated path on ARMv8 (those
//! crates switch to the ARMv8 AES and PMULL instructions through `cpufeatures`). It differs from
//! RustCrypto's `aes-gcm` in two ways, both measured (docs/BENCHMARKS.md): it walks the buffer in
//! L1-sized pieces, hashing each piece while it is still in cache, instead of CTR over the whole buffer
//! and then GHASH over the whole buffer; and it runs GHASH as four independent chains whose digests are
//! joined with powers of H, instead of one chain that waits on every multiplication.
#![deny(unsafe_code)]

use aes::Aes256;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroizing;

use super::{GcmKernel, GhashState, NONCE_LEN, TAG_LEN, length_block};

/// Bytes of CTR output hashed while still in L1 (a multiple of 16).
const PIECE: usize = 8 * 1024;

type Ctr = ctr::Ctr32BE<Aes256>;

/// GHASH chains run side by side (see [`Key::ghash_lanes`]).
const LANES: usize = 4;
/// Shortest and longest run of blocks one chain takes in a lane group; runs are powers of two.
const MIN_RUN: usize = 8;
const MAX_RUN: usize = 128;
/// `h_runs[i]` holds H^(2^i) for every power of two up to `MAX_RUN`.
const RUN_POWERS: usize = MAX_RUN.trailing_zeros() as usize + 1;

/// Key schedule and hash key. Both crates zeroize their state on drop (`zeroize` features); `h` and
/// its powers are zeroized by `Zeroizing`.
pub(crate) struct Key {
    aes: Aes256,
    h: Zeroizing<[u8; 16]>,
    /// `h_runs[i]` = H^(2^i): moves a chain's digest past the next chain's run.
    h_runs: Zeroizing<[[u8; 16]; RUN_POWERS]>,
}

impl Key {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Zeroizing::new([0u8; 16]);
        aes.encrypt_block(h.as_mut().into());
        let mut h_runs = Zeroizing::new([*h; RUN_POWERS]);
        for i in 1..RUN_POWERS {
            h_runs[i] = Self::mul_gf(&h_runs[i - 1], &h_runs[i - 1]);
        }
        Key { aes, h, h_runs }
    }

    /// GHASH of `LANES · run` whole blocks from `state`, as `LANES` chains over contiguous runs.
    ///
    /// `polyval` (under `ghash`) multiplies one block at a time with a full reduction, so a single chain
    /// waits on each multiplication's latency. Independent chains, each from zero and fed one block in
    /// turn, overlap in the CPU; their digests are then joined, starting from `state`, as in parallel
    /// GCM: `GHASH_S(A ‖ B) = GHASH_S(A) · H^blocks(B) ⊕ GHASH_0(B)` and `GHASH_S(A) = S · H^blocks(A) ⊕
    /// GHASH_0(A)`.
    fn ghash_lanes(&self, state: &GhashState, blocks: &[[u8; 16]], run: usize) -> GhashState {
        debug_assert!(run.is_power_of_two() && blocks.len() == LANES * run);
        let runs: [&[[u8; 16]]; LANES] = std::array::from_fn(|j| &blocks[j * run..(j + 1) * run]);
        let mut lanes: [GHash; LANES] = std::array::from_fn(|_| GHash::new(self.h.as_ref().into()));
        for i in 0..run {
            for (lane, r) in lanes.iter_mut().zip(runs) {
                lane.update_padded(r[i].as_ref());
            }
        }
        let h_run = &self.h_runs[run.trailing_zeros() as usize];
        let mut acc = *state;
        for lane in lanes {
            let d: [u8; 16] = lane.finalize().into();
            acc = Self::mul_gf(&acc, h_run);
            for (a, v) in acc.iter_mut().zip(d) {
                *a ^= v;
            }
        }
        acc
    }

    fn ctr(&self, nonce: &[u8; NONCE_LEN], counter: u32) -> Ctr {
        let mut iv = [0u8; 16];
        iv[..12].copy_from_slice(nonce);
        iv[12..].copy_from_slice(&counter.to_be_bytes());
        Ctr::from_core(ctr::CtrCore::inner_iv_init(self.aes.clone(), &iv.into()))
    }

    /// A GHASH instance that has absorbed non-empty `data` from `state`: hashing `state ⊕ X1, X2, …`
    /// from zero is hashing `X1, X2, …` from `state`, so the first block carries the state in.
    fn ghash_from(&self, state: &GhashState, data: &[u8]) -> GHash {
        debug_assert!(!data.is_empty());
        let mut g = GHash::new(self.h.as_ref().into());
        let (first, rest) = data.split_at(data.len().min(16));
        let mut block = Zeroizing::new(*state);
        for (b, d) in block.iter_mut().zip(first) {
            *b ^= d;
        }
        g.update(&[(*block).into()]);
        g.update_padded(rest);
        g
    }

    /// Multiplication in GCM's field: one GHASH block step from zero is `x · y`.
    fn mul_gf(x: &[u8; 16], y: &[u8; 16]) -> [u8; 16] {
        let mut g = GHash::new(y.into());
        g.update(&[(*x).into()]);
        g.finalize().into()
    }
}

impl GcmKernel for Key {
    fn ghash(&self, mut state: GhashState, data: &[u8]) -> GhashState {
        let (blocks, _) = data.as_chunks::<16>();
        let mut done = 0;
        while blocks.len() - done >= LANES * MIN_RUN {
            let run = ((blocks.len() - done) / LANES).min(MAX_RUN);
            let run = 1 << run.ilog2();
            state = self.ghash_lanes(&state, &blocks[done..done + LANES * run], run);
            done += LANES * run;
        }
        let rest = &data[done * 16..];
        if rest.is_empty() {
            return state;
        }
        self.ghash_from(&state, rest).finalize().into()
    }

    fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        mut state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        let mut ctr = self.ctr(nonce, counter);
        for piece in buf.chunks_mut(PIECE) {
            ctr.apply_keystream(piece);
            state = self.ghash(state, piece);
        }
        state
    }

    fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        mut state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        let mut ctr = self.ctr(nonce, counter);
        for piece in buf.chunks_mut(PIECE) {
            state = self.ghash(state, piece);
            ctr.apply_keystream(piece);
        }
        state
    }

    fn h_pow(&self, n: u64) -> GhashState {
        // Square-and-multiply over the exponent's bits, most significant first.
        let mut pow = [0u8; 16];
        pow[0] = 0x80; // the field's 1 in GCM's bit order
        for bit in (0..(64 - n.leading_zeros())).rev() {
            pow = Self::mul_gf(&pow, &pow);
            if n >> bit & 1 == 1 {
                pow = Self::mul_gf(&pow, &self.h);
            }
        }
        pow
    }

    fn mul(&self, a: &GhashState, b: &GhashState) -> GhashState {
        Self::mul_gf(a, b)
    }

    fn min_parallel_len(&self) -> usize {
        // About three times slower than the AES-NI kernel, so splitting pays three times sooner.
        64 * 1024
    }

    fn tag(
        &self,
        nonce: &[u8; NONCE_LEN],
        state: GhashState,
        aad_len: u64,
        msg_len: u64,
    ) -> [u8; TAG_LEN] {
        let s = self.ghash(state, &length_block(aad_len, msg_len));
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(nonce);
        j0[15] = 1;
        self.aes.encrypt_block((&mut j0).into());
        let mut tag = [0u8; 16];
        for i in 0..16 {
            tag[i] = s[i] ^ j0[i];
        }
        tag
    }
}
