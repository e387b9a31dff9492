//! `ssekit put/get/inspect` with the S3 flags: every mode round-trips (single-part and multipart,
//! whole and ranged), and S3's errors come out as S3 gives them, code and status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ssekit"))
            .args(args)
            .current_dir(self.dir.path())
            .env("SSEKIT_HOME", self.path("home"))
            .env_remove("SSEKIT_PROVIDER")
            .env_remove("SSEKIT_BACKEND")
            .output()
            .expect("run ssekit")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one stderr line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    }
}

fn write(path: &Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

const MODES: [&[&str]; 5] = [
    &["--sse", "AES256"],
    &["--sse", "aws:kms", "--kms-key-id", "k1"],
    &["--sse", "aws:kms", "--kms-key-id", "k1", "--bucket-key"],
    &["--sse", "aws:kms:dsse"],
    &["--sse-c-key-file", "ck"],
];

#[test]
fn every_mode_round_trips_through_the_cli() {
    let h = Home::new();
    h.ok(&["key", "create", "--id", "k1"]);
    let plain = data(200_000);
    write(&h.path("in"), &plain);
    write(&h.path("ck"), &[9u8; 32]);
    for mode in MODES {
        let ssec = mode[0] == "--sse-c-key-file";
        for parts in [None, Some("64K")] {
            let mut args = vec![
                "put", "in", "obj", "--bucket", "photos", "--object", "a/b.jpg",
            ];
            args.extend_from_slice(mode);
            if let Some(p) = parts {
                args.extend_from_slice(&["--part-size", p]);
            }
            h.ok(&args);
            let mut get = vec!["get", "obj", "out"];
            if ssec {
                get.extend_from_slice(&["--sse-c-key-file", "ck"]);
            }
            h.ok(&get);
            assert_eq!(
                std::fs::read(h.path("out")).unwrap(),
                plain,
                "{mode:?} {parts:?}"
            );
            let mut ranged = get.clone();
            ranged.extend_from_slice(&["--range", "70000-70009"]);
            h.ok(&ranged);
            assert_eq!(
                std::fs::read(h.path("out")).unwrap(),
                &plain[70_000..70_010]
            );
            let mut inspect = vec!["inspect", "obj", "--bucket", "photos"];
            if ssec {
                inspect.extend_from_slice(&["--sse-c-key-file", "ck"]);
            }
            let shown = h.ok(&inspect);
            let expected_mode = match mode[1] {
                "AES256" => "x-amz-server-side-encryption: AES256",
                "aws:kms" => "x-amz-server-side-encryption: aws:kms",
                "aws:kms:dsse" => "x-amz-server-side-encryption: aws:kms:dsse",
                _ => "x-amz-server-side-encryption-customer-algorithm: AES256",
            };
            assert!(
                shown.contains(&format!("header:   {expected_mode}\n")),
                "{shown}"
            );
            assert!(
                shown.contains("context:  aws:s3:arn=arn:aws:s3:::photos/a/b.jpg"),
                "{shown}"
            );
            if mode.contains(&"--bucket-key") {
                assert!(shown.contains("x-amz-server-side-encryption-bucket-key-enabled: true"));
            }
            if mode.contains(&"k1") {
                assert!(
                    shown.contains("aws-kms-key-id: arn:aws:kms:us-east-1:000000000000:key/k1")
                );
            }
        }
    }
}

#[test]
fn s3_errors_come_out_with_their_codes() {
    let h = Home::new();
    write(&h.path("in"), b"secret body");
    write(&h.path("ck"), &[1u8; 32]);
    // The key file as base64 works as well as raw bytes.
    write(
        &h.path("ck64"),
        b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    );
    write(&h.path("other"), &[2u8; 32]);
    write(&h.path("short"), &[3u8; 16]);
    h.ok(&["put", "in", "c.obj", "--sse-c-key-file", "ck"]);
    h.ok(&["get", "c.obj", "out", "--sse-c-key-file", "ck64"]);
    assert_eq!(std::fs::read(h.path("out")).unwrap(), b"secret body");
    let cases: &[(&[&str], &str)] = &[
        (&["get", "c.obj", "x"], "InvalidRequest (400)"),
        (
            &["get", "c.obj", "x", "--sse-c-key-file", "other"],
            "AccessDenied (403)",
        ),
        (
            &["inspect", "c.obj", "--sse-c-key-file", "other"],
            "AccessDenied (403)",
        ),
        (
            &[
                "get",
                "c.obj",
                "x",
                "--sse-c-key-file",
                "ck",
                "--sse",
                "AES256",
            ],
            "InvalidArgument (400)",
        ),
        (
            &["put", "in", "o", "--sse-c-key-file", "short"],
            "must hold 32 raw bytes",
        ),
        (
            &["put", "in", "o", "--sse", "AES192"],
            "InvalidArgument (400)",
        ),
        (
            &["put", "in", "o", "--sse", "aes:kms"],
            "InvalidArgument (400)",
        ),
        (
            &["put", "in", "o", "--sse", "AES256", "--kms-key-id", "k"],
            "InvalidArgument (400)",
        ),
        (
            &["put", "in", "o", "--kms-key-id", "k"],
            "InvalidArgument (400)",
        ),
        (
            &[
                "put",
                "in",
                "o",
                "--sse",
                "AES256",
                "--sse-c-key-file",
                "ck",
            ],
            "InvalidArgument (400)",
        ),
        (
            &["put", "in", "o", "--sse", "aws:kms:dsse", "--bucket-key"],
            "InvalidArgument (400)",
        ),
        (
            &[
                "put",
                "in",
                "o",
                "--sse",
                "aws:kms",
                "--kms-key-id",
                "nosuch",
            ],
            "KMS.NotFoundException (400)",
        ),
        (
            &["put", "in", "o", "--sse", "aws:kms", "--key-id", "k"],
            "--key-id names the raw envelope's key",
        ),
    ];
    for (args, want) in cases {
        let err = h.fails(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Keys in the wrong state.
    h.ok(&["key", "create", "--id", "off"]);
    h.ok(&["key", "disable", "off"]);
    let err = h.fails(&["put", "in", "o", "--sse", "aws:kms", "--kms-key-id", "off"]);
    assert!(err.contains("KMS.DisabledException (400)"), "{err}");
    h.ok(&["key", "create", "--id", "doomed"]);
    h.ok(&[
        "put",
        "in",
        "d.obj",
        "--sse",
        "aws:kms",
        "--kms-key-id",
        "doomed",
    ]);
    h.ok(&["key", "schedule-deletion", "doomed", "--days", "7"]);
    let err = h.fails(&["get", "d.obj", "x"]);
    assert!(err.contains("KMS.KMSInvalidStateException (400)"), "{err}");
    // An object opened under another name does not open: its keys are bound to its name.
    h.ok(&[
        "put", "in", "n.obj", "--sse", "AES256", "--bucket", "b", "--object", "k",
    ]);
    h.ok(&["get", "n.obj", "x"]);
    let err = h.fails(&["get", "n.obj", "x", "--object", "other"]);
    assert!(err.contains("InternalError (500)"), "{err}");
    assert!(!h.path("x.part").exists());
    // Key files: the user's alone, regular, short.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(h.path("ck"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = h.fails(&["get", "c.obj", "x", "--sse-c-key-file", "ck"]);
    assert!(err.contains("chmod 600"), "{err}");
    let err = h.fails(&["get", "c.obj", "x", "--sse-c-key-file", "/dev/zero"]);
    assert!(err.contains("not a regular file"), "{err}");
    write(&h.path("long"), &[7u8; 4096]);
    let err = h.fails(&["get", "c.obj", "x", "--sse-c-key-file", "long"]);
    assert!(err.contains("32 raw bytes"), "{err}");
}

/// The CLI's S3 path records its key uses in the home's audit log, naming each object, bucket-key
/// and SSE-C uses included, and the log verifies.
#[test]
fn the_cli_audit_log_names_every_object() {
    let h = Home::new();
    write(&h.path("in"), b"body");
    write(&h.path("ck"), &[5u8; 32]);
    h.ok(&[
        "put",
        "in",
        "a",
        "--sse",
        "aws:kms",
        "--bucket-key",
        "--bucket",
        "pics",
        "--object",
        "cat.jpg",
    ]);
    h.ok(&["get", "a", "out"]);
    h.ok(&[
        "put",
        "in",
        "c",
        "--sse-c-key-file",
        "ck",
        "--bucket",
        "pics",
        "--object",
        "dog.jpg",
    ]);
    h.ok(&["get", "c", "out", "--sse-c-key-file", "ck"]);
    let log = std::fs::read_to_string(h.path("home/audit.log")).unwrap();
    let ops: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["op"].as_str().unwrap().to_owned(),
                v["context"]["aws:s3:arn"].as_str().unwrap_or("").to_owned(),
            )
        })
        .filter(|(op, _)| op != "create")
        .collect();
    let want = [
        ("generate", "arn:aws:s3:::pics"),
        ("bucket_key_wrap", "arn:aws:s3:::pics/cat.jpg"),
        ("unwrap", "arn:aws:s3:::pics"),
        ("bucket_key_unwrap", "arn:aws:s3:::pics/cat.jpg"),
        ("sse_c_wrap", "arn:aws:s3:::pics/dog.jpg"),
        ("sse_c_unwrap", "arn:aws:s3:::pics/dog.jpg"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(ops, want, "{log}");
    let out = h.ok(&["audit", "verify", "home/audit.log"]);
    assert!(out.starts_with("ok: "), "{out}");
}

const SEED_POLICY: &str = include_str!("../engine/tests/data/seed_policy.json");

#[test]
fn policy_check_prints_the_decision_and_the_statement() {
    let h = Home::new();
    write(&h.path("seed.json"), SEED_POLICY.as_bytes());
    let base = [
        "policy",
        "check",
        "seed.json",
        "--action",
        "s3:PutObject",
        "--resource",
        "arn:aws:s3:::my-secure-bucket/doc",
    ];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        let out = h.run(&a);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(
        run(&[]),
        (Some(1), "Deny: statement 0 `DenyUnencryptedPut`\n".into())
    );
    assert_eq!(
        run(&["--header", "x-amz-server-side-encryption:AES192"]),
        (Some(1), "Deny: statement 0 `DenyUnencryptedPut`\n".into())
    );
    assert_eq!(
        run(&["--header", "x-amz-server-side-encryption: AES256"]),
        (
            Some(0),
            "Allow: no statement applies (the default, --default allow)\n".into()
        )
    );
    assert_eq!(
        run(&[
            "--header",
            "x-amz-server-side-encryption:AES256",
            "--default",
            "deny"
        ])
        .0,
        Some(1)
    );
    let allow = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},
        {"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"s3:Get*","Resource":"arn:aws:s3:::b/*"}]}"#;
    write(&h.path("p.json"), allow.as_bytes());
    let check = |args: &[&str]| {
        let mut a = vec![
            "policy",
            "check",
            "p.json",
            "--action",
            "s3:GetObject",
            "--resource",
            "arn:aws:s3:::b/k",
        ];
        a.extend_from_slice(args);
        let out = h.run(&a);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(
        check(&[
            "--principal",
            "arn:aws:iam::111122223333:user/alice",
            "--secure",
            "--default",
            "deny"
        ]),
        (Some(0), "Allow: statement 1 `Alice`\n".into())
    );
    assert_eq!(
        check(&["--principal", "arn:aws:iam::111122223333:user/alice"]),
        (Some(1), "Deny: statement 0 `TlsOnly`\n".into())
    );
    write(&h.path("bad.json"), br#"{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*","Principal":"*","Condition":{"ForAnyValue:StringLike":{"a":"b"}}}]}"#);
    let out = h.run(&[
        "policy",
        "check",
        "bad.json",
        "--action",
        "s3:GetObject",
        "--resource",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MalformedPolicy"));
}
