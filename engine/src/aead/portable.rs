//! The portable backend: RustCrypto's `aes`, `ctr` and `ghash` composed into GCM (SP 800-38D section 7).
//!
//! It is the reference the fast backends are tested against, and the accelerated path on ARMv8 (those
//! crates switch to the ARMv8 AES and PMULL instructions through `cpufeatures`). Unlike RustCrypto's
//! `aes-gcm`, which runs CTR over the whole buffer and then GHASH over the whole buffer, this walks the
//! buffer in L1-sized pieces, hashing each piece while it is still in cache.
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

/// Key schedule and hash key. Both crates zeroize their state on drop (`zeroize` features); `h` is
/// zeroized by `Zeroizing`.
pub(crate) struct Key {
    aes: Aes256,
    h: Zeroizing<[u8; 16]>,
}

impl Key {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Zeroizing::new([0u8; 16]);
        aes.encrypt_block(h.as_mut().into());
        Key { aes, h }
    }

    fn ctr(&self, nonce: &[u8; NONCE_LEN], counter: u32) -> Ctr {
        let mut iv = [0u8; 16];
        iv[..12].copy_from_slice(nonce);
        iv[12..].copy_from_slice(&counter.to_be_bytes());
        Ctr::from_core(ctr::CtrCore::inner_iv_init(self.aes.clone(), &iv.into()))
    }

    /// A GHASH instance whose accumulator starts at `state`: hashing `state ⊕ X1, X2, …` from zero is
    /// hashing `X1, X2, …` from `state`, so the first block carries the state in.
    fn ghash_from(&self, state: &GhashState, data: &[u8]) -> GHash {
        let mut g = GHash::new(self.h.as_ref().into());
        let (first, rest) = data.split_at(data.len().min(16));
        let mut block = Zeroizing::new(*state);
        for (b, d) in block.iter_mut().zip(first) {
            *b ^= d;
        }
        if !first.is_empty() || *state != [0; 16] {
            g.update(&[(*block).into()]);
        }
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
    fn ghash(&self, state: GhashState, data: &[u8]) -> GhashState {
        if data.is_empty() {
            return state;
        }
        self.ghash_from(&state, data).finalize().into()
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
