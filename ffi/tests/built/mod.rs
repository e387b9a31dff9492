//! The C library these tests link, freshly built: `cargo test` builds this crate's rlib for its test
//! binaries but not necessarily its `libssekit.so` and `libssekit.a`, which could then be a stale
//! build (or missing on a fresh clone). `profile_dir` runs `cargo build -p ssekit-ffi` in the test's
//! own profile once per test process and returns `target/<profile>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn profile_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps/")
            .to_path_buf();
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("target/<profile>/")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "ssekit-ffi"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p ssekit-ffi failed");
        for lib in ["libssekit.a", "libssekit.so"] {
            assert!(
                dir.join(lib).is_file(),
                "{} is missing after the build",
                dir.join(lib).display()
            );
        }
        dir
    })
}
