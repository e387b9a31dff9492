//! `Pkcs11Provider` against a real PKCS#11 module: the token `SSEKIT_PKCS11_MODULE`,
//! `SSEKIT_PKCS11_TOKEN_LABEL` and `SSEKIT_PKCS11_PIN` name (scripts/test.sh creates a SoftHSM2 token
//! in a temporary directory and sets them; point them at a real HSM to run the same suite there).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use ssekit_engine::keys::{Clock, KeyError, KeyProvider, KeySpec, KeyState};
mod common;

use common::{config, ctx, token, unique};
use ssekit_hsm::{Binding, Pkcs11Provider};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn lifecycle_on_both_bindings() {
    for binding in [Binding::HsmGcm, Binding::AesKwpHmac] {
        let home = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicU64::new(1_800_000_000)));
        let p =
            Pkcs11Provider::open_with_clock(&config(home.path(), binding), clock.clone()).unwrap();
        let id = unique("life");
        let info = p
            .create_key(&KeySpec {
                id: Some(id.clone()),
                description: "t".into(),
                rotation_period_days: Some(30),
            })
            .unwrap();
        assert_eq!(info.current_version, 1);
        let c = ctx(&[("bucket", "b"), ("key", "k")]);
        let (dek, w) = p.generate_data_key(&id, &c).unwrap();
        assert_eq!(w.provider, "pkcs11");
        assert_eq!(
            p.unwrap(&w, &c).unwrap().expose(),
            dek.expose(),
            "{binding:?}"
        );
        assert_eq!(
            p.unwrap(&w, &ctx(&[("bucket", "b"), ("key", "other")]))
                .unwrap_err(),
            KeyError::UnwrapFailed
        );
        let mut bad = w.clone();
        *bad.ciphertext.last_mut().unwrap() ^= 1;
        assert_eq!(p.unwrap(&bad, &c).unwrap_err(), KeyError::UnwrapFailed);
        let mut truncated = w.clone();
        truncated.ciphertext.pop();
        assert_eq!(
            p.unwrap(&truncated, &c).unwrap_err(),
            KeyError::UnwrapFailed
        );

        // Rotation on demand and on schedule; old versions keep unwrapping; rewrap moves forward.
        assert_eq!(p.rotate(&id).unwrap().current_version, 2);
        clock.0.fetch_add(31 * 86_400, Ordering::SeqCst);
        assert_eq!(p.describe(&id).unwrap().current_version, 3);
        assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
        let moved = p
            .rewrap(&w, &c)
            .unwrap()
            .expect("moved to the newest version");
        assert_eq!(moved.key_version, 3);
        assert_eq!(p.unwrap(&moved, &c).unwrap().expose(), dek.expose());
        assert_eq!(p.rewrap(&moved, &c).unwrap(), None);

        // States.
        p.disable(&id).unwrap();
        assert_eq!(
            p.unwrap(&w, &c).unwrap_err(),
            KeyError::Disabled(id.clone())
        );
        assert!(matches!(
            p.generate_data_key(&id, &c),
            Err(KeyError::Disabled(_))
        ));
        p.enable(&id).unwrap();
        for days in [0, 6, 31] {
            assert_eq!(
                p.schedule_deletion(&id, days).unwrap_err(),
                KeyError::InvalidDeletionWindow(days)
            );
        }
        let pending = p.schedule_deletion(&id, 7).unwrap();
        assert!(matches!(pending.state, KeyState::PendingDeletion { .. }));
        assert!(matches!(
            p.unwrap(&w, &c),
            Err(KeyError::PendingDeletion { .. })
        ));
        assert_eq!(p.cancel_deletion(&id).unwrap().state, KeyState::Disabled);
        p.enable(&id).unwrap();
        assert_eq!(p.unwrap(&moved, &c).unwrap().expose(), dek.expose());

        // Destruction after the window removes the KEKs from the token.
        p.schedule_deletion(&id, 7).unwrap();
        clock.0.fetch_add(7 * 86_400, Ordering::SeqCst);
        assert_eq!(p.describe(&id).unwrap().state, KeyState::Destroyed);
        assert_eq!(
            p.unwrap(&w, &c).unwrap_err(),
            KeyError::Destroyed(id.clone())
        );
        assert_eq!(
            token_objects(&format!("{id}/v")),
            0,
            "KEKs left on the token"
        );
    }
}

/// Token objects whose label starts with `prefix`, seen from a session of this process.
fn token_objects(prefix: &str) -> usize {
    with_raw_session(|s| {
        s.find_objects(&[])
            .unwrap()
            .into_iter()
            .filter(|h| {
                s.get_attributes(*h, &[cryptoki::object::AttributeType::Label])
                    .unwrap_or_default()
                    .iter()
                    .any(|a| matches!(a, Attribute::Label(l) if l.starts_with(prefix.as_bytes())))
            })
            .count()
    })
}

fn with_raw_session<T>(f: impl FnOnce(&cryptoki::session::Session) -> T) -> T {
    let t = token();
    let ctx = Pkcs11::new(&t.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == t.label)
        .unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    let _ = s.login(UserType::User, Some(&AuthPin::new(t.pin.clone().into())));
    f(&s)
}

#[test]
fn a_kek_deleted_on_the_token_is_a_typed_error() {
    let home = tempfile::tempdir().unwrap();
    let p = Pkcs11Provider::open(&config(home.path(), Binding::HsmGcm)).unwrap();
    let id = unique("gone");
    p.create_key(&KeySpec {
        id: Some(id.clone()),
        ..Default::default()
    })
    .unwrap();
    let c = ctx(&[("k", "v")]);
    let (_, w) = p.generate_data_key(&id, &c).unwrap();
    with_raw_session(|s| {
        for h in s
            .find_objects(&[Attribute::Label(format!("{id}/v1").into_bytes())])
            .unwrap()
        {
            s.destroy_object(h).unwrap();
        }
    });
    let e = p.unwrap(&w, &c).unwrap_err();
    assert!(
        matches!(&e, KeyError::Corrupt(m) if m.contains("missing from PKCS#11 token")),
        "{e}"
    );
    assert!(matches!(
        p.generate_data_key(&id, &c),
        Err(KeyError::Corrupt(_))
    ));
}

#[test]
fn keyrings_sharing_a_token_keep_their_keks_apart() {
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Pkcs11Provider::open(&config(home_a.path(), Binding::HsmGcm)).unwrap();
    let b = Pkcs11Provider::open(&config(home_b.path(), Binding::HsmGcm)).unwrap();
    let id = unique("shared");
    let spec = KeySpec {
        id: Some(id.clone()),
        ..KeySpec::default()
    };
    a.create_key(&spec).unwrap();
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = a.generate_data_key(&id, &c).unwrap();
    // Same id in another home: a KEK of its own; A's is neither replaced nor destroyed.
    b.create_key(&spec).unwrap();
    assert_eq!(b.unwrap(&w, &c).unwrap_err(), KeyError::UnwrapFailed);
    b.schedule_deletion(&id, 7).unwrap();
    assert_eq!(a.unwrap(&w, &c).unwrap().expose(), dek.expose());
    // Reopening a home finds its namespace again.
    drop(a);
    let a = Pkcs11Provider::open(&config(home_a.path(), Binding::HsmGcm)).unwrap();
    assert_eq!(a.unwrap(&w, &c).unwrap().expose(), dek.expose());
}

#[test]
fn the_cache_answers_repeated_reads_without_an_hsm_call() {
    let home = tempfile::tempdir().unwrap();
    let p = Pkcs11Provider::open(&config(home.path(), Binding::HsmGcm)).unwrap();
    let c = ssekit_engine::keys::CachingProvider::new(
        p,
        ssekit_engine::keys::CachePolicy::default_for("pkcs11").unwrap(),
    );
    let id = unique("cache");
    c.create_key(&KeySpec {
        id: Some(id.clone()),
        ..KeySpec::default()
    })
    .unwrap();
    let cx = ctx(&[("bucket", "b")]);
    let (dek, w) = c.inner().generate_data_key(&id, &cx).unwrap();
    for _ in 0..50 {
        assert_eq!(c.unwrap(&w, &cx).unwrap().expose(), dek.expose());
    }
    let s = c.stats();
    assert_eq!((s.hits, s.provider_calls), (49, 1));
    // Disabling through the cache takes effect at once.
    c.disable(&id).unwrap();
    assert_eq!(
        c.unwrap(&w, &cx).unwrap_err(),
        KeyError::Disabled(id.clone())
    );
}
