//! One GCM message produced by many cores (DESIGN.md section 2), byte-identical to the single-threaded one.
//!
//! The message is cut into pieces of a fixed multiple of 16 bytes. Piece `i` starts at counter
//! `2 + offset_i / 16`, so every task runs plain CTR from its own counter offset. GHASH is linear:
//! for consecutive pieces `GHASH(A ‖ B) = GHASH(A) · H^blocks(B) ⊕ GHASH(B)`, so each task hashes its
//! piece from zero and the partial digests are folded, in order, on the calling thread (Horner's rule
//! with one precomputed power of H for the full pieces and one for the last).
#![deny(unsafe_code)]

use rayon::prelude::*;

use super::{FIRST_DATA_COUNTER, GcmKernel, GhashState, NONCE_LEN, TAG_LEN};

/// Smallest piece the automatic split makes: big enough that per-task costs vanish, small enough that a
/// few hundred KiB still spread over every core.
const MIN_AUTO_CHUNK: usize = 64 * 1024;

/// Largest piece the automatic split makes. Measured on 256 MiB with 2 threads (docs/BENCHMARKS.md):
/// 1 MiB pieces beat 32 MiB ones by about 15%, because with few big pieces a core that falls behind
/// leaves the other idle at the end, while many pieces let rayon's work stealing even the load out.
const MAX_AUTO_CHUNK: usize = 1024 * 1024;

/// The piece length `par_seal_in_place` uses for a `len`-byte message: four or more pieces per pool
/// thread where the piece bounds [`MIN_AUTO_CHUNK`]..=[`MAX_AUTO_CHUNK`] allow; the whole message when it
/// is below the backend's threshold or the pool has one thread.
pub(crate) fn auto_chunk_len(k: &dyn GcmKernel, len: usize) -> usize {
    let threads = rayon::current_num_threads();
    if len < k.min_parallel_len() || threads < 2 {
        return len.max(16);
    }
    len.div_ceil(threads * 4)
        .clamp(MIN_AUTO_CHUNK, MAX_AUTO_CHUNK)
}

/// `chunk_len` rounded up to a whole number of blocks (at least one), saturating: any caller's value is
/// fine, and one past the message runs it on the calling thread.
fn piece_len(chunk_len: usize) -> usize {
    chunk_len
        .max(16)
        .checked_next_multiple_of(16)
        .unwrap_or(usize::MAX & !15)
}

pub(crate) fn seal(
    k: &dyn GcmKernel,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    chunk_len: usize,
) -> [u8; TAG_LEN] {
    run(k, nonce, aad, buf, chunk_len, |k, ctr, state, piece| {
        k.encrypt(nonce, ctr, state, piece)
    })
}

pub(crate) fn open(
    k: &dyn GcmKernel,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    chunk_len: usize,
) -> [u8; TAG_LEN] {
    run(k, nonce, aad, buf, chunk_len, |k, ctr, state, piece| {
        k.decrypt(nonce, ctr, state, piece)
    })
}

/// Runs `piece_op` (CTR from a counter + GHASH of one piece from a starting digest) over all pieces in
/// parallel, each from a zero digest, and folds the digests into the tag.
fn run(
    k: &dyn GcmKernel,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    chunk_len: usize,
    piece_op: impl Fn(&dyn GcmKernel, u32, GhashState, &mut [u8]) -> GhashState + Sync,
) -> [u8; TAG_LEN] {
    let piece = piece_len(chunk_len);
    let msg_len = buf.len() as u64;
    let aad_state = k.ghash([0; 16], aad);
    if buf.len() <= piece {
        // One piece: continue the AAD digest directly, exactly as the sequential call does.
        let state = piece_op(k, FIRST_DATA_COUNTER, aad_state, buf);
        return k.tag(nonce, state, aad.len() as u64, msg_len);
    }
    let blocks_per_piece = (piece / 16) as u32;
    let digests: Vec<GhashState> = buf
        .par_chunks_mut(piece)
        .enumerate()
        .map(|(i, p)| {
            // The caller checked the length against MAX_MESSAGE_LEN, so the counter fits in 32 bits.
            let ctr = FIRST_DATA_COUNTER + (i as u32) * blocks_per_piece;
            piece_op(k, ctr, [0; 16], p)
        })
        .collect();

    let full_pow = k.h_pow(u64::from(blocks_per_piece));
    let last_blocks = (buf.len() - (digests.len() - 1) * piece).div_ceil(16) as u64;
    let last_pow = k.h_pow(last_blocks);
    let mut state = aad_state;
    let last = digests.len() - 1;
    for (i, d) in digests.iter().enumerate() {
        let pow = if i == last { &last_pow } else { &full_pow };
        state = xor(&k.mul(&state, pow), d);
    }
    k.tag(nonce, state, aad.len() as u64, msg_len)
}

fn xor(a: &GhashState, b: &GhashState) -> GhashState {
    let mut out = [0u8; 16];
    for i in 0..16 {
        out[i] = a[i] ^ b[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::piece_len;

    #[test]
    fn piece_len_is_whole_blocks_for_any_input() {
        assert_eq!(piece_len(0), 16);
        assert_eq!(piece_len(1), 16);
        assert_eq!(piece_len(16), 16);
        assert_eq!(piece_len(17), 32);
        assert_eq!(piece_len(usize::MAX), usize::MAX & !15);
        assert_eq!(piece_len(usize::MAX - 20) % 16, 0);
    }
}
