//! Push-model streaming: the caller hands bytes in and takes bytes out into buffers of its own
//! (the C ABI's `_update`/`_finish`), where [`SealWriter`](super::SealWriter) and
//! [`OpenReader`](super::OpenReader) wrap `std::io` streams.
//!
//! Each call's output length is known before the call ([`SealFeed::update_len`],
//! [`OpenFeed::update_len`]), so a caller sizes its buffer exactly and a call with a short buffer
//! changes nothing. A feed holds at most one partial chunk (16 KiB and a tag): every full 16 KiB
//! chunk is sealed as soon as it is complete (the final chunk of a message is always short, so a full
//! one is never final), and every stored chunk is opened as soon as its last byte arrives. Large
//! calls run on the rayon pool, as whole-buffer seals do.

use zeroize::Zeroizing;

use super::Error;
use super::cobblestone::{
    self, CHUNK_LEN, HEADER_LEN, MAX_CHUNKS, MessageKey, SALT_LEN, SEALED_CHUNK_LEN,
};
use crate::aead::{Backend, TAG_LEN};

/// Seals one message from bytes pushed in pieces.
pub struct SealFeed {
    key: MessageKey,
    header_sent: bool,
    /// Plaintext of the chunk being filled (less than 16 KiB).
    pending: Zeroizing<Vec<u8>>,
    next_chunk: u64,
    written: u64,
    finished: bool,
}

impl std::fmt::Debug for SealFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealFeed")
            .field("written", &self.written)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl SealFeed {
    /// A feed sealing a message under `input_key` and `context` with a fresh salt.
    pub(crate) fn new(
        input_key: &[u8],
        context: &[u8],
        backend: Option<Backend>,
    ) -> Result<Self, Error> {
        let key = MessageKey::derive_on(input_key, &super::random_salt(), context, backend)?;
        Ok(SealFeed {
            key,
            header_sent: false,
            pending: Zeroizing::new(Vec::with_capacity(CHUNK_LEN)),
            next_chunk: 0,
            written: 0,
            finished: false,
        })
    }

    /// The message's salt (what a part table row names).
    pub fn salt(&self) -> [u8; SALT_LEN] {
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(&self.key.header()[..SALT_LEN]);
        s
    }

    /// Plaintext bytes taken so far.
    pub fn plaintext_len(&self) -> u64 {
        self.written
    }

    fn header_len(&self) -> usize {
        if self.header_sent { 0 } else { HEADER_LEN }
    }

    /// The exact number of bytes [`SealFeed::update`] writes for `n` more plaintext bytes
    /// (`usize::MAX` where that would not fit a `usize`).
    pub fn update_len(&self, n: usize) -> usize {
        self.pending
            .len()
            .checked_add(n)
            .and_then(|t| (t / CHUNK_LEN).checked_mul(SEALED_CHUNK_LEN))
            .and_then(|b| b.checked_add(self.header_len()))
            .unwrap_or(usize::MAX)
    }

    /// The bytes [`SealFeed::update`] of `n` bytes and then [`SealFeed::finish`] write together.
    pub fn update_then_finish_len(&self, n: usize) -> usize {
        match self.pending.len().checked_add(n) {
            Some(t) => self.update_len(n).saturating_add(t % CHUNK_LEN + TAG_LEN),
            None => usize::MAX,
        }
    }

    /// The exact number of bytes [`SealFeed::finish`] writes.
    pub fn finish_len(&self) -> usize {
        self.header_len() + self.pending.len() + TAG_LEN
    }

    /// Seals `input` (every chunk it completes) into `out`; returns the bytes written, exactly
    /// [`SealFeed::update_len`]`(input.len())`.
    ///
    /// # Errors
    ///
    /// [`Error::BufferSize`] for an `out` shorter than that (nothing is taken), [`Error::TooLarge`]
    /// past the format's 2^38 chunks, [`Error::Finished`] after [`SealFeed::finish`].
    pub fn update(&mut self, mut input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::Finished);
        }
        let need = self.update_len(input.len());
        if out.len() < need {
            return Err(Error::BufferSize {
                expected: need as u64,
                got: out.len() as u64,
            });
        }
        let new_chunks = ((need - self.header_len()) / SEALED_CHUNK_LEN) as u64;
        // The final chunk needs an index too.
        if self.next_chunk + new_chunks >= MAX_CHUNKS {
            return Err(Error::TooLarge);
        }
        let total = input.len();
        let mut at = 0;
        if !self.header_sent {
            out[..HEADER_LEN].copy_from_slice(&self.key.header());
            at = HEADER_LEN;
            self.header_sent = true;
        }
        if !self.pending.is_empty() {
            let take = (CHUNK_LEN - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == CHUNK_LEN {
                self.key.seal_chunks_into(
                    self.next_chunk,
                    &self.pending,
                    &mut out[at..at + SEALED_CHUNK_LEN],
                );
                self.next_chunk += 1;
                at += SEALED_CHUNK_LEN;
                self.pending.clear();
            }
        }
        let full = input.len() / CHUNK_LEN;
        if full > 0 {
            let (body, rest) = input.split_at(full * CHUNK_LEN);
            let n = full * SEALED_CHUNK_LEN;
            self.key
                .seal_chunks_into(self.next_chunk, body, &mut out[at..at + n]);
            self.next_chunk += full as u64;
            at += n;
            input = rest;
        }
        self.pending.extend_from_slice(input);
        self.written += total as u64;
        debug_assert_eq!(at, need);
        Ok(at)
    }

    /// Seals what is pending as the final chunk into `out`; returns the bytes written, exactly
    /// [`SealFeed::finish_len`]. The feed takes nothing more afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::BufferSize`] for a short `out` (the feed is unchanged), [`Error::Finished`] when
    /// called twice.
    pub fn finish(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::Finished);
        }
        let need = self.finish_len();
        if out.len() < need {
            return Err(Error::BufferSize {
                expected: need as u64,
                got: out.len() as u64,
            });
        }
        let mut at = 0;
        if !self.header_sent {
            out[..HEADER_LEN].copy_from_slice(&self.key.header());
            at = HEADER_LEN;
            self.header_sent = true;
        }
        let n = self.pending.len() + TAG_LEN;
        self.key
            .seal_chunk_into(self.next_chunk, &self.pending, &mut out[at..at + n]);
        self.pending.clear();
        self.finished = true;
        Ok(at + n)
    }
}

/// Opens one message of known, authenticated plaintext length from stored bytes pushed in pieces.
/// A chunk's plaintext is released only once that chunk authenticated; after a failure every call
/// fails again with the same error.
pub struct OpenFeed {
    input_key: Zeroizing<[u8; 32]>,
    context: Vec<u8>,
    backend: Option<Backend>,
    /// The part number and salt the header must carry (the part table's row), when known.
    salt: Option<(u32, [u8; SALT_LEN])>,
    key: Option<MessageKey>,
    len: u64,
    stored: u64,
    consumed: u64,
    /// The header, then the stored bytes of the chunk being filled.
    pending: Vec<u8>,
    /// Where that chunk's plaintext is opened (zeroized).
    scratch: Zeroizing<Vec<u8>>,
    next_chunk: u64,
    emitted: u64,
    error: Option<Error>,
}

impl std::fmt::Debug for OpenFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFeed")
            .field("len", &self.len)
            .field("emitted", &self.emitted)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl OpenFeed {
    /// A feed opening the message of `len` plaintext bytes under `input_key` and `context`.
    pub(crate) fn new(
        input_key: &[u8; 32],
        context: &[u8],
        len: u64,
        backend: Option<Backend>,
        salt: Option<(u32, [u8; SALT_LEN])>,
    ) -> Result<Self, Error> {
        let stored = cobblestone::checked_sealed_len(len)?;
        Ok(OpenFeed {
            input_key: Zeroizing::new(*input_key),
            context: context.to_vec(),
            backend,
            salt,
            key: None,
            len,
            stored,
            consumed: 0,
            pending: Vec::with_capacity(SEALED_CHUNK_LEN),
            scratch: Zeroizing::new(vec![0u8; CHUNK_LEN]),
            next_chunk: 0,
            emitted: 0,
            error: None,
        })
    }

    /// The message's plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message's stored length (what the feed takes in all).
    pub fn stored_len(&self) -> u64 {
        self.stored
    }

    /// Plaintext released once `avail` stored bytes have arrived.
    fn released_at(&self, avail: u64) -> u64 {
        if avail >= self.stored {
            return self.len;
        }
        let body = avail.saturating_sub(HEADER_LEN as u64);
        (body / SEALED_CHUNK_LEN as u64 * CHUNK_LEN as u64).min(self.len)
    }

    /// The exact number of plaintext bytes [`OpenFeed::update`] writes for `n` more stored bytes,
    /// if they all authenticate (and at most that otherwise).
    pub fn update_len(&self, n: usize) -> usize {
        let avail = self.consumed.saturating_add(n as u64).min(self.stored);
        usize::try_from(self.released_at(avail) - self.emitted).unwrap_or(usize::MAX)
    }

    /// The stored bytes of chunk `k`.
    fn chunk_stored_len(&self, k: u64) -> usize {
        if k == self.len / CHUNK_LEN as u64 {
            (self.len % CHUNK_LEN as u64) as usize + TAG_LEN
        } else {
            SEALED_CHUNK_LEN
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.error = Some(e.clone());
        self.pending.clear();
        e
    }

    /// Takes stored bytes, writes the plaintext of every chunk they complete into `out`; returns
    /// the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::BufferSize`] for an `out` shorter than [`OpenFeed::update_len`] (nothing is taken);
    /// [`Error::WrongKey`] or [`Error::PartReplaced`] from the header, [`Error::Tampered`] from a
    /// chunk, [`Error::LengthMismatch`] for data past the message's end; then that error forever.
    /// On a failure nothing of the failing call's output is valid (it is zeroed).
    pub fn update(&mut self, mut input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let need = self.update_len(input.len());
        if out.len() < need {
            return Err(Error::BufferSize {
                expected: need as u64,
                got: out.len() as u64,
            });
        }
        if self.consumed.saturating_add(input.len() as u64) > self.stored {
            let found = self.len + (self.consumed + input.len() as u64 - self.stored);
            return Err(self.fail(Error::LengthMismatch {
                expected: self.len,
                found,
            }));
        }
        self.consumed += input.len() as u64;
        let mut at = 0;
        let r = self.take(&mut input, out, &mut at);
        if let Err(e) = r {
            out[..need].fill(0);
            return Err(self.fail(e));
        }
        self.emitted += at as u64;
        Ok(at)
    }

    fn take(&mut self, input: &mut &[u8], out: &mut [u8], at: &mut usize) -> Result<(), Error> {
        if self.key.is_none() {
            let n = (HEADER_LEN - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..n]);
            *input = &input[n..];
            if self.pending.len() < HEADER_LEN {
                return Ok(());
            }
            let header: [u8; HEADER_LEN] = self.pending[..].try_into().expect("HEADER_LEN bytes");
            self.pending.clear();
            if let Some((part, salt)) = self.salt {
                super::range::check_salt(part, Some(salt), &header)?;
            }
            self.key = Some(MessageKey::for_header_on(
                &self.input_key[..],
                &header,
                &self.context,
                self.backend,
            )?);
        }
        let key = self.key.as_ref().expect("set above");
        // The chunk being filled.
        if !self.pending.is_empty() {
            let want = self.chunk_stored_len(self.next_chunk);
            let n = (want - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..n]);
            *input = &input[n..];
            if self.pending.len() < want {
                return Ok(());
            }
            let plain = want - TAG_LEN;
            key.open_chunks_into(self.next_chunk, &self.pending, &mut self.scratch[..plain])?;
            out[*at..*at + plain].copy_from_slice(&self.scratch[..plain]);
            self.scratch[..plain].fill(0);
            *at += plain;
            self.next_chunk += 1;
            self.pending.clear();
        }
        // Whole chunks straight from the input into `out`.
        let last = self.len / CHUNK_LEN as u64;
        let mut body = 0usize;
        let mut plain = 0usize;
        let mut k = self.next_chunk;
        while k <= last {
            let s = self.chunk_stored_len(k);
            if body + s > input.len() {
                break;
            }
            body += s;
            plain += s - TAG_LEN;
            k += 1;
        }
        if body > 0 {
            key.open_chunks_into(self.next_chunk, &input[..body], &mut out[*at..*at + plain])?;
            *at += plain;
            self.next_chunk = k;
            *input = &input[body..];
        }
        self.pending.extend_from_slice(input);
        *input = &[];
        Ok(())
    }

    /// Checks that the whole message arrived (and authenticated).
    ///
    /// # Errors
    ///
    /// The error of an earlier call, or [`Error::Truncated`] when stored bytes are missing.
    pub fn finish(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.consumed < self.stored || self.emitted < self.len || self.key.is_none() {
            return Err(self.fail(Error::Truncated));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{part_context, sealed_len};

    fn seal_in_pieces(key: &[u8; 32], data: &[u8], piece: usize) -> Vec<u8> {
        let mut f = SealFeed::new(key, &part_context(0), None).unwrap();
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            let mut buf = vec![0u8; f.update_len(p.len())];
            // A short buffer changes nothing.
            if !buf.is_empty() {
                let mut short = vec![0u8; buf.len() - 1];
                assert!(matches!(
                    f.update(p, &mut short),
                    Err(Error::BufferSize { .. })
                ));
            }
            let n = f.update(p, &mut buf).unwrap();
            assert_eq!(n, buf.len());
            out.extend_from_slice(&buf);
        }
        let mut buf = vec![0u8; f.finish_len()];
        assert_eq!(f.finish(&mut buf).unwrap(), buf.len());
        out.extend_from_slice(&buf);
        assert!(matches!(f.finish(&mut buf), Err(Error::Finished)));
        out
    }

    fn open_in_pieces(
        key: &[u8; 32],
        sealed: &[u8],
        len: u64,
        piece: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut f = OpenFeed::new(key, &part_context(0), len, None, None)?;
        let mut out = Vec::new();
        for p in sealed.chunks(piece.max(1)) {
            let mut buf = vec![0u8; f.update_len(p.len())];
            let n = f.update(p, &mut buf)?;
            assert_eq!(n, buf.len());
            out.extend_from_slice(&buf);
        }
        f.finish()?;
        Ok(out)
    }

    #[test]
    fn pieces_of_any_size_round_trip_and_match_whole_buffer_opening() {
        let key = [7u8; 32];
        for len in [
            0usize,
            1,
            100,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            5 * CHUNK_LEN + 17,
            70 * CHUNK_LEN,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for piece in [1usize, 7, 4096, CHUNK_LEN, CHUNK_LEN + 3, 1 << 20] {
                if len > 100_000 && piece < 4096 {
                    continue;
                }
                let sealed = seal_in_pieces(&key, &data, piece);
                assert_eq!(sealed.len() as u64, sealed_len(len as u64));
                let mut whole = vec![0u8; len];
                cobblestone::open_into(&key, &part_context(0), &sealed, &mut whole).unwrap();
                assert_eq!(whole, data);
                for opiece in [1usize, 13, SEALED_CHUNK_LEN, 1 << 20] {
                    if len > 100_000 && opiece < 4096 {
                        continue;
                    }
                    assert_eq!(
                        open_in_pieces(&key, &sealed, len as u64, opiece).unwrap(),
                        data
                    );
                }
            }
        }
    }

    #[test]
    fn tampering_truncation_extension_and_wrong_keys_fail_and_stay_failed() {
        let key = [9u8; 32];
        let data = vec![5u8; 3 * CHUNK_LEN + 10];
        let sealed = seal_in_pieces(&key, &data, 1000);
        let len = data.len() as u64;
        assert_eq!(
            open_in_pieces(&[8u8; 32], &sealed, len, 100),
            Err(Error::WrongKey)
        );
        let mut bad = sealed.clone();
        bad[HEADER_LEN + SEALED_CHUNK_LEN + 5] ^= 1;
        assert_eq!(
            open_in_pieces(&key, &bad, len, 5000),
            Err(Error::Tampered { chunk: 1 })
        );
        assert_eq!(
            open_in_pieces(&key, &sealed[..sealed.len() - 1], len, 5000),
            Err(Error::Truncated)
        );
        let mut long = sealed.clone();
        long.push(0);
        assert!(matches!(
            open_in_pieces(&key, &long, len, 5000),
            Err(Error::LengthMismatch { .. })
        ));
        // A wrong authenticated length.
        assert!(open_in_pieces(&key, &sealed, len - 1, 5000).is_err());
        // After a failure, every call fails the same way.
        let mut f = OpenFeed::new(&key, &part_context(0), len, None, None).unwrap();
        let mut out = vec![0u8; f.update_len(bad.len())];
        assert_eq!(f.update(&bad, &mut out), Err(Error::Tampered { chunk: 1 }));
        assert!(
            out.iter().all(|&b| b == 0),
            "nothing of a failed call is released"
        );
        assert_eq!(f.update(&[], &mut []), Err(Error::Tampered { chunk: 1 }));
        assert_eq!(f.finish(), Err(Error::Tampered { chunk: 1 }));
    }
}
