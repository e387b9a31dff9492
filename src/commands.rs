//! `put`, `get`, `inspect`, `rewrap` and `key`: objects in the file container, keys with the chosen
//! provider (see `providers`).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::escape::{escape, escape_json};
use crate::pipe::{ReadAhead, WriteBehind};
use crate::providers::Providers;
use crate::sse_cmd::{self, SseFlags};
use ssekit::engine::sse::{ObjectReader, ObjectWriter, Operation, ReadPlan, WritePlan};
use ssekit::keys::DataKey;
use ssekit::keys::{
    EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, KeyState, LocalKeyring, WrappedKey,
    format_time,
};
use ssekit::object::{
    self, ByteRange, ObjectMeta, PartEntry, ReadAt, SealWriter, SseMode, Verified,
    read_container_header, write_container_header,
};

/// The key `put` uses when no `--key-id` is given; created on first use.
pub const DEFAULT_KEY: &str = "default";

/// Inputs over this size get a progress bar (when stderr is a terminal).
const PROGRESS_MIN: u64 = 8 << 20;

/// A command's failure: one line for stderr.
pub type Outcome = Result<(), String>;

/// `--home`, else the default home (`$SSEKIT_HOME`, else the user's data directory; never the
/// working directory).
pub fn home(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    match flag {
        Some(h) => Ok(h),
        None => ssekit::keys::home::default_home().map_err(|e| e.to_string()),
    }
}

pub fn keyring(home: &Path) -> Result<LocalKeyring, String> {
    LocalKeyring::open(home).map_err(|e| format!("keyring {}: {e}", home.display()))
}

pub fn parse_context(pairs: &[String]) -> Result<EncryptionContext, String> {
    let mut c = EncryptionContext::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--context `{p}` must be KEY=VALUE"))?;
        c.insert(k, v)
            .map_err(|e| format!("--context `{p}`: {e}"))?;
    }
    Ok(c)
}

fn context_text(c: &EncryptionContext) -> String {
    if c.is_empty() {
        return "(none)".into();
    }
    c.iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a command's output goes: a regular file (or a path not there yet) is replaced by a
/// temporary file written beside it and renamed into place only on success, so a failure never
/// leaves a partial file; stdout (`-`), a FIFO, a device or anything else not a regular file is
/// written directly, so nothing lands on disk that the user did not ask for.
enum Destination {
    Replace(PathBuf),
    /// The file and the name to report errors under.
    Stream(File, String),
}

impl Destination {
    fn of(path: &str) -> Result<Self, String> {
        if path == "-" {
            // A handle of its own on fd 1: unbuffered, and `Send` for the writer thread.
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
            return Ok(Destination::Stream(File::from(fd), "stdout".into()));
        }
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                // Plaintext goes only into a FIFO or device of the user's or root's: one that
                // someone else made (in a shared directory, or behind a link) is read by them.
                // Checked on what was opened, before anything is written.
                let opened = f
                    .metadata()
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                let (owner, me) = (opened.uid(), ssekit::keys::home::euid());
                if owner != me && owner != 0 {
                    return Err(format!(
                        "refusing to write plaintext into {path}: it is a FIFO or device owned by uid {owner}, not by you (uid {me}) or root, so someone else reads it; give a regular file or `-`"
                    ));
                }
                Ok(Destination::Stream(f, path.to_owned()))
            }
            _ => Ok(Destination::Replace(PathBuf::from(path))),
        }
    }
}

/// A temporary file beside `dest`, in the same directory, so the rename stays on one file system.
fn temp_beside(dest: &Path) -> Result<tempfile::NamedTempFile, String> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".ssekit-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))
}

fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Outcome {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", dest.display());
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(dest).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// `get`'s output, written front to back (see [`Destination`]). On a failure part way through a
/// stream, what was written stays written: only authenticated chunks are ever released (the
/// [`OpenReader`] guarantees it), and the command exits non-zero.
enum Output {
    Replace {
        dest: PathBuf,
        tmp: tempfile::NamedTempFile,
    },
    Stream(File, String),
}

impl Output {
    fn create(path: &str) -> Result<Self, String> {
        Ok(match Destination::of(path)? {
            Destination::Replace(dest) => Output::Replace {
                tmp: temp_beside(&dest)?,
                dest,
            },
            Destination::Stream(f, name) => Output::Stream(f, name),
        })
    }

    fn writer(&mut self) -> &mut File {
        match self {
            Output::Replace { tmp, .. } => tmp.as_file_mut(),
            Output::Stream(f, _) => f,
        }
    }

    fn commit(self) -> Outcome {
        match self {
            Output::Replace { dest, tmp } => persist(tmp, &dest),
            Output::Stream(mut f, name) => f
                .flush()
                .map_err(|e| format!("cannot write to {name}: {e}")),
        }
    }
}

/// The output of a command that must seek back in what it wrote (`put` fills in the size; `rewrap`
/// rewrites in place): a temporary file beside a regular destination, renamed on success; for
/// stdout, a FIFO or a device, a temporary file in `$TMPDIR` copied out at the end. That spool only
/// ever holds sealed data, never plaintext.
struct SeekableOutput {
    tmp: tempfile::NamedTempFile,
    dest: Destination,
}

impl SeekableOutput {
    fn create(path: &str) -> Result<Self, String> {
        let dest = Destination::of(path)?;
        let tmp = match &dest {
            Destination::Replace(p) => temp_beside(p)?,
            Destination::Stream(..) => tempfile::Builder::new()
                .prefix(".ssekit-")
                .suffix(".tmp")
                .tempfile()
                .map_err(|e| format!("cannot create a temporary file: {e}"))?,
        };
        Ok(SeekableOutput { tmp, dest })
    }

    fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    fn commit(mut self) -> Outcome {
        self.tmp.as_file_mut().flush().map_err(|e| e.to_string())?;
        match self.dest {
            Destination::Replace(dest) => persist(self.tmp, &dest),
            Destination::Stream(mut out, name) => {
                let f = self.tmp.as_file_mut();
                f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
                io::copy(f, &mut out).map_err(|e| format!("cannot write to {name}: {e}"))?;
                out.flush()
                    .map_err(|e| format!("cannot write to {name}: {e}"))
            }
        }
    }
}

fn open_input(path: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if path == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let f = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // Only a regular file's length is its content's: a FIFO or a device says 0.
    let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    Ok((Box::new(f), len))
}

fn progress(len: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    let len = len?;
    if len < PROGRESS_MIN || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    Some(bar)
}

/// Copies `src` into `dst` in large reads, reporting progress.
fn pump(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    bar: Option<&indicatif::ProgressBar>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
        if let Some(b) = bar {
            b.inc(n as u64);
        }
    }
    Ok(total)
}

/// Parses `--part-size`: bytes, or a number with K, M or G (binary units).
fn parse_part_size(s: &str) -> Result<u64, String> {
    let bad = || format!("--part-size `{s}` must be a byte count such as 8388608, 5M or 1G");
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).filter(|&n| n > 0).ok_or_else(bad)
}

/// The part table of a `len`-byte input cut into parts of `part_size` (at least one part).
fn part_table(len: u64, part_size: u64) -> Result<Vec<PartEntry>, String> {
    let count = len.div_ceil(part_size).max(1);
    if count > u64::from(object::MAX_PART_NUMBER) {
        return Err(format!(
            "--part-size {part_size} cuts {len} bytes into {count} parts; S3 allows at most {}: use a larger size",
            object::MAX_PART_NUMBER
        ));
    }
    Ok((0..count)
        .map(|i| PartEntry {
            number: i as u32 + 1,
            size: part_size.min(len - i * part_size),
            // Filled in as each part is sealed (the header is written again at the end).
            salt: [0; 24],
        })
        .collect())
}

/// The messages an object's data holds, back to back: `(part number, plaintext size)` for each part
/// of the part table, or part 0 of a size found at its end for a single-part object.
fn messages(meta: &ObjectMeta) -> Vec<(u32, Option<u64>)> {
    if meta.parts.is_empty() {
        return vec![(0, None)];
    }
    meta.parts
        .iter()
        .map(|p| (p.number, Some(p.size)))
        .collect()
}

/// What seals a `put`'s messages: the raw envelope's data key, or an S3 plan.
enum Sealer {
    Raw(DataKey),
    S3(Box<WritePlan>),
}

impl Sealer {
    fn writer<W: Write>(&self, out: W, part: u32) -> Result<ObjectWriter<W>, String> {
        match self {
            Sealer::Raw(dek) => SealWriter::new_part(out, dek, part)
                .map(|w| ObjectWriter::One(Box::new(w)))
                .map_err(|e| e.to_string()),
            Sealer::S3(plan) => plan.part_writer(out, part).map_err(sse_cmd::s3),
        }
    }

    /// The final metadata, authenticated: `meta` with its size (and part table) set.
    fn finish(self, mut meta: ObjectMeta) -> Result<ObjectMeta, String> {
        match self {
            Sealer::Raw(dek) => {
                meta.authenticate(&dek).map_err(|e| e.to_string())?;
                Ok(meta)
            }
            Sealer::S3(plan) if meta.parts.is_empty() => {
                plan.finish(meta.size).map_err(sse_cmd::s3)
            }
            Sealer::S3(plan) => plan.finish_parts(meta.parts).map_err(sse_cmd::s3),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn put(
    ps: &Providers,
    input: &str,
    output: &str,
    key_id: Option<&str>,
    context: &[String],
    part_size: Option<&str>,
    sse: &SseFlags,
) -> Outcome {
    let context = parse_context(context)?;
    let part_size = part_size.map(parse_part_size).transpose()?;
    let (sealer, mut meta) = if sse.any() {
        if key_id.is_some() {
            return Err(
                "--key-id names the raw envelope's key: with the S3 flags use --sse aws:kms --kms-key-id ID"
                    .into(),
            );
        }
        let plan = sse_cmd::plan_put(ps, sse, &context, output)?;
        let meta = plan.upload_meta().clone();
        (Sealer::S3(Box::new(plan)), meta)
    } else {
        let ring = ps.open_chosen()?;
        let (id, mode) = match key_id {
            Some(id) => (id, SseMode::SseKms),
            None => {
                ring.ensure_key(DEFAULT_KEY).map_err(|e| e.to_string())?;
                (DEFAULT_KEY, SseMode::SseS3)
            }
        };
        let (dek, wrapped) = ring
            .generate_data_key(id, &context)
            .map_err(|e| e.to_string())?;
        (
            Sealer::Raw(dek),
            ObjectMeta::new(mode, context, vec![wrapped]),
        )
    };
    let (src, len) = open_input(input)?;
    // The part table is written before the data, so it needs the size up front.
    let parts = match (part_size, len) {
        (None, _) => Vec::new(),
        (Some(p), Some(n)) => part_table(n, p)?,
        (Some(_), None) => {
            return Err(
                "--part-size needs a file input: the part table is written before the data".into(),
            );
        }
    };
    let mut out = SeekableOutput::create(output)?;
    meta.size = parts.iter().map(|p| p.size).sum();
    meta.parts = parts;
    // The size and the MAC are written after the data is sealed: fixed-width fields, so the header
    // keeps its length.
    let header_len = write_container_header(out.file(), &meta).map_err(|e| e.to_string())?;
    let bar = progress(len, "sealing");
    // Reading, sealing and writing overlap: each on its own thread.
    let size = std::thread::scope(|s| -> Result<(u64, Vec<[u8; 24]>), String> {
        let mut reader = ReadAhead::spawn(s, src);
        let mut writer = WriteBehind::spawn(s, out.file());
        let mut total = 0;
        let mut salts = Vec::new();
        for (number, size) in messages(&meta) {
            let mut sealer = sealer.writer(writer, number)?;
            salts.push(sealer.salt());
            let limited = &mut (&mut reader).take(size.unwrap_or(u64::MAX));
            pump(limited, &mut sealer, bar.as_ref()).map_err(|e| format!("{input}: {e}"))?;
            let (w, n) = sealer.finish().map_err(|e| format!("{output}: {e}"))?;
            if size.is_some_and(|size| n != size) {
                return Err(format!("{input}: the file shrank while it was read"));
            }
            total += n;
            writer = w;
        }
        if reader
            .read(&mut [0u8; 1])
            .map_err(|e| format!("{input}: {e}"))?
            != 0
        {
            return Err(format!("{input}: the file grew while it was read"));
        }
        writer.finish().map_err(|e| format!("{output}: {e}"))?;
        Ok((total, salts))
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (size, salts) = size;
    meta.size = size;
    for (p, salt) in meta.parts.iter_mut().zip(salts) {
        p.salt = salt;
    }
    let meta = sealer.finish(meta)?;
    let f = out.file();
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let again = write_container_header(f, &meta).map_err(|e| e.to_string())?;
    debug_assert_eq!(again, header_len);
    out.commit()
}

/// Reads a container's header from `path`; returns the file, the metadata and where the data starts.
fn read_object(path: &str) -> Result<(File, ObjectMeta, u64, u64), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let (meta, data_start) = read_container_header(&mut io::BufReader::new(&mut f))
        .map_err(|e| format!("{path}: {e}"))?;
    let len = f.metadata().map_err(|e| format!("{path}: {e}"))?.len();
    f.seek(SeekFrom::Start(data_start))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok((f, meta, data_start, len - data_start))
}

fn unwrap_dek(
    ps: &Providers,
    meta: &ObjectMeta,
    path: &str,
) -> Result<ssekit::keys::DataKey, String> {
    let wrapped = meta.keys.first().ok_or_else(|| {
        format!("{path}: the object has no wrapped key (SSE-C objects need the customer's key)")
    })?;
    let ring = ps
        .for_wrapped(&wrapped.provider)
        .map_err(|e| format!("{path}: {e}"))?;
    ring.unwrap(wrapped, &meta.context)
        .map_err(|e| format!("{path}: {e}"))
}

/// Positioned reads from the data part of a container file.
struct DataAt<'a> {
    file: &'a File,
    start: u64,
}

impl ReadAt for DataAt<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self.file, buf, self.start + offset)
    }
}

/// What opens a `get`'s messages: the raw envelope's verified metadata, or an S3 read plan.
enum Opener<'a> {
    Raw(Verified<'a>),
    S3(&'a ReadPlan),
}

impl Opener<'_> {
    /// The stored length of message `part`, from the authenticated metadata.
    fn stored_len(&self, part: u32) -> Result<u64, String> {
        match self {
            Opener::Raw(v) => v
                .part_size(part)
                .and_then(object::checked_sealed_len)
                .map_err(|e| e.to_string()),
            Opener::S3(plan) => plan.stored_part_len(part).map_err(sse_cmd::s3),
        }
    }

    fn reader<R: Read>(&self, src: R, part: u32) -> Result<ObjectReader<R>, String> {
        match self {
            Opener::Raw(v) => v
                .part_reader(src, part)
                .map(|r| ObjectReader::One(Box::new(r)))
                .map_err(|e| e.to_string()),
            Opener::S3(plan) => plan.part_reader(src, part).map_err(sse_cmd::s3),
        }
    }
}

pub fn get(
    ps: &Providers,
    input: &str,
    output: &str,
    range: Option<&str>,
    context: &[String],
    sse: &SseFlags,
) -> Outcome {
    let expected = parse_context(context)?;
    let range = range
        .map(|r| {
            ByteRange::parse(r).map_err(|_| {
                format!("--range `{r}` must be START-END (inclusive), START- or -COUNT")
            })
        })
        .transpose()?;
    if input == "-" {
        if range.is_some() {
            return Err("--range needs a file to seek in, not stdin".into());
        }
        let mut stdin = io::stdin();
        let (meta, _) = read_container_header(&mut stdin).map_err(|e| format!("stdin: {e}"))?;
        let mut out = Output::create(output)?;
        return get_stream(
            ps, &meta, &expected, sse, "stdin", &mut stdin, None, &mut out,
        )
        .and_then(|()| out.commit());
    }
    let (file, meta, data_start, stored) = read_object(input)?;
    let mut out = Output::create(output)?;
    match range {
        None => {
            get_stream(
                ps,
                &meta,
                &expected,
                sse,
                input,
                &mut &file,
                Some(stored),
                &mut out,
            )?;
        }
        Some(r) => {
            check_context(&meta, &expected, input)?;
            let at = DataAt {
                file: &file,
                start: data_start,
            };
            let read = if sse.any() || sse_cmd::is_s3_object(&meta) {
                let plan = sse_cmd::plan_read(ps, sse, &meta, Operation::GetObject)
                    .map_err(|e| format!("{input}: {e}"))?;
                plan.open_range(stored, r, &at)
                    .map_err(|e| format!("{input}: {e}"))?
            } else {
                let dek = unwrap_dek(ps, &meta, input)?;
                meta.verify(&dek)
                    .and_then(|v| v.open_range(stored, r, &at))
                    .map_err(|e| format!("{input}: {e}"))?
            };
            out.writer()
                .write_all(&read.plaintext)
                .map_err(|e| format!("{output}: {e}"))?;
        }
    }
    out.commit()
}

/// `--context` on `get`: every pair given must be in the object's context (an S3-layer object's
/// also holds its `aws:s3:arn`); for a raw envelope, the pairs must be its whole context.
fn check_context(meta: &ObjectMeta, expected: &EncryptionContext, path: &str) -> Outcome {
    let matches = if sse_cmd::is_s3_object(meta) {
        expected.iter().all(|(k, v)| meta.context.get(k) == Some(v))
    } else {
        *expected == meta.context
    };
    if !expected.is_empty() && !matches {
        return Err(format!(
            "{path}: the encryption context does not match the object's ({}); pass the pairs it was sealed with",
            context_text(&meta.context)
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn get_stream(
    ps: &Providers,
    meta: &ObjectMeta,
    expected: &EncryptionContext,
    sse: &SseFlags,
    input: &str,
    src: &mut (dyn Read + Send),
    stored: Option<u64>,
    out: &mut Output,
) -> Outcome {
    check_context(meta, expected, input)?;
    let plan;
    let dek;
    // Nothing is opened under metadata that does not verify: the mode, size and part table are
    // authenticated before the first chunk.
    let opener = if sse.any() || sse_cmd::is_s3_object(meta) {
        plan = sse_cmd::plan_read(ps, sse, meta, Operation::GetObject)
            .map_err(|e| format!("{input}: {e}"))?;
        Opener::S3(&plan)
    } else {
        dek = unwrap_dek(ps, meta, input)?;
        Opener::Raw(meta.verify(&dek).map_err(|e| format!("{input}: {e}"))?)
    };
    let bar = progress(stored, "opening");
    // Reading, opening and writing overlap: each on its own thread.
    let n = std::thread::scope(|s| -> Result<u64, String> {
        let mut src = ReadAhead::spawn(s, src);
        let mut w = WriteBehind::spawn(s, out.writer());
        let mut n = 0;
        for (number, _) in messages(meta) {
            let at = match number {
                0 => input.to_owned(),
                _ => format!("{input}: part {number}"),
            };
            // The reader reads exactly the part's authenticated length and fails if the data ends
            // sooner or its chunks do not end there.
            let stored = opener
                .stored_len(number)
                .map_err(|e| format!("{at}: {e}"))?;
            let mut reader = opener
                .reader((&mut src).take(stored), number)
                .map_err(|e| format!("{at}: {e}"))?;
            n += pump(&mut reader, &mut w, bar.as_ref())
                .map_err(|e| format!("{at}: {}", object::Error::from(e)))?;
        }
        if src
            .read(&mut [0u8; 1])
            .map_err(|e| format!("{input}: {e}"))?
            != 0
        {
            return Err(format!(
                "{input}: data follows the last part: the object was altered"
            ));
        }
        w.finish().map_err(|e| e.to_string())?;
        Ok(n)
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    debug_assert_eq!(n, meta.size);
    Ok(())
}

/// The chunks the object's messages hold: one message, or one per part (each ends in its own
/// final chunk). Saturating: the sizes are unverified here.
fn chunks(meta: &ObjectMeta) -> u64 {
    if meta.parts.is_empty() {
        return object::chunk_count(meta.size);
    }
    meta.parts
        .iter()
        .fold(0u64, |n, p| n.saturating_add(object::chunk_count(p.size)))
}

fn meta_json(meta: &ObjectMeta, stored: u64) -> serde_json::Value {
    let ctx: serde_json::Map<String, serde_json::Value> = meta
        .context
        .iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    json!({
        "format_version": object::FORMAT_VERSION,
        "mode": meta.mode.s3_name(),
        "size": meta.size,
        "stored_size": stored,
        "chunks": chunks(meta),
        "context": ctx,
        "keys": meta.keys.iter().map(|k: &WrappedKey| json!({
            "provider": k.provider,
            "key_id": k.key_id,
            "key_version": k.key_version,
            "algorithm": k.algorithm,
            "wrapped_len": k.ciphertext.len(),
        })).collect::<Vec<_>>(),
        "parts": meta.parts.iter().map(|p| json!({"number": p.number, "size": p.size})).collect::<Vec<_>>(),
    })
}

pub fn inspect(ps: &Providers, input: &str, as_json: bool, sse: &SseFlags) -> Outcome {
    let (_, meta, _, stored) = read_object(input)?;
    // With S3 flags, what S3 answers a HEAD with: its checks (an SSE-C key must be the object's)
    // and its response headers.
    let head = if sse.any() {
        let plan = sse_cmd::plan_read(ps, sse, &meta, Operation::HeadObject)
            .map_err(|e| format!("{input}: {e}"))?;
        Some(plan.response_headers().to_vec())
    } else {
        None
    };
    if as_json {
        let mut j = meta_json(&meta, stored);
        if let Some(h) = &head {
            j["response_headers"] = h.iter().map(|(n, v)| json!([n, v])).collect();
        }
        println!(
            "{}",
            escape_json(serde_json::to_string_pretty(&j).expect("json"))
        );
        return Ok(());
    }
    println!("format:   ssekit object v{}", object::FORMAT_VERSION);
    println!("mode:     {}", meta.mode);
    println!("size:     {} bytes", meta.size);
    let chunks = chunks(&meta);
    let plural = if chunks == 1 { "" } else { "s" };
    println!("stored:   {stored} bytes in {chunks} chunk{plural}");
    println!("context:  {}", context_text(&meta.context));
    for k in &meta.keys {
        println!(
            "key:      {} `{}` version {} ({}, {} bytes wrapped)",
            escape(&k.provider),
            escape(&k.key_id),
            k.key_version,
            escape(&k.algorithm),
            k.ciphertext.len()
        );
    }
    if meta.parts.is_empty() {
        println!("parts:    single part");
    } else {
        for p in &meta.parts {
            println!("part:     {} ({} bytes)", p.number, p.size);
        }
    }
    for (n, v) in head.iter().flatten() {
        println!("header:   {}: {}", escape(n), escape(v));
    }
    Ok(())
}

pub fn rewrap(ps: &Providers, files: &[String]) -> Outcome {
    for path in files {
        let (mut file, mut meta, _, _) = read_object(path)?;
        let mut changes = Vec::new();
        for k in &mut meta.keys {
            // An SSE-C key is the customer's: nothing of ours wraps it. A data key under a bucket
            // key moves to the KMS key's newest version when the next bucket key is generated.
            if k.provider == "sse-c" || k.provider == ssekit::engine::sse::bucket_key::PROVIDER {
                changes.push(format!(
                    "`{}` wrapped by {}: nothing to rewrap",
                    escape(&k.key_id),
                    escape(&k.provider)
                ));
                continue;
            }
            let ring = ps
                .for_wrapped(&k.provider)
                .map_err(|e| format!("{path}: {e}"))?;
            match ring
                .rewrap(k, &meta.context)
                .map_err(|e| format!("{path}: {e}"))?
            {
                Some(new) => {
                    changes.push(format!(
                        "`{}` version {} -> {}",
                        escape(&k.key_id),
                        k.key_version,
                        new.key_version
                    ));
                    *k = new;
                }
                None => changes.push(format!(
                    "`{}` already on version {}",
                    escape(&k.key_id),
                    k.key_version
                )),
            }
        }
        if changes.iter().any(|c| c.contains("->")) {
            // Only the metadata changes; the data bytes are copied as they are.
            let mut out = SeekableOutput::create(path)?;
            write_container_header(out.file(), &meta).map_err(|e| e.to_string())?;
            io::copy(&mut file, out.file()).map_err(|e| format!("{path}: {e}"))?;
            out.commit()?;
        }
        println!("{}: {}", escape(path), changes.join(", "));
    }
    Ok(())
}

fn state_text(s: KeyState) -> String {
    match s {
        KeyState::PendingDeletion { delete_at } => {
            format!("PendingDeletion (destroyed at {})", format_time(delete_at))
        }
        other => other.to_string(),
    }
}

fn info_json(k: &KeyInfo) -> serde_json::Value {
    json!({
        "id": k.id,
        "description": k.description,
        "state": k.state.to_string(),
        "delete_at": match k.state { KeyState::PendingDeletion { delete_at } => Some(format_time(delete_at)), _ => None },
        "current_version": k.current_version,
        "created": format_time(k.created),
        "rotated": format_time(k.rotated),
        "rotation_period_days": k.rotation_period_days,
    })
}

fn print_info(k: &KeyInfo) {
    println!("id:          {}", escape(&k.id));
    println!("description: {}", escape(&k.description));
    println!("state:       {}", state_text(k.state));
    println!("version:     {}", k.current_version);
    println!("created:     {}", format_time(k.created));
    println!("rotated:     {}", format_time(k.rotated));
    match k.rotation_period_days {
        Some(d) => println!("rotation:    every {d} days"),
        None => println!("rotation:    on demand"),
    }
}

/// `ssekit key …`.
pub enum KeyCommand {
    Create(KeySpec),
    List { json: bool },
    Describe { id: String, json: bool },
    Rotate(String),
    Enable(String),
    Disable(String),
    ScheduleDeletion { id: String, days: u32 },
    CancelDeletion(String),
}

pub fn key(ps: &Providers, cmd: KeyCommand) -> Outcome {
    let ring = ps.open_chosen()?;
    let e = |e: KeyError| e.to_string();
    match cmd {
        KeyCommand::Create(spec) => print_info(&ring.create_key(&spec).map_err(e)?),
        KeyCommand::List { json } => {
            let keys = ring.list().map_err(e)?;
            if json {
                println!(
                    "{}",
                    escape_json(
                        serde_json::to_string_pretty(
                            &keys.iter().map(info_json).collect::<Vec<_>>()
                        )
                        .expect("json")
                    )
                );
            } else if keys.is_empty() {
                println!("no keys (`ssekit key create` makes one; `ssekit put` makes `default`)");
            } else {
                println!("{:<24} {:<8} {:<16} DESCRIPTION", "ID", "VERSION", "STATE");
                for k in &keys {
                    println!(
                        "{:<24} {:<8} {:<16} {}",
                        escape(&k.id),
                        k.current_version,
                        k.state.to_string(),
                        escape(&k.description)
                    );
                }
            }
        }
        KeyCommand::Describe { id, json } => {
            let k = ring.describe(&id).map_err(e)?;
            if json {
                println!(
                    "{}",
                    escape_json(serde_json::to_string_pretty(&info_json(&k)).expect("json"))
                );
            } else {
                print_info(&k);
            }
        }
        KeyCommand::Rotate(id) => {
            let k = ring.rotate(&id).map_err(e)?;
            println!(
                "key `{}` rotated: new wraps use version {}",
                escape(&k.id),
                k.current_version
            );
        }
        KeyCommand::Enable(id) => {
            ring.enable(&id).map_err(e)?;
            println!("key `{id}` enabled");
        }
        KeyCommand::Disable(id) => {
            ring.disable(&id).map_err(e)?;
            println!("key `{id}` disabled: objects under it cannot be opened until it is enabled");
        }
        KeyCommand::ScheduleDeletion { id, days } => {
            let k = ring.schedule_deletion(&id, days).map_err(e)?;
            if let KeyState::PendingDeletion { delete_at } = k.state {
                println!(
                    "key `{id}` scheduled for deletion at {}: after that, every object sealed under it is lost for good; `ssekit key cancel-deletion {id}` undoes this until then",
                    format_time(delete_at)
                );
            }
        }
        KeyCommand::CancelDeletion(id) => {
            ring.cancel_deletion(&id).map_err(e)?;
            println!(
                "deletion of key `{id}` cancelled; the key is disabled (`ssekit key enable {id}` to use it)"
            );
        }
    }
    Ok(())
}
