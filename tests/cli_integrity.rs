//! The object's metadata is authenticated as a whole (issue 12, items 1 and 8): an attacker who can
//! write the stored object (data and header) cannot drop, cut or re-size parts, change the mode or
//! the size, or craft a part table whose lengths wrap, and have `ssekit get` open the rest. Every
//! attempt exits 1 with one line on stderr, never a panic, and leaves no output.

use std::path::Path;
use std::process::Command;

use ssekit::object::{ObjectMeta, SseMode, sealed_len};

fn bin(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    c.env_remove("SSEKIT_BACKEND")
        .env_remove("SSEKIT_ROOT_KEY_FILE")
        .env("SSEKIT_HOME", home);
    c
}

/// Runs `ssekit args` in `dir`; returns the exit code and stderr.
fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = bin(&dir.join("home"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err)
}

/// A container file split into its encoded metadata and its object data.
fn split_raw(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"SSEK");
    let len = u32::from_be_bytes(b[5..9].try_into().unwrap()) as usize;
    (b[9..9 + len].to_vec(), b[9 + len..].to_vec())
}

/// A container file split into its metadata and its object data.
fn split(path: &Path) -> (ObjectMeta, Vec<u8>) {
    let (m, data) = split_raw(path);
    (ObjectMeta::from_bytes(&m).unwrap(), data)
}

/// Writes a container from metadata and data, as an attacker with write access to the store would.
fn join(path: &Path, meta: &ObjectMeta, data: &[u8]) {
    join_raw(path, &meta.to_bytes().unwrap(), data);
}

/// Writes a container from encoded metadata (any bytes) and data.
fn join_raw(path: &Path, m: &[u8], data: &[u8]) {
    let mut b = b"SSEK\x01".to_vec();
    b.extend_from_slice(&(m.len() as u32).to_be_bytes());
    b.extend_from_slice(m);
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// The stored data of each part, in order.
fn parts_data<'a>(meta: &ObjectMeta, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut at = 0usize;
    meta.parts
        .iter()
        .map(|p| {
            let n = sealed_len(p.size) as usize;
            at += n;
            &data[at - n..at]
        })
        .collect()
}

/// `get` of `obj` (whole, and each range) must fail cleanly and leave no output.
fn assert_refused(dir: &Path, obj: &str, ranges: &[&str]) {
    let (code, err) = run(dir, &["get", obj, "out"]);
    assert_eq!(code, 1, "get {obj} must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!dir.join("out").exists(), "get {obj} left output");
    for r in ranges {
        let (code, err) = run(dir, &["get", obj, "out", "--range", r]);
        assert_eq!(code, 1, "get {obj} --range {r} must fail: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !dir.join("out").exists(),
            "get {obj} --range {r} left output"
        );
    }
}

fn sample(dir: &Path) -> Vec<u8> {
    let data: Vec<u8> = (0..5 * 20_000 + 123)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    data
}

#[test]
fn multipart_object_with_a_part_dropped_or_cut_short_does_not_open() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample(dir);
    let (code, err) = run(dir, &["put", "in", "obj", "--part-size", "20000"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(run(dir, &["get", "obj", "whole"]).0, 0);
    let (meta, data) = split(&dir.join("obj"));
    assert_eq!(meta.parts.len(), 6);
    let stored = parts_data(&meta, &data);

    // Drop a middle part (3), then the last part (6), from the data and the table, size adjusted.
    for drop in [2usize, 5] {
        let mut m = meta.clone();
        let gone = m.parts.remove(drop);
        m.size -= gone.size;
        let rest: Vec<u8> = stored
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != drop)
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        join(&dir.join("cut"), &m, &rest);
        assert_refused(dir, "cut", &["0-9", "-10", "0-"]);
    }

    // Keep only the first part, renumbered or not.
    let mut m = meta.clone();
    m.parts.truncate(1);
    m.size = m.parts[0].size;
    join(&dir.join("cut"), &m, stored[0]);
    assert_refused(dir, "cut", &["0-9", "-10"]);
}

#[test]
fn edited_mode_or_size_does_not_open() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample(dir);
    assert_eq!(run(dir, &["put", "in", "obj"]).0, 0);
    let (meta, data) = split(&dir.join("obj"));

    let mut m = meta.clone();
    m.mode = SseMode::SseKms;
    join(&dir.join("mode"), &m, &data);
    assert_refused(dir, "mode", &["0-9"]);

    // A size edited down: a full get fails, and so must a range inside the claimed size.
    let mut m = meta.clone();
    m.size = 5;
    join(&dir.join("size"), &m, &data);
    assert_refused(dir, "size", &["0-9", "0-3", "-2"]);
}

/// The part size whose stored length, computed modulo 2^64, equals `stored` (a real part's).
fn wrapping_part_size(stored: u64) -> u64 {
    let t = u128::from(stored - 72) + (1u128 << 64);
    let (full, tail) = (t / 16400, t % 16400);
    assert!(tail < 16384, "pick another real size");
    let size = full * 16384 + tail;
    let size = u64::try_from(size).unwrap();
    assert_eq!(
        size.wrapping_add(72)
            .wrapping_add((size / 16384).wrapping_mul(16)),
        stored
    );
    size
}

#[test]
fn crafted_part_table_with_wrapping_lengths_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample(dir);
    assert_eq!(run(dir, &["put", "in", "obj", "--part-size", "1M"]).0, 0);
    let (meta, data) = split(&dir.join("obj"));
    assert_eq!(meta.parts.len(), 1);
    let huge = wrapping_part_size(data.len() as u64);
    // The encoder refuses such sizes; an attacker writes the bytes: the object size after the
    // version and mode, the one part's size before its 24-byte salt and the 64 bytes of commitment
    // and MAC.
    let (mut m, _) = split_raw(&dir.join("obj"));
    m[2..10].copy_from_slice(&huge.to_be_bytes());
    let at = m.len() - 64 - 24 - 8;
    assert_eq!(m[at..at + 8], meta.parts[0].size.to_be_bytes());
    m[at..at + 8].copy_from_slice(&huge.to_be_bytes());
    join_raw(&dir.join("wrap"), &m, &data);
    assert_refused(dir, "wrap", &["0-", "-10", "0-9", "1000000-"]);
    let (code, err) = run(dir, &["inspect", "wrap"]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
