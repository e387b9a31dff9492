//! `ssekit audit verify`: exit codes and messages for a good log, an edited one, a truncated one
//! (with `--expect-head`), a rotated file alone (with and without `--continues`), and usage errors.

use std::path::Path;
use std::process::{Command, Output};

use ssekit::engine::audit::{AuditLog, Event, FileOptions, Op, Record};
use ssekit::keys::{EncryptionContext, KeyError};

fn ssekit(args: &[&str]) -> Output {
    // `audit verify` needs no home: point it at one that does not exist, to show it is not made.
    let home = std::env::temp_dir().join(format!("ssekit-cli-audit-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_ssekit"))
        .args(args)
        .env("SSEKIT_HOME", &home)
        .output()
        .expect("run ssekit");
    assert!(!home.exists());
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8")
}

/// Writes `n` lines to `path`.
fn write_log(path: &Path, n: u32, max_bytes: Option<u64>) {
    let log = AuditLog::open_file(
        path,
        FileOptions {
            fsync: false,
            max_bytes,
        },
    )
    .unwrap();
    let denied = KeyError::UnwrapFailed;
    for i in 0..n {
        let ctx = EncryptionContext::from_pairs([(
            "aws:s3:arn",
            format!("arn:aws:s3:::bucket/o{i}").as_str(),
        )])
        .unwrap();
        log.record(&Event {
            op: Op::Unwrap,
            provider: "local",
            key_id: Some("k1"),
            key_version: Some(1),
            context: Some(&ctx),
            principal: Some("carol"),
            outcome: if i == 2 { Err(&denied) } else { Ok(()) },
        })
        .unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_good_log_verifies_and_prints_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 5, None);
    let head = Record::parse(&lines(&log)[4]).unwrap().hash;
    let path = log.to_str().unwrap();
    let out = ssekit(&["audit", "verify", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("ok: 5 lines, seq 0..4, head {head}\n")
    );
    assert_eq!(text(&out.stderr), "");
    let out = ssekit(&["audit", "verify", path, "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Upper-case hex is the same head.
    let out = ssekit(&[
        "audit",
        "verify",
        path,
        "--expect-head",
        &head.to_uppercase(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_edited_log_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 5, None);
    let mut l = lines(&log);
    l[2] = l[2]
        .replace("UnwrapFailed", "ok")
        .replace("bucket/o2", "bucket/o9");
    std::fs::write(&log, l.join("\n") + "\n").unwrap();
    let path = log.to_str().unwrap();
    let out = ssekit(&["audit", "verify", path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "ssekit: audit log {path} line 3 (seq 2): edited: its hash does not match its contents\n"
        )
    );
}

#[test]
fn a_truncated_log_fails_only_against_a_recorded_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 5, None);
    let l = lines(&log);
    let head = Record::parse(&l[4]).unwrap().hash;
    std::fs::write(&log, l[..4].join("\n") + "\n").unwrap();
    let path = log.to_str().unwrap();
    assert_eq!(ssekit(&["audit", "verify", path]).status.code(), Some(0));
    let out = ssekit(&["audit", "verify", path, "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("ssekit: audit log: the last line (seq 3) has hash "),
        "{err}"
    );
    assert!(
        err.contains(&format!("not the expected head {head}")),
        "{err}"
    );
}

#[test]
fn a_rotated_file_alone_needs_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 12, Some(1500));
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .filter(|p| !p.ends_with(".lock"))
        .collect();
    files.sort();
    // Sorted names put `audit.log` before `audit.log.000…`: the current file goes last.
    files.rotate_left(1);
    assert!(files.len() >= 3, "{files:?}");
    let mut args = vec!["audit", "verify"];
    args.extend(files.iter().map(String::as_str));
    let out = ssekit(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: 12 lines, seq 0..11, head "));

    let current = files.last().unwrap();
    let first = Record::parse(&lines(Path::new(current))[0]).unwrap().seq;
    let out = ssekit(&["audit", "verify", current]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "ssekit: audit log {current} line 1 (seq {first}): removed: seq 0..{} are missing",
            first - 1
        )),
        "{err}"
    );
    assert!(err.contains("pass --continues"), "{err}");
    let out = ssekit(&["audit", "verify", current, "--continues"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stdout.contains(&format!(
        "note: the log starts at seq {first} (--continues)"
    )));
}

#[test]
fn usage_and_read_errors_exit_2_and_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 2, None);
    let path = log.to_str().unwrap();
    let out = ssekit(&["audit", "verify", path, "--expect-head", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--expect-head `xyz` is not a hash"));
    let missing = dir.path().join("gone\u{1b}[31m.log");
    let out = ssekit(&["audit", "verify", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("gone\\x1b[31m.log"), "{err}");
    assert_eq!(ssekit(&["audit", "verify"]).status.code(), Some(2));
}
