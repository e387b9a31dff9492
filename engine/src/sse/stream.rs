//! The S3 layer's bodies into and out of a caller's buffers: whole objects into a buffer or in place,
//! and push-model streams ([`PartSealer`], [`PartOpener`]) in the plan's one or two layers. What the
//! C ABI and the Python package use; a Rust server can too.

use std::ops::Range;

use zeroize::Zeroizing;

use super::engine::{ObjectKeys, object_error};
use super::{PartPlan, ReadPlan, S3Error, WritePlan};
use crate::object::{
    self, ByteRange, CHUNK_LEN, Error, Fetched, HEADER_LEN, ObjectMeta, OpenFeed, PartEntry,
    RangeRead, SEALED_CHUNK_LEN, SealFeed, layered, part_context,
};

/// Seals one part (0: a single-part object) from bytes pushed in pieces, into the caller's buffers.
/// Each call's output length is known first ([`PartSealer::update_len`], [`PartSealer::finish_len`]).
#[derive(Debug)]
pub struct PartSealer {
    part: u32,
    inner: SealFeed,
    /// DSSE-KMS: the outer layer and the buffer the inner layer's output passes through.
    outer: Option<(SealFeed, Zeroizing<Vec<u8>>)>,
}

impl PartSealer {
    pub(crate) fn new(keys: &ObjectKeys, part: u32) -> Result<Self, S3Error> {
        let inner = SealFeed::new(keys.inner().expose(), &part_context(part), None)
            .map_err(object_error)?;
        let outer = match keys.outer() {
            None => None,
            Some(o) => Some((
                SealFeed::new(o.expose(), &layered::outer_context(part), layered::OUTER)
                    .map_err(object_error)?,
                Zeroizing::new(Vec::new()),
            )),
        };
        Ok(PartSealer { part, inner, outer })
    }

    /// The exact number of bytes [`PartSealer::update`] writes for `n` more plaintext bytes.
    pub fn update_len(&self, n: usize) -> usize {
        let m = self.inner.update_len(n);
        match &self.outer {
            None => m,
            Some((o, _)) => o.update_len(m),
        }
    }

    /// The exact number of bytes [`PartSealer::finish`] writes.
    pub fn finish_len(&self) -> usize {
        let m = self.inner.finish_len();
        match &self.outer {
            None => m,
            Some((o, _)) => o.update_then_finish_len(m),
        }
    }

    /// Plaintext bytes taken so far.
    pub fn plaintext_len(&self) -> u64 {
        self.inner.plaintext_len()
    }

    /// Seals `input` into `out` (at least [`PartSealer::update_len`] bytes); returns the bytes
    /// written.
    ///
    /// # Errors
    ///
    /// 400 EntityTooLarge past the format's limit; 500 InternalError for a short `out` (nothing is
    /// taken) or a finished sealer.
    pub fn update(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, S3Error> {
        let need = self.update_len(input.len());
        if out.len() < need {
            return Err(buffer_error(need, out.len()));
        }
        match &mut self.outer {
            None => self.inner.update(input, out).map_err(object_error),
            Some((o, mid)) => {
                mid.resize(self.inner.update_len(input.len()), 0);
                let n = self.inner.update(input, mid).map_err(object_error)?;
                o.update(&mid[..n], out).map_err(object_error)
            }
        }
    }

    /// Seals the final chunk into `out` (at least [`PartSealer::finish_len`] bytes); returns the
    /// bytes written and the part's row for the part table (its number, size and salt).
    ///
    /// # Errors
    ///
    /// As [`PartSealer::update`].
    pub fn finish(&mut self, out: &mut [u8]) -> Result<(usize, PartEntry), S3Error> {
        let need = self.finish_len();
        if out.len() < need {
            return Err(buffer_error(need, out.len()));
        }
        let n = match &mut self.outer {
            None => self.inner.finish(out).map_err(object_error)?,
            Some((o, mid)) => {
                mid.resize(self.inner.finish_len(), 0);
                let m = self.inner.finish(mid).map_err(object_error)?;
                let a = o.update(&mid[..m], out).map_err(object_error)?;
                a + o.finish(&mut out[a..]).map_err(object_error)?
            }
        };
        let entry = PartEntry {
            number: self.part,
            size: self.inner.plaintext_len(),
            salt: self.inner.salt(),
        };
        Ok((n, entry))
    }
}

/// Opens one part (0: a single-part object) of an object whose metadata verified, from stored bytes
/// pushed in pieces, into the caller's buffers. A chunk's plaintext is released only once it
/// authenticated (in both layers); [`PartOpener::finish`] checks that the whole part arrived.
#[derive(Debug)]
pub struct PartOpener {
    inner: OpenFeed,
    outer: Option<(OpenFeed, Zeroizing<Vec<u8>>)>,
}

impl PartOpener {
    pub(crate) fn new(keys: &ObjectKeys, meta: &ObjectMeta, part: u32) -> Result<Self, S3Error> {
        let v = meta.verify(keys.inner()).map_err(object_error)?;
        let size = v.part_size(part).map_err(object_error)?;
        let salt = object::salt_of(meta, part).map(|s| (part, s));
        let inner = OpenFeed::new(keys.inner().expose(), &part_context(part), size, None, salt)
            .map_err(object_error)?;
        let outer = match keys.outer() {
            None => None,
            Some(o) => Some((
                OpenFeed::new(
                    o.expose(),
                    &layered::outer_context(part),
                    inner.stored_len(),
                    layered::OUTER,
                    None,
                )
                .map_err(object_error)?,
                Zeroizing::new(Vec::new()),
            )),
        };
        Ok(PartOpener { inner, outer })
    }

    /// The part's plaintext size (authenticated).
    pub fn size(&self) -> u64 {
        self.inner.len()
    }

    /// The part's stored size: what the opener takes in all.
    pub fn stored_len(&self) -> u64 {
        match &self.outer {
            None => self.inner.stored_len(),
            Some((o, _)) => o.stored_len(),
        }
    }

    /// The plaintext bytes [`PartOpener::update`] writes for `n` more stored bytes (exactly, when
    /// they authenticate).
    pub fn update_len(&self, n: usize) -> usize {
        match &self.outer {
            None => self.inner.update_len(n),
            Some((o, _)) => self.inner.update_len(o.update_len(n)),
        }
    }

    /// Opens what `input` completes into `out` (at least [`PartOpener::update_len`] bytes);
    /// returns the plaintext bytes written.
    ///
    /// # Errors
    ///
    /// 500 InternalError for a wrong key, tampered, replaced, extended data (then every call fails
    /// again) or a short `out` (nothing is taken).
    pub fn update(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, S3Error> {
        let need = self.update_len(input.len());
        if out.len() < need {
            return Err(buffer_error(need, out.len()));
        }
        match &mut self.outer {
            None => self.inner.update(input, out).map_err(object_error),
            Some((o, mid)) => {
                mid.resize(o.update_len(input.len()), 0);
                let n = o.update(input, mid).map_err(object_error)?;
                let r = self.inner.update(&mid[..n], out).map_err(object_error);
                mid.fill(0);
                r
            }
        }
    }

    /// Checks that the whole part arrived and authenticated.
    ///
    /// # Errors
    ///
    /// 500 InternalError for missing stored bytes or an earlier failure.
    pub fn finish(&mut self) -> Result<(), S3Error> {
        if let Some((o, _)) = &mut self.outer {
            o.finish().map_err(object_error)?;
        }
        self.inner.finish().map_err(object_error)
    }
}

fn buffer_error(need: usize, got: usize) -> S3Error {
    object_error(Error::BufferSize {
        expected: need as u64,
        got: got as u64,
    })
}

/// Moves the plaintext of `len` bytes at the front of `buf` out to its chunk slots (last chunk
/// first, so nothing is overwritten before it moved).
pub(crate) fn spread_to_slots(buf: &mut [u8], len: usize) {
    let chunks = object::chunk_count(len as u64) as usize;
    for i in (0..chunks).rev() {
        let from = i * CHUNK_LEN;
        let n = CHUNK_LEN.min(len - from);
        buf.copy_within(from..from + n, HEADER_LEN + i * SEALED_CHUNK_LEN);
    }
}

/// The inverse of [`spread_to_slots`] for every part of an object opened in place: each chunk's
/// plaintext moved to the front, in order. Returns the object's size.
pub(crate) fn gather_from_slots(buf: &mut [u8], meta: &ObjectMeta) -> usize {
    let sizes: Vec<u64> = if meta.parts.is_empty() {
        vec![meta.size]
    } else {
        meta.parts.iter().map(|p| p.size).collect()
    };
    let (mut stored_start, mut at) = (0usize, 0usize);
    for size in sizes {
        let size = size as usize;
        for slot in object::chunk_slots(size) {
            let n = slot.len();
            buf.copy_within(stored_start + slot.start..stored_start + slot.end, at);
            at += n;
        }
        stored_start += object::sealed_len(size as u64) as usize;
    }
    at
}

impl WritePlan {
    /// A push-model sealer of part `part` (0 for a single-part object) in this plan's layers.
    ///
    /// # Errors
    ///
    /// 400 InvalidArgument for a part number over 10000.
    pub fn sealer(&self, part: u32) -> Result<PartSealer, S3Error> {
        check_part(part)?;
        PartSealer::new(&self.keys, part)
    }

    /// Seals a single-part object's body into `out` (at least [`WritePlan::stored_len`] bytes);
    /// returns the stored length.
    ///
    /// # Errors
    ///
    /// 400 EntityTooLarge past the format's limit; 500 InternalError for a short `out`.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, S3Error> {
        self.keys.seal_part_into(0, plaintext, out).map(|(n, _)| n)
    }

    /// Seals a single-part object's body in place: `buf` holds `len` plaintext bytes at its front
    /// and is at least [`WritePlan::stored_len`]`(len)` long; returns the stored length. No
    /// allocation for SSE-S3, SSE-KMS and SSE-C (the chunks move to their slots, then are encrypted
    /// where they lie); DSSE-KMS seals through a buffer of its own.
    ///
    /// # Errors
    ///
    /// As [`WritePlan::seal_into`].
    pub fn seal_in_place(&self, buf: &mut [u8], len: usize) -> Result<usize, S3Error> {
        self.keys.seal_in_place(buf, len)
    }
}

impl PartPlan {
    /// A push-model sealer of this part.
    ///
    /// # Errors
    ///
    /// As [`WritePlan::sealer`].
    pub fn sealer(&self) -> Result<PartSealer, S3Error> {
        PartSealer::new(&self.keys, self.part)
    }

    /// [`PartPlan::seal`] into `out` (at least [`PartPlan::stored_len`] bytes); returns the bytes
    /// written and the part's row for the part table.
    ///
    /// # Errors
    ///
    /// As [`WritePlan::seal_into`].
    pub fn seal_into(
        &self,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, PartEntry), S3Error> {
        let (n, salt) = self.keys.seal_part_into(self.part, plaintext, out)?;
        Ok((
            n,
            PartEntry {
                number: self.part,
                size: plaintext.len() as u64,
                salt,
            },
        ))
    }
}

fn check_part(part: u32) -> Result<(), S3Error> {
    if part > object::MAX_PART_NUMBER {
        return Err(S3Error::invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive",
        ));
    }
    Ok(())
}

/// What a range read needs fetched: the resolved plaintext range and the stored byte ranges, sorted
/// and merged ([`ReadPlan::range_fetches`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeFetches {
    /// The plaintext bytes the read returns, as offsets into the object.
    pub plaintext: Range<u64>,
    /// The object's plaintext size.
    pub size: u64,
    /// The stored byte ranges to fetch, in order.
    pub stored: Vec<Range<u64>>,
}

impl ReadPlan {
    /// A push-model opener of part `part` (0 for a single-part object).
    ///
    /// # Errors
    ///
    /// 500 InternalError for metadata that does not verify or a part it does not have.
    pub fn opener(&self, part: u32) -> Result<PartOpener, S3Error> {
        PartOpener::new(self.keys()?, &self.meta, part)
    }

    /// Opens the whole stored object into `out` (at least [`ReadPlan::size`] bytes); returns the
    /// size. On failure `out` holds no plaintext.
    ///
    /// # Errors
    ///
    /// As [`ReadPlan::open`], and 500 InternalError for a short `out`.
    pub fn open_into(&self, stored: &[u8], out: &mut [u8]) -> Result<usize, S3Error> {
        let keys = self.keys()?;
        let n = usize::try_from(self.meta.size)
            .ok()
            .filter(|&n| n <= out.len())
            .ok_or_else(|| buffer_error(self.meta.size as usize, out.len()))?;
        let v = self.meta.verify(keys.inner()).map_err(object_error)?;
        match keys.outer() {
            None => v.open_into(stored, &mut out[..n]).map_err(object_error)?,
            Some(outer) => {
                let p = Zeroizing::new(v.open_layered(outer, stored).map_err(object_error)?);
                out[..n].copy_from_slice(&p);
            }
        }
        Ok(n)
    }

    /// Opens the stored object held in `buf` (exactly its stored bytes) in place; returns the size,
    /// the plaintext being `buf[..size]`. On failure `buf` holds no plaintext.
    ///
    /// # Errors
    ///
    /// As [`ReadPlan::open`].
    pub fn open_in_place(&self, buf: &mut [u8]) -> Result<usize, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(keys.inner()).map_err(object_error)?;
        match keys.outer() {
            None => {
                v.open_in_place(buf).map_err(object_error)?;
                Ok(gather_from_slots(buf, &self.meta))
            }
            Some(outer) => {
                let p = Zeroizing::new(v.open_layered(outer, buf).map_err(object_error)?);
                buf[..p.len()].copy_from_slice(&p);
                Ok(p.len())
            }
        }
    }

    /// The stored byte ranges a read of `range` needs from the object's `stored_len` stored bytes:
    /// fetch them, back to back, and hand them to [`ReadPlan::open_fetched`].
    ///
    /// # Errors
    ///
    /// 416 InvalidRange for a range past the end; 500 InternalError for metadata that does not
    /// verify or a stored length that does not fit it.
    pub fn range_fetches(
        &self,
        range: ByteRange,
        stored_len: u64,
    ) -> Result<RangeFetches, S3Error> {
        let keys = self.keys()?;
        let v = self.meta.verify(keys.inner()).map_err(object_error)?;
        let (plan, stored) = match keys.outer() {
            None => {
                let p = v.plan_range(range, stored_len).map_err(object_error)?;
                let r = p.stored_ranges();
                (p, r)
            }
            Some(_) => v
                .plan_range_layered(range, stored_len)
                .map_err(object_error)?,
        };
        Ok(RangeFetches {
            plaintext: plan.plaintext,
            size: plan.size,
            stored,
        })
    }

    /// Opens a range from the bytes [`ReadPlan::range_fetches`] listed, fetched back to back into
    /// `fetched`.
    ///
    /// # Errors
    ///
    /// As [`ReadPlan::open_range`]; 500 InternalError when `fetched` is not what the plan listed.
    pub fn open_fetched(
        &self,
        range: ByteRange,
        stored_len: u64,
        fetched: &[u8],
    ) -> Result<RangeRead, S3Error> {
        let plan = self.range_fetches(range, stored_len)?;
        let source = Fetched::new(plan.stored, fetched).map_err(object_error)?;
        self.open_range(stored_len, range, &source)
    }
}
