//! The C library these tests link: `target/<profile>/libssekit.a` and `libssekit.so`, built by
//! `cargo build -p ssekit-ffi` (scripts/test.sh does it before `cargo test`; the same command as
//! scripts/install-ffi.sh and the Python package's build, so the three share one build). `cargo test`
//! builds this crate's rlib for its test binaries but not those two files, so a copy older than a
//! source file of the library (ffi/, engine/, hsm/) is refused as stale rather than tested.

use std::path::{Path, PathBuf};
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
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("release");
        let flag = if profile == "debug" {
            String::new()
        } else {
            format!(" --profile {profile}")
        };
        let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let newest_source = ["ffi/src", "ffi/build.rs", "engine/src", "hsm/src", "Cargo.lock"]
            .iter()
            .filter_map(|d| newest(&root.join(d)))
            .max()
            .expect("the library's sources");
        for lib in ["libssekit.a", "libssekit.so"] {
            let path = dir.join(lib);
            match built(&path) {
                None => panic!(
                    "{} is missing: run `cargo build{flag} -p ssekit-ffi` first (scripts/test.sh does)",
                    path.display()
                ),
                Some(t) if t < newest_source => panic!(
                    "{} is older than the library's sources, so it may not hold the code under test: run \
                     `cargo build{flag} -p ssekit-ffi` first (scripts/test.sh does)",
                    path.display()
                ),
                Some(_) => {}
            }
        }
        dir
    })
}

/// The newest modification time of a file, or of the files under a directory.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest(&e.path()))
        .max()
}
