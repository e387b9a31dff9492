//! Two independent layers of encryption (DSSE-KMS): each part's data is first sealed as usual, as one
//! Cobblestone-256 message under the inner data key on the dispatched backend, and that message is
//! sealed again, as a second Cobblestone-256 message under the outer data key, on the
//! [portable](crate::aead::Backend::Portable) backend: another implementation of AES-GCM, so a defect
//! in one kernel does not expose the data. Both layers are chunked, so a range read still opens only
//! the outer chunks that hold the inner chunks it needs (docs/FORMAT.md section 6).

use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Mutex;

use super::cobblestone::{
    self, CHUNK_LEN, HEADER_LEN, MessageKey, SEALED_CHUNK_LEN, checked_sealed_len,
};
use super::range::{self, PartSpan};
use super::{
    ByteRange, Error, ObjectMeta, OpenReader, RangePlan, RangeRead, ReadAt, SealWriter, Verified,
    part_context,
};
use crate::aead::Backend;
use crate::keys::DataKey;

pub(crate) const OUTER: Option<Backend> = Some(Backend::Portable);

/// Each part's inner message span and outer message range.
type LayeredSpans = Vec<(PartSpan, Range<u64>)>;

/// The Cobblestone context of the outer layer of part `part`: `"ssekit outer v1\0" ‖ be32(part)`.
pub fn outer_context(part: u32) -> [u8; 20] {
    let mut c = [0u8; 20];
    c[..16].copy_from_slice(b"ssekit outer v1\x00");
    c[16..].copy_from_slice(&part.to_be_bytes());
    c
}

/// The stored length of a two-layer message of `plaintext_len` bytes (a length the caller holds; for
/// one from metadata, [`checked_layered_len`]).
pub const fn layered_len(plaintext_len: u64) -> u64 {
    cobblestone::sealed_len(cobblestone::sealed_len(plaintext_len))
}

/// [`layered_len`] of a length from metadata.
///
/// # Errors
///
/// [`Error::TooLarge`] past [`MAX_OBJECT_SIZE`](super::MAX_OBJECT_SIZE).
pub fn checked_layered_len(plaintext_len: u64) -> Result<u64, Error> {
    checked_sealed_len(checked_sealed_len(plaintext_len)?)
}

/// Seals part `part` (0 for a single-part object) in two layers: inner under `inner` on the
/// dispatched backend, outer under `outer` on the portable one. Each layer has its own random salt.
///
/// # Errors
///
/// As [`seal_part`](super::seal_part); [`Error::InvalidKeySize`] never (both keys are 32 bytes).
pub fn seal_layered_part(
    inner: &DataKey,
    outer: &DataKey,
    part: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    seal_layered_part_salted(inner, outer, part, plaintext).map(|(m, _)| m)
}

/// [`seal_layered_part`], also returning the inner message's salt (what the part table names).
pub(crate) fn seal_layered_part_salted(
    inner: &DataKey,
    outer: &DataKey,
    part: u32,
    plaintext: &[u8],
) -> Result<(Vec<u8>, [u8; 24]), Error> {
    let inner_msg = super::seal_part(inner, part, plaintext)?;
    let salt: [u8; 24] = inner_msg[..24]
        .try_into()
        .expect("a message starts with its salt");
    let len = usize::try_from(checked_sealed_len(inner_msg.len() as u64)?)
        .map_err(|_| Error::TooLarge)?;
    let mut out = vec![0u8; len];
    cobblestone::seal_with_salt_into_on(
        outer.expose(),
        &outer_context(part),
        &super::random_salt(),
        &inner_msg,
        &mut out,
        OUTER,
    )?;
    Ok((out, salt))
}

/// A streaming writer of one part in two layers: the inner [`SealWriter`] writes its message into the
/// outer one. Finish it with [`finish_layered`].
pub type LayeredWriter<W> = SealWriter<SealWriter<W>>;

/// A [`LayeredWriter`] sealing part `part` (0 for a single-part object) into `out`.
///
/// # Errors
///
/// As [`SealWriter::new_part`].
pub fn layered_writer<W: Write>(
    out: W,
    inner: &DataKey,
    outer: &DataKey,
    part: u32,
) -> Result<LayeredWriter<W>, Error> {
    super::check_part(part)?;
    let outer_w = SealWriter::for_message_on(out, outer.expose(), &outer_context(part), OUTER)?;
    SealWriter::new_part(outer_w, inner, part)
}

/// Finishes both layers; returns the writer and the plaintext length.
///
/// # Errors
///
/// As [`SealWriter::finish`].
pub fn finish_layered<W: Write>(w: LayeredWriter<W>) -> Result<(W, u64), Error> {
    let (outer, n) = w.finish()?;
    let (out, _) = outer.finish()?;
    Ok((out, n))
}

/// Where each part's two layers lie: the inner message's span within the (virtual) concatenation of
/// inner messages, and the outer message's range within the stored data.
fn layered_spans(meta: &ObjectMeta, stored_len: u64) -> Result<(u64, LayeredSpans), Error> {
    let inner_total = if meta.parts.is_empty() {
        checked_sealed_len(meta.size)?
    } else {
        meta.parts.iter().try_fold(0u64, |acc, p| {
            acc.checked_add(checked_sealed_len(p.size)?)
                .ok_or(Error::TooLarge)
        })?
    };
    let spans = range::part_spans(meta, inner_total)?;
    let mut out = Vec::with_capacity(spans.len());
    let mut at = 0u64;
    for s in spans {
        let len = checked_sealed_len(s.stored_len)?;
        let end = at.checked_add(len).ok_or(Error::TooLarge)?;
        out.push((s, at..end));
        at = end;
    }
    if at != stored_len {
        cobblestone::plaintext_len(stored_len)?;
        return Err(Error::BadLayout(
            "the stored size does not match the object's two layers",
        ));
    }
    Ok((inner_total, out))
}

impl Verified<'_> {
    /// Opens a two-layer (DSSE-KMS) object: each part's outer message under `outer` on the portable
    /// backend, then the inner message as [`Verified::open`] does.
    ///
    /// # Errors
    ///
    /// As [`Verified::open`], for either layer.
    pub fn open_layered(&self, outer: &DataKey, data: &[u8]) -> Result<Vec<u8>, Error> {
        let (_, spans) = layered_spans(self.meta(), data.len() as u64)?;
        let n = usize::try_from(self.size()).map_err(|_| Error::TooLarge)?;
        let mut out = vec![0u8; n];
        for (s, o) in &spans {
            let plain = &mut out
                [s.plaintext_start as usize..(s.plaintext_start + s.plaintext_len) as usize];
            let r = open_two(
                self.dek(),
                outer,
                s.number,
                s.salt,
                &data[o.start as usize..o.end as usize],
                plain,
            );
            if let Err(e) = r {
                out.fill(0);
                return Err(e);
            }
        }
        Ok(out)
    }

    /// Opens one part of a two-layer object (S3's GET with `partNumber`).
    ///
    /// # Errors
    ///
    /// As [`Verified::open_part`].
    pub fn open_layered_part(
        &self,
        outer: &DataKey,
        part: u32,
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let size = self.part_size(part)?;
        if checked_layered_len(size)? != data.len() as u64 {
            cobblestone::plaintext_len(data.len() as u64)?;
            return Err(Error::BadLayout(
                "the stored size does not match the part's two layers",
            ));
        }
        let mut out = vec![0u8; size as usize];
        open_two(
            self.dek(),
            outer,
            part,
            range::salt_of(self.meta(), part),
            data,
            &mut out,
        )?;
        Ok(out)
    }

    /// A streaming reader of part `part` of a two-layer object (0 for a single-part one): the outer
    /// layer read from `src` on the portable backend, the inner from it; each releases a chunk only
    /// once it authenticated, and reads exactly its authenticated length.
    ///
    /// # Errors
    ///
    /// As [`Verified::part_reader`].
    pub fn layered_part_reader<R: Read>(
        &self,
        src: R,
        outer: &DataKey,
        part: u32,
    ) -> Result<OpenReader<OpenReader<R>>, Error> {
        let size = self.part_size(part)?;
        let inner_len = checked_sealed_len(size)?;
        let outer_r = OpenReader::with_len_on(
            src,
            outer.expose(),
            &outer_context(part),
            inner_len,
            OUTER,
            None,
        )?;
        OpenReader::with_len(
            outer_r,
            self.dek().expose(),
            &part_context(part),
            size,
            range::salt_of(self.meta(), part).map(|s| (part, s)),
        )
    }

    /// Plans a range read of a two-layer object stored as `stored_len` bytes: the inner plan (its
    /// plaintext range) and the stored byte ranges to fetch, sorted and merged: each part's outer
    /// header and the outer chunks holding the inner bytes the inner plan reads.
    ///
    /// # Errors
    ///
    /// As [`Verified::plan_range`].
    pub fn plan_range_layered(
        &self,
        range: ByteRange,
        stored_len: u64,
    ) -> Result<(RangePlan, Vec<Range<u64>>), Error> {
        let (inner_total, spans) = layered_spans(self.meta(), stored_len)?;
        let plan = range::plan_range(self.meta(), range, inner_total)?;
        let mut out = Vec::new();
        for r in plan.stored_ranges() {
            let mut off = r.start;
            while off < r.end {
                let (s, o) = spans
                    .iter()
                    .find(|(s, _)| off >= s.stored_start && off < s.stored_start + s.stored_len)
                    .ok_or(Error::Truncated)?;
                let at = off - s.stored_start;
                let n = (s.stored_len - at).min(r.end - off);
                let c = CHUNK_LEN as u64;
                let (first, last) = (at / c, (at + n - 1) / c);
                let chunk_start =
                    |k: u64| o.start + HEADER_LEN as u64 + k * SEALED_CHUNK_LEN as u64;
                out.push(o.start..o.start + HEADER_LEN as u64);
                out.push(
                    chunk_start(first)..(chunk_start(last) + SEALED_CHUNK_LEN as u64).min(o.end),
                );
                off += n;
            }
        }
        Ok((plan, range::merge_ranges(out)))
    }

    /// A range read of a two-layer object stored as `stored_len` bytes: only the outer chunks that
    /// hold the inner chunks the range needs are fetched and opened, then those inner chunks.
    ///
    /// # Errors
    ///
    /// As [`Verified::open_range`], for either layer.
    pub fn open_range_layered<S: ReadAt + ?Sized>(
        &self,
        outer: &DataKey,
        stored_len: u64,
        range: ByteRange,
        source: &S,
    ) -> Result<RangeRead, Error> {
        let (inner_total, spans) = layered_spans(self.meta(), stored_len)?;
        let view = OuterView {
            outer,
            spans,
            source,
            key: Mutex::new(None),
        };
        range::open_range(self.dek(), self.meta(), inner_total, range, &view)
    }
}

/// Opens one part's outer message into its inner message, then the inner message into `out`.
fn open_two(
    inner: &DataKey,
    outer: &DataKey,
    part: u32,
    salt: Option<[u8; 24]>,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let inner_len = cobblestone::plaintext_len(data.len() as u64)?;
    let mut inner_msg = vec![0u8; usize::try_from(inner_len).map_err(|_| Error::TooLarge)?];
    cobblestone::open_into_on(
        outer.expose(),
        &outer_context(part),
        data,
        &mut inner_msg,
        OUTER,
    )?;
    range::check_salt(part, salt, &inner_msg)?;
    cobblestone::open_into(inner.expose(), &part_context(part), &inner_msg, out)
}

/// The inner messages of a two-layer object, read through its outer layer: a positioned read of inner
/// bytes fetches and opens only the outer chunks holding them.
struct OuterView<'a, S: ?Sized> {
    outer: &'a DataKey,
    spans: LayeredSpans,
    source: &'a S,
    /// The last part's outer message key (a range read touches each part's header, then its chunks).
    key: Mutex<Option<(u32, MessageKey)>>,
}

impl<S: ReadAt + ?Sized> OuterView<'_, S> {
    fn read_part(
        &self,
        s: &PartSpan,
        o: &Range<u64>,
        at: u64,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        let mut guard = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|(n, _)| *n != s.number) {
            let mut header = [0u8; HEADER_LEN];
            self.source.read_exact_at(&mut header, o.start)?;
            let key = MessageKey::for_header_on(
                self.outer.expose(),
                &header,
                &outer_context(s.number),
                OUTER,
            )?;
            *guard = Some((s.number, key));
        }
        let (_, key) = guard.as_ref().expect("set above");
        let c = CHUNK_LEN as u64;
        let (first, last) = (at / c, (at + buf.len() as u64 - 1) / c);
        let chunk_start = |k: u64| o.start + HEADER_LEN as u64 + k * SEALED_CHUNK_LEN as u64;
        let end = (chunk_start(last) + SEALED_CHUNK_LEN as u64).min(o.end);
        let mut sealed = vec![0u8; (end - chunk_start(first)) as usize];
        self.source.read_exact_at(&mut sealed, chunk_start(first))?;
        let (_, result) = key.open_chunks_in_place(first, &mut sealed);
        result?;
        let mut filled = 0;
        for piece in range::opened_pieces(&sealed, (at - first * c) as usize, buf.len()) {
            buf[filled..filled + piece.len()].copy_from_slice(piece);
            filled += piece.len();
        }
        if filled != buf.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
}

impl<S: ReadAt + ?Sized> ReadAt for OuterView<'_, S> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (s, o) = self
                .spans
                .iter()
                .find(|(s, _)| off >= s.stored_start && off < s.stored_start + s.stored_len)
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            let at = off - s.stored_start;
            let n = ((s.stored_len - at) as usize).min(buf.len() - done);
            self.read_part(s, o, at, &mut buf[done..done + n])
                .map_err(io::Error::from)?;
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outer layer is a standard Cobblestone-256 message (it opens on the dispatched backend too),
    /// run on the portable backend, whatever the inner one is.
    #[test]
    fn the_outer_layer_is_cobblestone_on_the_portable_backend() {
        let (inner, outer) = (DataKey::generate(), DataKey::generate());
        let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let sealed = seal_layered_part(&inner, &outer, 3, &data).unwrap();
        assert_eq!(sealed.len() as u64, layered_len(data.len() as u64));
        let header: &[u8; HEADER_LEN] = sealed[..HEADER_LEN].try_into().unwrap();
        let key =
            MessageKey::for_header_on(outer.expose(), header, &outer_context(3), OUTER).unwrap();
        assert_eq!(key.backend(), Backend::Portable);
        let mut inner_msg =
            vec![0u8; cobblestone::plaintext_len(sealed.len() as u64).unwrap() as usize];
        cobblestone::open_into(outer.expose(), &outer_context(3), &sealed, &mut inner_msg).unwrap();
        let mut out = vec![0u8; data.len()];
        cobblestone::open_into(inner.expose(), &part_context(3), &inner_msg, &mut out).unwrap();
        assert_eq!(out, data);
        // The two keys are not interchangeable.
        assert_eq!(
            cobblestone::open_into(inner.expose(), &outer_context(3), &sealed, &mut inner_msg),
            Err(Error::WrongKey)
        );
    }
}
