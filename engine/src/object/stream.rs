//! Streaming seal and open, parallel over batches of chunks, memory bounded by one batch of input and
//! one of output (about 8 MiB) whatever the object size.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::cobblestone::{self, CHUNK_LEN, HEADER_LEN, MAX_CHUNKS, MessageKey, SEALED_CHUNK_LEN};
use super::{Error, check_part, part_context, random_salt};
use crate::aead::TAG_LEN;
use crate::keys::DataKey;

/// Chunks per batch: 256 × 16 KiB = 4 MiB, enough to keep 16 cores busy, small enough for a bounded
/// memory footprint.
pub const BATCH_CHUNKS: usize = 256;

/// Seals a stream into one message: `write` plaintext, then [`SealWriter::finish`]. Dropping it
/// unfinished leaves a message without its final chunk, which every reader rejects as truncated.
pub struct SealWriter<W: Write> {
    inner: W,
    key: MessageKey,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    next_chunk: u64,
    written: u64,
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SealWriter<W> {
    /// A writer sealing a single-part object's data under `dek` into `inner` (the header is written
    /// at once).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`], or `inner`'s write error.
    pub fn new(inner: W, dek: &DataKey) -> Result<Self, Error> {
        Self::new_part(inner, dek, 0)
    }

    /// A writer sealing part `part` (1..=10000).
    ///
    /// # Errors
    ///
    /// As [`SealWriter::new`], and [`Error::BadLayout`] for a part number over 10000.
    pub fn new_part(inner: W, dek: &DataKey, part: u32) -> Result<Self, Error> {
        check_part(part)?;
        Self::for_message(inner, dek.expose(), &part_context(part))
    }

    /// A writer sealing a raw Cobblestone-256 message with any context.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKeySize`], [`Error::Backend`], or `inner`'s write error.
    pub fn for_message(inner: W, input_key: &[u8], context: &[u8]) -> Result<Self, Error> {
        Self::for_message_on(inner, input_key, context, None)
    }

    /// [`SealWriter::for_message`] on a chosen backend (the outer layer of DSSE-KMS).
    pub(crate) fn for_message_on(
        mut inner: W,
        input_key: &[u8],
        context: &[u8],
        backend: Option<crate::aead::Backend>,
    ) -> Result<Self, Error> {
        let key = MessageKey::derive_on(input_key, &random_salt(), context, backend)?;
        inner.write_all(&key.header())?;
        Ok(SealWriter {
            inner,
            key,
            plain: Vec::with_capacity(BATCH_CHUNKS * CHUNK_LEN),
            // A full batch, plus the empty final chunk a chunk-aligned message ends with.
            sealed: vec![0u8; BATCH_CHUNKS * SEALED_CHUNK_LEN + TAG_LEN],
            next_chunk: 0,
            written: 0,
            poisoned: false,
        })
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.written
    }

    /// The message's salt (its first 24 bytes): what a part table row names ([`PartEntry`](super::PartEntry)).
    pub fn salt(&self) -> [u8; 24] {
        let mut s = [0u8; 24];
        s.copy_from_slice(&self.key.header()[..24]);
        s
    }

    /// Seals `plain` as whole, non-final chunks (or, when `last`, ending in the final short chunk) and
    /// writes them.
    fn seal_and_write(&mut self, plain: &[u8], last: bool) -> io::Result<()> {
        let chunks = if last {
            cobblestone::chunk_count(plain.len() as u64)
        } else {
            debug_assert_eq!(plain.len() % CHUNK_LEN, 0);
            (plain.len() / CHUNK_LEN) as u64
        };
        if self.next_chunk + chunks > MAX_CHUNKS {
            self.poisoned = true;
            return Err(Error::TooLarge.into());
        }
        let n = if last {
            (cobblestone::sealed_len(plain.len() as u64) - HEADER_LEN as u64) as usize
        } else {
            plain.len() / CHUNK_LEN * SEALED_CHUNK_LEN
        };
        self.key
            .seal_chunks_into(self.next_chunk, plain, &mut self.sealed[..n]);
        self.next_chunk += chunks;
        if let Err(e) = self.inner.write_all(&self.sealed[..n]) {
            self.poisoned = true;
            return Err(e);
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        let plain = std::mem::take(&mut self.plain);
        let r = self.seal_and_write(&plain, false);
        self.plain = plain;
        self.plain.clear();
        r
    }

    /// Seals what is buffered as the final chunks, flushes and returns the inner writer and the
    /// plaintext length.
    ///
    /// # Errors
    ///
    /// The inner writer's error, or an earlier failed write (the message is then incomplete).
    pub fn finish(mut self) -> Result<(W, u64), Error> {
        if self.poisoned {
            return Err(Error::Io {
                kind: io::ErrorKind::Other,
                message: "an earlier write failed; the message is incomplete".into(),
            });
        }
        let plain = std::mem::take(&mut self.plain);
        self.seal_and_write(&plain, true)?;
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::other(
                "an earlier write failed; the message is incomplete",
            ));
        }
        let total = buf.len();
        let batch = BATCH_CHUNKS * CHUNK_LEN;
        while !buf.is_empty() {
            if self.plain.len() == batch {
                self.flush_batch()?;
            }
            if self.plain.is_empty() && buf.len() > batch {
                // Whole batches straight from the caller's buffer, no copy. (Strictly more than a
                // batch: the bytes after it decide that these chunks are not final.)
                let (head, tail) = buf.split_at(batch);
                self.seal_and_write(head, false)?;
                self.written += batch as u64;
                buf = tail;
                continue;
            }
            let n = (batch - self.plain.len()).min(buf.len());
            self.plain.extend_from_slice(&buf[..n]);
            self.written += n as u64;
            buf = &buf[n..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Buffered plaintext stays buffered: a chunk is sealed only once it is known to be full or final.
        self.inner.flush()
    }
}

/// Opens a stream sealed as one message. Plaintext of a chunk is released only after that chunk
/// authenticated; after any failure every read fails again with the same error. On a seekable
/// source it also seeks ([`Seek`]), authenticating the message length (the final chunk) first.
pub struct OpenReader<R: Read> {
    inner: R,
    key: MessageKey,
    /// Sealed chunks of the current batch, opened in place, at a stride of `SEALED_CHUNK_LEN`.
    batch: Vec<u8>,
    /// Bytes of `batch` in use.
    batch_len: usize,
    /// Chunks of the batch that authenticated (their plaintext may be released).
    valid: usize,
    /// Index, in the message, of the batch's first chunk.
    batch_first: u64,
    /// Read position: chunk within the batch and byte within its plaintext.
    cur_chunk: usize,
    cur_off: usize,
    /// Error to return once the valid prefix is drained, and forever after.
    error: Option<Error>,
    /// True once the final chunk has been released.
    done: bool,
    /// Stored bytes consumed from `inner` since the message's first byte.
    consumed: u64,
    /// Plaintext length, once authenticated (seekable sources).
    len: Option<u64>,
}

impl<R: Read> std::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReader")
            .field("chunk", &(self.batch_first + self.cur_chunk as u64))
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    /// A reader of a message whose plaintext length is known and authenticated (from verified
    /// metadata): it reads exactly that message's stored length and no more.
    pub(crate) fn with_len(
        inner: R,
        input_key: &[u8],
        context: &[u8],
        len: u64,
        salt: Option<(u32, [u8; 24])>,
    ) -> Result<Self, Error> {
        Self::with_len_on(inner, input_key, context, len, None, salt)
    }

    /// [`OpenReader::with_len`] on a chosen backend (the outer layer of DSSE-KMS).
    pub(crate) fn with_len_on(
        inner: R,
        input_key: &[u8],
        context: &[u8],
        len: u64,
        backend: Option<crate::aead::Backend>,
        salt: Option<(u32, [u8; 24])>,
    ) -> Result<Self, Error> {
        let mut r = Self::open_header(inner, input_key, context, backend, salt)?;
        if len > super::MAX_OBJECT_SIZE {
            return Err(Error::TooLarge);
        }
        r.len = Some(len);
        Ok(r)
    }

    /// A reader opening a raw Cobblestone-256 message with any context but an object part's (those
    /// open through [`ObjectMeta::verify`](super::ObjectMeta::verify)).
    ///
    /// # Errors
    ///
    /// [`Error::WrongKey`], [`Error::Truncated`] (no complete header), [`Error::InvalidKeySize`],
    /// [`Error::BadLayout`] for an object part's context, or `inner`'s read error.
    pub fn for_message(inner: R, input_key: &[u8], context: &[u8]) -> Result<Self, Error> {
        super::refuse_object_context(context)?;
        Self::open_header(inner, input_key, context, None, None)
    }

    /// Reads the header and checks the commitment.
    fn open_header(
        mut inner: R,
        input_key: &[u8],
        context: &[u8],
        backend: Option<crate::aead::Backend>,
        salt: Option<(u32, [u8; 24])>,
    ) -> Result<Self, Error> {
        if input_key.len() != 32 {
            return Err(Error::InvalidKeySize);
        }
        let mut header = [0u8; HEADER_LEN];
        let n = read_full(&mut inner, &mut header)?;
        if n < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if let Some((part, salt)) = salt {
            super::range::check_salt(part, Some(salt), &header)?;
        }
        let key = MessageKey::for_header_on(input_key, &header, context, backend)?;
        Ok(OpenReader {
            inner,
            key,
            batch: vec![0u8; BATCH_CHUNKS * SEALED_CHUNK_LEN],
            batch_len: 0,
            valid: 0,
            batch_first: 0,
            cur_chunk: 0,
            cur_off: 0,
            error: None,
            done: false,
            consumed: HEADER_LEN as u64,
            len: None,
        })
    }

    /// The index of the chunk the next read starts in.
    fn next_chunk(&self) -> u64 {
        self.batch_first + self.cur_chunk as u64
    }

    /// Reads and opens the next batch of chunks from the current stored position.
    fn fill(&mut self) {
        let first = self.batch_first + self.valid as u64;
        let cap = BATCH_CHUNKS * SEALED_CHUNK_LEN;
        let want = match self.len {
            Some(len) => {
                let end = cobblestone::sealed_len(len) - HEADER_LEN as u64;
                (end.saturating_sub(first * SEALED_CHUNK_LEN as u64)).min(cap as u64) as usize
            }
            None => cap,
        };
        let got = match read_full(&mut self.inner, &mut self.batch[..want]) {
            Ok(n) => n,
            Err(e) => {
                self.error = Some(e.into());
                self.batch_len = 0;
                self.valid = 0;
                return;
            }
        };
        self.consumed += got as u64;
        self.batch_first = first;
        self.cur_chunk = 0;
        self.cur_off = 0;
        let at_end = match self.len {
            None => got < cap,
            // Known length: the batch ends the message when it reaches the end of the stored data.
            Some(len) => {
                let end = cobblestone::sealed_len(len) - HEADER_LEN as u64;
                first * SEALED_CHUNK_LEN as u64 + want as u64 == end
            }
        };
        if self.len.is_some() && got < want {
            // The source is shorter than the length authenticated earlier: it changed under us.
            self.batch_len = 0;
            self.valid = 0;
            self.error = Some(Error::Truncated);
            return;
        }
        let (usable, missing_final) = if at_end {
            let tail = got % SEALED_CHUNK_LEN;
            if tail < TAG_LEN {
                // No short final chunk (or a partial tag): the full chunks before may still be released.
                (got - tail, true)
            } else {
                (got, false)
            }
        } else {
            (got, false)
        };
        // No chunk index at or past the format's limit is ever used (a hostile stream could be longer).
        if first + usable.div_ceil(SEALED_CHUNK_LEN) as u64 > MAX_CHUNKS {
            self.batch_len = 0;
            self.valid = 0;
            self.error = Some(Error::TooLarge);
            return;
        }
        let (valid, result) = self
            .key
            .open_chunks_in_place(first, &mut self.batch[..usable]);
        // Chunks after a failed one are never released: wipe whatever was decrypted there.
        let from = (valid * SEALED_CHUNK_LEN).min(usable);
        self.batch[from..usable].fill(0);
        self.batch_len = usable;
        self.valid = valid;
        if let Err(e) = result {
            self.error = Some(e);
        } else if missing_final {
            self.error = Some(Error::Truncated);
        } else if at_end {
            self.done = true;
        }
    }

    fn chunk_plain_len(&self, c: usize) -> usize {
        let start = c * SEALED_CHUNK_LEN;
        (self.batch_len - start).min(SEALED_CHUNK_LEN) - TAG_LEN
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            while self.cur_chunk < self.valid {
                let plen = self.chunk_plain_len(self.cur_chunk);
                if self.cur_off < plen {
                    let start = self.cur_chunk * SEALED_CHUNK_LEN + self.cur_off;
                    let n = (plen - self.cur_off).min(out.len());
                    out[..n].copy_from_slice(&self.batch[start..start + n]);
                    self.cur_off += n;
                    return Ok(n);
                }
                self.cur_chunk += 1;
                self.cur_off = 0;
            }
            if let Some(e) = &self.error {
                return Err(e.clone().into());
            }
            if self.done {
                return Ok(0);
            }
            self.fill();
        }
    }
}

impl<R: Read + Seek> OpenReader<R> {
    /// The plaintext length, authenticated by opening the final chunk (once; later calls are free).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] for a stored length no message has, [`Error::Tampered`] if the final chunk
    /// does not authenticate, I/O errors.
    pub fn authenticated_len(&mut self) -> Result<u64, Error> {
        if let Some(len) = self.len {
            return Ok(len);
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let here = self.inner.stream_position()?;
        let base = here - self.consumed;
        let end = self.inner.seek(SeekFrom::End(0))?;
        let len = cobblestone::plaintext_len(end - base)?;
        let last = cobblestone::chunk_count(len) - 1;
        let off = HEADER_LEN as u64 + last * SEALED_CHUNK_LEN as u64;
        let mut fin = vec![0u8; (end - base - off) as usize];
        self.inner.seek(SeekFrom::Start(base + off))?;
        self.inner.read_exact(&mut fin)?;
        let r = self.key.open_chunk_in_place(last, &mut fin);
        self.inner.seek(SeekFrom::Start(here))?;
        if let Err(e) = r {
            self.error = Some(e.clone());
            return Err(e);
        }
        self.len = Some(len);
        Ok(len)
    }
}

impl<R: Read + Seek> Seek for OpenReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let len = self.authenticated_len()?;
        let c = CHUNK_LEN as u64;
        let here = self.next_chunk() * c + self.cur_off as u64;
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => here.checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative position")
        })?;
        let chunk = (target / c).min(cobblestone::chunk_count(len) - 1);
        let base = self.inner.stream_position()? - self.consumed;
        let stored = HEADER_LEN as u64 + chunk * SEALED_CHUNK_LEN as u64;
        self.inner.seek(SeekFrom::Start(base + stored))?;
        self.consumed = stored;
        self.batch_first = chunk;
        self.batch_len = 0;
        self.valid = 0;
        self.cur_chunk = 0;
        self.done = false;
        if self.error.is_none() {
            self.fill();
        }
        // Position inside the first chunk of the new batch (past the end: an empty read).
        self.cur_off = (target - chunk * c) as usize;
        Ok(target)
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
