//! Checking a log: every line's own hash, its link to the line before, and the sequence numbers,
//! over the files of a rotated log in order as one chain. Reports the first line that is wrong.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;

use super::line::{GENESIS, Record, body_hash, hex, split_hash, unhex};

/// How to verify.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The first file continues a rotated log whose earlier files are not given: it may start at a
    /// seq above 0, and its first line's `prev` cannot be checked.
    pub continues: bool,
    /// The hash the last line must have (a head recorded elsewhere): catches lines removed from the
    /// end, which the chain alone cannot show.
    pub expect_head: Option<[u8; 32]>,
}

/// What a verification that passed saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// Lines checked.
    pub lines: u64,
    /// Files read.
    pub files: usize,
    /// The first line's seq (`None` for an empty log).
    pub first_seq: Option<u64>,
    /// The last line's seq.
    pub last_seq: Option<u64>,
    /// The last line's hash: record it elsewhere and check it later with
    /// [`VerifyOptions::expect_head`].
    pub head: Option<[u8; 32]>,
    /// True when the first line continues a log not given ([`VerifyOptions::continues`]) and its
    /// `prev` was therefore not checked.
    pub first_prev_unchecked: bool,
}

impl VerifySummary {
    /// [`VerifySummary::head`] as 64 hex digits.
    pub fn head_hex(&self) -> Option<String> {
        self.head.as_ref().map(hex)
    }
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Not an audit line: not UTF-8, no hash field at the end, not the record's JSON, not in the
    /// writer's form, no newline at its end.
    Malformed(String),
    /// Its bytes do not hash to its `hash` field: the line was changed after it was written.
    Edited,
    /// Lines with seq `first..=last` are missing before this line.
    Removed {
        /// The first missing seq.
        first: u64,
        /// The last missing seq.
        last: u64,
    },
    /// The line does not belong here though its own hash is right: its seq was already seen
    /// (`Some(seq)`: a copy of an earlier line), or it does not link to the line before (`None`).
    Inserted {
        /// The repeated seq, if it repeats one.
        repeats: Option<u64>,
    },
    /// Out of order: seq `expected` was due, this line comes from later and the next line is
    /// `expected` (two lines swapped, or this one moved up; a copy of a later line put here looks
    /// the same until its original turns up).
    Reordered {
        /// The seq that was due here.
        expected: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed(why) => write!(f, "malformed: {why}"),
            Problem::Edited => f.write_str("edited: its hash does not match its contents"),
            Problem::Removed { first, last } if first == last => {
                write!(f, "removed: seq {first} is missing before this line")
            }
            Problem::Removed { first, last } => {
                write!(f, "removed: seq {first}..{last} are missing before this line")
            }
            Problem::Inserted { repeats: Some(s) } => {
                write!(f, "inserted: seq {s} was already seen")
            }
            Problem::Inserted { repeats: None } => f.write_str(
                "inserted: its prev is not the previous line's hash (the line was made for another chain)",
            ),
            Problem::Reordered { expected } => write!(
                f,
                "reordered: seq {expected} was due and follows this line (lines swapped or moved)"
            ),
        }
    }
}

/// The first bad line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// The file, as given.
    pub file: String,
    /// Line number in that file, from 1.
    pub line: u64,
    /// The seq the line states, when it has one that can be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(s) = self.seq {
            write!(f, " (seq {s})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Why a log does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be read.
    Io {
        /// The file.
        file: String,
        /// The error.
        error: String,
    },
    /// A line is wrong: the first one found.
    Bad(BadLine),
    /// The chain is whole but its last line is not the expected head: lines were removed from the
    /// end (or added after the head was recorded).
    HeadMismatch {
        /// The head asked for.
        expected: String,
        /// The last line's hash (`None`: no lines).
        found: Option<String>,
        /// The last line's seq.
        last_seq: Option<u64>,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Io { file, error } => write!(f, "cannot read {file}: {error}"),
            VerifyError::Bad(b) => b.fmt(f),
            VerifyError::HeadMismatch {
                expected,
                found: Some(found),
                last_seq,
            } => write!(
                f,
                "the last line (seq {}) has hash {found}, not the expected head {expected}: lines were removed from the end, or added since the head was recorded",
                last_seq.map_or_else(|| "?".into(), |s| s.to_string())
            ),
            VerifyError::HeadMismatch {
                expected,
                found: None,
                ..
            } => write!(
                f,
                "the log is empty, not ending at the expected head {expected}"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies the files at `paths`, in that order, as one chain.
///
/// # Errors
///
/// [`VerifyError::Bad`] naming the first bad line; [`VerifyError::HeadMismatch`];
/// [`VerifyError::Io`].
pub fn verify(paths: &[&Path], options: &VerifyOptions) -> Result<VerifySummary, VerifyError> {
    let mut inputs = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p.display().to_string();
        let f = File::open(p).map_err(|e| VerifyError::Io {
            file: name.clone(),
            error: e.to_string(),
        })?;
        inputs.push((name, BufReader::new(f)));
    }
    verify_readers(inputs, options)
}

/// As [`verify`], over readers named for the messages.
///
/// # Errors
///
/// As [`verify`].
pub fn verify_readers<R: BufRead>(
    inputs: impl IntoIterator<Item = (String, R)>,
    options: &VerifyOptions,
) -> Result<VerifySummary, VerifyError> {
    let inputs: Vec<(String, R)> = inputs.into_iter().collect();
    let files = inputs.len();
    let mut lines = Lines {
        inputs: inputs.into_iter(),
        current: None,
    }
    .peekable();
    // (seq due next, hash its prev must be); `None`: anything may start (a continued log).
    let mut due: Option<(u64, [u8; 32])> = (!options.continues).then_some((0, GENESIS));
    let mut summary = VerifySummary {
        lines: 0,
        files,
        first_seq: None,
        last_seq: None,
        head: None,
        first_prev_unchecked: false,
    };
    while let Some(raw) = lines.next() {
        let raw = raw?;
        let bad = |seq, problem| {
            VerifyError::Bad(BadLine {
                file: raw.file.clone(),
                line: raw.line,
                seq,
                problem,
            })
        };
        let l = examine(&raw).map_err(|(seq, p)| bad(seq, p))?;
        match due {
            None => {
                if l.seq == 0 && l.prev != GENESIS {
                    return Err(bad(Some(0), Problem::Inserted { repeats: None }));
                }
                summary.first_prev_unchecked = l.seq > 0;
            }
            Some((n, h)) if l.seq == n => {
                if l.prev != h {
                    return Err(bad(Some(l.seq), Problem::Inserted { repeats: None }));
                }
            }
            Some((n, _)) if l.seq < n => {
                return Err(bad(
                    Some(l.seq),
                    Problem::Inserted {
                        repeats: Some(l.seq),
                    },
                ));
            }
            Some((n, h)) => {
                // A jump forward: lines removed, unless the line due comes right after this one.
                let next_is_due = matches!(
                    lines.peek(),
                    Some(Ok(next)) if examine(next).is_ok_and(|x| x.seq == n && x.prev == h)
                );
                let problem = if next_is_due {
                    Problem::Reordered { expected: n }
                } else {
                    Problem::Removed {
                        first: n,
                        last: l.seq - 1,
                    }
                };
                return Err(bad(Some(l.seq), problem));
            }
        }
        summary.lines += 1;
        summary.first_seq.get_or_insert(l.seq);
        summary.last_seq = Some(l.seq);
        summary.head = Some(l.hash);
        due = Some((l.seq + 1, l.hash));
    }
    if let Some(want) = options.expect_head
        && summary.head != Some(want)
    {
        return Err(VerifyError::HeadMismatch {
            expected: hex(&want),
            found: summary.head_hex(),
            last_seq: summary.last_seq,
        });
    }
    Ok(summary)
}

/// Longer than any line the writer makes (64 context entries of 4096-byte strings, each byte
/// escaped at most six times over, are about 3 MiB): a reader stops there instead of buffering a
/// file without newlines whole.
const MAX_LINE: u64 = 8 << 20;

struct Raw {
    file: String,
    line: u64,
    bytes: Vec<u8>,
    newline: bool,
    too_long: bool,
}

struct Checked {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// A line's own checks: form and hash. Errors carry the seq when it can be read.
fn examine(raw: &Raw) -> Result<Checked, (Option<u64>, Problem)> {
    let malformed = |seq, why: &str| (seq, Problem::Malformed(why.to_owned()));
    if raw.too_long {
        return Err(malformed(None, "longer than any audit line"));
    }
    let text = std::str::from_utf8(&raw.bytes).map_err(|_| malformed(None, "not UTF-8"))?;
    let rec = Record::parse(text).ok();
    let seq = rec.as_ref().map(|r| r.seq);
    let Some((body, hash)) = split_hash(text) else {
        return Err(malformed(seq, "it does not end in a hash field"));
    };
    if body_hash(body) != hash {
        return Err((seq, Problem::Edited));
    }
    let Some(rec) = rec else {
        return Err(malformed(seq, "not an audit record"));
    };
    if rec.canonical_body() != body {
        return Err(malformed(seq, "not in the form the writer writes"));
    }
    if !raw.newline {
        return Err(malformed(
            seq,
            "no newline at its end (an incomplete write?)",
        ));
    }
    let Some(prev) = unhex(&rec.prev) else {
        return Err(malformed(seq, "prev is not 64 hex digits"));
    };
    Ok(Checked {
        seq: rec.seq,
        prev,
        hash,
    })
}

struct Lines<R> {
    inputs: std::vec::IntoIter<(String, R)>,
    current: Option<(String, R, u64)>,
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<Raw, VerifyError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let (name, r) = self.inputs.next()?;
                self.current = Some((name, r, 0));
            }
            let (name, r, n) = self.current.as_mut()?;
            let mut bytes = Vec::new();
            match r.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut bytes) {
                Err(e) => {
                    let file = name.clone();
                    self.current = None;
                    return Some(Err(VerifyError::Io {
                        file,
                        error: e.to_string(),
                    }));
                }
                Ok(0) => self.current = None,
                Ok(_) => {
                    *n += 1;
                    let newline = bytes.last() == Some(&b'\n');
                    if newline {
                        bytes.pop();
                    }
                    let too_long = bytes.len() as u64 > MAX_LINE;
                    return Some(Ok(Raw {
                        file: name.clone(),
                        line: *n,
                        bytes,
                        newline,
                        too_long,
                    }));
                }
            }
        }
    }
}
