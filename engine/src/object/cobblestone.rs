//! Cobblestone-256: c2sp.org/chunked-encryption instantiated with AEAD_AES_256_GCM and HKDF-Expand
//! over SHA-512. One message = `salt ‖ commitment ‖ chunk_0 ‖ … ‖ chunk_n`; every chunk but the last
//! holds 16 KiB of plaintext, the last holds less (possibly nothing), each is AES-256-GCM under the
//! derived key with nonce `base_nonce XOR be96(k)` and no AAD.

use std::ops::Range;

use hmac::{Hmac, Mac};
use sha2::Sha512;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::Error;
use crate::aead::{Aes256Gcm, TAG_LEN};

/// Plaintext bytes in every chunk but the final one.
pub const CHUNK_LEN: usize = 16 * 1024;
/// Stored bytes of a full chunk: plaintext plus tag.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Salt length.
pub const SALT_LEN: usize = 24;
/// Commitment length.
pub const COMMITMENT_LEN: usize = 32;
/// `salt ‖ commitment`: what precedes chunk 0.
pub const HEADER_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// The spec's bound on the chunk count: a message has fewer than 2^38 chunks.
pub const MAX_CHUNKS: u64 = 1 << 38;

const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00";

/// Messages shorter than this are sealed and opened on the calling thread: below it, handing chunks to
/// other threads costs more than it saves.
const PARALLEL_MIN_LEN: usize = 4 * CHUNK_LEN;

/// Chunks per batch that [`spread`] hands out for a message of `chunks` chunks: all of them below
/// [`PARALLEL_MIN_LEN`]; otherwise about eight batches per thread of the pool, so a thread that
/// starts late (a worker waking from sleep) or falls behind (a core taken by other work) leaves
/// little at the end, but never fewer than 4 chunks (64 KiB, where taking a batch costs nothing) nor
/// more than 64 (1 MiB).
fn chunks_per_batch(chunks: usize) -> usize {
    if chunks * CHUNK_LEN < PARALLEL_MIN_LEN {
        return chunks.max(1);
    }
    (chunks / (8 * rayon::current_num_threads())).clamp(4, 64)
}

/// Runs `work` on every batch, on the calling thread and on as many of the rayon pool's threads as
/// the pool has, less one, each taking the next batch from a shared queue as it finishes one.
/// Returns the failure `(chunk index, error)` with the lowest index, if any.
///
/// The caller works too, and starts at once. A server thread that seals now and then finds the
/// pool asleep: handing it the whole message (what a parallel iterator does from outside the pool)
/// made the caller wait 30-40 µs for a worker to wake and then for it to wake the next, a third of
/// a 1 MiB seal. Here the workers join when they are up. From inside the pool it works the same
/// (the spawned batches go to the worker's own queue).
fn spread<T: Send, E: Send>(
    batches: impl ExactSizeIterator<Item = T> + Send,
    work: impl Fn(T) -> Option<(usize, E)> + Sync,
) -> Option<(usize, E)> {
    let helpers = rayon::current_num_threads()
        .min(batches.len())
        .saturating_sub(1);
    if helpers == 0 {
        let mut batches = batches;
        return batches.find_map(work);
    }
    fn lock<X>(m: &std::sync::Mutex<X>) -> std::sync::MutexGuard<'_, X> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    let queue = std::sync::Mutex::new(batches);
    let first_failure = std::sync::Mutex::new(None::<(usize, E)>);
    let drain = || {
        loop {
            // (`let … else`, not `while let`: the guard must not live through `work`.)
            let Some(batch) = lock(&queue).next() else {
                break;
            };
            if let Some(f) = work(batch) {
                let mut first = lock(&first_failure);
                if first.as_ref().is_none_or(|g| f.0 < g.0) {
                    *first = Some(f);
                }
            }
        }
    };
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| drain());
        }
        drain();
    });
    first_failure
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// HKDF-Expand (RFC 5869 section 2.3) over SHA-512 with `info` given in pieces. Written out because
/// the `hkdf` crate's `from_prk` insists on a PRK at least as long as the hash (64 bytes), while
/// Cobblestone's PRK is the 32-byte input key, which RFC 5869 allows.
pub(crate) fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], okm: &mut [u8]) {
    assert!(okm.len() <= 255 * 64, "HKDF-Expand output limit");
    let mut prev: Option<Zeroizing<[u8; 64]>> = None;
    for (i, out) in okm.chunks_mut(64).enumerate() {
        let mut mac =
            <Hmac<Sha512> as Mac>::new_from_slice(prk).expect("HMAC takes any key length");
        if let Some(t) = &prev {
            mac.update(t.as_ref());
        }
        for piece in info {
            mac.update(piece);
        }
        mac.update(&[i as u8 + 1]);
        let t = Zeroizing::new(<[u8; 64]>::from(mac.finalize().into_bytes()));
        out.copy_from_slice(&t[..out.len()]);
        prev = Some(t);
    }
}

/// The stored length of a message of `plaintext_len` bytes, for a length the caller holds (a buffer's);
/// for one read from metadata use [`checked_sealed_len`] (past 2^63 this overflows: a panic with
/// overflow checks on, a wrong length without).
pub const fn sealed_len(plaintext_len: u64) -> u64 {
    let full = plaintext_len / CHUNK_LEN as u64;
    HEADER_LEN as u64
        + full * SEALED_CHUNK_LEN as u64
        + plaintext_len % CHUNK_LEN as u64
        + TAG_LEN as u64
}

/// [`sealed_len`] of a length from metadata, which may be anything: [`Error::TooLarge`] past
/// [`MAX_OBJECT_SIZE`](super::MAX_OBJECT_SIZE) (where [`sealed_len`] could wrap) instead of a wrong length.
///
/// # Errors
///
/// [`Error::TooLarge`].
pub fn checked_sealed_len(plaintext_len: u64) -> Result<u64, Error> {
    if plaintext_len > super::MAX_OBJECT_SIZE {
        return Err(Error::TooLarge);
    }
    Ok(sealed_len(plaintext_len))
}

/// The plaintext length of a stored message of `sealed_len` bytes.
///
/// # Errors
///
/// [`Error::Truncated`] for a length no message has: shorter than the header and an empty chunk, or
/// ending in a partial tag or a chunk that is a full 16 KiB (the final chunk must be short).
pub fn plaintext_len(sealed_len: u64) -> Result<u64, Error> {
    let body = sealed_len
        .checked_sub(HEADER_LEN as u64)
        .ok_or(Error::Truncated)?;
    let full = body / SEALED_CHUNK_LEN as u64;
    let last = body % SEALED_CHUNK_LEN as u64;
    if last < TAG_LEN as u64 {
        return Err(Error::Truncated);
    }
    if full >= MAX_CHUNKS {
        return Err(Error::TooLarge);
    }
    Ok(full * CHUNK_LEN as u64 + last - TAG_LEN as u64)
}

/// Number of chunks (the final one included) of a message of `plaintext_len` bytes.
pub const fn chunk_count(plaintext_len: u64) -> u64 {
    plaintext_len / CHUNK_LEN as u64 + 1
}

/// The per-message key, base nonce and commitment derived from an input key, a salt and a context.
/// Holds the AES key schedule (zeroized on drop) and the salt and commitment to write or check.
pub struct MessageKey {
    gcm: Aes256Gcm,
    base_nonce: [u8; 12],
    salt: [u8; SALT_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageKey")
            .field("backend", &self.gcm.backend())
            .finish_non_exhaustive()
    }
}

impl Drop for MessageKey {
    fn drop(&mut self) {
        self.base_nonce.zeroize();
    }
}

impl MessageKey {
    /// Derives the message key for `input_key` (32 bytes), `salt` and `context`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKeySize`] if `input_key` is not 32 bytes; [`Error::Backend`] if
    /// `SSEKIT_BACKEND` names a backend this CPU lacks.
    pub fn derive(input_key: &[u8], salt: &[u8; SALT_LEN], context: &[u8]) -> Result<Self, Error> {
        Self::derive_on(input_key, salt, context, None)
    }

    /// [`MessageKey::derive`] on a chosen backend (`None`: the detected one, or `SSEKIT_BACKEND`'s).
    /// DSSE-KMS runs its outer layer on [`Backend::Portable`](crate::aead::Backend::Portable), an
    /// implementation independent of the inner layer's.
    pub(crate) fn derive_on(
        input_key: &[u8],
        salt: &[u8; SALT_LEN],
        context: &[u8],
        backend: Option<crate::aead::Backend>,
    ) -> Result<Self, Error> {
        if input_key.len() != 32 {
            return Err(Error::InvalidKeySize);
        }
        let mut okm = Zeroizing::new([0u8; 32 + 12 + COMMITMENT_LEN]);
        hkdf_expand_sha512(input_key, &[INFO_PREFIX, salt, context], okm.as_mut());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&okm[..32]);
        let mut base_nonce = [0u8; 12];
        base_nonce.copy_from_slice(&okm[32..44]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&okm[44..]);
        let gcm = match backend {
            None => Aes256Gcm::from_env(&key),
            Some(b) => Aes256Gcm::with_backend(&key, b),
        }
        .map_err(Error::Backend)?;
        Ok(MessageKey {
            gcm,
            base_nonce,
            salt: *salt,
            commitment,
        })
    }

    /// Derives the key for the message whose 56-byte header is `header` and checks its commitment,
    /// before any chunk is touched.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKey`] if the commitment does not match: a wrong key, a wrong context, or a damaged
    /// header (the three are indistinguishable, by design of the commitment); otherwise as
    /// [`MessageKey::derive`].
    pub fn for_header(
        input_key: &[u8],
        header: &[u8; HEADER_LEN],
        context: &[u8],
    ) -> Result<Self, Error> {
        Self::for_header_on(input_key, header, context, None)
    }

    /// [`MessageKey::for_header`] on a chosen backend, as [`MessageKey::derive_on`].
    pub(crate) fn for_header_on(
        input_key: &[u8],
        header: &[u8; HEADER_LEN],
        context: &[u8],
        backend: Option<crate::aead::Backend>,
    ) -> Result<Self, Error> {
        let salt: &[u8; SALT_LEN] = header[..SALT_LEN].try_into().expect("24 bytes");
        let key = Self::derive_on(input_key, salt, context, backend)?;
        if bool::from(key.commitment.ct_eq(&header[SALT_LEN..])) {
            Ok(key)
        } else {
            Err(Error::WrongKey)
        }
    }

    /// The 56-byte header to write before chunk 0.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..SALT_LEN].copy_from_slice(&self.salt);
        h[SALT_LEN..].copy_from_slice(&self.commitment);
        h
    }

    /// The backend the chunks run on.
    pub fn backend(&self) -> crate::aead::Backend {
        self.gcm.backend()
    }

    fn nonce(&self, index: u64) -> [u8; 12] {
        debug_assert!(index < MAX_CHUNKS);
        let mut n = self.base_nonce;
        for (b, c) in n[4..].iter_mut().zip(index.to_be_bytes()) {
            *b ^= c;
        }
        n
    }

    /// Seals chunk `index` from `plaintext` into `out` (`plaintext.len() + 16` bytes).
    pub(crate) fn seal_chunk_into(&self, index: u64, plaintext: &[u8], out: &mut [u8]) {
        let (body, tag) = out.split_at_mut(plaintext.len());
        let t = self.gcm.seal_into(&self.nonce(index), &[], plaintext, body);
        tag.copy_from_slice(&t.expect("a chunk fits its slot and GCM's length limit"));
    }

    /// Opens sealed chunk `index` (`sealed` = ciphertext ‖ tag) in place; returns the plaintext length.
    /// On failure the ciphertext part of `sealed` is zeroed.
    pub(crate) fn open_chunk_in_place(
        &self,
        index: u64,
        sealed: &mut [u8],
    ) -> Result<usize, Error> {
        let len = sealed.len().checked_sub(TAG_LEN).ok_or(Error::Truncated)?;
        let (body, tag) = sealed.split_at_mut(len);
        let tag: &[u8; 16] = (&*tag).try_into().expect("16 bytes");
        self.gcm
            .open_in_place(&self.nonce(index), &[], body, tag)
            .map_err(|_| Error::Tampered { chunk: index })?;
        Ok(len)
    }

    /// Seals chunks `first..` from `plaintext` (cut into 16 KiB chunks) into `out`, which holds
    /// exactly their sealed lengths, plus 16 bytes for an empty final chunk when the caller ends the
    /// message on a chunk boundary. Spread over the pool when the batch is large ([`spread`]).
    pub(crate) fn seal_chunks_into(&self, first: u64, plaintext: &[u8], out: &mut [u8]) {
        let pieces = plaintext.len().div_ceil(CHUNK_LEN);
        let sealed = pieces * SEALED_CHUNK_LEN - (pieces * CHUNK_LEN - plaintext.len());
        let (body, empty_final) = out.split_at_mut(sealed);
        let per = chunks_per_batch(pieces);
        let batches = plaintext
            .chunks(per * CHUNK_LEN)
            .zip(body.chunks_mut(per * SEALED_CHUNK_LEN))
            .enumerate();
        spread(batches, |(b, (p, o))| {
            let chunks = p.chunks(CHUNK_LEN).zip(o.chunks_mut(SEALED_CHUNK_LEN));
            for (j, (p, o)) in chunks.enumerate() {
                self.seal_chunk_into(first + (b * per + j) as u64, p, o);
            }
            None::<(usize, ())>
        });
        if !empty_final.is_empty() {
            debug_assert_eq!(empty_final.len(), TAG_LEN);
            self.seal_chunk_into(first + pieces as u64, &[], empty_final);
        }
    }

    /// Seals, in place, consecutive chunks `first..` laid out at a stride of [`SEALED_CHUNK_LEN`] in
    /// `buf` (the last may be shorter, down to a tag alone): each chunk's plaintext is already in its
    /// first bytes, and its last 16 bytes receive the tag. Spread over the pool when the batch is
    /// large.
    pub(crate) fn seal_chunks_in_place(&self, first: u64, buf: &mut [u8]) {
        let per = chunks_per_batch(buf.len().div_ceil(SEALED_CHUNK_LEN));
        let batches = buf.chunks_mut(per * SEALED_CHUNK_LEN).enumerate();
        spread(batches, |(b, batch)| {
            for (j, c) in batch.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
                let (body, tag) = c.split_at_mut(c.len() - TAG_LEN);
                let nonce = self.nonce(first + (b * per + j) as u64);
                tag.copy_from_slice(&self.gcm.seal_in_place(&nonce, &[], body));
            }
            None::<(usize, ())>
        });
    }

    /// Opens, in place, consecutive sealed chunks `first..` laid out at a stride of
    /// [`SEALED_CHUNK_LEN`] in `sealed` (the last may be shorter). Returns how many chunks, from the
    /// first, authenticated: all of them, or the valid prefix and the error of the first that failed.
    pub(crate) fn open_chunks_in_place(
        &self,
        first: u64,
        sealed: &mut [u8],
    ) -> (usize, Result<(), Error>) {
        let chunks = sealed.len().div_ceil(SEALED_CHUNK_LEN);
        let per = chunks_per_batch(chunks);
        let batches = sealed.chunks_mut(per * SEALED_CHUNK_LEN).enumerate();
        let failure = spread(batches, |(b, batch)| {
            batch
                .chunks_mut(SEALED_CHUNK_LEN)
                .enumerate()
                .find_map(|(j, c)| {
                    let i = b * per + j;
                    self.open_chunk_in_place(first + i as u64, c)
                        .err()
                        .map(|e| (i, e))
                })
        });
        match failure {
            None => (chunks, Ok(())),
            Some((i, e)) => (i, Err(e)),
        }
    }
}

impl MessageKey {
    /// Opens consecutive sealed chunks `first..` (`body`: full chunks at a stride of
    /// [`SEALED_CHUNK_LEN`], the last possibly shorter, down to a tag alone) into `out`, which holds
    /// exactly their plaintext. Spread over the pool when there are many chunks; `out` is not zeroed
    /// on failure (the callers do it).
    pub(crate) fn open_chunks_into(
        &self,
        first: u64,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        let chunks = body.len().div_ceil(SEALED_CHUNK_LEN);
        debug_assert_eq!(body.len(), out.len() + chunks * TAG_LEN);
        let per = chunks_per_batch(out.len().div_ceil(CHUNK_LEN));
        // `out` has one piece per chunk, except that an empty final chunk has no piece: zip stops
        // there, so check that chunk on its own.
        let batches = body
            .chunks(per * SEALED_CHUNK_LEN)
            .zip(out.chunks_mut(per * CHUNK_LEN))
            .enumerate();
        let failed = spread(batches, |(b, (c, o))| {
            let pieces = c.chunks(SEALED_CHUNK_LEN).zip(o.chunks_mut(CHUNK_LEN));
            pieces.enumerate().find_map(|(j, (c, o))| {
                let i = b * per + j;
                let (ct, tag) = c.split_at(c.len() - TAG_LEN);
                let tag: &[u8; 16] = tag.try_into().expect("16 bytes");
                self.gcm
                    .open_into(&self.nonce(first + i as u64), &[], ct, tag, o)
                    .err()
                    .map(|_| (i, ()))
            })
        });
        if let Some((i, ())) = failed {
            return Err(Error::Tampered {
                chunk: first + i as u64,
            });
        }
        if chunks > out.len().div_ceil(CHUNK_LEN) {
            let mut tag_only = [0u8; TAG_LEN];
            tag_only.copy_from_slice(&body[body.len() - TAG_LEN..]);
            self.open_chunk_in_place(first + chunks as u64 - 1, &mut tag_only)?;
        }
        Ok(())
    }
}

/// Seals `plaintext` as one message under `input_key` and `context` with the given salt, into `out`
/// (exactly [`sealed_len`] bytes).
pub(crate) fn seal_with_salt_into(
    input_key: &[u8],
    context: &[u8],
    salt: &[u8; SALT_LEN],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    seal_with_salt_into_on(input_key, context, salt, plaintext, out, None)
}

/// [`seal_with_salt_into`] on a chosen backend ([`MessageKey::derive_on`]).
pub(crate) fn seal_with_salt_into_on(
    input_key: &[u8],
    context: &[u8],
    salt: &[u8; SALT_LEN],
    plaintext: &[u8],
    out: &mut [u8],
    backend: Option<crate::aead::Backend>,
) -> Result<(), Error> {
    if out.len() as u64 != sealed_len(plaintext.len() as u64) {
        return Err(Error::BufferSize {
            expected: sealed_len(plaintext.len() as u64),
            got: out.len() as u64,
        });
    }
    if chunk_count(plaintext.len() as u64) > MAX_CHUNKS {
        return Err(Error::TooLarge);
    }
    let key = MessageKey::derive_on(input_key, salt, context, backend)?;
    let (header, body) = out.split_at_mut(HEADER_LEN);
    header.copy_from_slice(&key.header());
    key.seal_chunks_into(0, plaintext, body);
    Ok(())
}

/// Where each chunk's plaintext sits in a sealed message of `plaintext_len` bytes, as byte ranges of
/// the message: chunk `i` at `HEADER_LEN + i * SEALED_CHUNK_LEN`, 16 KiB long except the final one. An
/// empty final chunk has no range.
pub fn chunk_slots(plaintext_len: usize) -> impl ExactSizeIterator<Item = Range<usize>> {
    (0..plaintext_len.div_ceil(CHUNK_LEN)).map(move |i| {
        let start = HEADER_LEN + i * SEALED_CHUNK_LEN;
        start..start + CHUNK_LEN.min(plaintext_len - i * CHUNK_LEN)
    })
}

/// The message length `buf` must have: the plaintext length a whole message of `buf.len()` bytes holds.
fn in_place_len(buf: &[u8]) -> Result<usize, Error> {
    plaintext_len(buf.len() as u64).map(|n| n as usize)
}

/// Seals in place a message whose plaintext the caller has put in its [`chunk_slots`] of `buf` (a
/// whole message's length, [`sealed_len`] of the plaintext): writes the header and every tag.
pub(crate) fn seal_with_salt_in_place(
    input_key: &[u8],
    context: &[u8],
    salt: &[u8; SALT_LEN],
    buf: &mut [u8],
) -> Result<(), Error> {
    let len = in_place_len(buf).map_err(|_| {
        Error::BadLayout("an in-place buffer must be sealed_len(plaintext) bytes long")
    })?;
    if chunk_count(len as u64) > MAX_CHUNKS {
        return Err(Error::TooLarge);
    }
    let key = MessageKey::derive(input_key, salt, context)?;
    let (header, body) = buf.split_at_mut(HEADER_LEN);
    header.copy_from_slice(&key.header());
    key.seal_chunks_in_place(0, body);
    Ok(())
}

/// Opens a whole message in place, leaving each chunk's plaintext in its [`chunk_slots`]; returns the
/// plaintext length. The commitment is checked before any chunk; on any failure every slot is zeroed.
pub(crate) fn open_in_place(
    input_key: &[u8],
    context: &[u8],
    buf: &mut [u8],
) -> Result<usize, Error> {
    let len = in_place_len(buf)?;
    let (header, body) = buf.split_at_mut(HEADER_LEN);
    let header: &[u8; HEADER_LEN] = (&*header).try_into().expect("HEADER_LEN bytes");
    let key = MessageKey::for_header(input_key, header, context)?;
    let (_, result) = key.open_chunks_in_place(0, body);
    if result.is_err() {
        body.fill(0);
    }
    result.map(|()| len)
}

/// Opens one whole message into `out` (exactly [`plaintext_len`] bytes). The commitment is checked
/// before any chunk; chunks are opened in parallel; on any failure `out` is zeroed.
pub(crate) fn open_into(
    input_key: &[u8],
    context: &[u8],
    sealed: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    open_into_on(input_key, context, sealed, out, None)
}

/// [`open_into`] on a chosen backend ([`MessageKey::derive_on`]).
pub(crate) fn open_into_on(
    input_key: &[u8],
    context: &[u8],
    sealed: &[u8],
    out: &mut [u8],
    backend: Option<crate::aead::Backend>,
) -> Result<(), Error> {
    let header: &[u8; HEADER_LEN] = sealed
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::Truncated)?;
    let len = plaintext_len(sealed.len() as u64)?;
    if out.len() as u64 != len {
        return Err(Error::BufferSize {
            expected: len,
            got: out.len() as u64,
        });
    }
    let key = MessageKey::for_header_on(input_key, header, context, backend)?;
    let result = key.open_chunks_into(0, &sealed[HEADER_LEN..], out);
    if result.is_err() {
        out.fill(0);
    }
    result
}
