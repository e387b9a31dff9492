//! The C ABI's examples, end to end: `ffi/examples/objstore.c` (a one-file object store) is compiled
//! with the system `cc` against the `libssekit.a` cargo built for this test, and driven as a client
//! would (put, get, ranged get, head, key management) in every SSE mode; tampering, policies, wrong
//! or disabled keys and the audit log are checked through it, and one put and get run under valgrind.
//! `ffi/examples/go` (the same over cgo) is built with `go build` and run.
//!
//! Needs `cc`, `valgrind` and `go` on PATH (scripts/test.sh installs them); a missing tool fails its
//! test with a message saying so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod built;

/// `target/<profile>/` with `libssekit.a` freshly built.
fn profile_dir() -> PathBuf {
    built::profile_dir().to_path_buf()
}

fn static_lib() -> PathBuf {
    let lib = profile_dir().join("libssekit.a");
    assert!(
        lib.is_file(),
        "{} is missing: cargo should have built it with this test (crate-type staticlib)",
        lib.display()
    );
    lib
}

fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool, failing with a clear message if it is not installed.
fn tool(cmd: &mut Command, name: &str, install: &str) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{name}` is not installed ({install}); this test needs it")
        }
        Err(e) => panic!("running `{name}`: {e}"),
    }
}

/// The objstore binary, compiled once per test run into `target/<profile>/ssekit-examples/`.
fn objstore_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out_dir = profile_dir().join("ssekit-examples");
        std::fs::create_dir_all(&out_dir).expect("create target/<profile>/ssekit-examples");
        let bin = out_dir.join("objstore");
        let tmp = out_dir.join(format!("objstore.{}", std::process::id()));
        let out = tool(
            Command::new("cc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-I"])
                .arg(ffi_dir().join("include"))
                .arg(ffi_dir().join("examples/objstore.c"))
                .arg(static_lib())
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&tmp),
            "cc",
            "apt-get install gcc",
        );
        assert!(
            out.status.success(),
            "cc -Wall -Wextra -Werror failed on ffi/examples/objstore.c:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).expect("move the objstore binary in place");
        bin
    })
}

/// What one objstore run gave.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(
            self.code, 0,
            "{what} failed (exit {}): {}",
            self.code, self.stderr
        );
        self
    }

    /// An S3 error: exit 2 and `CODE STATUS message` on stderr.
    fn s3_error(self, what: &str, code_status: &str) -> Self {
        assert_eq!(
            self.code, 2,
            "{what}: expected {code_status}, got exit {}: {}",
            self.code, self.stderr
        );
        assert!(
            self.stderr
                .lines()
                .any(|l| l.starts_with(&format!("{code_status} "))),
            "{what}: expected `{code_status} …` on stderr, got: {}",
            self.stderr
        );
        self
    }
}

/// A store directory and the arguments every request of a test repeats.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Self {
        Store {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_with(Command::new(objstore_bin()), args, stdin)
    }

    fn run_with(&self, mut cmd: Command, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = cmd
            .arg(self.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start objstore");
        let mut pipe = child.stdin.take().expect("stdin");
        let body = stdin.to_vec();
        // Fed from a thread: objstore writes its stdout while reading stdin.
        let feeder = std::thread::spawn(move || {
            let _ = pipe.write_all(&body); // a refused PUT stops reading early
        });
        let out = child.wait_with_output().expect("wait for objstore");
        feeder.join().expect("the stdin feeder");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }
}

/// A xorshift generator seeded from the clock: different bodies every run.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        Rng(t.as_nanos() as u64 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// SSE-C keys: 32 bytes, base64, and base64 of their MD5, as S3 clients send them. KEY_A is bytes
// 0..32, KEY_B bytes 100..132 (`python3 -c 'import base64,hashlib; k=bytes(range(32)); ...'`).
const KEY_A: (&str, &str) = (
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "tP/LI3N87DFaSk0aoqYgzg==",
);
const KEY_B: (&str, &str) = (
    "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=",
    "sx4fxreWidibx3EyELB0Ww==",
);

fn sse_c_args(key: (&str, &str)) -> Vec<String> {
    vec![
        "-H".into(),
        "x-amz-server-side-encryption-customer-algorithm: AES256".into(),
        "-H".into(),
        format!("x-amz-server-side-encryption-customer-key: {}", key.0),
        "-H".into(),
        format!("x-amz-server-side-encryption-customer-key-MD5: {}", key.1),
        "--secure".into(),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    SseS3,
    SseKms,
    DsseKms,
    SseC,
}

impl Mode {
    /// The request's SSE arguments for PUT (`write`) or GET/HEAD.
    fn args(self, write: bool) -> Vec<String> {
        let h = |v: &str| vec!["-H".to_string(), v.to_string()];
        match self {
            Mode::SseS3 if write => h("x-amz-server-side-encryption: AES256"),
            Mode::SseKms if write => [
                h("x-amz-server-side-encryption: aws:kms"),
                h("x-amz-server-side-encryption-aws-kms-key-id: mykey"),
            ]
            .concat(),
            Mode::DsseKms if write => [
                h("x-amz-server-side-encryption: aws:kms:dsse"),
                h("x-amz-server-side-encryption-aws-kms-key-id: mykey"),
            ]
            .concat(),
            Mode::SseC => sse_c_args(KEY_A),
            _ => Vec::new(), // S3 reads of SSE-S3 and KMS objects carry no SSE headers
        }
    }

    /// Response header lines every request on such an object answers with.
    fn response_headers(self) -> &'static [&'static str] {
        match self {
            Mode::SseS3 => &["x-amz-server-side-encryption: AES256"],
            Mode::SseKms => &[
                "x-amz-server-side-encryption: aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:000000000000:key/mykey",
            ],
            Mode::DsseKms => &[
                "x-amz-server-side-encryption: aws:kms:dsse",
                "x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:000000000000:key/mykey",
            ],
            Mode::SseC => &[
                "x-amz-server-side-encryption-customer-algorithm: AES256",
                "x-amz-server-side-encryption-customer-key-MD5: tP/LI3N87DFaSk0aoqYgzg==",
            ],
        }
    }
}

fn args<'a>(fixed: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    fixed
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect()
}

fn has_lines(text: &str, lines: &[&str], what: &str) {
    for l in lines {
        assert!(
            text.lines().any(|t| t == *l),
            "{what}: no line `{l}` in:\n{text}"
        );
    }
}

/// Whether `hay` contains `needle` anywhere.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn put(store: &Store, bucket: &str, key: &str, mode: Mode, body: &[u8]) -> Run {
    let sse = mode.args(true);
    store
        .run(&args(&["put", bucket, key], &sse), body)
        .ok(&format!("put {key} ({mode:?})"))
}

#[test]
fn objects_round_trip_in_every_mode_and_size_and_ranges_read_slices() {
    let store = Store::new();
    store
        .run(&["create-key", "mykey"], b"")
        .ok("create-key mykey");
    let mut rng = Rng::new();
    let sizes = [0usize, 1, 100 * 1024, 3 * 1024 * 1024];
    for mode in [Mode::SseS3, Mode::SseKms, Mode::DsseKms, Mode::SseC] {
        for (i, &size) in sizes.iter().enumerate() {
            let key = format!("{mode:?}-{size}");
            let body = rng.bytes(size);
            let what = format!("{mode:?}, {size} bytes");
            // Every other PUT reads its body from --file rather than stdin.
            let put_run = if i % 2 == 1 {
                let src = store.file(&format!("{key}.src"));
                std::fs::write(&src, &body).expect("write the body file");
                let src = src.to_str().expect("UTF-8 temp path").to_string();
                let extra = [vec!["--file".to_string(), src], mode.args(true)].concat();
                store
                    .run(&args(&["put", "bkt", &key], &extra), b"")
                    .ok(&format!("put --file ({what})"))
            } else {
                put(&store, "bkt", &key, mode, &body)
            };
            has_lines(
                &put_run.stderr,
                mode.response_headers(),
                &format!("put ({what})"),
            );

            let read = mode.args(false);
            let got = store
                .run(&args(&["get", "bkt", &key], &read), b"")
                .ok(&format!("get ({what})"));
            assert!(
                got.stdout == body,
                "get ({what}) returned {} bytes, not the body",
                got.stdout.len()
            );
            has_lines(
                &got.stderr,
                mode.response_headers(),
                &format!("get ({what})"),
            );

            let head = store
                .run(&args(&["head", "bkt", &key], &read), b"")
                .ok(&format!("head ({what})"));
            let head_out = String::from_utf8(head.stdout).expect("head prints UTF-8");
            has_lines(
                &head_out,
                mode.response_headers(),
                &format!("head ({what})"),
            );
            has_lines(
                &head_out,
                &[&format!("content-length: {size}")],
                &format!("head ({what})"),
            );

            // The stored data holds none of the plaintext.
            let data =
                std::fs::read(store.file(&format!("bkt/{key}.data"))).expect("read KEY.data");
            assert!(
                data.len() > size,
                "{what}: stored {} bytes for {size}",
                data.len()
            );
            if size >= 32 {
                for _ in 0..8 {
                    let at = rng.below(size - 31);
                    assert!(
                        !contains(&data, &body[at..at + 32]),
                        "{what}: KEY.data holds plaintext at {at}"
                    );
                }
            }
            assert!(
                store.file(&format!("bkt/{key}.meta")).is_file(),
                "{what}: no KEY.meta"
            );

            if size == 0 {
                let r = store.run(
                    &args(&["get", "bkt", &key, "--range", "bytes=0-0"], &read),
                    b"",
                );
                r.s3_error(
                    &format!("range of an empty object ({what})"),
                    "InvalidRange 416",
                );
                continue;
            }
            let a = rng.below(size);
            let b = a + rng.below(size - a);
            let n = 1 + rng.below(size);
            let ranges = [
                (format!("bytes={a}-{b}"), a, b + 1),
                (format!("bytes={a}-"), a, size),
                (format!("bytes=-{n}"), size - n, size),
                (format!("bytes={a}-{}", size + 5000), a, size), // S3 clamps the end
            ];
            for (spec, start, end) in ranges {
                let r = store
                    .run(&args(&["get", "bkt", &key, "--range", &spec], &read), b"")
                    .ok(&format!("get {spec} ({what})"));
                assert!(
                    r.stdout == body[start..end],
                    "get {spec} ({what}): {} bytes, not the slice {start}..{end}",
                    r.stdout.len()
                );
                let cr = format!("content-range: bytes {start}-{}/{size}", end - 1);
                has_lines(&r.stderr, &[&cr], &format!("get {spec} ({what})"));
            }
            let past = format!("bytes={size}-");
            let r = store.run(&args(&["get", "bkt", &key, "--range", &past], &read), b"");
            r.s3_error(&format!("get {past} ({what})"), "InvalidRange 416");
        }
    }
    let list = store.run(&["list", "bkt"], b"").ok("list");
    let list = String::from_utf8(list.stdout).expect("list prints UTF-8");
    assert_eq!(list.lines().count(), 16, "list: {list}");
    has_lines(&list, &["SseC-3145728 3145728", "SseS3-0 0"], "list");
}

#[test]
fn tampered_or_truncated_data_fails_with_only_authentic_plaintext_out() {
    let store = Store::new();
    let body = Rng::new().bytes(3 * 1024 * 1024);
    put(&store, "bkt", "obj", Mode::SseS3, &body);
    let data_path = store.file("bkt/obj.data");
    let data = std::fs::read(&data_path).expect("read obj.data");

    let mut tampered = data.clone();
    tampered[data.len() / 2] ^= 0x40;
    std::fs::write(&data_path, &tampered).expect("tamper with obj.data");
    let r = store.run(&["get", "bkt", "obj"], b"");
    assert_eq!(
        r.code, 1,
        "get of tampered data: exit {}: {}",
        r.code, r.stderr
    );
    assert!(
        r.stderr.to_lowercase().contains("tampered"),
        "get of tampered data said: {}",
        r.stderr
    );
    assert!(
        r.stdout.len() < body.len() / 2 && body.starts_with(&r.stdout),
        "get of tampered data wrote {} bytes that are not a prefix of the plaintext before the damage",
        r.stdout.len()
    );

    std::fs::write(&data_path, &data[..data.len() - 100]).expect("truncate obj.data");
    let r = store.run(&["get", "bkt", "obj"], b"");
    assert_eq!(
        r.code, 1,
        "get of truncated data: exit {}: {}",
        r.code, r.stderr
    );
    assert!(
        r.stderr.contains("TRUNCATED"),
        "get of truncated data said: {}",
        r.stderr
    );
    assert!(
        r.stdout.len() < body.len() && body.starts_with(&r.stdout),
        "get of truncated data wrote {} bytes that are not a prefix of the plaintext",
        r.stdout.len()
    );

    std::fs::write(&data_path, &data).expect("restore obj.data");
    let r = store
        .run(&["get", "bkt", "obj"], b"")
        .ok("get after restoring");
    assert!(r.stdout == body, "get after restoring: not the body");
}

#[test]
fn bucket_policy_and_default_encryption_come_from_the_bucket_directory() {
    let store = Store::new();
    store
        .run(&["create-key", "mykey"], b"")
        .ok("create-key mykey");
    std::fs::create_dir_all(store.file("locked")).expect("create the bucket directory");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyUnencryptedPut","Effect":"Deny",
        "Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::locked/*",
        "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}]}"#;
    std::fs::write(store.file("locked/.policy.json"), policy).expect("write .policy.json");
    let default_kms = r#"{"algorithm":"aws:kms","kms_key_id":"mykey","bucket_key_enabled":false}"#;
    std::fs::write(store.file("locked/.encryption.json"), default_kms)
        .expect("write .encryption.json");

    // The policy sees the request as sent: the bucket's default encryption does not satisfy it.
    let r = store.run(&["put", "locked", "plain"], b"hello");
    r.s3_error(
        "put without SSE headers under a deny-unencrypted policy",
        "AccessDenied 403",
    );
    assert!(
        !store.file("locked/plain.data").exists(),
        "a refused PUT left data behind"
    );
    assert!(
        !store.file("locked/plain.data.tmp").exists(),
        "a refused PUT left a temp file behind"
    );
    put(&store, "locked", "sealed", Mode::SseS3, b"hello");

    // A bucket with only a default: a PUT naming no mode gets it.
    std::fs::create_dir_all(store.file("dflt")).expect("create the bucket directory");
    std::fs::write(store.file("dflt/.encryption.json"), default_kms)
        .expect("write .encryption.json");
    let r = store
        .run(&["put", "dflt", "obj"], b"defaulted")
        .ok("put under a default");
    has_lines(
        &r.stderr,
        Mode::SseKms.response_headers(),
        "put under a default",
    );
    let r = store
        .run(&["get", "dflt", "obj"], b"")
        .ok("get under a default");
    assert_eq!(r.stdout, b"defaulted");

    // A configuration that does not parse is the server's error, not the client's.
    std::fs::write(
        store.file("dflt/.encryption.json"),
        "{\"algorithm\":\"AES192\"}",
    )
    .expect("write");
    let r = store.run(&["put", "dflt", "obj2"], b"x");
    assert_eq!(
        r.code, 1,
        "put under a bad configuration: exit {}: {}",
        r.code, r.stderr
    );
    assert!(
        r.stderr.contains("SSEKIT_RESULT_MALFORMED_CONFIGURATION"),
        "said: {}",
        r.stderr
    );
}

#[test]
fn sse_c_needs_tls_and_the_same_key() {
    let store = Store::new();
    put(&store, "bkt", "obj", Mode::SseC, b"customer secret");
    let wrong = sse_c_args(KEY_B);
    store
        .run(&args(&["get", "bkt", "obj"], &wrong), b"")
        .s3_error("get with the wrong SSE-C key", "AccessDenied 403");
    store
        .run(&args(&["head", "bkt", "obj"], &wrong), b"")
        .s3_error("head with the wrong SSE-C key", "AccessDenied 403");
    store
        .run(&["get", "bkt", "obj", "--secure"], b"")
        .s3_error("get without the SSE-C key", "InvalidRequest 400");
    let no_tls: Vec<String> = sse_c_args(KEY_A)
        .into_iter()
        .filter(|a| a != "--secure")
        .collect();
    store
        .run(&args(&["put", "bkt", "obj2"], &no_tls), b"x")
        .s3_error("SSE-C over plain HTTP", "InvalidRequest 400");
    let r = store
        .run(&args(&["get", "bkt", "obj"], &sse_c_args(KEY_A)), b"")
        .ok("get with the right key");
    assert_eq!(r.stdout, b"customer secret");
}

#[test]
fn a_disabled_kms_key_refuses_reads_and_writes() {
    let store = Store::new();
    store
        .run(&["create-key", "mykey"], b"")
        .ok("create-key mykey");
    put(&store, "bkt", "obj", Mode::SseKms, b"before");
    store
        .run(&["create-key", "mykey"], b"")
        .s3_error_free("create-key of an existing id", "SSEKIT_RESULT_KEY_EXISTS");
    let r = store
        .run(&["disable-key", "mykey"], b"")
        .ok("disable-key mykey");
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("\"state\":\"Disabled\""),
        "disable-key printed: {:?}",
        r.stdout
    );
    store
        .run(&["get", "bkt", "obj"], b"")
        .s3_error("get under a disabled key", "KMS.DisabledException 400");
    let sse = Mode::SseKms.args(true);
    store
        .run(&args(&["put", "bkt", "obj2"], &sse), b"x")
        .s3_error("put under a disabled key", "KMS.DisabledException 400");
    let unknown = [
        "-H",
        "x-amz-server-side-encryption: aws:kms",
        "-H",
        "x-amz-server-side-encryption-aws-kms-key-id: nokey",
    ];
    store
        .run(
            &args(&["put", "bkt", "obj3"], &unknown.map(String::from)),
            b"x",
        )
        .s3_error("put under an unknown key", "KMS.NotFoundException 400");
    // HEAD calls no key service: it still answers.
    store
        .run(&["head", "bkt", "obj"], b"")
        .ok("head under a disabled key");
}

impl Run {
    /// A failure that is not an S3 error: exit 1 and the result's name on stderr.
    fn s3_error_free(self, what: &str, result: &str) -> Self {
        assert_eq!(
            self.code, 1,
            "{what}: expected {result}, got exit {}: {}",
            self.code, self.stderr
        );
        assert!(
            self.stderr.contains(result),
            "{what}: expected {result}, got: {}",
            self.stderr
        );
        self
    }
}

#[test]
fn every_key_use_has_an_audit_line_naming_object_and_principal() {
    let store = Store::new();
    let alice = "arn:aws:iam::000000000000:user/alice";
    let p = |extra: &[String]| {
        [
            vec!["--principal".to_string(), alice.to_string()],
            extra.to_vec(),
        ]
        .concat()
    };
    store.run(&["create-key", "mykey"], b"").ok("create-key");
    for (key, mode) in [
        ("s3", Mode::SseS3),
        ("kms", Mode::SseKms),
        ("dsse", Mode::DsseKms),
        ("c", Mode::SseC),
    ] {
        let w = p(&mode.args(true));
        store
            .run(&args(&["put", "bkt", key], &w), b"audited")
            .ok(&format!("put {key}"));
        let r = p(&mode.args(false));
        store
            .run(&args(&["get", "bkt", key], &r), b"")
            .ok(&format!("get {key}"));
        store
            .run(&args(&["head", "bkt", key], &r), b"")
            .ok(&format!("head {key}"));
    }
    store
        .run(&args(&["get", "bkt", "c"], &p(&sse_c_args(KEY_B))), b"")
        .s3_error("wrong key", "AccessDenied 403");

    let log = std::fs::read_to_string(store.file("audit.log")).expect("read audit.log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l}: {e}")))
        .collect();
    // One chain across every objstore process.
    let mut prev = "0".repeat(64);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64, "audit seq at line {i}: {l}");
        assert_eq!(
            l["prev"],
            prev.as_str(),
            "audit chain broken at line {i}: {l}"
        );
        prev = l["hash"].as_str().expect("hash").to_string();
    }
    let uses = |op: &str, object: &str, outcome: &str| {
        lines
            .iter()
            .filter(|l| {
                l["op"] == op
                    && l["outcome"] == outcome
                    && l["principal"] == alice
                    && l["context"]["aws:s3:arn"] == format!("arn:aws:s3:::bkt/{object}").as_str()
            })
            .count()
    };
    assert_eq!(
        lines.first().map(|l| l["op"].clone()),
        Some("create".into()),
        "first line: {log}"
    );
    for (op, object, outcome, n) in [
        ("generate", "s3", "ok", 1),
        ("unwrap", "s3", "ok", 1),
        ("generate", "kms", "ok", 1),
        ("unwrap", "kms", "ok", 1),
        ("generate", "dsse", "ok", 2), // two layers, two data keys
        ("unwrap", "dsse", "ok", 2),
        ("sse_c_wrap", "c", "ok", 1),
        ("sse_c_unwrap", "c", "ok", 2), // GET, and HEAD: it checks the customer's key by unwrapping
        ("sse_c_unwrap", "c", "UnwrapFailed", 1),
    ] {
        assert_eq!(
            uses(op, object, outcome),
            n,
            "audit lines `{op}` {outcome} for bkt/{object} by alice:\n{log}"
        );
    }
    let kms_generate = lines
        .iter()
        .find(|l| l["op"] == "generate" && l["context"]["aws:s3:arn"] == "arn:aws:s3:::bkt/kms");
    assert_eq!(
        kms_generate.map(|l| l["key_id"].clone()),
        Some("mykey".into()),
        "{log}"
    );
    // Every line is accounted for above (create-key, the SSE-S3 root key's own create on first use,
    // the uses): HEAD of an SSE-S3, KMS or DSSE object calls no key service.
    // Each create is two lines: `requested` before, `ok` after.
    let creates = lines.iter().filter(|l| l["op"] == "create").count();
    assert_eq!(creates, 4, "create lines (mykey, ssekit-sse-s3):\n{log}");
    let requested = lines
        .iter()
        .filter(|l| l["op"] == "create" && l["outcome"] == "requested")
        .count();
    assert_eq!(
        requested, 2,
        "a `requested` line before each create:\n{log}"
    );
    assert_eq!(
        lines.len(),
        creates + 12,
        "unexpected audit lines (HEAD must use no KMS key):\n{log}"
    );
}

#[test]
fn objstore_put_and_get_are_clean_under_valgrind() {
    let store = Store::new();
    store.run(&["create-key", "mykey"], b"").ok("create-key");
    let body = Rng::new().bytes(100 * 1024);
    let valgrind = || {
        let mut c = Command::new("valgrind");
        c.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
        ]);
        c.arg(objstore_bin());
        c
    };
    tool(
        Command::new("valgrind").arg("--version"),
        "valgrind",
        "apt-get install valgrind",
    );
    let sse = Mode::SseKms.args(true);
    let put = store.run_with(valgrind(), &args(&["put", "bkt", "obj"], &sse), &body);
    let get = store.run_with(valgrind(), &["get", "bkt", "obj"], b"");
    for (what, r) in [("put", &put), ("get", &get)] {
        assert_eq!(
            r.code, 0,
            "objstore {what} under valgrind: exit {} (99: valgrind found errors):\n{}",
            r.code, r.stderr
        );
        assert!(
            r.stderr.contains("ERROR SUMMARY: 0 errors"),
            "objstore {what} under valgrind:\n{}",
            r.stderr
        );
        // Shown with --nocapture: what valgrind counted but does not call an error (possibly lost,
        // still reachable: the Rust runtime's and rayon's process-lifetime allocations).
        let summary: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.contains("lost:") || l.contains("reachable:"))
            .collect();
        eprintln!("valgrind, objstore {what}: {}", summary.join(" / "));
    }
    assert!(
        get.stdout == body,
        "get under valgrind did not return the body"
    );
}

#[test]
fn the_go_example_round_trips_over_cgo() {
    let go = tool(
        Command::new("go").arg("version"),
        "go",
        "apt-get install golang-go",
    );
    assert!(
        go.status.success(),
        "go version failed: {}",
        String::from_utf8_lossy(&go.stderr)
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let bin = tmp.path().join("ssekit-go-example");
    let lib = static_lib();
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(ffi_dir().join("examples/go"))
        .env("CGO_ENABLED", "1")
        .env("CGO_LDFLAGS", &lib)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", tmp.path().join("gocache"))
        .env("GOPATH", tmp.path().join("gopath"))
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build of ffi/examples/go failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = tmp.path().join("store");
    let run = Command::new(&bin)
        .arg(&home)
        .output()
        .expect("run the Go example");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the Go example failed (exit {:?}):\n{stdout}\n{}",
        run.status.code(),
        String::from_utf8_lossy(&run.stderr)
    );
    for want in [
        "put ok",
        "get ok",
        "range ok",
        "s3 error InvalidArgument 400",
        "verdict: PASS",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(want)),
            "the Go example printed no `{want}` line:\n{stdout}"
        );
    }
}
