//! `ssekit audit verify FILE...`: checks audit log files as one hash chain (docs/AUDIT.md).
//!
//! Exit status: 0 when the chain is whole (and ends at `--expect-head`, if given), 1 when a line is
//! wrong or the head differs, 2 when a file cannot be read or an argument is unusable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use ssekit::engine::audit::{self, Problem, VerifyError, VerifyOptions};

use crate::escape::escape;

/// `ssekit audit …`.
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check audit log files as one hash chain.
    ///
    /// Checks every line's hash, its link to the line before and seq without gaps, and names the
    /// first bad line. Give a rotated log's files oldest first (`audit.log.<seq>` in order), then
    /// the current one. Prints the last line's hash (the head): record it elsewhere and pass it
    /// as --expect-head later, to catch lines removed from the end.
    Verify {
        /// Log files, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fail unless the last line's hash is HASH (64 hex digits).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// The first file continues a rotated log whose earlier files are not given: it may start
        /// after seq 0, and its first line's link to the earlier file is not checked.
        #[arg(long)]
        continues: bool,
    },
}

/// Runs an `audit` command.
pub fn run(cmd: AuditCmd) -> ExitCode {
    match cmd {
        AuditCmd::Verify {
            files,
            expect_head,
            continues,
        } => verify(&files, expect_head.as_deref(), continues),
    }
}

fn verify(files: &[PathBuf], expect_head: Option<&str>, continues: bool) -> ExitCode {
    let expect_head = match expect_head.map(|h| audit::unhex(&h.to_ascii_lowercase())) {
        None => None,
        Some(Some(h)) => Some(h),
        Some(None) => {
            eprintln!(
                "ssekit: --expect-head `{}` is not a hash: give the 64 hex digits verify printed as head",
                escape(expect_head.unwrap_or_default())
            );
            return ExitCode::from(2);
        }
    };
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let options = VerifyOptions {
        continues,
        expect_head,
    };
    match audit::verify(&paths, &options) {
        Ok(s) => {
            match (s.first_seq, s.last_seq, s.head_hex()) {
                (Some(a), Some(b), Some(h)) => {
                    println!("ok: {} lines, seq {a}..{b}, head {h}", s.lines);
                }
                _ => println!("ok: 0 lines"),
            }
            if s.first_prev_unchecked {
                println!(
                    "note: the log starts at seq {} (--continues): its link to the file before is not checked",
                    s.first_seq.unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // File names and line contents come from whoever wrote the files.
            let sep = if matches!(e, VerifyError::Bad(_)) {
                " "
            } else {
                ": "
            };
            eprintln!("ssekit: audit log{sep}{}", escape(&e.to_string()));
            match e {
                VerifyError::Bad(b) => {
                    if matches!(b.problem, Problem::Removed { first: 0, .. }) {
                        eprintln!(
                            "hint: if {} continues a rotated log, give the earlier files first, or pass --continues",
                            escape(&b.file)
                        );
                    }
                    ExitCode::FAILURE
                }
                VerifyError::HeadMismatch { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            }
        }
    }
}
