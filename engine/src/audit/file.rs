//! The file sink: appends under an exclusive lock shared with other processes, fsyncs, rotates by
//! size.
//!
//! Every append runs, under `flock(LOCK_EX)` on `<name>.lock` beside the log (a file that is never
//! renamed, so every writer locks the same inode across rotations):
//! 1. `stat` the log by path; if its device, inode or size differ from what this process left after
//!    its own last append, another writer appended or rotated: read the chain position again from
//!    the file's last line (from the newest rotated file `<name>.<seq>` when the log is empty);
//! 2. rotate if the line would take the file past `max_bytes`: rename it to `<name>.<its first seq>`
//!    (12 digits or more, zero-padded, so `ls` lists them in order) and start a new file;
//! 3. write the line and its newline with one `write` on an `O_APPEND` descriptor, then `fsync`.
//!
//! A log that ends in an incomplete line (a crash mid-write) is not appended to: the error says so,
//! and an operator moves the file aside. Nothing here ever truncates or rewrites a log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AuditError;
use super::line::{Record, unhex};
use super::sink::{ChainPosition, SealedLine, Sink};

/// How a [`FileSink`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// `fsync` after every line (and the directory after a rotation). On by default; off only for
    /// benchmarks and tests: a line not synced can be lost in a crash while its key was used.
    pub fsync: bool,
    /// Rotate when a line would take the file past this many bytes; `None`: never.
    pub max_bytes: Option<u64>,
}

impl Default for FileOptions {
    /// fsync on, rotation at 64 MiB.
    fn default() -> Self {
        FileOptions {
            fsync: true,
            max_bytes: Some(64 << 20),
        }
    }
}

/// What this process left the log as after its own last append.
struct Known {
    file: File,
    dev: u64,
    ino: u64,
    size: u64,
    first_seq: Option<u64>,
    next: ChainPosition,
}

/// Appends lines to a file; see the module docs.
pub struct FileSink {
    path: PathBuf,
    // Shared so an append can hold it while changing the rest of the sink.
    lock: Arc<File>,
    options: FileOptions,
    known: Option<Known>,
}

struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn take(f: &'a File) -> io::Result<Self> {
        f.lock()?;
        Ok(Locked(f))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the descriptor would release it too; an error here leaves nothing to undo.
        let _ = self.0.unlock();
    }
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> AuditError {
    AuditError::Io(format!("{what} {}: {e}", path.display()))
}

impl FileSink {
    /// Opens (creating, mode 0600) the log at `path` and its lock file `<path>.lock`, and reads
    /// where the chain stands.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] when the files cannot be opened or read; [`AuditError::Tail`] when the
    /// log's last line is incomplete or not an audit record.
    pub fn open(path: impl AsRef<Path>, options: FileOptions) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let mut lock_name = path.clone().into_os_string();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open the audit log's lock file", &lock_path, &e))?;
        let mut sink = FileSink {
            path,
            lock: Arc::new(lock),
            options,
            known: None,
        };
        {
            let _held =
                Locked::take(&sink.lock).map_err(|e| io_err("cannot lock", &lock_path, &e))?;
            sink.known = Some(sink.load()?);
        }
        Ok(sink)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the log and reads its first and last lines (the caller holds the lock).
    fn load(&self) -> Result<Known, AuditError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io_err("cannot open the audit log", &self.path, &e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_err("cannot stat", &self.path, &e))?;
        let size = meta.len();
        let (first_seq, next) = if size == 0 {
            (None, self.rotated_tail()?)
        } else {
            let first = parse(&self.path, &read_first_line(&file, &self.path)?)?;
            let last = parse(&self.path, &read_last_line(&file, size, &self.path)?)?;
            (Some(first.0), next_after(last))
        };
        Ok(Known {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            size,
            first_seq,
            next,
        })
    }

    /// Where the chain stands at the end of the newest rotated file, `START` without one.
    fn rotated_tail(&self) -> Result<ChainPosition, AuditError> {
        let Some((dir, name)) = split(&self.path) else {
            return Ok(ChainPosition::START);
        };
        let entries = fs::read_dir(&dir).map_err(|e| io_err("cannot list", &dir, &e))?;
        let prefix = format!("{name}.");
        let mut newest: Option<(u64, PathBuf)> = None;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot list", &dir, &e))?;
            let file_name = entry.file_name();
            let Some(seq) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok())
            else {
                continue;
            };
            if newest.as_ref().is_none_or(|(s, _)| seq > *s) {
                newest = Some((seq, entry.path()));
            }
        }
        let Some((_, rotated)) = newest else {
            return Ok(ChainPosition::START);
        };
        let file = File::open(&rotated).map_err(|e| io_err("cannot open", &rotated, &e))?;
        let size = file
            .metadata()
            .map_err(|e| io_err("cannot stat", &rotated, &e))?
            .len();
        if size == 0 {
            return Err(AuditError::Tail(format!(
                "{}: a rotated audit log file is empty",
                rotated.display()
            )));
        }
        Ok(next_after(parse(
            &rotated,
            &read_last_line(&file, size, &rotated)?,
        )?))
    }

    /// Renames the full log to `<name>.<first seq>` and starts a new one.
    fn rotate(&self, known: &Known) -> Result<Known, AuditError> {
        let Some((dir, name)) = split(&self.path) else {
            return Err(AuditError::Io(format!(
                "cannot rotate {}: no file name",
                self.path.display()
            )));
        };
        let first = known.first_seq.unwrap_or(known.next.seq);
        let rotated = dir.join(format!("{name}.{first:012}"));
        if rotated.exists() {
            return Err(AuditError::Io(format!(
                "cannot rotate the audit log: {} exists already",
                rotated.display()
            )));
        }
        fs::rename(&self.path, &rotated).map_err(|e| io_err("cannot rotate", &self.path, &e))?;
        if self.options.fsync {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("cannot sync", &dir, &e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io_err("cannot start a new audit log file", &self.path, &e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_err("cannot stat", &self.path, &e))?;
        Ok(Known {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            size: 0,
            first_seq: None,
            next: known.next,
        })
    }

    fn append_locked(
        &mut self,
        seal: &mut dyn FnMut(ChainPosition) -> SealedLine,
    ) -> Result<(), AuditError> {
        let unchanged = match (&self.known, fs::metadata(&self.path)) {
            (Some(k), Ok(m)) => (m.dev(), m.ino(), m.len()) == (k.dev, k.ino, k.size),
            _ => false,
        };
        let mut known = match self.known.take() {
            Some(k) if unchanged => k,
            _ => self.load()?,
        };
        let sealed = seal(known.next);
        let mut bytes = sealed.line.into_bytes();
        bytes.push(b'\n');
        let len = bytes.len() as u64;
        if let Some(max) = self.options.max_bytes
            && known.size > 0
            && known.size + len > max
        {
            known = self.rotate(&known)?;
        }
        // One write call: O_APPEND places it at the end as a whole, after any other writer's line.
        known
            .file
            .write_all(&bytes)
            .map_err(|e| io_err("cannot append to", &self.path, &e))?;
        if self.options.fsync {
            known
                .file
                .sync_data()
                .map_err(|e| io_err("cannot sync", &self.path, &e))?;
        }
        known.size += len;
        known.first_seq.get_or_insert(known.next.seq);
        known.next = ChainPosition {
            seq: known.next.seq + 1,
            prev: sealed.hash,
        };
        self.known = Some(known);
        Ok(())
    }
}

impl Sink for FileSink {
    fn append(
        &mut self,
        seal: &mut dyn FnMut(ChainPosition) -> SealedLine,
    ) -> Result<(), AuditError> {
        let lock = Arc::clone(&self.lock);
        let _held = Locked::take(&lock).map_err(|e| io_err("cannot lock", &self.path, &e))?;
        // On any failure `known` stays empty, so the next append reads the file again.
        self.append_locked(seal)
    }
}

fn split(path: &Path) -> Option<(PathBuf, String)> {
    let name = path.file_name()?.to_str()?.to_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some((dir, name))
}

fn next_after((seq, hash): (u64, [u8; 32])) -> ChainPosition {
    ChainPosition {
        seq: seq + 1,
        prev: hash,
    }
}

fn parse(path: &Path, line: &[u8]) -> Result<(u64, [u8; 32]), AuditError> {
    let bad = |why: String| {
        AuditError::Tail(format!(
            "{}: {why}; move the file aside to start a new log",
            path.display()
        ))
    };
    let text = std::str::from_utf8(line).map_err(|_| bad("a line is not UTF-8".into()))?;
    let rec =
        Record::parse(text).map_err(|e| bad(format!("a line is not an audit record ({e})")))?;
    let hash = unhex(&rec.hash).ok_or_else(|| bad("a line's hash is not 64 hex digits".into()))?;
    Ok((rec.seq, hash))
}

const CHUNK: u64 = 4096;

fn read_first_line(file: &File, path: &Path) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    loop {
        let n = file
            .read_at(&mut buf, out.len() as u64)
            .map_err(|e| io_err("cannot read", path, &e))?;
        if n == 0 {
            return Err(incomplete(path));
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&buf[..i]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// The last line, without its newline; the file must end with one.
fn read_last_line(file: &File, size: u64, path: &Path) -> Result<Vec<u8>, AuditError> {
    let mut tail: Vec<u8> = Vec::new();
    let mut end = size;
    loop {
        let start = end.saturating_sub(CHUNK);
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start)
            .map_err(|e| io_err("cannot read", path, &e))?;
        buf.extend_from_slice(&tail);
        tail = buf;
        if end == size && tail.last() != Some(&b'\n') {
            return Err(incomplete(path));
        }
        // A newline before the final one ends the line before the last.
        if let Some(i) = tail[..tail.len() - 1].iter().rposition(|&b| b == b'\n') {
            return Ok(tail[i + 1..tail.len() - 1].to_vec());
        }
        if start == 0 {
            tail.pop();
            return Ok(tail);
        }
        end = start;
    }
}

fn incomplete(path: &Path) -> AuditError {
    AuditError::Tail(format!(
        "{} ends with an incomplete line (a writer stopped mid-line); move the file aside to start a new log",
        path.display()
    ))
}
