//! The audit log: every provider call logged once with its outcome, no key material, each kind of
//! tampering found at the right line, rotation, many threads and two processes on one chain, the
//! callback sink, failing closed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ssekit_engine::audit::{
    AuditLog, Audited, CallbackSink, ChainPosition, Event, FileOptions, FileSink, Op, Problem,
    Record, VerifyError, VerifyOptions, VerifySummary, verify, verify_readers,
};
use ssekit_engine::keys::{
    Clock, DataKey, EncryptionContext, KeyError, KeyProvider, KeySpec, KeyState, LocalKeyring,
    SystemClock, WrappedKey,
};

/// 2026-12-03T07:01:02.345Z, then one millisecond more on every reading.
struct Ticks(AtomicU64);

const T0_MS: u64 = 1_796_281_262_345;

impl Ticks {
    fn new() -> Arc<Self> {
        Arc::new(Ticks(AtomicU64::new(T0_MS)))
    }
}

impl Clock for Ticks {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst) / 1000
    }

    fn now_millis(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

const QUIET: FileOptions = FileOptions {
    fsync: false,
    max_bytes: None,
};

fn keyring(dir: &Path) -> LocalKeyring {
    LocalKeyring::open_with(dir.join("home"), None, Arc::new(SystemClock)).unwrap()
}

fn file_log(path: &Path, options: FileOptions) -> Arc<AuditLog> {
    AuditLog::new(FileSink::open(path, options).unwrap(), Ticks::new())
}

fn arn(key: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("aws:s3:arn", format!("arn:aws:s3:::bucket/{key}").as_str())])
        .unwrap()
}

fn spec(id: &str) -> KeySpec {
    KeySpec {
        id: Some(id.into()),
        description: "test".into(),
        rotation_period_days: None,
    }
}

fn records(path: &Path) -> Vec<Record> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| Record::parse(l).unwrap())
        .collect()
}

/// One expected line: op, key id, version, the object in the context, principal, outcome.
type Want = (
    &'static str,
    &'static str,
    Option<u32>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// Every logged call, succeeding and failing; returns what must be logged and the key material
/// that must not be.
fn script(p: &Audited<LocalKeyring>) -> (Vec<Want>, Vec<Vec<u8>>) {
    let alice = p.with_principal("alice");
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut keep = |dek: &DataKey, w: &WrappedKey| {
        secrets.push(dek.expose().to_vec());
        secrets.push(w.ciphertext.clone());
    };
    alice.create_key(&spec("k1")).unwrap();
    assert_eq!(
        p.create_key(&spec("k1")),
        Err(KeyError::AlreadyExists("k1".into()))
    );
    let (dek, w1) = alice.generate_data_key("k1", &arn("a")).unwrap();
    keep(&dek, &w1);
    let dek2 = DataKey::generate();
    let w2 = p.wrap("k1", &dek2, &arn("b")).unwrap();
    keep(&dek2, &w2);
    assert_eq!(alice.unwrap(&w1, &arn("a")).unwrap().expose(), dek.expose());
    assert_eq!(
        alice.unwrap(&w1, &arn("b")).unwrap_err(),
        KeyError::UnwrapFailed
    );
    // describe and list are not logged.
    p.describe("k1").unwrap();
    p.list().unwrap();
    assert_eq!(alice.rotate("k1").unwrap().current_version, 2);
    let moved = p.rewrap(&w1, &arn("a")).unwrap().unwrap();
    keep(&dek, &moved);
    assert_eq!(p.rewrap(&moved, &arn("a")).unwrap(), None);
    alice.disable("k1").unwrap();
    assert_eq!(
        alice.generate_data_key("k1", &arn("c")).unwrap_err(),
        KeyError::Disabled("k1".into())
    );
    assert_eq!(
        p.unwrap(&moved, &arn("a")).unwrap_err(),
        KeyError::Disabled("k1".into())
    );
    alice.enable("k1").unwrap();
    alice.schedule_deletion("k1", 7).unwrap();
    alice.cancel_deletion("k1").unwrap();
    assert!(matches!(
        p.generate_data_key("nope", &arn("d")),
        Err(KeyError::NotFound(_))
    ));
    assert!(matches!(
        p.schedule_deletion("k1", 3),
        Err(KeyError::InvalidDeletionWindow(3))
    ));
    let want = vec![
        ("create", "k1", None, None, Some("alice"), "ok"),
        ("create", "k1", None, None, None, "AlreadyExists"),
        ("generate", "k1", Some(1), Some("a"), Some("alice"), "ok"),
        ("wrap", "k1", Some(1), Some("b"), None, "ok"),
        ("unwrap", "k1", Some(1), Some("a"), Some("alice"), "ok"),
        (
            "unwrap",
            "k1",
            Some(1),
            Some("b"),
            Some("alice"),
            "UnwrapFailed",
        ),
        ("rotate", "k1", Some(2), None, Some("alice"), "ok"),
        ("rewrap", "k1", Some(2), Some("a"), None, "ok"),
        ("rewrap", "k1", Some(2), Some("a"), None, "ok"),
        ("disable", "k1", None, None, Some("alice"), "ok"),
        ("generate", "k1", None, Some("c"), Some("alice"), "Disabled"),
        ("unwrap", "k1", Some(2), Some("a"), None, "Disabled"),
        ("enable", "k1", None, None, Some("alice"), "ok"),
        ("schedule_deletion", "k1", None, None, Some("alice"), "ok"),
        ("cancel_deletion", "k1", None, None, Some("alice"), "ok"),
        ("generate", "nope", None, Some("d"), None, "NotFound"),
        (
            "schedule_deletion",
            "k1",
            None,
            None,
            None,
            "InvalidDeletionWindow",
        ),
    ];
    // Each lifecycle call's `requested` line comes before its outcome's.
    let want = want
        .into_iter()
        .flat_map(|w| {
            let lifecycle = matches!(
                w.0,
                "create"
                    | "rotate"
                    | "enable"
                    | "disable"
                    | "schedule_deletion"
                    | "cancel_deletion"
            );
            let requested = (w.0, w.1, None, None, w.4, "requested");
            if lifecycle {
                vec![requested, w]
            } else {
                vec![w]
            }
        })
        .collect();
    (want, secrets)
}

#[test]
fn every_call_is_logged_once_with_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let p = Audited::new(keyring(dir.path()), file_log(&path, FileOptions::default()));
    let (want, _) = script(&p);
    let recs = records(&path);
    assert_eq!(recs.len(), want.len());
    for (i, (r, w)) in recs.iter().zip(&want).enumerate() {
        let got = (
            r.op.as_str(),
            r.key_id.as_deref().unwrap(),
            r.key_version,
            r.context
                .as_ref()
                .map(|c| c["aws:s3:arn"].trim_start_matches("arn:aws:s3:::bucket/")),
            r.principal.as_deref(),
            r.outcome.as_str(),
        );
        assert_eq!(got, *w, "line {i}");
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.provider, "local");
        assert_eq!(
            r.error.is_some(),
            r.outcome != "ok" && r.outcome != "requested",
            "line {i}"
        );
        if let Some(c) = &r.context {
            assert_eq!(c.len(), 1);
        }
    }
    assert_eq!(recs[0].time, "2026-12-03T07:01:02.345Z");
    assert_eq!(recs[1].time, "2026-12-03T07:01:02.346Z");
    assert_eq!(recs[0].prev, "0".repeat(64));
    assert_eq!(recs[1].prev, recs[0].hash);
    let disabled = recs.iter().find(|r| r.outcome == "Disabled").unwrap();
    assert!(disabled.error.as_deref().unwrap().contains("disabled"));
    // The exact form of a line: fields in order, no whitespace.
    let text = fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(concat!(
            r#"{"seq":0,"time":"2026-12-03T07:01:02.345Z","op":"create","provider":"local","#,
            r#""key_id":"k1","key_version":null,"context":null,"principal":"alice","#,
            r#""outcome":"requested","error":null,"prev":"0000"#
        )),
        "{first}"
    );
    let generate = text
        .lines()
        .find(|l| l.contains(r#""op":"generate""#))
        .unwrap();
    assert!(
        generate.contains(r#","context":{"aws:s3:arn":"arn:aws:s3:::bucket/a"},"#),
        "{generate}"
    );
    let n = recs.len() as u64;
    let s = verify(&[&path], &VerifyOptions::default()).unwrap();
    assert_eq!(
        (s.lines, s.first_seq, s.last_seq),
        (n, Some(0), Some(n - 1))
    );
    assert_eq!(
        s.head_hex().as_deref(),
        Some(recs[n as usize - 1].hash.as_str())
    );
    assert!(!s.first_prev_unchecked);
}

#[test]
fn no_key_material_in_any_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let p = Audited::new(keyring(dir.path()), file_log(&path, QUIET));
    let (_, secrets) = script(&p);
    assert_eq!(secrets.len(), 6);
    let text = fs::read_to_string(&path).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for s in &secrets {
        for form in [
            hex::encode(s),
            hex::encode_upper(s),
            b64.encode(s),
            b64url.encode(s),
        ] {
            // Any 12 characters of an encoding would do for a leak; the whole one must be absent.
            assert!(!text.contains(&form), "{form} in the log");
            assert!(!text.contains(&form[..16]), "{form} in the log");
        }
    }
}

/// A log of `n` lines, as lines without newlines.
fn log_of(n: u64) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let got = lines.clone();
    let log = AuditLog::new(
        CallbackSink::new(move |l| {
            got.lock().unwrap().push(l.to_owned());
            Ok(())
        }),
        Ticks::new(),
    );
    for i in 0..n {
        let ctx = arn(&format!("obj{i}"));
        let err = KeyError::Disabled("k1".into());
        log.record(&Event {
            op: if i % 3 == 0 { Op::Unwrap } else { Op::Generate },
            provider: "local",
            key_id: Some("k1"),
            key_version: Some(1 + (i % 2) as u32),
            context: Some(&ctx),
            principal: (i % 2 == 0).then_some("bob"),
            outcome: if i % 5 == 4 { Err(&err) } else { Ok(()) },
        })
        .unwrap();
    }
    drop(log);
    Arc::try_unwrap(lines).unwrap().into_inner().unwrap()
}

fn check(lines: &[String], options: &VerifyOptions) -> Result<VerifySummary, VerifyError> {
    let mut text = lines.join("\n");
    text.push('\n');
    verify_readers([("log".to_string(), text.as_bytes())], options)
}

/// The first bad line's number (from 1), its seq and the problem.
fn bad(r: Result<VerifySummary, VerifyError>) -> (u64, Option<u64>, Problem) {
    match r {
        Err(VerifyError::Bad(b)) => (b.line, b.seq, b.problem),
        other => panic!("expected a bad line, got {other:?}"),
    }
}

const N: u64 = 20;

#[test]
fn an_untouched_log_verifies() {
    let lines = log_of(N);
    let s = check(&lines, &VerifyOptions::default()).unwrap();
    assert_eq!(
        (s.lines, s.first_seq, s.last_seq),
        (N, Some(0), Some(N - 1))
    );
    let last = Record::parse(&lines[N as usize - 1]).unwrap();
    assert_eq!(s.head_hex(), Some(last.hash));
    let expect = VerifyOptions {
        continues: false,
        expect_head: s.head,
    };
    assert_eq!(check(&lines, &expect), Ok(s));
}

#[test]
fn every_single_byte_edit_is_found_at_its_line() {
    let lines = log_of(N);
    let mut edits = 0;
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_bytes();
        let seq_digits = 7..7 + i.to_string().len();
        let hash_key = line.len() - 75..line.len() - 68; // `"hash":` of `,"hash":"…"}`
        for (j, &b) in line.iter().enumerate() {
            let to = match b {
                b'0'..=b'8' | b'a'..=b'e' | b'A'..=b'Y' | b'g'..=b'y' => b + 1,
                b'9' => b'0',
                b'f' => b'a',
                b'z' => b'g',
                b'Z' => b'A',
                _ => continue,
            };
            let mut edited = lines.clone();
            let mut l = line.to_vec();
            l[j] = to;
            edited[i] = String::from_utf8(l).unwrap();
            let (at, seq, problem) = bad(check(&edited, &VerifyOptions::default()));
            assert_eq!(at, i as u64 + 1, "edit at line {i} byte {j}");
            if hash_key.contains(&j) {
                assert!(matches!(problem, Problem::Malformed(_)), "{i}/{j}");
            } else {
                assert_eq!(problem, Problem::Edited, "line {i} byte {j}");
                // A key's name edited leaves no record to read a seq from.
                if Record::parse(&edited[i]).is_ok() && !seq_digits.contains(&j) {
                    assert_eq!(seq, Some(i as u64), "line {i} byte {j}");
                }
            }
            edits += 1;
        }
    }
    assert!(edits > 20 * 200, "{edits}");
}

#[test]
fn every_single_line_removal_is_found() {
    let lines = log_of(N);
    for i in 0..N as usize {
        let mut cut = lines.clone();
        cut.remove(i);
        let r = check(&cut, &VerifyOptions::default());
        if i == N as usize - 1 {
            // Lines gone from the end leave a whole chain: only a recorded head shows it.
            assert!(r.is_ok());
            let head = check(&lines, &VerifyOptions::default()).unwrap().head;
            let r = check(
                &cut,
                &VerifyOptions {
                    continues: false,
                    expect_head: head,
                },
            );
            match r {
                Err(VerifyError::HeadMismatch { last_seq, .. }) => {
                    assert_eq!(last_seq, Some(N - 2))
                }
                other => panic!("{other:?}"),
            }
            continue;
        }
        let (at, seq, problem) = bad(r);
        assert_eq!(
            (at, seq, problem),
            (
                i as u64 + 1,
                Some(i as u64 + 1),
                Problem::Removed {
                    first: i as u64,
                    last: i as u64
                }
            ),
            "removed line {i}"
        );
    }
    // The first line removed, allowed as a continued log: verifies, saying its start is unchecked.
    let s = check(
        &lines[1..],
        &VerifyOptions {
            continues: true,
            expect_head: None,
        },
    )
    .unwrap();
    assert!(s.first_prev_unchecked);
    assert_eq!(s.first_seq, Some(1));
}

#[test]
fn a_copy_inserted_anywhere_is_found() {
    let lines = log_of(N);
    for k in 0..N as usize {
        for j in 0..=N as usize {
            let mut more = lines.clone();
            more.insert(j, lines[k].clone());
            let (at, seq, problem) = bad(check(&more, &VerifyOptions::default()));
            let ctx = format!("copy of line {k} put at {j}");
            if k == j {
                // Right before its original: the two are the same line; the second is extra.
                assert_eq!(at, j as u64 + 2, "{ctx}");
                assert_eq!(
                    problem,
                    Problem::Inserted {
                        repeats: Some(k as u64)
                    },
                    "{ctx}"
                );
            } else if k < j {
                assert_eq!(at, j as u64 + 1, "{ctx}");
                assert_eq!(
                    problem,
                    Problem::Inserted {
                        repeats: Some(k as u64)
                    },
                    "{ctx}"
                );
            } else {
                // A copy of a later line, before its original: seen as out of order here.
                assert_eq!(at, j as u64 + 1, "{ctx}");
                assert_eq!(problem, Problem::Reordered { expected: j as u64 }, "{ctx}");
            }
            assert_eq!(seq, Some(k as u64), "{ctx}");
        }
    }
}

#[test]
fn every_adjacent_swap_is_found() {
    let lines = log_of(N);
    for i in 0..N as usize - 1 {
        let mut swapped = lines.clone();
        swapped.swap(i, i + 1);
        assert_eq!(
            bad(check(&swapped, &VerifyOptions::default())),
            (
                i as u64 + 1,
                Some(i as u64 + 1),
                Problem::Reordered { expected: i as u64 }
            ),
            "swapped {i} and {}",
            i + 1
        );
    }
}

#[test]
fn a_line_from_another_chain_does_not_link() {
    let lines = log_of(N);
    // Line 5 of another chain: its own hash is right, its prev is not line 4's hash.
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    let prev = [7u8; 32];
    let log = AuditLog::new(
        CallbackSink::continuing(
            move |l| {
                *g.lock().unwrap() = l.to_owned();
                Ok(())
            },
            ChainPosition { seq: 5, prev },
        ),
        Ticks::new(),
    );
    let ctx = arn("x");
    log.record(&Event {
        op: Op::Wrap,
        provider: "local",
        key_id: Some("k1"),
        key_version: Some(1),
        context: Some(&ctx),
        principal: None,
        outcome: Ok(()),
    })
    .unwrap();
    let mut forged = lines.clone();
    forged[5] = got.lock().unwrap().clone();
    assert_eq!(
        bad(check(&forged, &VerifyOptions::default())),
        (6, Some(5), Problem::Inserted { repeats: None })
    );
    // A malformed line and a missing final newline are named too.
    let mut junk = lines.clone();
    junk[3] = "not json".into();
    assert!(matches!(
        bad(check(&junk, &VerifyOptions::default())),
        (4, None, Problem::Malformed(_))
    ));
    let text = lines.join("\n");
    let r = verify_readers(
        [("log".to_string(), text.as_bytes())],
        &VerifyOptions::default(),
    );
    assert!(matches!(bad(r), (20, Some(19), Problem::Malformed(_))));
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("audit.log."))
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    rotated.sort();
    rotated.push(dir.join("audit.log"));
    rotated
}

fn verify_files(files: &[PathBuf], continues: bool) -> Result<VerifySummary, VerifyError> {
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    verify(
        &refs,
        &VerifyOptions {
            continues,
            expect_head: None,
        },
    )
}

fn wraps(p: &impl KeyProvider, n: usize) {
    let dek = DataKey::generate();
    for i in 0..n {
        p.wrap("k1", &dek, &arn(&format!("o{i}"))).unwrap();
    }
}

#[test]
fn rotation_keeps_one_chain_over_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let options = FileOptions {
        fsync: true,
        max_bytes: Some(1000),
    };
    let ring = Arc::new(keyring(dir.path()));
    ring.create_key(&spec("k1")).unwrap();
    wraps(&Audited::new(ring.clone(), file_log(&path, options)), 12);
    // A second writer opened later continues the same chain.
    wraps(&Audited::new(ring.clone(), file_log(&path, options)), 8);
    let files = log_files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    let mut next = 0;
    for f in &files {
        let recs = records(f);
        assert!(fs::metadata(f).unwrap().len() <= 1000);
        if f != &path {
            let name = f.file_name().unwrap().to_str().unwrap();
            assert_eq!(name, format!("audit.log.{next:012}"));
        }
        assert_eq!(recs[0].seq, next);
        next += recs.len() as u64;
    }
    let s = verify_files(&files, false).unwrap();
    assert_eq!((s.lines, s.last_seq, s.files), (20, Some(19), files.len()));

    // A middle file dropped.
    let mut dropped = files.clone();
    let gone = dropped.remove(2);
    let first_after = records(&dropped[2])[0].seq;
    let (at, seq, problem) = bad(verify_files(&dropped, false));
    assert_eq!((at, seq), (1, Some(first_after)));
    assert_eq!(
        problem,
        Problem::Removed {
            first: records(&gone)[0].seq,
            last: first_after - 1
        }
    );
    // Two files swapped.
    let mut swapped = files.clone();
    swapped.swap(1, 2);
    let (at, seq, _) = bad(verify_files(&swapped, false));
    assert_eq!((at, seq), (1, Some(records(&files[2])[0].seq)));
    // A later file alone: refused unless it may continue a rotated log.
    let later = &files[2..];
    let (at, seq, problem) = bad(verify_files(later, false));
    let start = records(&files[2])[0].seq;
    assert_eq!(
        (at, seq, problem),
        (
            1,
            Some(start),
            Problem::Removed {
                first: 0,
                last: start - 1
            }
        )
    );
    let s = verify_files(later, true).unwrap();
    assert!(s.first_prev_unchecked);
    assert_eq!((s.first_seq, s.last_seq), (Some(start), Some(19)));
}

#[test]
fn two_writers_on_one_file_take_turns() {
    // Two logs on one file in one process: each finds the other's lines before appending its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let ring = Arc::new(keyring(dir.path()));
    ring.create_key(&spec("k1")).unwrap();
    let a = Audited::new(ring.clone(), file_log(&path, QUIET));
    let b = Audited::new(ring.clone(), file_log(&path, QUIET));
    for _ in 0..5 {
        wraps(&a.with_principal("a"), 1);
        wraps(&b.with_principal("b"), 2);
    }
    let s = verify(&[&path], &VerifyOptions::default()).unwrap();
    assert_eq!((s.lines, s.last_seq), (15, Some(14)));
    let who: String = records(&path)
        .iter()
        .map(|r| r.principal.clone().unwrap())
        .collect();
    assert_eq!(who, "abbabbabbabbabb");
}

#[test]
fn a_line_too_long_for_the_writer_is_malformed() {
    let mut lines = log_of(3);
    lines.insert(1, "x".repeat(9 << 20));
    assert_eq!(
        bad(check(&lines, &VerifyOptions::default())),
        (
            2,
            None,
            Problem::Malformed("longer than any audit line".into())
        )
    );
}

#[test]
fn eight_threads_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let ring = keyring(dir.path());
    ring.create_key(&spec("k1")).unwrap();
    let p = Arc::new(Audited::new(ring, file_log(&path, QUIET)));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                let who = format!("thread{t}");
                wraps(&p.with_principal(&who), 200);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = verify(&[&path], &VerifyOptions::default()).unwrap();
    assert_eq!((s.lines, s.last_seq), (1600, Some(1599)));
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in records(&path) {
        *per.entry(r.principal.unwrap()).or_default() += 1;
    }
    assert_eq!(per.len(), 8);
    assert!(per.values().all(|&n| n == 200), "{per:?}");
}

const CHILD_LOG: &str = "SSEKIT_AUDIT_TEST_CHILD_LOG";

/// Not a test on its own: the child process of `two_processes_keep_one_chain` (this test binary
/// run again with `CHILD_LOG` set), which appends 400 lines to that log once a start file exists.
#[test]
fn child_appender() {
    let Some(path) = std::env::var_os(CHILD_LOG).map(PathBuf::from) else {
        return;
    };
    let go = path.with_extension("go");
    while !go.exists() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let who = std::process::id().to_string();
    let log = AuditLog::open_file(
        &path,
        FileOptions {
            fsync: false,
            max_bytes: Some(32 << 10),
        },
    )
    .unwrap();
    for i in 0..400 {
        let ctx = arn(&format!("{who}/{i}"));
        log.record(&Event {
            op: Op::Unwrap,
            provider: "local",
            key_id: Some("k1"),
            key_version: Some(1),
            context: Some(&ctx),
            principal: Some(&who),
            outcome: Ok(()),
        })
        .unwrap();
    }
}

#[test]
fn two_processes_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["child_appender", "--exact", "--test-threads=1"])
                .env(CHILD_LOG, &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    fs::write(path.with_extension("go"), b"").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let files = log_files(dir.path());
    assert!(files.len() > 2, "{files:?}");
    let s = verify_files(&files, false).unwrap();
    assert_eq!((s.lines, s.last_seq), (800, Some(799)));
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        for r in records(f) {
            *per.entry(r.principal.unwrap()).or_default() += 1;
        }
    }
    assert_eq!(per.values().copied().collect::<Vec<_>>(), [400, 400]);
}

#[test]
fn the_callback_sink_gets_the_lines_the_file_gets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let a = Audited::new(keyring(&dir.path().join("a")), file_log(&path, QUIET));
    script(&a);
    let shipped = Arc::new(Mutex::new(String::new()));
    let s = shipped.clone();
    let b = Audited::new(
        keyring(&dir.path().join("b")),
        AuditLog::new(
            CallbackSink::new(move |l| {
                let mut s = s.lock().unwrap();
                s.push_str(l);
                s.push('\n');
                Ok(())
            }),
            Ticks::new(),
        ),
    );
    script(&b);
    assert_eq!(*shipped.lock().unwrap(), fs::read_to_string(&path).unwrap());
}

#[test]
fn a_log_that_cannot_be_written_fails_data_calls_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Arc::new(keyring(dir.path()));
    ring.create_key(&spec("k1")).unwrap();
    let (dek, w) = ring.generate_data_key("k1", &arn("a")).unwrap();
    let refuse = Arc::new(AtomicU64::new(1));
    let r = refuse.clone();
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let d = delivered.clone();
    let log = AuditLog::new(
        CallbackSink::new(move |l| {
            if r.load(Ordering::SeqCst) == 1 {
                Err("the collector is down".into())
            } else {
                d.lock().unwrap().push(l.to_owned());
                Ok(())
            }
        }),
        Ticks::new(),
    );
    let p = Audited::new(ring.clone(), log);
    let is_audit_io = |e: KeyError| matches!(&e, KeyError::Io(m) if m.starts_with("audit log: ") && m.contains("collector is down"));
    assert!(is_audit_io(
        p.generate_data_key("k1", &arn("a")).unwrap_err()
    ));
    assert!(is_audit_io(p.wrap("k1", &dek, &arn("a")).unwrap_err()));
    assert!(is_audit_io(p.unwrap(&w, &arn("a")).unwrap_err()));
    assert!(is_audit_io(
        p.with_principal("eve").unwrap(&w, &arn("a")).unwrap_err()
    ));
    // A lifecycle call whose `requested` line cannot be written is not made: no change without a
    // line (rotate, disable, schedule a deletion, create).
    assert!(is_audit_io(p.rotate("k1").unwrap_err()));
    assert_eq!(ring.describe("k1").unwrap().current_version, 1);
    assert!(is_audit_io(p.disable("k1").unwrap_err()));
    assert!(is_audit_io(p.schedule_deletion("k1", 7).unwrap_err()));
    assert_eq!(ring.describe("k1").unwrap().state, KeyState::Enabled);
    assert!(is_audit_io(p.create_key(&spec("k2")).unwrap_err()));
    assert!(matches!(ring.describe("k2"), Err(KeyError::NotFound(_))));
    assert!(is_audit_io(p.rewrap(&w, &arn("a")).unwrap_err()));
    // Once lines go through again, the chain starts where it stood: nothing was skipped.
    refuse.store(0, Ordering::SeqCst);
    assert_eq!(p.unwrap(&w, &arn("a")).unwrap().expose(), dek.expose());
    let got = delivered.lock().unwrap().clone();
    assert_eq!(Record::parse(&got[0]).unwrap().seq, 0);
    check(&got, &VerifyOptions::default()).unwrap();

    // A file log that became unwritable (replaced by a directory).
    let path = dir.path().join("audit.log");
    let p = Audited::new(ring.clone(), file_log(&path, QUIET));
    p.unwrap(&w, &arn("a")).unwrap();
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert!(matches!(
        p.unwrap(&w, &arn("a")).unwrap_err(),
        KeyError::Io(m) if m.starts_with("audit log: ")
    ));
    fs::remove_dir(&path).unwrap();

    // A log ending in an incomplete line is not continued (nor opened).
    fs::write(&path, b"{\"seq\":0,\"ti").unwrap();
    assert!(matches!(
        p.generate_data_key("k1", &arn("a")).unwrap_err(),
        KeyError::Io(m) if m.contains("incomplete line")
    ));
    assert!(FileSink::open(&path, QUIET).is_err());
}

#[test]
fn the_example_lines_in_the_docs_verify() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/AUDIT.md")).unwrap();
    let lines: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("{\"seq\":"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2);
    let s = check(&lines, &VerifyOptions::default()).unwrap();
    assert_eq!(s.lines, 2);
    let r = Record::parse(&lines[1]).unwrap();
    assert_eq!((r.outcome.as_str(), r.key_version), ("Disabled", None));
}
