//! The CLI's main job end to end: golden transcripts of stdout/stderr for the main commands and their
//! errors (tests/golden/cli.txt; `SSEKIT_BLESS=1` rewrites it), round trips through files and pipes,
//! no partial output on failure, and keyring crash safety under SIGKILL.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// `ssekit` in `dir`, with `dir` as the user's home directory: its default home is
/// `dir/.local/share/ssekit`.
fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    home_env(&mut c, dir);
    c
}

fn home_env(c: &mut Command, dir: &Path) {
    c.env_remove("SSEKIT_BACKEND")
        .env_remove("SSEKIT_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("SSEKIT_ROOT_KEY_FILE")
        .env("HOME", dir)
        .current_dir(dir);
}

/// Runs `ssekit args` in `dir` and returns a transcript entry with times normalised.
fn step(dir: &Path, args: &[&str]) -> (String, i32) {
    let out = bin(dir).args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let norm = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).to_string();
        // Timestamps: YYYY-MM-DDTHH:MM:SSZ.
        let mut r = String::new();
        let cs: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < cs.len() {
            let t: String = cs[i..(i + 20).min(cs.len())].iter().collect();
            let b = t.as_bytes();
            if b.len() == 20
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[19] == b'Z'
                && b[..4].iter().all(u8::is_ascii_digit)
            {
                r.push_str("<TIME>");
                i += 20;
            } else {
                r.push(cs[i]);
                i += 1;
            }
        }
        r
    };
    let mut t = format!("$ ssekit {}\n", args.join(" "));
    let (o, e) = (norm(&out.stdout), norm(&out.stderr));
    if !o.is_empty() {
        t += &o;
    }
    for line in e.lines() {
        t += &format!("stderr: {line}\n");
    }
    t += &format!("exit {code}\n\n");
    (t, code)
}

#[test]
fn golden_transcript() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("hello.txt"), b"hello, object store\n").unwrap();
    let script: &[&[&str]] = &[
        &["key", "list"],
        &[
            "key",
            "create",
            "--id",
            "photos",
            "--description",
            "photo bucket",
        ],
        &[
            "put",
            "hello.txt",
            "hello.ssek",
            "--key-id",
            "photos",
            "--context",
            "bucket=pics",
            "--context",
            "key=hello.txt",
        ],
        &["put", "hello.txt", "plain.ssek"],
        &["key", "list"],
        &["inspect", "hello.ssek"],
        &[
            "get",
            "hello.ssek",
            "-",
            "--context",
            "bucket=pics",
            "--context",
            "key=hello.txt",
        ],
        &["get", "hello.ssek", "-", "--range", "7-11"],
        &["get", "hello.ssek", "-", "--range", "-6"],
        &["get", "hello.ssek", "-", "--range", "100-"],
        &["get", "hello.ssek", "-", "--range", "5-1"],
        &["get", "hello.ssek", "out.txt", "--context", "bucket=other"],
        &["key", "rotate", "photos"],
        &["rewrap", "hello.ssek", "plain.ssek"],
        &["key", "describe", "photos"],
        &["key", "disable", "photos"],
        &["get", "hello.ssek", "out.txt"],
        &["key", "enable", "photos"],
        &["key", "schedule-deletion", "photos", "--days", "6"],
        &["key", "schedule-deletion", "photos", "--days", "7"],
        &["get", "hello.ssek", "out.txt"],
        &["key", "cancel-deletion", "photos"],
        &["key", "describe", "nope"],
        &["get", "missing.ssek", "out.txt"],
        &["inspect", "hello.txt"],
        &["put", "hello.txt", "x.ssek", "--context", "novalue"],
        &["put", "hello.txt", "x.ssek", "--key-id", "../escape"],
    ];
    let mut transcript = String::new();
    for args in script {
        transcript += &step(dir, args).0;
    }
    assert!(
        !dir.join("out.txt").exists(),
        "a failed get left a file behind"
    );
    assert!(
        !dir.join("x.ssek").exists(),
        "a failed put left a file behind"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cli.txt");
    if std::env::var_os("SSEKIT_BLESS").is_some() {
        std::fs::write(&golden, &transcript).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert!(
        expected == transcript,
        "transcript differs from tests/golden/cli.txt:\n{transcript}"
    );
}

/// Runs `ssekit args` in `dir` with `input` on its stdin; returns its output.
fn piped(dir: &Path, args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut child = bin(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn round_trips_through_files_and_pipes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut data = vec![0u8; 3 * 16384 * 256 + 12345]; // three streaming batches and a bit
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for n in [0usize, 1, 16383, 16384, 16385, data.len()] {
        std::fs::write(dir.join("in"), &data[..n]).unwrap();
        let (_, c) = step(dir, &["put", "in", "obj"]);
        assert_eq!(c, 0);
        let (_, c) = step(dir, &["get", "obj", "out"]);
        assert_eq!(c, 0);
        assert!(
            std::fs::read(dir.join("out")).unwrap() == data[..n],
            "n={n}"
        );
        // Through pipes: stdin to stdout both ways.
        let sealed = piped(dir, &["put", "-", "-"], data[..n].to_vec());
        assert!(sealed.status.success());
        let opened = piped(dir, &["get", "-", "-"], sealed.stdout);
        assert!(
            opened.status.success() && opened.stdout == data[..n],
            "pipe n={n}"
        );
    }
    // A tampered object: get fails with one line and leaves no output file.
    let mut obj = std::fs::read(dir.join("obj")).unwrap();
    let at = obj.len() - 20_000;
    obj[at] ^= 1;
    std::fs::write(dir.join("bad"), &obj).unwrap();
    let out = bin(dir).args(["get", "bad", "bad.out"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("ssekit: bad: tampered data: chunk ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!dir.join("bad.out").exists());
}

#[test]
fn keyring_survives_sigkill_mid_write() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("in"), b"kept safe").unwrap();
    assert_eq!(step(dir, &["key", "create", "--id", "k"]).1, 0);
    assert_eq!(step(dir, &["put", "in", "obj", "--key-id", "k"]).1, 0);
    let exe = env!("CARGO_BIN_EXE_ssekit");
    for round in 0..8u64 {
        // A process group rotating and creating keys as fast as it can, killed at a varying moment.
        let script = format!(
            "i=0; while true; do {exe} key rotate k >/dev/null; {exe} key create --id k{round}-$i >/dev/null; {exe} rewrap obj >/dev/null; i=$((i+1)); done"
        );
        let mut sh = Command::new("sh");
        home_env(&mut sh, dir);
        let mut child = sh.arg("-c").arg(&script).process_group(0).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + 97 * round));
        Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        let _ = child.wait();
        // Everything still loads and the object still opens.
        let (t, c) = step(dir, &["key", "list"]);
        assert_eq!(c, 0, "round {round}: {t}");
        let (t, c) = step(dir, &["get", "obj", "out"]);
        assert_eq!(c, 0, "round {round}: {t}");
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), b"kept safe");
    }
}

#[test]
fn multipart_objects_put_get_and_ranges() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let data: Vec<u8> = (0..(3 << 20) + 777).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    for (size, parts) in [("1M", 4), ("16384", 193), ("20000", 158), ("8M", 1)] {
        let (t, c) = step(dir, &["put", "in", "obj", "--part-size", size]);
        assert_eq!(c, 0, "{t}");
        let (t, c) = step(dir, &["inspect", "obj", "--json"]);
        assert_eq!(c, 0, "{t}");
        assert_eq!(t.matches("\"number\"").count(), parts, "--part-size {size}");
        let (t, c) = step(dir, &["get", "obj", "out"]);
        assert_eq!(c, 0, "{t}");
        assert!(std::fs::read(dir.join("out")).unwrap() == data, "{size}");
        // Ranges inside one part and across part boundaries.
        for (r, want) in [
            ("0-0", 0..1),
            ("1048570-1048590", 1048570..1048591),
            ("16380-40010", 16380..40011),
            ("-10", data.len() - 10..data.len()),
            ("3145000-", 3145000..data.len()),
        ] {
            let (t, c) = step(dir, &["get", "obj", "part.out", "--range", r]);
            assert_eq!(c, 0, "{t}");
            assert!(
                std::fs::read(dir.join("part.out")).unwrap() == data[want],
                "{size} {r}"
            );
        }
    }
    // From a pipe, too.
    let opened = piped(
        dir,
        &["get", "-", "-"],
        std::fs::read(dir.join("obj")).unwrap(),
    );
    assert!(opened.status.success() && opened.stdout == data);
    // An empty file is one empty part.
    std::fs::write(dir.join("empty"), b"").unwrap();
    assert_eq!(
        step(dir, &["put", "empty", "e.obj", "--part-size", "5M"]).1,
        0
    );
    assert_eq!(step(dir, &["get", "e.obj", "e.out"]).1, 0);
    assert_eq!(std::fs::read(dir.join("e.out")).unwrap(), b"");

    // Two parts of the same size swapped in the stored data: each part's message is bound to its
    // number, so the object no longer opens, and no output is left.
    assert_eq!(step(dir, &["put", "in", "obj", "--part-size", "1M"]).1, 0);
    let mut obj = std::fs::read(dir.join("obj")).unwrap();
    let stored = (56 + (1 << 20) / 16384 * 16400 + 16) as usize; // a full 1 MiB part's message
    let data_start = obj.len() - 3 * stored - (56 + 777 + 16);
    let (a, b) = (data_start, data_start + stored);
    let first = obj[a..b].to_vec();
    obj.copy_within(b..b + stored, a);
    obj[b..b + stored].copy_from_slice(&first);
    std::fs::write(dir.join("swapped"), &obj).unwrap();
    let (t, c) = step(dir, &["get", "swapped", "s.out"]);
    assert_eq!(c, 1, "{t}");
    assert!(t.contains("stderr: ssekit: swapped: part 1: "), "{t}");
    assert!(!dir.join("s.out").exists());

    // Errors: stdin has no size to cut, a size that is not one, more than 10,000 parts.
    let (t, c) = step(dir, &["put", "-", "x", "--part-size", "1M"]);
    assert!(
        c == 1 && t.contains("--part-size needs a file input"),
        "{t}"
    );
    for bad in ["0", "1X", "M", "99999999999G"] {
        let (t, c) = step(dir, &["put", "in", "x", "--part-size", bad]);
        assert!(c == 1 && t.contains("must be a byte count"), "{bad}: {t}");
    }
    let (t, c) = step(dir, &["put", "in", "x", "--part-size", "100"]);
    assert!(c == 1 && t.contains("S3 allows at most 10000"), "{t}");
    assert!(!dir.join("x").exists());
}
