//! The portable backend: RustCrypto's `aes`, `ctr` and `polyval` composed into GCM (SP 800-38D
//! section 7).
//!
//! It is the reference the fast backends are tested against, and the accelerated path on ARMv8 (those
//! crates switch to the AES-NI/VAES and PCLMULQDQ instructions on x86, ARMv8 AES and PMULL on ARM,
//! through `cpufeatures`). It differs from RustCrypto's `aes-gcm` in two ways, both measured
//! (docs/BENCHMARKS.md):
//!
//! - it walks the buffer in L1-sized pieces, hashing each piece while it is still in cache, instead of
//!   CTR over the whole buffer and then GHASH over the whole buffer;
//! - it computes GHASH as POLYVAL (RFC 8452 appendix A: `GHASH(H, X…) = rev(POLYVAL(mulX(rev(H)),
//!   rev(X)…))`), reversing the blocks itself in batches, instead of through the `ghash` crate, whose
//!   per-block byte reversal (a byte-at-a-time swap and a copy of every four blocks) took about a
//!   fifth of GHASH's time.
#![deny(unsafe_code)]

use aes::Aes256;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipherCore};
use polyval::Polyval;
use polyval::hazmat::FieldElement;
use polyval::universal_hash::UniversalHash;
use zeroize::{Zeroize, Zeroizing};

use super::{GcmKernel, GhashState, NONCE_LEN, TAG_LEN, length_block};

/// Bytes of CTR output hashed while still in L1 (a multiple of 16).
const PIECE: usize = 8 * 1024;

/// Blocks byte-reversed into a stack buffer per call into `polyval` (512 bytes of ciphertext).
const BATCH: usize = 32;

/// CTR over a borrowed key schedule: no copy of the round keys per message.
type Ctr<'a> = ctr::CtrCore<&'a Aes256, ctr::flavors::Ctr32BE>;

/// Key schedule and hash key. `Aes256` and `Polyval` (its key, the key's expanded powers and the
/// accumulator) wipe themselves on drop (the crates' `zeroize` features), and so does every clone of
/// `polyval`.
pub(crate) struct Key {
    aes: Aes256,
    /// POLYVAL keyed with `mulX(rev(H))`, accumulator zero: cloned for each hash, so the powers of the
    /// key are expanded once.
    polyval: Polyval,
}

/// Fails to build if `aes` loses its `zeroize` feature (`Polyval` wipes in `Drop` under its own
/// `zeroize` feature, and has no marker trait to check).
const _: fn() = || {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wipes_on_drop::<Aes256>();
};

/// A block byte-reversed: GCM's byte order to POLYVAL's, and back.
#[inline(always)]
fn rev(b: &[u8; 16]) -> [u8; 16] {
    u128::from_be_bytes(*b).to_le_bytes()
}

/// The POLYVAL key standing for GHASH key `h`.
fn polyval_for(h: &[u8; 16]) -> Polyval {
    let mut k = FieldElement::from(rev(h)).mulx();
    let p = Polyval::new(&k.into());
    k.zeroize();
    p
}

/// `p` absorbs `data` (GCM byte order; a short last block is zero-padded), reversed in batches.
fn absorb(p: &mut Polyval, data: &[u8]) {
    let (blocks, tail) = data.as_chunks::<16>();
    let mut buf = [polyval::Block::default(); BATCH];
    for batch in blocks.chunks(BATCH) {
        for (d, s) in buf.iter_mut().zip(batch) {
            *d = rev(s).into();
        }
        p.update(&buf[..batch.len()]);
    }
    if !tail.is_empty() {
        let mut last = [0u8; 16];
        last[..tail.len()].copy_from_slice(tail);
        p.update(&[rev(&last).into()]);
    }
}

/// The GHASH digest (GCM byte order) of what `p` absorbed.
fn digest(p: Polyval) -> GhashState {
    rev(&p.finalize().into())
}

impl Key {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Zeroizing::new([0u8; 16]);
        aes.encrypt_block((&mut *h).into());
        let polyval = polyval_for(&h);
        Key { aes, polyval }
    }

    fn ctr(&self, nonce: &[u8; NONCE_LEN], counter: u32) -> Ctr<'_> {
        let mut iv = [0u8; 16];
        iv[..12].copy_from_slice(nonce);
        iv[12..].copy_from_slice(&counter.to_be_bytes());
        Ctr::inner_iv_init(&self.aes, (&iv).into())
    }

    /// A hash that has absorbed non-empty `data` from `state`: hashing `state ⊕ X1, X2, …` from zero is
    /// hashing `X1, X2, …` from `state`, so the first block carries the state in.
    fn hash_from(&self, state: &GhashState, data: &[u8]) -> Polyval {
        debug_assert!(!data.is_empty());
        let mut p = self.polyval.clone();
        let (first, rest) = data.split_at(data.len().min(16));
        let mut block = Zeroizing::new(*state);
        for (b, d) in block.iter_mut().zip(first) {
            *b ^= d;
        }
        p.update(&[rev(&block).into()]);
        absorb(&mut p, rest);
        p
    }

    /// Multiplication in GCM's field: one GHASH block step from zero is `x · y`.
    fn mul_gf(x: &[u8; 16], y: &[u8; 16]) -> [u8; 16] {
        let mut p = polyval_for(y);
        p.update(&[rev(x).into()]);
        digest(p)
    }

    /// `x · H`, on the already expanded key.
    fn mul_h(&self, x: &[u8; 16]) -> [u8; 16] {
        let mut p = self.polyval.clone();
        p.update(&[rev(x).into()]);
        digest(p)
    }

    /// CTR then GHASH (`seal`) or GHASH then CTR (`!seal`) over `buf`, one L1-sized piece at a time,
    /// one hash across the pieces (every piece but the last is whole blocks).
    fn crypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
        seal: bool,
    ) -> GhashState {
        if buf.is_empty() {
            return state;
        }
        let mut ctr = self.ctr(nonce, counter);
        let mut p: Option<Polyval> = None;
        let mut hash = |piece: &[u8]| match p.as_mut() {
            Some(p) => absorb(p, piece),
            None => p = Some(self.hash_from(&state, piece)),
        };
        let mut pieces = buf.chunks_mut(PIECE);
        let last = pieces.next_back().expect("buf is not empty");
        for piece in pieces {
            if !seal {
                hash(piece);
            }
            // PIECE is a multiple of 16: whole blocks, and the counter carries on to the next piece.
            let (blocks, tail) = InOutBuf::from(&mut *piece).into_chunks();
            debug_assert!(tail.is_empty());
            ctr.apply_keystream_blocks_inout(blocks);
            if seal {
                hash(piece);
            }
        }
        if !seal {
            hash(last);
        }
        ctr.apply_keystream_partial(last.into());
        if seal {
            hash(last);
        }
        digest(p.expect("buf is not empty"))
    }
}

impl GcmKernel for Key {
    fn ghash(&self, state: GhashState, data: &[u8]) -> GhashState {
        if data.is_empty() {
            return state;
        }
        digest(self.hash_from(&state, data))
    }

    fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        self.crypt(nonce, counter, state, buf, true)
    }

    fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState {
        self.crypt(nonce, counter, state, buf, false)
    }

    fn h_pow(&self, n: u64) -> GhashState {
        // Square-and-multiply over the exponent's bits, most significant first.
        let mut pow = [0u8; 16];
        pow[0] = 0x80; // the field's 1 in GCM's bit order
        for bit in (0..(64 - n.leading_zeros())).rev() {
            pow = Self::mul_gf(&pow, &pow);
            if n >> bit & 1 == 1 {
                pow = self.mul_h(&pow);
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
