//! `ObjectMeta`: the small record a server stores beside an object's data, its canonical binary
//! encoding (docs/FORMAT.md section 3) and the CLI's file container.
//!
//! Parsing is total: every input gives an `ObjectMeta` or a [`MetaError`], never a panic, and no
//! allocation is larger than the input itself (every length is checked against the bytes left first).

use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::keys::{EncryptionContext, WrappedKey};

/// The object format version this build writes and reads (3: each row of the part table names its
/// part's message by its salt, so a part replaced by another upload of the same number does not open;
/// 2 had no salts, 1 no commitment or MAC; neither is read).
pub const FORMAT_VERSION: u8 = 3;
/// The file container's magic.
pub const CONTAINER_MAGIC: [u8; 4] = *b"SSEK";
/// The file container's version.
pub const CONTAINER_VERSION: u8 = 1;
/// Largest encoded `ObjectMeta` accepted (a 10000-part table is 340 KB).
pub const MAX_META_LEN: usize = 512 * 1024;

/// Largest object (and part) plaintext size the format allows: a message has at most 2^38 chunks of
/// 16 KiB, so 2^52 − 1 bytes (4 PiB). Every length computed from metadata stays far below 2^64.
pub const MAX_OBJECT_SIZE: u64 = (super::cobblestone::MAX_CHUNKS << 14) - 1;

const MAX_CONTEXT_ENTRIES: usize = 64;
const MAX_CONTEXT_STR: usize = 4096;
const MAX_KEYS: usize = 4;
const MAX_NAME: usize = 255;
const MAX_KEY_ID: usize = 2048;
const MAX_WRAPPED: usize = 8192;

/// How the object is encrypted, as S3 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SseMode {
    /// SSE-S3 (`AES256`): keys managed by the store.
    SseS3,
    /// SSE-KMS (`aws:kms`): a named customer key.
    SseKms,
    /// DSSE-KMS (`aws:kms:dsse`): two independent layers.
    DsseKms,
    /// SSE-C: the client supplies the key on every request.
    SseC,
    /// Client-side encryption: the server stores bytes it cannot read.
    Client,
}

impl SseMode {
    fn code(self) -> u8 {
        match self {
            SseMode::SseS3 => 1,
            SseMode::SseKms => 2,
            SseMode::DsseKms => 3,
            SseMode::SseC => 4,
            SseMode::Client => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => SseMode::SseS3,
            2 => SseMode::SseKms,
            3 => SseMode::DsseKms,
            4 => SseMode::SseC,
            5 => SseMode::Client,
            _ => return None,
        })
    }

    /// The S3 name (`x-amz-server-side-encryption` value, or `SSE-C` / `client`).
    pub fn s3_name(self) -> &'static str {
        match self {
            SseMode::SseS3 => "AES256",
            SseMode::SseKms => "aws:kms",
            SseMode::DsseKms => "aws:kms:dsse",
            SseMode::SseC => "SSE-C",
            SseMode::Client => "client",
        }
    }
}

impl fmt::Display for SseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.s3_name())
    }
}

/// One row of a multipart object's part table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartEntry {
    /// S3 part number, 1..=10000.
    pub number: u32,
    /// The part's plaintext size in bytes.
    pub size: u64,
    /// The salt of the part's message (its first 24 stored bytes; for DSSE-KMS, the inner
    /// message's): which upload of the part the object holds. Each upload of a part has its own.
    pub salt: [u8; 24],
}

impl PartEntry {
    /// The row of a part whose sealed message (one layer) is `sealed`: its number, its plaintext
    /// size, and the salt at the message's start.
    ///
    /// # Errors
    ///
    /// [`MetaError::Truncated`] when `sealed` is shorter than a salt.
    pub fn of_message(number: u32, size: u64, sealed: &[u8]) -> Result<Self, MetaError> {
        let salt = sealed
            .get(..24)
            .and_then(|s| <[u8; 24]>::try_from(s).ok())
            .ok_or(MetaError::Truncated("part salt"))?;
        Ok(PartEntry { number, size, salt })
    }
}

/// Everything needed to open an object except the key material itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// How the object is encrypted.
    pub mode: SseMode,
    /// Plaintext size of the whole object.
    pub size: u64,
    /// The encryption context every wrap of the data key is bound to.
    pub context: EncryptionContext,
    /// The wrapped data key(s): one, two for DSSE-KMS, none for SSE-C.
    pub keys: Vec<WrappedKey>,
    /// The part table of a multipart object (ascending part numbers); empty for a single-part object.
    pub parts: Vec<PartEntry>,
    /// The key commitment and MAC over everything above but the envelope ([`ObjectMeta::authenticate`]
    /// writes them once the object is complete; every open checks them first).
    pub auth: MetaAuth,
}

/// The metadata's authentication (docs/FORMAT.md section 3): a commitment to the data key and a MAC
/// over the version, mode, size, context and part table, both under keys derived from the data key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaAuth {
    /// Tells a wrong data key from altered metadata.
    pub commitment: [u8; 32],
    /// HMAC-SHA-256 of the authenticated fields.
    pub mac: [u8; 32],
}

impl ObjectMeta {
    /// Metadata for a single-part object of size 0 with no parts, not yet authenticated: set `size`
    /// (and `parts` for a multipart object), then [`ObjectMeta::authenticate`].
    pub fn new(mode: SseMode, context: EncryptionContext, keys: Vec<WrappedKey>) -> Self {
        ObjectMeta {
            mode,
            size: 0,
            context,
            keys,
            parts: Vec::new(),
            auth: MetaAuth::default(),
        }
    }
}

/// Why a metadata record or a container header was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaError {
    /// The record ends inside `field`.
    Truncated(&'static str),
    /// Bytes left over after a complete record.
    TrailingBytes(usize),
    /// A format version this build does not know.
    UnsupportedVersion(u8),
    /// An SSE mode code this build does not know.
    UnknownMode(u8),
    /// `field` is longer than the format allows.
    TooLong(&'static str),
    /// `field` is not UTF-8.
    NotUtf8(&'static str),
    /// An empty context key.
    EmptyContextKey,
    /// Context keys not in strictly ascending byte order (the encoding is canonical).
    ContextNotCanonical,
    /// Part numbers outside 1..=10000 or not strictly ascending.
    BadPartTable,
    /// The part sizes do not add up to the object size.
    SizeMismatch,
    /// The object size is over [`MAX_OBJECT_SIZE`].
    TooLarge,
    /// Not base64.
    Base64,
    /// The file does not start with `SSEK`.
    BadMagic,
    /// A container version this build does not know.
    UnsupportedContainer(u8),
    /// Reading the container failed.
    Io(io::ErrorKind, String),
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Truncated(field) => write!(f, "metadata truncated in {field}"),
            MetaError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the metadata"),
            MetaError::UnsupportedVersion(v) => write!(
                f,
                "object format version {v} is not supported (this build reads {FORMAT_VERSION})"
            ),
            MetaError::UnknownMode(m) => write!(f, "unknown encryption mode code {m}"),
            MetaError::TooLong(field) => write!(f, "metadata field {field} is too long"),
            MetaError::NotUtf8(field) => write!(f, "metadata field {field} is not UTF-8"),
            MetaError::EmptyContextKey => f.write_str("empty encryption context key"),
            MetaError::ContextNotCanonical => {
                f.write_str("encryption context keys are not in ascending order")
            }
            MetaError::BadPartTable => f.write_str("part numbers must be 1..=10000 and ascending"),
            MetaError::SizeMismatch => f.write_str("part sizes do not add up to the object size"),
            MetaError::TooLarge => write!(
                f,
                "object size over the format's limit of {MAX_OBJECT_SIZE} bytes"
            ),
            MetaError::Base64 => f.write_str("metadata is not valid base64"),
            MetaError::BadMagic => f.write_str("not an ssekit object (no SSEK magic)"),
            MetaError::UnsupportedContainer(v) => write!(
                f,
                "container version {v} is not supported (this build reads 1)"
            ),
            MetaError::Io(_, m) => write!(f, "reading the object failed: {m}"),
        }
    }
}

impl std::error::Error for MetaError {}

pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes8(&mut self, b: &[u8]) {
        self.u8(u8::try_from(b.len()).expect("checked by the type's limits"));
        self.0.extend_from_slice(b);
    }
    pub(crate) fn bytes16(&mut self, b: &[u8]) {
        self.u16(u16::try_from(b.len()).expect("checked by the type's limits"));
        self.0.extend_from_slice(b);
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MetaError> {
        if self.0.len() < n {
            return Err(MetaError::Truncated(field));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, MetaError> {
        Ok(self.take(1, field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, MetaError> {
        Ok(u16::from_be_bytes(
            self.take(2, field)?.try_into().expect("2"),
        ))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, MetaError> {
        Ok(u32::from_be_bytes(
            self.take(4, field)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, MetaError> {
        Ok(u64::from_be_bytes(
            self.take(8, field)?.try_into().expect("8"),
        ))
    }
    fn bytes8(&mut self, field: &'static str) -> Result<&'a [u8], MetaError> {
        let n = self.u8(field)? as usize;
        self.take(n, field)
    }
    pub(crate) fn bytes16(&mut self, field: &'static str) -> Result<&'a [u8], MetaError> {
        let n = self.u16(field)? as usize;
        self.take(n, field)
    }
    pub(crate) fn str16(&mut self, field: &'static str, max: usize) -> Result<&'a str, MetaError> {
        let b = self.bytes16(field)?;
        if b.len() > max {
            return Err(MetaError::TooLong(field));
        }
        std::str::from_utf8(b).map_err(|_| MetaError::NotUtf8(field))
    }
    fn str8(&mut self, field: &'static str) -> Result<&'a str, MetaError> {
        std::str::from_utf8(self.bytes8(field)?).map_err(|_| MetaError::NotUtf8(field))
    }
}

/// Encodes an encryption context canonically: `be16(count)`, then per entry in ascending key order
/// `be16(len) ‖ key ‖ be16(len) ‖ value`.
pub(crate) fn encode_context(w: &mut Writer, c: &EncryptionContext) {
    w.u16(u16::try_from(c.len()).expect("checked by EncryptionContext"));
    for (k, v) in c.iter() {
        w.bytes16(k.as_bytes());
        w.bytes16(v.as_bytes());
    }
}

pub(crate) fn decode_context(r: &mut Reader<'_>) -> Result<EncryptionContext, MetaError> {
    let n = r.u16("context count")? as usize;
    if n > MAX_CONTEXT_ENTRIES {
        return Err(MetaError::TooLong("context"));
    }
    let mut c = EncryptionContext::new();
    let mut prev: Option<&str> = None;
    for _ in 0..n {
        let k = r.str16("context key", MAX_CONTEXT_STR)?;
        let v = r.str16("context value", MAX_CONTEXT_STR)?;
        if k.is_empty() {
            return Err(MetaError::EmptyContextKey);
        }
        if prev.is_some_and(|p| p.as_bytes() >= k.as_bytes()) {
            return Err(MetaError::ContextNotCanonical);
        }
        prev = Some(k);
        c.insert(k, v).map_err(|_| MetaError::TooLong("context"))?;
    }
    Ok(c)
}

impl ObjectMeta {
    /// The canonical binary encoding (docs/FORMAT.md section 3).
    ///
    /// # Errors
    ///
    /// If a field is over the format's limits ([`MetaError::TooLong`], [`MetaError::BadPartTable`],
    /// [`MetaError::SizeMismatch`]): what `to_bytes` accepts, `from_bytes` reads back equal.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MetaError> {
        self.validate()?;
        let mut w = Writer(Vec::with_capacity(192 + 34 * self.parts.len()));
        self.encode_head(&mut w);
        w.u8(self.keys.len() as u8);
        for k in &self.keys {
            w.bytes8(k.provider.as_bytes());
            w.bytes16(k.key_id.as_bytes());
            w.u32(k.key_version);
            w.bytes8(k.algorithm.as_bytes());
            w.bytes16(&k.ciphertext);
        }
        self.encode_parts(&mut w);
        w.0.extend_from_slice(&self.auth.commitment);
        w.0.extend_from_slice(&self.auth.mac);
        Ok(w.0)
    }

    /// Version, mode, size and context: the authenticated fields before the envelope.
    fn encode_head(&self, w: &mut Writer) {
        w.u8(FORMAT_VERSION);
        w.u8(self.mode.code());
        w.u64(self.size);
        encode_context(w, &self.context);
    }

    /// The part table: the authenticated fields after the envelope.
    fn encode_parts(&self, w: &mut Writer) {
        w.u16(self.parts.len() as u16);
        for p in &self.parts {
            w.u16(p.number as u16);
            w.u64(p.size);
            w.0.extend_from_slice(&p.salt);
        }
    }

    /// What the MAC covers (docs/FORMAT.md section 3): the encoding without the envelope and the
    /// authentication itself. Only for validated metadata (the encoding is then injective).
    pub(crate) fn authenticated_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + 34 * self.parts.len()));
        self.encode_head(&mut w);
        self.encode_parts(&mut w);
        w.0
    }

    pub(crate) fn validate(&self) -> Result<(), MetaError> {
        if self.size > MAX_OBJECT_SIZE {
            return Err(MetaError::TooLarge);
        }
        if self.context.len() > MAX_CONTEXT_ENTRIES {
            return Err(MetaError::TooLong("context"));
        }
        if self.keys.len() > MAX_KEYS {
            return Err(MetaError::TooLong("keys"));
        }
        for k in &self.keys {
            if k.provider.len() > MAX_NAME || k.algorithm.len() > MAX_NAME {
                return Err(MetaError::TooLong("provider or algorithm"));
            }
            if k.key_id.len() > MAX_KEY_ID {
                return Err(MetaError::TooLong("key id"));
            }
            if k.ciphertext.len() > MAX_WRAPPED {
                return Err(MetaError::TooLong("wrapped key"));
            }
        }
        if self.parts.len() > super::MAX_PART_NUMBER as usize {
            return Err(MetaError::BadPartTable);
        }
        let mut prev = 0;
        let mut sum = 0u64;
        for p in &self.parts {
            if p.number <= prev || p.number > super::MAX_PART_NUMBER {
                return Err(MetaError::BadPartTable);
            }
            prev = p.number;
            sum = sum.checked_add(p.size).ok_or(MetaError::SizeMismatch)?;
        }
        if !self.parts.is_empty() && sum != self.size {
            return Err(MetaError::SizeMismatch);
        }
        Ok(())
    }

    /// Parses the canonical binary encoding; rejects anything else.
    ///
    /// # Errors
    ///
    /// A [`MetaError`] naming what is wrong.
    pub fn from_bytes(b: &[u8]) -> Result<Self, MetaError> {
        if b.len() > MAX_META_LEN {
            return Err(MetaError::TooLong("metadata"));
        }
        let mut r = Reader(b);
        let v = r.u8("version")?;
        if v != FORMAT_VERSION {
            return Err(MetaError::UnsupportedVersion(v));
        }
        let m = r.u8("mode")?;
        let mode = SseMode::from_code(m).ok_or(MetaError::UnknownMode(m))?;
        let size = r.u64("size")?;
        let context = decode_context(&mut r)?;
        let nkeys = r.u8("key count")? as usize;
        if nkeys > MAX_KEYS {
            return Err(MetaError::TooLong("keys"));
        }
        let mut keys = Vec::with_capacity(nkeys);
        for _ in 0..nkeys {
            let provider = r.str8("provider")?.to_owned();
            let key_id = r.str16("key id", MAX_KEY_ID)?.to_owned();
            let key_version = r.u32("key version")?;
            let algorithm = r.str8("algorithm")?.to_owned();
            let ciphertext = r.bytes16("wrapped key")?;
            if ciphertext.len() > MAX_WRAPPED {
                return Err(MetaError::TooLong("wrapped key"));
            }
            keys.push(WrappedKey {
                provider,
                key_id,
                key_version,
                algorithm,
                ciphertext: ciphertext.to_vec(),
            });
        }
        let nparts = r.u16("part count")? as usize;
        if nparts > super::MAX_PART_NUMBER as usize {
            return Err(MetaError::BadPartTable);
        }
        // 34 bytes per row: never reserve more rows than the input can hold.
        let mut parts = Vec::with_capacity(nparts.min(r.0.len() / 34));
        for _ in 0..nparts {
            let number = u32::from(r.u16("part number")?);
            let size = r.u64("part size")?;
            let mut salt = [0u8; 24];
            salt.copy_from_slice(r.take(24, "part salt")?);
            parts.push(PartEntry { number, size, salt });
        }
        let mut auth = MetaAuth::default();
        auth.commitment
            .copy_from_slice(r.take(32, "key commitment")?);
        auth.mac.copy_from_slice(r.take(32, "metadata MAC")?);
        if !r.0.is_empty() {
            return Err(MetaError::TrailingBytes(r.0.len()));
        }
        let meta = ObjectMeta {
            mode,
            size,
            context,
            keys,
            parts,
            auth,
        };
        meta.validate()?;
        Ok(meta)
    }

    /// The binary encoding in standard base64 with padding (for an HTTP header or a text store).
    ///
    /// # Errors
    ///
    /// As [`ObjectMeta::to_bytes`].
    pub fn to_base64(&self) -> Result<String, MetaError> {
        Ok(BASE64.encode(self.to_bytes()?))
    }

    /// Parses [`ObjectMeta::to_base64`]'s form.
    ///
    /// # Errors
    ///
    /// [`MetaError::Base64`] or as [`ObjectMeta::from_bytes`].
    pub fn from_base64(s: &str) -> Result<Self, MetaError> {
        if s.len() > MAX_META_LEN * 4 / 3 + 4 {
            return Err(MetaError::TooLong("metadata"));
        }
        let b = BASE64.decode(s).map_err(|_| MetaError::Base64)?;
        Self::from_bytes(&b)
    }
}

/// Writes the file container header: `"SSEK" ‖ u8 version ‖ be32(len) ‖ ObjectMeta`. The object data
/// follows. Returns the header's length.
///
/// # Errors
///
/// The metadata's own errors, or the writer's.
pub fn write_container_header<W: Write>(w: &mut W, meta: &ObjectMeta) -> io::Result<u64> {
    let m = meta
        .to_bytes()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&CONTAINER_MAGIC)?;
    w.write_all(&[CONTAINER_VERSION])?;
    w.write_all(&(m.len() as u32).to_be_bytes())?;
    w.write_all(&m)?;
    Ok(9 + m.len() as u64)
}

/// Reads a container header; returns the metadata and the header's length (where the data starts).
///
/// # Errors
///
/// [`MetaError::BadMagic`], [`MetaError::UnsupportedContainer`], [`MetaError::TooLong`],
/// [`MetaError::Truncated`], [`MetaError::Io`], or the metadata's own errors.
pub fn read_container_header<R: Read>(r: &mut R) -> Result<(ObjectMeta, u64), MetaError> {
    let io_err = |e: io::Error, field| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            MetaError::Truncated(field)
        } else {
            MetaError::Io(e.kind(), e.to_string())
        }
    };
    let mut fixed = [0u8; 9];
    r.read_exact(&mut fixed)
        .map_err(|e| io_err(e, "container header"))?;
    if fixed[..4] != CONTAINER_MAGIC {
        return Err(MetaError::BadMagic);
    }
    if fixed[4] != CONTAINER_VERSION {
        return Err(MetaError::UnsupportedContainer(fixed[4]));
    }
    let len = u32::from_be_bytes(fixed[5..9].try_into().expect("4")) as usize;
    if len > MAX_META_LEN {
        return Err(MetaError::TooLong("metadata"));
    }
    let mut m = Vec::new();
    r.take(len as u64)
        .read_to_end(&mut m)
        .map_err(|e| io_err(e, "metadata"))?;
    if m.len() != len {
        return Err(MetaError::Truncated("metadata"));
    }
    Ok((ObjectMeta::from_bytes(&m)?, 9 + len as u64))
}
