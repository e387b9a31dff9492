//! The C test suite of the ABI: every `ffi/tests/t_*.c` program is compiled with the system `cc`
//! against the library cargo just built, run, run again under valgrind's memcheck (no errors, no
//! leaks) and compiled and run once more under AddressSanitizer with LeakSanitizer.
//!
//! The programs exit 0 when every check held and print `FAIL file:line: ...` otherwise. Under
//! valgrind they get `SSEKIT_TEST_SMALL=1` and keep their data small (memcheck is ~50x slower).
//! Valgrind must be installed (scripts/test.sh installs it); `ffi/tests/valgrind.supp` holds the
//! suppressions, each with the reason it is not a leak.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

mod built;

/// `target/<profile>/` with `libssekit.a` and `libssekit.so` freshly built.
fn lib_dir() -> PathBuf {
    built::profile_dir().to_path_buf()
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[derive(Clone, Copy)]
enum Link {
    /// `libssekit.so`, found through an rpath.
    Shared,
    /// `libssekit.a` with AddressSanitizer.
    StaticAsan,
}

/// Compiles `ffi/tests/<name>.c` into `dir`, returning the executable.
fn compile(name: &str, dir: &Path, link: Link) -> PathBuf {
    let crate_dir = crate_dir();
    let lib = lib_dir();
    let src = crate_dir.join("tests").join(format!("{name}.c"));
    let exe = dir.join(match link {
        Link::Shared => name.to_string(),
        Link::StaticAsan => format!("{name}-asan"),
    });
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-O1",
    ])
    .arg("-I")
    .arg(crate_dir.join("include"))
    .arg("-I")
    .arg(crate_dir.join("tests"));
    match link {
        Link::Shared => {
            // The library's SONAME is versioned (ffi/build.rs: libssekit.so.MAJOR) and cargo makes
            // only libssekit.so: the executable finds it through a link of that name in `dir`.
            let soname = format!("libssekit.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
            let link = dir.join(&soname);
            if !link.exists() {
                std::os::unix::fs::symlink(lib.join("libssekit.so"), &link)
                    .unwrap_or_else(|e| panic!("link {}: {e}", link.display()));
            }
            cc.arg(&src)
                .arg("-o")
                .arg(&exe)
                .arg(lib.join("libssekit.so"))
                .arg(format!("-Wl,-rpath,{}", dir.display()));
        }
        Link::StaticAsan => {
            cc.args(["-fsanitize=address", "-fno-omit-frame-pointer"])
                .arg(&src)
                .arg("-o")
                .arg(&exe)
                .arg(lib.join("libssekit.a"));
        }
    }
    cc.args(["-lpthread", "-ldl", "-lm"]);
    let out = cc
        .output()
        .unwrap_or_else(|e| panic!("cannot run `cc` to compile {name}.c: {e}"));
    assert!(
        out.status.success(),
        "{}",
        show(&format!("compiling {name}.c ({cc:?})"), &out)
    );
    exe
}

/// Runs `cmd`; returns a description of the failure when it did not exit 0.
fn run(name: &str, what: &str, cmd: &mut Command) -> (Output, Option<String>) {
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{name} ({what}): cannot start {cmd:?}: {e}"));
    eprintln!("{name} ({what}): {:.1} s", start.elapsed().as_secs_f64());
    let failure = (!out.status.success()).then(|| show(&format!("{name} ({what}) failed"), &out));
    (out, failure)
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Compiles and runs program `name` plainly, under valgrind and under ASan. Every stage runs even
/// when an earlier one failed (a wrong result must not hide a memory error); the test fails with
/// all of their reports.
fn check_program(name: &str) {
    let mut failures = Vec::new();
    let dir = tempfile::tempdir().expect("a temp dir for the executables");
    let exe = compile(name, dir.path(), Link::Shared);
    failures.extend(run(name, "plain", &mut Command::new(&exe)).1);

    assert!(
        valgrind_available(),
        "valgrind is not installed: the C suite runs every program under memcheck. \
         Run scripts/test.sh (it installs valgrind) or `apt-get install valgrind`."
    );
    let log = dir.path().join(format!("{name}.valgrind.log"));
    let supp = crate_dir().join("tests").join("valgrind.supp");
    let mut vg = Command::new("valgrind");
    vg.args([
        "--tool=memcheck",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--show-leak-kinds=definite,indirect,possible",
        "--track-origins=yes",
        "--num-callers=40",
    ])
    .arg(format!("--suppressions={}", supp.display()))
    .arg(format!("--log-file={}", log.display()))
    .arg(&exe)
    .env("SSEKIT_TEST_SMALL", "1");
    let (out, failed) = run(name, "valgrind", &mut vg);
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let clean = report.contains("ERROR SUMMARY: 0 errors from 0 contexts")
        && (report.contains("All heap blocks were freed")
            || (report.contains("definitely lost: 0 bytes")
                && report.contains("indirectly lost: 0 bytes")
                && report.contains("possibly lost: 0 bytes")));
    if failed.is_some() || !clean {
        failures.push(format!(
            "{}\n--- valgrind ({}) ---\n{report}",
            show(&format!("{name} under valgrind"), &out),
            if clean {
                "no memory errors or leaks"
            } else {
                "MEMORY ERRORS OR LEAKS"
            }
        ));
    }

    let asan = compile(name, dir.path(), Link::StaticAsan);
    let mut cmd = Command::new(&asan);
    cmd.env(
        "ASAN_OPTIONS",
        "detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1",
    );
    failures.extend(run(name, "asan", &mut cmd).1);

    assert!(
        failures.is_empty(),
        "{name}: {} stage(s) failed\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn t_roundtrip() {
    check_program("t_roundtrip");
}

#[test]
fn t_stream() {
    check_program("t_stream");
}

#[test]
fn t_ranges() {
    check_program("t_ranges");
}

#[test]
fn t_multipart() {
    check_program("t_multipart");
}

#[test]
fn t_s3_errors() {
    check_program("t_s3_errors");
}

#[test]
fn t_error_paths() {
    check_program("t_error_paths");
}

#[test]
fn t_threads() {
    check_program("t_threads");
}

#[test]
fn t_providers() {
    check_program("t_providers");
}
