//! The home check against a home in use: other processes' atomic writes create and rename
//! temporary files while it walks the tree, and an entry gone between listing and examining it is
//! not a reason to refuse the home.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};

use ssekit_engine::keys::home::check_home;

#[test]
fn files_coming_and_going_during_the_check_do_not_refuse_the_home() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(home.join("keys")).unwrap();
    std::fs::set_permissions(home.join("keys"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // What a writer does: a private temporary file beside the target, renamed over it.
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for dir in [home.clone(), home.join("keys")] {
                    let tmp = dir.join(format!(".index.tmp.{i}"));
                    std::fs::write(&tmp, b"x").unwrap();
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
                    std::fs::rename(&tmp, dir.join("index")).unwrap();
                }
                i += 1;
            }
        });
        for _ in 0..3000 {
            assert_eq!(check_home(&home), Ok(true));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // A home that is not there at all is still told apart.
    assert_eq!(check_home(&d.path().join("absent")), Ok(false));
}
