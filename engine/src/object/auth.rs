//! The metadata's authentication, and the one way to open an object.
//!
//! Each part's message authenticates alone, under its part number; nothing in the messages says how
//! many parts there are, how large the object is or how it was encrypted. [`ObjectMeta::authenticate`]
//! closes that gap once the object is complete (a single-part object when its data is sealed, a
//! multipart object at CompleteMultipartUpload, when the part table is known): it writes a commitment
//! to the data key and an HMAC-SHA-256 of the version, mode, size, context and part table, under keys
//! derived from the data key with their own HKDF label. [`ObjectMeta::verify`] checks both and returns a
//! [`Verified`], and every interface that opens an object's chunks (whole, in place, part by part,
//! streaming, by range) is a method of [`Verified`]: nothing opens a chunk of metadata that did not
//! verify. The envelope (the wrapped keys) is not covered, so `rewrap` changes it freely: the data key,
//! and so the MAC, stay the same.

use std::io::Read;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cobblestone::{self, hkdf_expand_sha512};
use super::range::{self, PartSpan};
use super::{
    ByteRange, Error, MetaAuth, MetaError, ObjectMeta, OpenReader, RangePlan, RangeRead, ReadAt,
    part_context,
};
use crate::keys::DataKey;

/// HKDF info of the metadata keys; distinct from every Cobblestone info, which starts `c2sp.org/`.
const META_INFO: &[u8] = b"ssekit object metadata v2\x00";

/// The metadata commitment and MAC key derived from a data key:
/// `HKDF-Expand-SHA-512(PRK = DEK, info = META_INFO, L = 64)`, split 32 ‖ 32.
fn meta_keys(dek: &DataKey) -> ([u8; 32], Zeroizing<[u8; 32]>) {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf_expand_sha512(dek.expose(), &[META_INFO], okm.as_mut());
    let mut commitment = [0u8; 32];
    commitment.copy_from_slice(&okm[..32]);
    let mut mac_key = Zeroizing::new([0u8; 32]);
    mac_key.copy_from_slice(&okm[32..]);
    (commitment, mac_key)
}

fn meta_mac(mac_key: &[u8; 32], meta: &ObjectMeta) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(mac_key).expect("HMAC takes any key length");
    mac.update(&meta.authenticated_bytes());
    mac.finalize().into_bytes().into()
}

impl ObjectMeta {
    /// Writes the commitment and MAC ([`ObjectMeta::auth`]) under the object's data key. Call it once
    /// the object is complete: its size and part table final. Changing the envelope afterwards
    /// (`rewrap`) needs no new MAC; changing anything else does.
    ///
    /// # Errors
    ///
    /// The metadata's own limits ([`ObjectMeta::to_bytes`]'s errors).
    pub fn authenticate(&mut self, dek: &DataKey) -> Result<(), MetaError> {
        self.validate()?;
        let (commitment, mac_key) = meta_keys(dek);
        self.auth = MetaAuth {
            commitment,
            mac: meta_mac(&mac_key, self),
        };
        Ok(())
    }

    /// Checks the commitment and the MAC under `dek`, before anything of the object is opened.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKey`] if the commitment does not match (a wrong data key, a damaged commitment,
    /// or metadata never authenticated); [`Error::MetadataTampered`] if the MAC does not (the mode,
    /// size, context or part table was altered); [`Error::Metadata`] for metadata outside the
    /// format's limits.
    pub fn verify<'a>(&'a self, dek: &'a DataKey) -> Result<Verified<'a>, Error> {
        self.validate().map_err(Error::Metadata)?;
        let (commitment, mac_key) = meta_keys(dek);
        if !bool::from(commitment.ct_eq(&self.auth.commitment)) {
            return Err(Error::WrongKey);
        }
        if !bool::from(meta_mac(&mac_key, self).ct_eq(&self.auth.mac)) {
            return Err(Error::MetadataTampered);
        }
        Ok(Verified { meta: self, dek })
    }
}

/// Metadata that verified under a data key: the key to every open.
///
/// ```
/// use ssekit_engine::{keys::{DataKey, EncryptionContext}, object::{self, ObjectMeta, SseMode}};
///
/// let dek = DataKey::generate();
/// let data = object::seal(&dek, b"every byte at rest").unwrap();
/// let mut meta = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), Vec::new());
/// meta.size = 18;
/// meta.authenticate(&dek).unwrap();
/// assert_eq!(meta.verify(&dek).unwrap().open(&data).unwrap(), b"every byte at rest");
/// ```
#[derive(Clone, Copy)]
pub struct Verified<'a> {
    meta: &'a ObjectMeta,
    dek: &'a DataKey,
}

impl std::fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("meta", self.meta)
            .finish_non_exhaustive()
    }
}

impl<'a> Verified<'a> {
    /// The verified metadata.
    pub fn meta(&self) -> &'a ObjectMeta {
        self.meta
    }

    /// The data key the metadata verified under.
    pub(crate) fn dek(&self) -> &'a DataKey {
        self.dek
    }

    /// The object's authenticated plaintext size.
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    /// The plaintext size of part `part` as the authenticated metadata records it (part 0: the whole
    /// single-part object).
    ///
    /// # Errors
    ///
    /// [`Error::BadLayout`] if the object has no such part.
    pub fn part_size(&self, part: u32) -> Result<u64, Error> {
        if part == 0 {
            return if self.meta.parts.is_empty() {
                Ok(self.meta.size)
            } else {
                Err(Error::BadLayout(
                    "a multipart object has parts 1..=10000, no part 0",
                ))
            };
        }
        self.meta
            .parts
            .binary_search_by_key(&part, |p| p.number)
            .map(|i| self.meta.parts[i].size)
            .map_err(|_| Error::BadLayout("the part is not in the object's part table"))
    }

    /// Where each message lies in stored data of `stored_len` bytes (checked against the metadata).
    fn spans(&self, stored_len: u64) -> Result<Vec<PartSpan>, Error> {
        range::part_spans(self.meta, stored_len)
    }

    /// Opens the whole object (single-part or multipart: the parts' messages back to back).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::LengthMismatch`] or [`Error::BadLayout`] when the stored length
    /// does not fit the metadata; [`Error::WrongKey`] or [`Error::Tampered`] from the chunks.
    pub fn open(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let n = usize::try_from(self.meta.size).map_err(|_| Error::TooLarge)?;
        // The layout is checked before allocating the size the metadata claims.
        let spans = self.spans(data.len() as u64)?;
        let mut out = vec![0u8; n];
        self.open_spans_into(&spans, data, &mut out)?;
        Ok(out)
    }

    /// [`Verified::open`] into a caller's buffer of exactly [`Verified::size`] bytes; zeroed on failure.
    ///
    /// # Errors
    ///
    /// As [`Verified::open`], and [`Error::BufferSize`].
    pub fn open_into(&self, data: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if out.len() as u64 != self.meta.size {
            return Err(Error::BufferSize {
                expected: self.meta.size,
                got: out.len() as u64,
            });
        }
        self.open_spans_into(&self.spans(data.len() as u64)?, data, out)
    }

    /// Opens each message of `data` (laid out as `spans`) into its piece of `out`; zeroes `out` on
    /// failure.
    fn open_spans_into(
        &self,
        spans: &[PartSpan],
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        for s in spans {
            let msg = &data[s.stored_start as usize..(s.stored_start + s.stored_len) as usize];
            if let Err(e) = range::check_salt(s.number, s.salt, msg) {
                out.fill(0);
                return Err(e);
            }
            let r = cobblestone::open_into(
                self.dek.expose(),
                &part_context(s.number),
                msg,
                &mut out
                    [s.plaintext_start as usize..(s.plaintext_start + s.plaintext_len) as usize],
            );
            if let Err(e) = r {
                out.fill(0);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Opens the object in place (see [`seal_in_place`](super::seal_in_place)): on success each
    /// chunk's plaintext is in its slot (for a multipart object, part by part: the slots of
    /// [`chunk_slots`](super::chunk_slots)`(part size)` from the part's stored start) and the size is
    /// returned; if any part fails once decryption began, the whole buffer is zeroed (a layout or
    /// commitment failure returns before anything is decrypted).
    ///
    /// # Errors
    ///
    /// As [`Verified::open`].
    pub fn open_in_place(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let spans = self.spans(buf.len() as u64)?;
        // Every part's salt before anything is decrypted: a failure leaves the buffer as it was.
        for s in &spans {
            range::check_salt(s.number, s.salt, &buf[s.stored_start as usize..])?;
        }
        for s in spans {
            let part = &mut buf[s.stored_start as usize..(s.stored_start + s.stored_len) as usize];
            if let Err(e) =
                cobblestone::open_in_place(self.dek.expose(), &part_context(s.number), part)
            {
                buf.fill(0);
                return Err(e);
            }
        }
        Ok(self.meta.size as usize)
    }

    /// Checks that `stored_len` is the stored length of part `part`; returns the part's size.
    fn check_part_len(&self, part: u32, stored_len: u64) -> Result<u64, Error> {
        range::expect_len(self.part_size(part)?, stored_len)
    }

    /// Opens one part's stored message (S3's GET with `partNumber`); part 0 is a single-part object.
    ///
    /// # Errors
    ///
    /// As [`Verified::open`].
    pub fn open_part(&self, part: u32, data: &[u8]) -> Result<Vec<u8>, Error> {
        let size = self.check_part_len(part, data.len() as u64)?;
        range::check_salt(part, range::salt_of(self.meta, part), data)?;
        let mut out = vec![0u8; size as usize];
        cobblestone::open_into(self.dek.expose(), &part_context(part), data, &mut out)?;
        Ok(out)
    }

    /// [`Verified::open_part`] in place, as [`Verified::open_in_place`].
    ///
    /// # Errors
    ///
    /// As [`Verified::open`].
    pub fn open_part_in_place(&self, part: u32, buf: &mut [u8]) -> Result<usize, Error> {
        self.check_part_len(part, buf.len() as u64)?;
        range::check_salt(part, range::salt_of(self.meta, part), buf)?;
        cobblestone::open_in_place(self.dek.expose(), &part_context(part), buf)
    }

    /// A streaming reader of a single-part object's data.
    ///
    /// # Errors
    ///
    /// [`Error::BadLayout`] for a multipart object (use [`Verified::part_reader`] per part), and as
    /// [`Verified::part_reader`].
    pub fn reader<R: Read>(&self, inner: R) -> Result<OpenReader<R>, Error> {
        self.part_reader(inner, 0)
    }

    /// A streaming reader of part `part`'s stored message: it reads exactly the stored length the
    /// authenticated part size gives, and fails (`Truncated` or `Tampered`) if the data is shorter or
    /// its chunks do not end there.
    ///
    /// # Errors
    ///
    /// [`Error::BadLayout`] if the object has no such part; [`Error::WrongKey`], [`Error::Truncated`].
    pub fn part_reader<R: Read>(&self, inner: R, part: u32) -> Result<OpenReader<R>, Error> {
        let size = self.part_size(part)?;
        OpenReader::with_len(
            inner,
            self.dek.expose(),
            &part_context(part),
            size,
            range::salt_of(self.meta, part).map(|s| (part, s)),
        )
    }

    /// Plans a range read of this object stored as `stored_len` bytes ([`plan_range`](super::plan_range)).
    ///
    /// # Errors
    ///
    /// As [`plan_range`](super::plan_range).
    pub fn plan_range(&self, range: ByteRange, stored_len: u64) -> Result<RangePlan, Error> {
        range::plan_range(self.meta, range, stored_len)
    }

    /// Opens only the chunks a range needs ([`open_range`](super::open_range)).
    ///
    /// # Errors
    ///
    /// As [`Verified::plan_range`], and [`Error::WrongKey`], [`Error::Tampered`], or the source's I/O
    /// errors.
    pub fn open_range<S: ReadAt + ?Sized>(
        &self,
        stored_len: u64,
        range: ByteRange,
        source: &S,
    ) -> Result<RangeRead, Error> {
        range::open_range(self.dek, self.meta, stored_len, range, source)
    }
}
