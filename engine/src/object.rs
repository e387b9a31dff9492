//! The object format v2 (`docs/FORMAT.md` is the byte-by-byte specification).
//!
//! Every object's data, and every part's data for a multipart upload, is one
//! [Cobblestone-256](cobblestone) message under the object's data key with the context
//! `"ssekit object v1" ‖ be32(part)`: part 0 for a single-part object, 1..=10000 for S3 parts. Each
//! message has its own random salt, so parts are sealed independently, on any server, in any order.
//!
//! The object's [`ObjectMeta`] (mode, size, context, part table) is authenticated as a whole by a MAC
//! under a key derived from the data key, written by [`ObjectMeta::authenticate`] once the object is
//! complete; [`ObjectMeta::verify`] checks it and returns a [`Verified`], and every way of opening an
//! object is a method of [`Verified`], so no chunk is opened under metadata that did not verify: a
//! dropped, added or re-sized part, an edited size or mode, fails before any decryption.
//!
//! ```
//! use ssekit_engine::{keys::{DataKey, EncryptionContext}, object::{self, ObjectMeta, SseMode}};
//!
//! let dek = DataKey::generate();
//! let sealed = object::seal(&dek, b"every byte at rest").unwrap();
//! let mut meta = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), Vec::new());
//! meta.size = 18;
//! meta.authenticate(&dek).unwrap();
//! assert_eq!(meta.verify(&dek).unwrap().open(&sealed).unwrap(), b"every byte at rest");
//! ```
//!
//! - Whole objects in memory: [`seal`], [`seal_into`], [`Verified::open`], [`Verified::open_into`]
//!   (chunks on all cores; single-part and multipart alike).
//! - In place, no second buffer: [`seal_in_place`] and [`Verified::open_in_place`] work on a buffer
//!   laid out as the sealed object, the plaintext in its [`chunk_slots`] (a server reads a request
//!   body straight into them, or sends a response from them). They move the same bytes as the raw
//!   cipher in place.
//! - Streams: [`SealWriter`] (`std::io::Write`, must be finished) and [`OpenReader`] from
//!   [`Verified::reader`] / [`Verified::part_reader`] (`std::io::Read`, and `std::io::Seek` when the
//!   source seeks), parallel over batches of chunks, memory bounded by two batches whatever the
//!   object size.
//! - Ranges: [`plan_range`] says which stored bytes a plaintext range needs;
//!   [`Verified::open_range`] fetches and opens only those chunks.
//! - Multipart: [`seal_part`] per part, then the part table and [`ObjectMeta::authenticate`] at
//!   CompleteMultipartUpload; [`Verified::open_part`] for one part.
//! - Metadata: [`ObjectMeta`] and the file container ([`write_container_header`],
//!   [`read_container_header`]).
//! - Raw Cobblestone-256 messages, with no metadata (conformance tests, other framings):
//!   [`seal_message`], [`open_message`], [`open_message_in_place`], [`OpenReader::for_message`].

use std::fmt;
use std::io;

use crate::keys::DataKey;

mod auth;
pub mod cobblestone;
mod feed;
pub(crate) mod layered;
mod meta;
mod range;
mod stream;

pub use auth::Verified;
pub use cobblestone::{
    CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, checked_sealed_len, chunk_count, chunk_slots,
    plaintext_len, sealed_len,
};
pub use feed::{OpenFeed, SealFeed};
pub use layered::{
    LayeredWriter, checked_layered_len, finish_layered, layered_len, layered_writer, outer_context,
    seal_layered_part,
};
pub use meta::{
    CONTAINER_MAGIC, CONTAINER_VERSION, FORMAT_VERSION, MAX_META_LEN, MAX_OBJECT_SIZE, MetaAuth,
    MetaError, ObjectMeta, PartEntry, SseMode, read_container_header, write_container_header,
};
pub use range::{ByteRange, Fetched, PartFetch, RangePlan, RangeRead, ReadAt, plan_range};
pub use stream::{OpenReader, SealWriter};

pub(crate) use meta::{Writer as MetaWriter, encode_context};
pub(crate) use range::salt_of;

/// Highest S3 part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// What can go wrong sealing or opening an object.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The commitment does not match: the data key or the context is wrong (or the 56-byte header is
    /// damaged; a commitment cannot tell the three apart). Checked before any chunk is decrypted.
    WrongKey,
    /// Chunk `chunk` of the message failed authentication: the stored data was altered, reordered or
    /// spliced from another object.
    Tampered {
        /// Index of the first chunk that failed, from 0.
        chunk: u64,
    },
    /// The metadata's MAC does not match: its mode, size, context or part table was altered (or it
    /// was never authenticated). Checked before any chunk is opened.
    MetadataTampered,
    /// The metadata is outside the format's limits.
    Metadata(MetaError),
    /// Part `part`'s stored message is not the one the authenticated part table names (its salt
    /// differs): another upload of the same part number was put in its place.
    PartReplaced {
        /// The part number.
        part: u32,
    },
    /// The stored data holds `found` plaintext bytes where the authenticated metadata says
    /// `expected`: it was cut or extended by whole chunks.
    LengthMismatch {
        /// The authenticated size.
        expected: u64,
        /// The size the stored length gives.
        found: u64,
    },
    /// The stored length is one no message has: cut inside the header, a chunk or a tag, or missing
    /// the short final chunk.
    Truncated,
    /// The input key is not 32 bytes.
    InvalidKeySize,
    /// The message would have 2^38 chunks or more.
    TooLarge,
    /// An output buffer has the wrong size.
    BufferSize {
        /// The size needed.
        expected: u64,
        /// The size given.
        got: u64,
    },
    /// A part number outside 0..=10000, or a part table that does not fit the stored data.
    BadLayout(&'static str),
    /// The range starts past the end of the object (S3: 416 InvalidRange).
    RangeNotSatisfiable {
        /// The object's plaintext size.
        size: u64,
    },
    /// A range whose first byte is after its last.
    InvalidRange,
    /// The forced AES-GCM backend is not usable here.
    Backend(crate::aead::Error),
    /// A stream was used after it was finished.
    Finished,
    /// Reading or writing the underlying data failed.
    Io {
        /// The I/O error's kind.
        kind: io::ErrorKind,
        /// What failed.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongKey => f.write_str("wrong key: the data key or the encryption context does not match the object (or its header is damaged)"),
            Error::Tampered { chunk } => write!(f, "tampered data: chunk {chunk} failed authentication"),
            Error::MetadataTampered => f.write_str("tampered metadata: the mode, size, context or part table does not match the object's MAC"),
            Error::Metadata(e) => write!(f, "bad metadata: {e}"),
            Error::PartReplaced { part } => write!(f, "part {part} is not the upload the part table names: it was replaced"),
            Error::LengthMismatch { expected, found } => write!(f, "the stored data holds {found} bytes where the authenticated metadata says {expected}: it was cut or extended"),
            Error::Truncated => f.write_str("truncated data: the stored length is not that of a complete object"),
            Error::InvalidKeySize => f.write_str("the data key must be 32 bytes"),
            Error::TooLarge => f.write_str("object too large: more than 2^38 chunks (4 PiB)"),
            Error::BufferSize { expected, got } => write!(f, "buffer of {got} bytes where {expected} are needed"),
            Error::BadLayout(what) => write!(f, "bad part layout: {what}"),
            Error::RangeNotSatisfiable { size } => write!(f, "range not satisfiable: the object has {size} bytes"),
            Error::InvalidRange => f.write_str("invalid range: its first byte is after its last"),
            Error::Backend(e) => write!(f, "{e}"),
            Error::Finished => f.write_str("the stream is already finished"),
            Error::Io { message, .. } => write!(f, "I/O error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        // An object error carried through `io::Error` (from `OpenReader`) comes back as itself.
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return *e
                .into_inner()
                .expect("checked")
                .downcast::<Error>()
                .expect("checked");
        }
        Error::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { kind, message } => io::Error::new(kind, message),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// The Cobblestone context of part `part` (0 for a single-part object): `"ssekit object v1" ‖ be32(part)`.
pub fn part_context(part: u32) -> [u8; 20] {
    let mut c = [0u8; 20];
    c[..16].copy_from_slice(b"ssekit object v1");
    c[16..].copy_from_slice(&part.to_be_bytes());
    c
}

/// The raw message calls refuse the objects' own contexts: an object's parts open only through
/// [`ObjectMeta::verify`], which checks the part table, size and mode they belong to first.
pub(crate) fn refuse_object_context(context: &[u8]) -> Result<(), Error> {
    if context.len() == 20 && context.starts_with(b"ssekit object v1") {
        return Err(Error::BadLayout(
            "an object's data opens only through ObjectMeta::verify, not as a raw message",
        ));
    }
    Ok(())
}

fn check_part(part: u32) -> Result<(), Error> {
    if part > MAX_PART_NUMBER {
        Err(Error::BadLayout(
            "part numbers are 1..=10000 (0 for a single-part object)",
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn random_salt() -> [u8; cobblestone::SALT_LEN] {
    let mut salt = [0u8; cobblestone::SALT_LEN];
    getrandom::fill(&mut salt).expect("the operating system's random number generator failed");
    salt
}

/// Seals a single-part object's data.
///
/// # Errors
///
/// [`Error::TooLarge`], or [`Error::Backend`] for a bad `SSEKIT_BACKEND`.
pub fn seal(dek: &DataKey, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    seal_part(dek, 0, plaintext)
}

/// Seals part `part` (1..=10000; 0 is the single-part object) of an object.
///
/// # Errors
///
/// As [`seal`], and [`Error::BadLayout`] for a part number over 10000.
pub fn seal_part(dek: &DataKey, part: u32, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    check_part(part)?;
    seal_with_salt(dek.expose(), &part_context(part), &random_salt(), plaintext)
}

/// [`seal`] into a caller's buffer of exactly [`sealed_len`] bytes (no allocation).
///
/// # Errors
///
/// As [`seal`], and [`Error::BufferSize`].
pub fn seal_into(dek: &DataKey, plaintext: &[u8], out: &mut [u8]) -> Result<(), Error> {
    seal_part_into(dek, 0, plaintext, out)
}

/// [`seal_part`] into a caller's buffer of exactly [`sealed_len`] bytes.
///
/// # Errors
///
/// As [`seal_part`], and [`Error::BufferSize`].
pub fn seal_part_into(
    dek: &DataKey,
    part: u32,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    check_part(part)?;
    cobblestone::seal_with_salt_into(
        dek.expose(),
        &part_context(part),
        &random_salt(),
        plaintext,
        out,
    )
}

/// Seals a single-part object in place: `buf` is [`sealed_len`] of the plaintext long and holds the
/// plaintext in its [`chunk_slots`]; the header and every chunk's tag are written around it and each
/// slot is encrypted where it lies. No allocation, no copy: memory traffic is that of
/// [`Aes256Gcm::par_seal_in_place`](crate::aead::Aes256Gcm::par_seal_in_place).
///
/// ```
/// use ssekit_engine::{keys::{DataKey, EncryptionContext}, object::{self, ObjectMeta, SseMode}};
///
/// let dek = DataKey::generate();
/// let body = vec![7u8; 40_000];
/// let mut buf = vec![0u8; object::sealed_len(body.len() as u64) as usize];
/// let mut at = 0;
/// for slot in object::chunk_slots(body.len()) {
///     let n = slot.len();
///     buf[slot].copy_from_slice(&body[at..at + n]); // a server would read the request into it
///     at += n;
/// }
/// object::seal_in_place(&dek, &mut buf).unwrap();
/// let mut meta = ObjectMeta::new(SseMode::SseS3, EncryptionContext::new(), Vec::new());
/// meta.size = body.len() as u64;
/// meta.authenticate(&dek).unwrap();
/// assert_eq!(meta.verify(&dek).unwrap().open(&buf).unwrap(), body);
/// ```
///
/// # Errors
///
/// [`Error::BadLayout`] for a length no sealed object has, [`Error::TooLarge`], [`Error::Backend`].
pub fn seal_in_place(dek: &DataKey, buf: &mut [u8]) -> Result<(), Error> {
    seal_part_in_place(dek, 0, buf)
}

/// [`seal_in_place`] for part `part` (1..=10000).
///
/// # Errors
///
/// As [`seal_in_place`].
pub fn seal_part_in_place(dek: &DataKey, part: u32, buf: &mut [u8]) -> Result<(), Error> {
    check_part(part)?;
    cobblestone::seal_with_salt_in_place(dek.expose(), &part_context(part), &random_salt(), buf)
}

#[doc(hidden)]
/// Test hook for the conformance suite: seal with a chosen salt. Never use a salt twice with one key.
pub fn __seal_message_with_salt(
    input_key: &[u8],
    context: &[u8],
    salt: &[u8; 24],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    seal_with_salt(input_key, context, salt, plaintext)
}

/// [`seal_part`] with a salt the caller drew (from one draw of the operating system's generator
/// with the object's other random values). Never use a salt twice with one key.
pub(crate) fn seal_part_salted(
    dek: &DataKey,
    part: u32,
    salt: &[u8; cobblestone::SALT_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    check_part(part)?;
    seal_with_salt(dek.expose(), &part_context(part), salt, plaintext)
}

/// [`seal_part_salted`] into `out` (exactly [`sealed_len`] bytes).
pub(crate) fn seal_part_salted_into(
    dek: &DataKey,
    part: u32,
    salt: &[u8; cobblestone::SALT_LEN],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    check_part(part)?;
    cobblestone::seal_with_salt_into(dek.expose(), &part_context(part), salt, plaintext, out)
}

/// [`seal_part_in_place`] with a salt the caller drew.
pub(crate) fn seal_part_salted_in_place(
    dek: &DataKey,
    part: u32,
    salt: &[u8; cobblestone::SALT_LEN],
    buf: &mut [u8],
) -> Result<(), Error> {
    check_part(part)?;
    cobblestone::seal_with_salt_in_place(dek.expose(), &part_context(part), salt, buf)
}

fn seal_with_salt(
    input_key: &[u8],
    context: &[u8],
    salt: &[u8; 24],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(sealed_len(plaintext.len() as u64)).map_err(|_| Error::TooLarge)?;
    let mut out = vec![0u8; len];
    cobblestone::seal_with_salt_into(input_key, context, salt, plaintext, &mut out)?;
    Ok(out)
}

/// Opens one raw Cobblestone-256 message (any input key length is checked, any context but an
/// object part's: those open through [`ObjectMeta::verify`]).
///
/// # Errors
///
/// As [`Verified::open`], [`Error::InvalidKeySize`], and [`Error::BadLayout`] for an object
/// part's context.
pub fn open_message(input_key: &[u8], context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    refuse_object_context(context)?;
    let len = usize::try_from(plaintext_len(sealed.len() as u64)?).map_err(|_| Error::TooLarge)?;
    let mut out = vec![0u8; len];
    cobblestone::open_into(input_key, context, sealed, &mut out)?;
    Ok(out)
}

/// [`open_message`] in place, as [`Verified::open_in_place`]: the plaintext is left in the
/// [`chunk_slots`].
///
/// # Errors
///
/// As [`open_message`].
pub fn open_message_in_place(
    input_key: &[u8],
    context: &[u8],
    buf: &mut [u8],
) -> Result<usize, Error> {
    refuse_object_context(context)?;
    cobblestone::open_in_place(input_key, context, buf)
}

/// Seals one raw Cobblestone-256 message with a fresh random salt.
///
/// # Errors
///
/// [`Error::InvalidKeySize`], [`Error::TooLarge`], [`Error::Backend`].
pub fn seal_message(input_key: &[u8], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    seal_with_salt(input_key, context, &random_salt(), plaintext)
}
