//! LocalKeyring: lifecycle as KMS defines it (with a test clock), each wrong-state use as a typed
//! error, context binding, rewrap, sealed records, permissions.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ssekit_engine::keys::{
    Clock, DataKey, EncryptionContext, KeyError, KeyProvider, KeySpec, KeyState, LocalKeyring,
};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

fn ring() -> (tempfile::TempDir, LocalKeyring, Arc<TestClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let r = LocalKeyring::open_with(dir.path().join("home"), None, clock.clone()).unwrap();
    (dir, r, clock)
}

fn ctx(k: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("bucket", "b"), ("key", k)]).unwrap()
}

fn spec(id: &str) -> KeySpec {
    KeySpec {
        id: Some(id.into()),
        description: "test".into(),
        rotation_period_days: None,
    }
}

#[test]
fn wrap_unwrap_bound_to_context_and_versions() {
    let (_d, r, _) = ring();
    r.create_key(&spec("k1")).unwrap();
    assert_eq!(
        r.create_key(&spec("k1")),
        Err(KeyError::AlreadyExists("k1".into()))
    );
    let (dek, w) = r.generate_data_key("k1", &ctx("a")).unwrap();
    assert_eq!((w.provider.as_str(), w.key_version), ("local", 1));
    assert_eq!(r.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    assert_eq!(r.unwrap(&w, &ctx("b")).unwrap_err(), KeyError::UnwrapFailed);
    assert_eq!(
        r.unwrap(&w, &EncryptionContext::new()).unwrap_err(),
        KeyError::UnwrapFailed
    );
    let mut t = w.clone();
    t.ciphertext[20] ^= 1;
    assert_eq!(r.unwrap(&t, &ctx("a")).unwrap_err(), KeyError::UnwrapFailed);
    let mut t = w.clone();
    t.key_version = 2;
    assert!(matches!(
        r.unwrap(&t, &ctx("a")).unwrap_err(),
        KeyError::WrongProvider(_)
    ));
    let mut t = w.clone();
    t.provider = "kms".into();
    assert!(matches!(
        r.unwrap(&t, &ctx("a")).unwrap_err(),
        KeyError::WrongProvider(_)
    ));
    // Rotation: new wraps use v2, v1 still unwraps, rewrap moves it.
    assert_eq!(r.rotate("k1").unwrap().current_version, 2);
    let w2 = r.wrap("k1", &dek, &ctx("a")).unwrap();
    assert_eq!(w2.key_version, 2);
    assert_eq!(r.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    let moved = r.rewrap(&w, &ctx("a")).unwrap().unwrap();
    assert_eq!(moved.key_version, 2);
    assert_eq!(r.unwrap(&moved, &ctx("a")).unwrap().expose(), dek.expose());
    assert_eq!(r.rewrap(&moved, &ctx("a")).unwrap(), None);
    assert_eq!(r.rewrap(&w, &ctx("z")).unwrap_err(), KeyError::UnwrapFailed);
    // Debug never shows key material.
    assert_eq!(format!("{dek:?}"), "DataKey(..)");
    assert!(!format!("{w:?}").contains("ciphertext:"));
}

#[test]
fn lifecycle_and_wrong_state_errors() {
    let (_d, r, clock) = ring();
    r.create_key(&spec("k")).unwrap();
    let (_, w) = r.generate_data_key("k", &ctx("a")).unwrap();
    let dek = DataKey::generate();
    r.disable("k").unwrap();
    assert_eq!(r.describe("k").unwrap().state, KeyState::Disabled);
    assert_eq!(
        r.wrap("k", &dek, &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    assert_eq!(
        r.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    assert_eq!(r.rotate("k").unwrap_err(), KeyError::Disabled("k".into()));
    r.enable("k").unwrap();
    r.unwrap(&w, &ctx("a")).unwrap();
    for bad in [0, 6, 31, 365] {
        assert_eq!(
            r.schedule_deletion("k", bad).unwrap_err(),
            KeyError::InvalidDeletionWindow(bad)
        );
    }
    assert!(matches!(
        r.cancel_deletion("k").unwrap_err(),
        KeyError::InvalidState { .. }
    ));
    let info = r.schedule_deletion("k", 7).unwrap();
    let at = T0 + 7 * DAY;
    assert_eq!(info.state, KeyState::PendingDeletion { delete_at: at });
    let pending = KeyError::PendingDeletion {
        id: "k".into(),
        delete_at: at,
    };
    assert_eq!(r.unwrap(&w, &ctx("a")).unwrap_err(), pending);
    assert_eq!(r.wrap("k", &dek, &ctx("a")).unwrap_err(), pending);
    assert!(matches!(
        r.enable("k").unwrap_err(),
        KeyError::InvalidState { .. }
    ));
    assert!(matches!(
        r.disable("k").unwrap_err(),
        KeyError::InvalidState { .. }
    ));
    assert!(matches!(
        r.schedule_deletion("k", 10).unwrap_err(),
        KeyError::InvalidState { .. }
    ));
    // Cancel: back as Disabled, as in KMS.
    assert_eq!(r.cancel_deletion("k").unwrap().state, KeyState::Disabled);
    r.enable("k").unwrap();
    r.unwrap(&w, &ctx("a")).unwrap();
    // Schedule again and let the window pass: destroyed, loudly, forever.
    r.schedule_deletion("k", 30).unwrap();
    clock.0.store(T0 + 30 * DAY - 1, Ordering::SeqCst);
    assert!(matches!(
        r.describe("k").unwrap().state,
        KeyState::PendingDeletion { .. }
    ));
    clock.0.store(T0 + 30 * DAY, Ordering::SeqCst);
    assert_eq!(r.describe("k").unwrap().state, KeyState::Destroyed);
    assert_eq!(
        r.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::Destroyed("k".into())
    );
    assert_eq!(r.enable("k").unwrap_err(), KeyError::Destroyed("k".into()));
    assert_eq!(
        r.cancel_deletion("k").unwrap_err(),
        KeyError::Destroyed("k".into())
    );
    assert!(
        r.unwrap(&w, &ctx("a"))
            .unwrap_err()
            .to_string()
            .contains("cannot be opened")
    );
    assert_eq!(
        r.describe("nope").unwrap_err(),
        KeyError::NotFound("nope".into())
    );
    assert!(matches!(
        r.describe("../etc").unwrap_err(),
        KeyError::Malformed(_)
    ));
}

#[test]
fn scheduled_rotation() {
    let (_d, r, clock) = ring();
    r.create_key(&KeySpec {
        id: Some("r".into()),
        description: String::new(),
        rotation_period_days: Some(30),
    })
    .unwrap();
    let (dek, w1) = r.generate_data_key("r", &ctx("a")).unwrap();
    clock.0.store(T0 + 30 * DAY - 1, Ordering::SeqCst);
    assert_eq!(r.describe("r").unwrap().current_version, 1);
    clock.0.store(T0 + 30 * DAY, Ordering::SeqCst);
    let w2 = r.wrap("r", &dek, &ctx("a")).unwrap();
    assert_eq!(w2.key_version, 2);
    assert_eq!(r.describe("r").unwrap().rotated, T0 + 30 * DAY);
    assert_eq!(r.unwrap(&w1, &ctx("a")).unwrap().expose(), dek.expose());
    clock.0.store(T0 + 61 * DAY, Ordering::SeqCst);
    assert_eq!(r.describe("r").unwrap().current_version, 3);
}

#[test]
fn persistence_sealed_records_and_permissions() {
    let (d, r, clock) = ring();
    r.create_key(&spec("p")).unwrap();
    let (dek, w) = r.generate_data_key("p", &ctx("a")).unwrap();
    r.create_key(&KeySpec::default()).unwrap();
    assert_eq!(r.list().unwrap().len(), 2);
    drop(r);
    let home = d.path().join("home");
    let r = LocalKeyring::open_with(&home, None, clock.clone()).unwrap();
    assert_eq!(r.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    // A record edited on disk, or another key's record swapped in, does not load.
    let file = home.join("keys/p.key");
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    assert!(matches!(r.describe("p").unwrap_err(), KeyError::Corrupt(_)));
    let other = r.list().unwrap_err();
    assert!(matches!(other, KeyError::Corrupt(_)));
    std::fs::write(&file, &good).unwrap();
    r.describe("p").unwrap();
    // Another keyring's root secret cannot read these records.
    let other_root = d.path().join("other.key");
    std::fs::write(&other_root, [9u8; 32]).unwrap();
    std::fs::set_permissions(&other_root, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r2 = LocalKeyring::open_with(&home, Some(&other_root), clock.clone()).unwrap();
    assert!(matches!(
        r2.describe("p").unwrap_err(),
        KeyError::Corrupt(_)
    ));
    // Files readable by others are refused, with what to do.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = r.describe("p").unwrap_err();
    assert!(
        matches!(e, KeyError::InsecurePermissions(_)) && e.to_string().contains("chmod"),
        "{e}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        home.join("root.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    assert!(matches!(
        LocalKeyring::open_with(&home, None, clock.clone()).unwrap_err(),
        KeyError::InsecurePermissions(_)
    ));
    std::fs::set_permissions(
        home.join("root.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(&other_root, [9u8; 31]).unwrap();
    assert!(matches!(
        LocalKeyring::open_with(&home, Some(&other_root), clock.clone()).unwrap_err(),
        KeyError::Corrupt(_)
    ));
    let missing = d.path().join("missing.key");
    assert!(matches!(
        LocalKeyring::open_with(&home, Some(&missing), clock).unwrap_err(),
        KeyError::Io(_)
    ));
    // Created with private modes.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("keys")), 0o700);
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn many_threads_share_one_keyring() {
    let (_d, r, _) = ring();
    r.create_key(&spec("t")).unwrap();
    std::thread::scope(|s| {
        for i in 0..8 {
            let r = &r;
            s.spawn(move || {
                for j in 0..20 {
                    let c = ctx(&format!("{i}/{j}"));
                    let (dek, w) = r.generate_data_key("t", &c).unwrap();
                    if j % 7 == 0 {
                        r.rotate("t").unwrap();
                    }
                    assert_eq!(r.unwrap(&w, &c).unwrap().expose(), dek.expose());
                }
            });
        }
    });
    assert_eq!(r.describe("t").unwrap().current_version, 1 + 8 * 3);
}

#[test]
fn changes_made_elsewhere_are_seen_at_once() {
    // Two keyrings on one directory, as two processes would have: each caches what it reads,
    // and must still see every change the other makes (in any use starting 1 ms or more after
    // it), and changes time alone makes.
    let settle = || std::thread::sleep(std::time::Duration::from_millis(2));
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let home = dir.path().join("home");
    let a = LocalKeyring::open_with(&home, None, clock.clone()).unwrap();
    let b = LocalKeyring::open_with(&home, None, clock.clone()).unwrap();
    a.create_key(&KeySpec {
        id: Some("k".into()),
        description: String::new(),
        rotation_period_days: Some(30),
    })
    .unwrap();
    let (dek, w) = a.generate_data_key("k", &ctx("a")).unwrap();
    a.unwrap(&w, &ctx("a")).unwrap();
    b.disable("k").unwrap();
    settle();
    assert_eq!(
        a.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    assert_eq!(
        a.generate_data_key("k", &ctx("a")).unwrap_err(),
        KeyError::Disabled("k".into())
    );
    b.enable("k").unwrap();
    settle();
    assert_eq!(a.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
    b.rotate("k").unwrap();
    settle();
    assert_eq!(
        a.generate_data_key("k", &ctx("a")).unwrap().1.key_version,
        2
    );
    // The scheduled rotation falls due with no write at all: the next wrap still sees it.
    clock.0.fetch_add(31 * DAY, Ordering::SeqCst);
    assert_eq!(
        a.generate_data_key("k", &ctx("a")).unwrap().1.key_version,
        3
    );
    b.schedule_deletion("k", 7).unwrap();
    settle();
    assert!(matches!(
        a.unwrap(&w, &ctx("a")).unwrap_err(),
        KeyError::PendingDeletion { .. }
    ));
}

#[test]
fn a_record_put_back_from_before_a_disable_is_refused() {
    // Issue 12 item 4: the record's AAD bound only the key id, so the record file saved before a
    // disable, copied back, revived the key.
    let (d, r, clock) = ring();
    r.create_key(&spec("k")).unwrap();
    let (dek, w) = r.generate_data_key("k", &ctx("a")).unwrap();
    let home = d.path().join("home");
    let file = home.join("keys/k.key");
    let saved = std::fs::read(&file).unwrap();
    r.disable("k").unwrap();
    let current = std::fs::read(&file).unwrap();
    std::fs::write(&file, &saved).unwrap();
    drop(r);
    let r = LocalKeyring::open_with(&home, None, clock).unwrap();
    let rolled_back = |e: KeyError| matches!(e, KeyError::RolledBack { ref id, .. } if id == "k");
    match r.describe("k") {
        Ok(info) => panic!("the old record was accepted: the key is {}", info.state),
        Err(e) => assert!(rolled_back(e.clone()), "{e}"),
    }
    let e = r.unwrap(&w, &ctx("a")).unwrap_err();
    assert!(
        e.to_string().contains("key `k`") && e.to_string().contains("older copy"),
        "{e}"
    );
    assert!(rolled_back(e));
    assert!(rolled_back(
        r.generate_data_key("k", &ctx("a")).unwrap_err()
    ));
    assert!(rolled_back(r.enable("k").unwrap_err()));
    assert!(rolled_back(r.list().unwrap_err()));
    assert!(rolled_back(r.create_key(&spec("k")).unwrap_err()));
    // Nothing was written over the evidence; with the current record back, the key is as it was.
    assert_eq!(std::fs::read(&file).unwrap(), saved);
    std::fs::write(&file, &current).unwrap();
    assert_eq!(r.describe("k").unwrap().state, KeyState::Disabled);
    r.enable("k").unwrap();
    assert_eq!(r.unwrap(&w, &ctx("a")).unwrap().expose(), dek.expose());
}

#[test]
fn records_deleted_or_added_behind_the_keyrings_back_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let root = dir.path().join("root.key");
    std::fs::write(&root, [7u8; 32]).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Two homes under one root secret: each other's records open, but neither's index lists them.
    let (home, other) = (dir.path().join("home"), dir.path().join("other"));
    let r = LocalKeyring::open_with(&home, Some(&root), clock.clone()).unwrap();
    let o = LocalKeyring::open_with(&other, Some(&root), clock.clone()).unwrap();
    r.create_key(&spec("kept")).unwrap();
    r.create_key(&spec("gone")).unwrap();
    o.create_key(&spec("stranger")).unwrap();
    let rolled_back =
        |e: KeyError, key: &str| matches!(e, KeyError::RolledBack { ref id, .. } if id == key);
    // Deleted: not "not found" (which would let a new key of that name be made in its place).
    std::fs::remove_file(home.join("keys/gone.key")).unwrap();
    let e = r.describe("gone").unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(rolled_back(e, "gone"));
    assert!(rolled_back(
        r.create_key(&spec("gone")).unwrap_err(),
        "gone"
    ));
    assert!(rolled_back(r.list().unwrap_err(), "gone"));
    // Added.
    std::fs::copy(
        other.join("keys/stranger.key"),
        home.join("keys/stranger.key"),
    )
    .unwrap();
    let e = r.describe("stranger").unwrap_err();
    assert!(e.to_string().contains("not in the keyring's index"), "{e}");
    assert!(rolled_back(e, "stranger"));
    r.describe("kept").unwrap();
    // The index itself deleted: every key refuses, not one silently accepted.
    std::fs::remove_file(home.join("keys.index")).unwrap();
    let e = r.describe("kept").unwrap_err();
    assert!(
        matches!(e, KeyError::Corrupt(_)) && e.to_string().contains("keys.index"),
        "{e}"
    );
    // The index is private like the records.
    let mode = std::fs::metadata(other.join("keys.index"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn two_processes_update_the_index_without_losing_a_write() {
    // Two keyrings on one directory, as two CLI processes: each writes its own keys while the
    // other writes its own, all through the one index. A lost index update would show as a
    // record newer than its index entry.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let home = dir.path().join("home");
    std::thread::scope(|s| {
        for p in 0..2 {
            let (home, clock) = (&home, clock.clone());
            s.spawn(move || {
                let r = LocalKeyring::open_with(home, None, clock).unwrap();
                for k in 0..3 {
                    let id = format!("p{p}-{k}");
                    r.create_key(&spec(&id)).unwrap();
                    for _ in 0..4 {
                        r.rotate(&id).unwrap();
                    }
                    r.disable(&id).unwrap();
                }
            });
        }
    });
    let r = LocalKeyring::open_with(&home, None, clock).unwrap();
    let keys = r.list().unwrap();
    assert_eq!(keys.len(), 6);
    for k in keys {
        assert_eq!(
            (k.current_version, k.state),
            (5, KeyState::Disabled),
            "{}",
            k.id
        );
    }
}
