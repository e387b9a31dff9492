//! Range reads: which stored bytes a plaintext range needs ([`plan_range`], a pure function), and
//! fetching and opening only those chunks ([`open_range`]).

use std::io;
use std::ops::Range;

use super::cobblestone::{self, CHUNK_LEN, HEADER_LEN, MessageKey, SEALED_CHUNK_LEN};
use super::{Error, ObjectMeta, part_context};
use crate::keys::DataKey;

/// A plaintext byte range as HTTP and S3 give it (`bytes=first-last`, `bytes=first-`, `bytes=-n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `first..=last`; `last` past the end is clamped to the end.
    Inclusive {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// From `first` to the end.
    From(u64),
    /// The last `n` bytes (all of them if the object is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// Parses `first-last`, `first-` or `-n`, with or without a leading `bytes=`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] for anything else, or a `first` after `last`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.strip_prefix("bytes=").unwrap_or(s);
        let (a, b) = s.split_once('-').ok_or(Error::InvalidRange)?;
        let num = |t: &str| {
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                Err(Error::InvalidRange)
            } else {
                t.parse::<u64>().map_err(|_| Error::InvalidRange)
            }
        };
        match (a.is_empty(), b.is_empty()) {
            (true, false) => Ok(ByteRange::Suffix(num(b)?)),
            (false, true) => Ok(ByteRange::From(num(a)?)),
            (false, false) => {
                let (first, last) = (num(a)?, num(b)?);
                if first > last {
                    return Err(Error::InvalidRange);
                }
                Ok(ByteRange::Inclusive { first, last })
            }
            (true, true) => Err(Error::InvalidRange),
        }
    }

    /// Resolves against an object of `size` bytes as S3 does: the plaintext byte range to return, and
    /// whether it is relative to the end (a suffix, an open end, or a clamped last byte), in which case
    /// the object's length must be authenticated by opening its final chunk.
    ///
    /// # Errors
    ///
    /// [`Error::RangeNotSatisfiable`] when the range starts at or past the end (every range of an
    /// empty object, and a zero-length suffix); [`Error::InvalidRange`] when `first > last`.
    pub fn resolve(self, size: u64) -> Result<(Range<u64>, bool), Error> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            ByteRange::Inclusive { first, last } => {
                if first > last {
                    return Err(Error::InvalidRange);
                }
                if first >= size {
                    return Err(unsatisfiable);
                }
                let clamped = last >= size;
                Ok((first..last.min(size - 1) + 1, clamped))
            }
            ByteRange::From(first) => {
                if first >= size {
                    return Err(unsatisfiable);
                }
                Ok((first..size, true))
            }
            ByteRange::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable);
                }
                Ok((size.saturating_sub(n)..size, true))
            }
        }
    }
}

/// Where one part sits in an object's stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartSpan {
    pub(crate) number: u32,
    /// The salt the part table names (none for a single-part object).
    pub(crate) salt: Option<[u8; 24]>,
    pub(crate) plaintext_start: u64,
    pub(crate) plaintext_len: u64,
    pub(crate) stored_start: u64,
    pub(crate) stored_len: u64,
}

/// The parts of an object stored as `stored_len` bytes: the single part 0 when the part table is
/// empty, otherwise the table's parts back to back, which must add up to exactly `stored_len`. Every
/// length comes from metadata that may be hostile (the plan is made before anything is verified), so
/// all arithmetic is checked and every size bounded by [`MAX_OBJECT_SIZE`](super::MAX_OBJECT_SIZE).
pub(crate) fn part_spans(meta: &ObjectMeta, stored_len: u64) -> Result<Vec<PartSpan>, Error> {
    if meta.size > super::MAX_OBJECT_SIZE {
        return Err(Error::TooLarge);
    }
    if meta.parts.is_empty() {
        return Ok(vec![PartSpan {
            number: 0,
            salt: None,
            plaintext_start: 0,
            plaintext_len: expect_len(meta.size, stored_len)?,
            stored_start: 0,
            stored_len,
        }]);
    }
    let mut spans = Vec::with_capacity(meta.parts.len().min(super::MAX_PART_NUMBER as usize));
    let (mut p, mut s, mut prev) = (0u64, 0u64, 0u32);
    for e in &meta.parts {
        if e.number <= prev || e.number > super::MAX_PART_NUMBER {
            return Err(Error::BadLayout(
                "part numbers must be 1..=10000 and ascending",
            ));
        }
        prev = e.number;
        let sealed = cobblestone::checked_sealed_len(e.size)?;
        spans.push(PartSpan {
            number: e.number,
            salt: Some(e.salt),
            plaintext_start: p,
            plaintext_len: e.size,
            stored_start: s,
            stored_len: sealed,
        });
        p = p.checked_add(e.size).ok_or(Error::TooLarge)?;
        s = s.checked_add(sealed).ok_or(Error::TooLarge)?;
    }
    if p != meta.size {
        return Err(Error::BadLayout(
            "the part sizes do not add up to the object size",
        ));
    }
    if s != stored_len {
        return Err(Error::BadLayout(
            "the stored size does not match the part table",
        ));
    }
    Ok(spans)
}

/// The salt the part table names for part `part` (none for part 0, a single-part object).
pub(crate) fn salt_of(meta: &ObjectMeta, part: u32) -> Option<[u8; 24]> {
    meta.parts
        .binary_search_by_key(&part, |p| p.number)
        .ok()
        .map(|i| meta.parts[i].salt)
}

/// Checks a part's message header (or its first 24 bytes) against the salt its row names.
pub(crate) fn check_salt(
    part: u32,
    expected: Option<[u8; 24]>,
    header: &[u8],
) -> Result<(), Error> {
    match expected {
        Some(salt) if header.get(..24) != Some(&salt[..]) => Err(Error::PartReplaced { part }),
        _ => Ok(()),
    }
}

/// Checks that one message stored as `stored_len` bytes holds `expected` plaintext bytes.
pub(crate) fn expect_len(expected: u64, stored_len: u64) -> Result<u64, Error> {
    let found = cobblestone::plaintext_len(stored_len)?;
    if found != expected {
        return Err(Error::LengthMismatch { expected, found });
    }
    Ok(found)
}

/// What to fetch from one part for a range read: its 56-byte header and a run of whole chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFetch {
    /// The part number (0 for a single-part object).
    pub part: u32,
    /// The part's header (salt and commitment), as offsets into the object's stored data.
    pub header: Range<u64>,
    /// The chunks, as offsets into the object's stored data.
    pub chunks: Range<u64>,
    /// Index of the first fetched chunk within the part.
    pub first_chunk: u64,
    /// Plaintext bytes of the fetched chunks to skip before the range starts.
    pub skip: u64,
    /// Plaintext bytes of the range in this part.
    pub take: u64,
}

/// A range read's plan: the resolved plaintext range and the stored bytes it needs, part by part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePlan {
    /// The plaintext bytes that will be returned, as offsets into the whole object.
    pub plaintext: Range<u64>,
    /// The object's plaintext size.
    pub size: u64,
    /// What to fetch, in order.
    pub fetches: Vec<PartFetch>,
}

impl RangePlan {
    /// Total stored bytes the plan fetches.
    pub fn fetch_len(&self) -> u64 {
        self.fetches
            .iter()
            .map(|f| (f.header.end - f.header.start) + (f.chunks.end - f.chunks.start))
            .sum()
    }

    /// Number of chunks the plan opens.
    pub fn chunk_count(&self) -> u64 {
        self.fetches
            .iter()
            .map(|f| (f.chunks.end - f.chunks.start).div_ceil(SEALED_CHUNK_LEN as u64))
            .sum()
    }
}

/// Plans a range read: from the plaintext range, the object's metadata and its stored data size, the
/// stored byte ranges to fetch. The range is resolved against the metadata's size, which
/// [`Verified::open_range`](super::Verified::open_range) has authenticated (a plan from unverified
/// metadata is only a guess of what to fetch). Only the chunks holding the range are fetched, plus
/// the final chunk of the object when the range is relative to its end (a suffix, an open end, or a
/// clamped last byte), which also checks that the stored data ends where the size says.
///
/// # Errors
///
/// [`Error::Truncated`], [`Error::LengthMismatch`], [`Error::BadLayout`] or [`Error::TooLarge`] when
/// the stored size does not fit the metadata; the range errors of [`ByteRange::resolve`].
pub fn plan_range(
    meta: &ObjectMeta,
    range: ByteRange,
    stored_len: u64,
) -> Result<RangePlan, Error> {
    let spans = part_spans(meta, stored_len)?;
    let size = meta.size;
    let (want, to_end) = range.resolve(size)?;
    let mut fetches = Vec::new();
    let last_span = spans.len() - 1;
    for (i, s) in spans.iter().enumerate() {
        let start = want.start.max(s.plaintext_start);
        let end = want.end.min(s.plaintext_start + s.plaintext_len);
        let authenticate_end = to_end && i == last_span;
        if start >= end && !authenticate_end {
            continue;
        }
        let c = CHUNK_LEN as u64;
        let n_chunks = cobblestone::chunk_count(s.plaintext_len);
        let (first_chunk, mut last_chunk, skip, take) = if start < end {
            let (a, b) = (start - s.plaintext_start, end - s.plaintext_start);
            (a / c, (b - 1) / c, a % c, b - a)
        } else {
            // The range ends before this (last) part: only its final chunk, for the length.
            (n_chunks - 1, n_chunks - 1, 0, 0)
        };
        if authenticate_end {
            last_chunk = n_chunks - 1;
        }
        let chunk_start = |k: u64| s.stored_start + HEADER_LEN as u64 + k * SEALED_CHUNK_LEN as u64;
        let chunks_end =
            (chunk_start(last_chunk) + SEALED_CHUNK_LEN as u64).min(s.stored_start + s.stored_len);
        fetches.push(PartFetch {
            part: s.number,
            header: s.stored_start..s.stored_start + HEADER_LEN as u64,
            chunks: chunk_start(first_chunk)..chunks_end,
            first_chunk,
            skip,
            take,
        });
    }
    Ok(RangePlan {
        plaintext: want,
        size,
        fetches,
    })
}

/// The plaintext of chunks opened in place at a stride of [`SEALED_CHUNK_LEN`] (each chunk's tag left
/// behind), from byte `skip` of the first chunk's plaintext on, `take` bytes at most: one piece per chunk.
pub(crate) fn opened_pieces(
    sealed: &[u8],
    mut skip: usize,
    mut take: usize,
) -> impl Iterator<Item = &[u8]> {
    sealed.chunks(SEALED_CHUNK_LEN).map(move |c| {
        let body = &c[..c.len() - crate::aead::TAG_LEN];
        let piece = body.get(skip..).unwrap_or(&[]);
        let n = piece.len().min(take);
        skip = skip.saturating_sub(body.len());
        take -= n;
        &piece[..n]
    })
}

impl RangePlan {
    /// The stored byte ranges the plan reads, sorted and merged: what a server fetches (from a
    /// disk, an upstream store's ranged GET) before handing the bytes to [`Fetched`].
    pub fn stored_ranges(&self) -> Vec<Range<u64>> {
        merge_ranges(
            self.fetches
                .iter()
                .flat_map(|f| [f.header.clone(), f.chunks.clone()])
                .collect(),
        )
    }
}

/// Sorts `ranges` and merges those that overlap or touch.
pub(crate) fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Stored bytes fetched for a range read: the ranges a plan listed and their bytes back to back, as
/// a [`ReadAt`] source. A read outside them fails (`UnexpectedEof`): nothing else is guessed.
#[derive(Debug)]
pub struct Fetched<'a> {
    ranges: Vec<Range<u64>>,
    /// Where each range's bytes start in `data`.
    starts: Vec<usize>,
    data: &'a [u8],
}

impl<'a> Fetched<'a> {
    /// The bytes of `ranges` (sorted, disjoint, as a plan lists them) in `data`, back to back.
    ///
    /// # Errors
    ///
    /// [`Error::BufferSize`] when `data` is not exactly their total length; [`Error::BadLayout`]
    /// for ranges out of order.
    pub fn new(ranges: Vec<Range<u64>>, data: &'a [u8]) -> Result<Self, Error> {
        let mut starts = Vec::with_capacity(ranges.len());
        let mut total = 0u64;
        let mut prev_end = 0u64;
        for r in &ranges {
            if r.start > r.end || r.start < prev_end {
                return Err(Error::BadLayout(
                    "fetched ranges must be sorted and disjoint",
                ));
            }
            prev_end = r.end;
            starts.push(usize::try_from(total).map_err(|_| Error::TooLarge)?);
            total += r.end - r.start;
        }
        if total != data.len() as u64 {
            return Err(Error::BufferSize {
                expected: total,
                got: data.len() as u64,
            });
        }
        Ok(Fetched {
            ranges,
            starts,
            data,
        })
    }
}

impl ReadAt for Fetched<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let i = self.ranges.partition_point(|r| r.end <= offset);
        let r = self.ranges.get(i).ok_or(io::ErrorKind::UnexpectedEof)?;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if offset < r.start || end > r.end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a read outside the fetched ranges",
            ));
        }
        let at = self.starts[i] + (offset - r.start) as usize;
        buf.copy_from_slice(&self.data[at..at + buf.len()]);
        Ok(())
    }
}

/// Positioned reads from an object's stored data.
pub trait ReadAt {
    /// Fills `buf` from `offset`.
    ///
    /// # Errors
    ///
    /// The source's, or `UnexpectedEof` if the data ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// A range read's result.
#[derive(Debug)]
pub struct RangeRead {
    /// The plaintext bytes of the resolved range.
    pub plaintext: Vec<u8>,
    /// The resolved range, as offsets into the whole object.
    pub range: Range<u64>,
    /// The object's plaintext size.
    pub size: u64,
    /// How many chunks were decrypted (what the plan fetched, nothing more).
    pub chunks_opened: u64,
}

/// Opens only the chunks a range needs: plans it ([`plan_range`]), fetches each part's header and
/// chunks from `source` (the object's stored data, `stored_len` bytes), checks each part's commitment,
/// and decrypts the chunks. Only through [`Verified::open_range`](super::Verified::open_range).
pub(crate) fn open_range<S: ReadAt + ?Sized>(
    dek: &DataKey,
    meta: &ObjectMeta,
    stored_len: u64,
    range: ByteRange,
    source: &S,
) -> Result<RangeRead, Error> {
    let plan = plan_range(meta, range, stored_len)?;
    let mut plaintext =
        // Reserve what the range needs, but no more than 64 MiB before any byte was read: `stored_len`
        // is the caller's word, and the vector grows if the range is larger.
        Vec::with_capacity(
            usize::try_from((plan.plaintext.end - plan.plaintext.start).min(64 << 20))
                .unwrap_or(0),
        );
    let mut chunks_opened = 0;
    for f in &plan.fetches {
        let mut header = [0u8; HEADER_LEN];
        source.read_exact_at(&mut header, f.header.start)?;
        check_salt(f.part, salt_of(meta, f.part), &header)?;
        let key = MessageKey::for_header(dek.expose(), &header, &part_context(f.part))?;
        let mut sealed = vec![0u8; (f.chunks.end - f.chunks.start) as usize];
        source.read_exact_at(&mut sealed, f.chunks.start)?;
        let (_, result) = key.open_chunks_in_place(f.first_chunk, &mut sealed);
        if let Err(e) = result {
            sealed.fill(0);
            plaintext.fill(0);
            return Err(e);
        }
        chunks_opened += sealed.len().div_ceil(SEALED_CHUNK_LEN) as u64;
        for piece in opened_pieces(&sealed, f.skip as usize, f.take as usize) {
            plaintext.extend_from_slice(piece);
        }
    }
    Ok(RangeRead {
        plaintext,
        range: plan.plaintext,
        size: plan.size,
        chunks_opened,
    })
}
