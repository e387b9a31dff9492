//! Where `get` puts plaintext: straight into stdout, FIFOs and devices (nothing on disk), through a
//! temporary file beside a regular destination; and metadata printed with its control characters
//! escaped.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};

use ssekit::object::{read_container_header, write_container_header};

/// `ssekit` run in `dir` with its home under `dir` and `TMPDIR` set to `tmp`.
fn bin(dir: &Path, tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    for v in [
        "SSEKIT_BACKEND",
        "SSEKIT_ROOT_KEY_FILE",
        "SSEKIT_PROVIDER",
        "XDG_DATA_HOME",
    ] {
        c.env_remove(v);
    }
    c.env("SSEKIT_HOME", dir.join("home"))
        .env("TMPDIR", tmp)
        .current_dir(dir);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory for `TMPDIR`, a plaintext of `len` bytes sealed as `obj`.
fn setup(len: usize) -> (tempfile::TempDir, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(d.path().join("in"), &data).unwrap();
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["put", "in", "obj"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    (d, data)
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// A reader of everything written into the FIFO at `path` (its open waits for a writer).
fn fifo_reader(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || std::fs::read(path).unwrap())
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn get_to_stdout_puts_nothing_in_tmpdir() {
    let (d, data) = setup(4 << 20);
    let tmp = d.path().join("tmp");
    let mut child = bin(d.path(), &tmp)
        .args(["get", "obj", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Once the first byte is out, whatever the command spools is there: the pipe holds far less
    // than 4 MiB, so it cannot have finished yet.
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(
        entries(&tmp),
        Vec::<String>::new(),
        "plaintext spooled in TMPDIR"
    );
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(first[0] == data[0] && rest == data[1..]);
    assert!(entries(&tmp).is_empty());
}

#[test]
fn get_to_a_fifo_writes_into_it() {
    let (d, data) = setup(300_000);
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let reader = fifo_reader(&fifo);
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["get", "obj", "fifo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Checked before joining: a FIFO replaced by a file would leave the reader waiting forever.
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
    assert!(reader.join().unwrap() == data);
    assert_eq!(entries(&d.path().join("tmp")), Vec::<String>::new());
}

#[test]
fn get_to_a_device_writes_into_it() {
    let (d, _) = setup(100_000);
    // Through a link to /dev/null, so that a regression replaces the link, never /dev/null itself.
    let null = d.path().join("null");
    symlink("/dev/null", &null).unwrap();
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["get", "obj", "null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&null)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // A range read takes the same way out.
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["get", "obj", "null", "--range", "0-99"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&null)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        !entries(d.path()).iter().any(|e| e.ends_with(".tmp")),
        "{:?}",
        entries(d.path())
    );
}

#[test]
fn get_to_a_file_writes_a_temporary_file_beside_it() {
    let (d, data) = setup(1 << 20);
    let tmp = d.path().join("tmp");
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let obj = std::fs::read(d.path().join("obj")).unwrap();
    let mut child = bin(d.path(), &tmp)
        .args(["get", "-", "out/plain"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Half the object: more than a pipe and stdin's buffer hold, so the command has begun the data,
    // and its output file exists.
    stdin.write_all(&obj[..obj.len() / 2]).unwrap();
    let beside = entries(&out_dir);
    assert!(
        beside.len() == 1 && beside[0].starts_with(".ssekit-") && beside[0].ends_with(".tmp"),
        "{beside:?}"
    );
    assert!(entries(&tmp).is_empty());
    stdin.write_all(&obj[obj.len() / 2..]).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_eq!(entries(&out_dir), ["plain"]);
    assert!(std::fs::read(out_dir.join("plain")).unwrap() == data);
}

/// A control character other than the newline ending a line.
fn has_raw_control(s: &[u8]) -> bool {
    String::from_utf8_lossy(s)
        .chars()
        .any(|c| c != '\n' && (c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c)))
}

#[test]
fn metadata_is_printed_with_control_characters_escaped() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(dir.join("in"), b"data").unwrap();
    let out = bin(dir, &tmp)
        .args([
            "put",
            "in",
            "obj",
            "--context",
            "note=\x1b[31mred\nforged line\u{9b}2J",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A key id, provider and algorithm that the CLI would never write, put in the header directly.
    let sealed = std::fs::read(dir.join("obj")).unwrap();
    let (mut meta, start) = read_container_header(&mut &sealed[..]).unwrap();
    meta.keys[0].key_id = "k\x1b[31m\nid".into();
    meta.keys[0].algorithm = "AES\x1b]0;title\x07".into();
    let mut crafted = Vec::new();
    write_container_header(&mut crafted, &meta).unwrap();
    crafted.extend_from_slice(&sealed[start as usize..]);
    std::fs::write(dir.join("crafted"), &crafted).unwrap();
    meta.keys[0].provider = "local\x1b[2J".into();
    let mut other = Vec::new();
    write_container_header(&mut other, &meta).unwrap();
    other.extend_from_slice(&sealed[start as usize..]);
    std::fs::write(dir.join("provider"), &other).unwrap();

    let run = |args: &[&str]| bin(dir, &tmp).args(args).output().unwrap();
    let out = run(&["inspect", "crafted"]);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert!(!has_raw_control(&out.stdout), "{shown:?}");
    assert!(
        shown.contains("context:  note=\\x1b[31mred\\nforged line\\u{9b}2J\n"),
        "{shown}"
    );
    assert!(shown.contains("`k\\x1b[31m\\nid`"), "{shown}");
    let out = run(&["inspect", "crafted", "--json"]);
    assert!(
        out.status.success() && !has_raw_control(&out.stdout),
        "{:?}",
        text(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keys"][0]["key_id"], "k\x1b[31m\nid");

    // Errors quoting the metadata: each one line, no raw control byte.
    for args in [
        &["get", "crafted", "out"][..],
        &["get", "crafted", "out", "--context", "note=other"],
        &["get", "provider", "out"],
        &["rewrap", "provider"],
        &["inspect", "provider"],
    ] {
        let out = run(args);
        let all = [&out.stdout[..], &out.stderr[..]].concat();
        assert!(!has_raw_control(&all), "{args:?}: {:?}", text(&all));
        if !out.status.success() {
            assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
        }
    }
    let out = run(&["get", "crafted", "out", "--context", "note=other"]);
    assert!(
        text(&out.stderr).contains("(note=\\x1b[31mred\\nforged line\\u{9b}2J)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn put_from_a_fifo_seals_what_it_carries_and_declares_no_size() {
    let (d, data) = setup(0);
    let fifo = d.path().join("src.fifo");
    mkfifo(&fifo);
    let body: Vec<u8> = (0..200_000).map(|i| (i % 241) as u8).collect();
    // The writer's open blocks until ssekit opens the FIFO to read it.
    let feed = |fifo: std::path::PathBuf, body: Vec<u8>| {
        std::thread::spawn(move || {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(fifo)
                .and_then(|mut f| f.write_all(&body));
        })
    };
    let writer = feed(fifo.clone(), body.clone());
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["put", "src.fifo", "fifo.obj"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    writer.join().unwrap();
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["get", "fifo.obj", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == body,
        "{}",
        text(&out.stderr)
    );
    // A FIFO has no size to cut into parts: refused (a FIFO reports length 0, which used to become
    // a table of one empty part). The writer is not waited for: the refusal may come before the
    // FIFO is opened.
    let _unjoined = feed(fifo.clone(), body.clone());
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["put", "src.fifo", "parts.obj", "--part-size", "64K"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--part-size needs a file input"),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.path().join("parts.obj").exists());
    drop(data);
}

/// A FIFO someone else made where the user writes (a shared directory, a planted name) is read by
/// them: plaintext goes only into FIFOs and devices of the user's or root's. As root, the test makes
/// the FIFO another user's; otherwise it checks the user's own FIFO is still written into.
#[test]
fn get_refuses_a_fifo_owned_by_someone_else() {
    let (d, data) = setup(50_000);
    let fifo = d.path().join("planted");
    mkfifo(&fifo);
    let root = ssekit::keys::home::euid() == 0;
    if root {
        std::os::unix::fs::chown(&fifo, Some(65534), Some(65534)).unwrap();
    }
    // The other side, reading whatever it is given.
    let reader = fifo_reader(&fifo);
    let out = bin(d.path(), &d.path().join("tmp"))
        .args(["get", "obj", "planted"])
        .output()
        .unwrap();
    let got = reader.join().unwrap();
    if root {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("owned by uid 65534"),
            "{}",
            text(&out.stderr)
        );
        assert!(got.is_empty(), "plaintext reached the other user's FIFO");
    } else {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(got == data);
    }
}
