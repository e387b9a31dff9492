//! The `ssekit` binary: `bench` on every backend, forced through `SSEKIT_BACKEND` and `--backend`, and
//! its errors (one line, what to do, non-zero exit).

use std::process::{Command, Output};

use ssekit::aead::Backend;

fn ssekit(args: &[&str], backend_env: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    let home = std::env::temp_dir().join(format!("ssekit-cli-test-{}", std::process::id()));
    cmd.args(args)
        .env_remove("SSEKIT_BACKEND")
        .env("SSEKIT_HOME", home);
    if let Some(b) = backend_env {
        cmd.env("SSEKIT_BACKEND", b);
    }
    cmd.output().expect("run ssekit")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8")
}

const QUICK: &[&str] = &[
    "bench",
    "--size",
    "256K",
    "--seconds",
    "0",
    "--threads",
    "2",
];

/// Checks the report's shape and that every rate is a positive number.
fn check_report(out: &Output, backend: Backend) {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let avail: Vec<_> = Backend::available().iter().map(|b| b.name()).collect();
    assert_eq!(
        lines[0],
        format!(
            "backend: {} (this CPU has: {})",
            backend.name(),
            avail.join(", ")
        )
    );
    assert_eq!(
        lines[1],
        "buffer: 262144 bytes, AES-256-GCM, 96-bit nonce, 16-byte tag"
    );
    assert!(lines[2].starts_with("one core "), "{stdout}");
    assert!(lines[3].starts_with("2 threads (par_*) "), "{stdout}");
    assert!(lines[4].starts_with("object (all threads) "), "{stdout}");
    assert!(
        lines[4].contains("(object format, key `default` v1 in "),
        "{stdout}"
    );
    for line in &lines[2..] {
        let words: Vec<&str> = line.split_whitespace().collect();
        for op in ["seal", "open"] {
            let at = words.iter().position(|w| *w == op).expect(op);
            let rate: f64 = words[at + 1].parse().expect("a rate");
            assert!(rate > 0.0 && words[at + 2] == "GB/s", "{line}");
        }
    }
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn bench_uses_the_detected_backend() {
    check_report(&ssekit(QUICK, None), Backend::detect());
}

#[test]
fn bench_on_each_backend_forced_by_env_and_flag() {
    for b in Backend::available() {
        check_report(&ssekit(QUICK, Some(b.name())), b);
        let mut args = QUICK.to_vec();
        args.extend(["--backend", b.name()]);
        check_report(&ssekit(&args, None), b);
    }
}

fn check_error(out: &Output, code: i32, expected: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}",
        text(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains(expected), "stderr: {err}");
}

#[test]
fn bench_errors() {
    let avail: Vec<_> = Backend::available().iter().map(|b| b.name()).collect();
    let out = ssekit(QUICK, Some("aes-ni"));
    check_error(
        &out,
        1,
        "SSEKIT_BACKEND must be one of portable, aesni, vaes-avx2, vaes-avx512",
    );
    assert_eq!(text(&out.stderr).lines().count(), 1);

    let mut args = QUICK.to_vec();
    args.extend(["--backend", "bogus"]);
    let out = ssekit(&args, None);
    check_error(
        &out,
        1,
        &format!(
            "ssekit: unknown backend `bogus`; choose one of: {}\n",
            avail.join(", ")
        ),
    );

    for b in [Backend::VaesAvx2, Backend::VaesAvx512] {
        if !b.is_available() {
            let out = ssekit(QUICK, Some(b.name()));
            check_error(
                &out,
                1,
                &format!("this CPU cannot run the AES-GCM backend `{}`", b.name()),
            );
        }
    }

    let out = ssekit(&["bench", "--size", "12Q"], None);
    check_error(&out, 2, "`12Q` is not a size like 4096, 64K, 16M or 1G");
}
