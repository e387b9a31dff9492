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
    let _turn = serial();
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

/// The tests of this file take turns on the token. Run side by side, SoftHSM2 (file object store)
/// now and then answers CKR_GENERAL_ERROR to a key generated while another thread destroys objects
/// on the same token (seen with the tests' own EC and AES generations, never one at a time); the
/// provider under many threads, session loss and logouts is `pkcs11_faults`'s subject.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A session of the test's own on the token. Its context is made once and never dropped: dropping
/// a `Pkcs11` finalizes the module for the whole process, under every other session in it.
fn with_raw_session<T>(f: impl FnOnce(&cryptoki::session::Session) -> T) -> T {
    static CTX: std::sync::OnceLock<Pkcs11> = std::sync::OnceLock::new();
    let t = token();
    let ctx = CTX.get_or_init(|| {
        let ctx = Pkcs11::new(&t.module).unwrap();
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        ctx
    });
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
    let _turn = serial();
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
    let _turn = serial();
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
    let _turn = serial();
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

/// The token object labelled `label` (exactly one), from a session of this process.
fn object_labelled(s: &cryptoki::session::Session, label: &str) -> cryptoki::object::ObjectHandle {
    let found = s
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1, "objects labelled {label}");
    found[0]
}

/// A P-256 key pair on the token, both halves carrying `named` (a label and an id): objects of
/// other classes than a KEK's.
fn ec_key_pair(
    s: &cryptoki::session::Session,
    named: &[Attribute],
) -> (
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
) {
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Verify(true),
        Attribute::EcParams(P256.to_vec()),
    ];
    public.extend_from_slice(named);
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
    ];
    private.extend_from_slice(named);
    s.generate_key_pair(
        &cryptoki::mechanism::Mechanism::EccKeyPairGen,
        &public,
        &private,
    )
    .unwrap()
}

/// Copies a directory tree, modes included (a home is only opened when private to its owner).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Records older than the token (a home restored from a backup taken before a rotation, or a
/// second host with a copy of it) never destroy or re-make a version the token holds: the next
/// rotation adopts the versions they did not know and makes the one above.
#[test]
fn records_older_than_the_token_keep_every_kek() {
    let _turn = serial();
    for binding in [Binding::HsmGcm, Binding::AesKwpHmac] {
        let (home, backup) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let p = Pkcs11Provider::open(&config(home.path(), binding)).unwrap();
        let id = unique("restored");
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let c = ctx(&[("bucket", "b")]);
        let (dek1, w1) = p.generate_data_key(&id, &c).unwrap();
        copy_tree(home.path(), &backup.path().join("home"));
        assert_eq!(p.rotate(&id).unwrap().current_version, 2);
        let (dek2, w2) = p.generate_data_key(&id, &c).unwrap();
        assert_eq!(w2.key_version, 2);

        // The backup's records know only v1; rotating there must not touch the token's v2.
        let old = Pkcs11Provider::open(&config(&backup.path().join("home"), binding)).unwrap();
        assert_eq!(old.rotate(&id).unwrap().current_version, 3, "{binding:?}");
        assert_eq!(token_objects(&format!("{id}/v2")), 1, "v2 left the token");
        for q in [&old, &p] {
            assert_eq!(q.unwrap(&w2, &c).unwrap().expose(), dek2.expose());
            assert_eq!(q.unwrap(&w1, &c).unwrap().expose(), dek1.expose());
        }
        let (dek3, w3) = old.generate_data_key(&id, &c).unwrap();
        assert_eq!(w3.key_version, 3);
        // And the newer home, which never saw v3, rotates past it too.
        assert_eq!(p.rotate(&id).unwrap().current_version, 4);
        assert_eq!(p.unwrap(&w3, &c).unwrap().expose(), dek3.expose());
        assert_eq!(old.unwrap(&w2, &c).unwrap().expose(), dek2.expose());
        assert_eq!(token_objects(&format!("{id}/v")), 4);
    }
}

/// An object on the token under a KEK's label and namespace that is not a KEK the provider made
/// (extractable, another key type, a value imported from outside, another class) is refused with
/// an error naming the key version and the attribute, and never used.
#[test]
fn a_planted_object_under_a_kek_label_is_refused() {
    let _turn = serial();
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{AttributeType, KeyType, ObjectClass};
    let aes_uses = || {
        vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ]
    };
    type Plant = fn(&cryptoki::session::Session, Vec<Attribute>);
    let plants: [(&str, Plant); 4] = [
        ("CKA_EXTRACTABLE is true", |s, mut t| {
            t.extend([
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
            ]);
            s.generate_key(&Mechanism::AesKeyGen, &t).unwrap();
        }),
        ("CKA_KEY_TYPE is", |s, mut t| {
            t.extend([
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ]);
            t.retain(|a| !matches!(a, Attribute::Encrypt(_) | Attribute::Decrypt(_)));
            s.generate_key(&Mechanism::GenericSecretKeyGen, &t).unwrap();
        }),
        // A value someone knows: sensitive and unextractable now, but not made on the token.
        ("CKA_LOCAL is false", |s, mut t| {
            t.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(vec![7; 32]),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ]);
            s.create_object(&t).unwrap();
        }),
        // Data objects have no CKA_ID, so another class under the namespace is a public key.
        ("CKA_CLASS is CKO_PUBLIC_KEY", |s, t| {
            let named: Vec<_> = t
                .into_iter()
                .filter(|a| matches!(a, Attribute::Label(_) | Attribute::Id(_)))
                .collect();
            let (_, private) = ec_key_pair(s, &named);
            s.destroy_object(private).unwrap();
        }),
    ];
    for (want, plant) in plants {
        let home = tempfile::tempdir().unwrap();
        let p = Pkcs11Provider::open(&config(home.path(), Binding::HsmGcm)).unwrap();
        let id = unique("planted");
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let label = format!("{id}/v1");
        // The real KEK goes; an object of the planter's making takes its label and CKA_ID.
        with_raw_session(|s| {
            let h = object_labelled(s, &label);
            let namespace = match &s.get_attributes(h, &[AttributeType::Id]).unwrap()[..] {
                [Attribute::Id(id)] => id.clone(),
                other => panic!("{other:?}"),
            };
            s.destroy_object(h).unwrap();
            let mut t = aes_uses();
            t.extend([
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Id(namespace),
            ]);
            plant(s, t);
        });
        let p = Pkcs11Provider::open(&config(home.path(), Binding::HsmGcm)).unwrap();
        let e = p
            .generate_data_key(&id, &ctx(&[("k", "v")]))
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&e, KeyError::Corrupt(m) if m.contains(&format!("`{label}`")) && m.contains(want)),
            "{want}: {e}"
        );
    }
}

/// Destruction destroys the key's KEKs, never another kind of object sharing their label and id.
#[test]
fn destruction_spares_other_objects_under_a_kek_label() {
    let _turn = serial();
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{AttributeType, KeyType};
    let home = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(1_800_000_000)));
    let p = Pkcs11Provider::open_with_clock(&config(home.path(), Binding::HsmGcm), clock.clone())
        .unwrap();
    let id = unique("spare");
    p.create_key(&KeySpec {
        id: Some(id.clone()),
        ..KeySpec::default()
    })
    .unwrap();
    let label = format!("{id}/v1");
    with_raw_session(|s| {
        let h = object_labelled(s, &label);
        let shared = s.get_attributes(h, &[AttributeType::Id]).unwrap();
        let mut same = vec![
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Token(true),
            Attribute::Private(true),
        ];
        same.extend(shared);
        ec_key_pair(s, &same);
        let mut secret = same;
        secret.push(Attribute::ValueLen(32.into()));
        s.generate_key(&Mechanism::GenericSecretKeyGen, &secret)
            .unwrap();
    });
    p.schedule_deletion(&id, 7).unwrap();
    clock.0.fetch_add(7 * 86_400, Ordering::SeqCst);
    assert_eq!(p.describe(&id).unwrap().state, KeyState::Destroyed);
    let (left, aes) = with_raw_session(|s| {
        let labelled = Attribute::Label(label.clone().into_bytes());
        let left = s.find_objects(std::slice::from_ref(&labelled)).unwrap();
        let aes = s
            .find_objects(&[labelled, Attribute::KeyType(KeyType::AES)])
            .unwrap();
        (left.len(), aes.len())
    });
    assert_eq!(
        (left, aes),
        (3, 0),
        "the EC key pair and the generic secret stay"
    );
}

/// A KEK is made with the uses of its binding and nothing more (read back from the token), never
/// extractable or modifiable; a KEK of the other binding is refused by name, and a rotation makes
/// one that serves.
#[test]
fn keks_carry_only_the_uses_of_their_binding() {
    let _turn = serial();
    use cryptoki::object::AttributeType as T;
    let home = tempfile::tempdir().unwrap();
    let c = ctx(&[("bucket", "b")]);
    let mut earlier = Vec::new();
    for binding in [Binding::HsmGcm, Binding::AesKwpHmac] {
        let p = Pkcs11Provider::open(&config(home.path(), binding)).unwrap();
        let id = unique("uses");
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let gcm = binding == Binding::HsmGcm;
        let want = [
            (T::Encrypt, gcm),
            (T::Decrypt, gcm),
            (T::Wrap, !gcm),
            (T::Unwrap, !gcm),
            (T::Sign, false),
            (T::Verify, false),
            (T::Derive, false),
            (T::Token, true),
            (T::Private, true),
            (T::Sensitive, true),
            (T::AlwaysSensitive, true),
            (T::Extractable, false),
            (T::NeverExtractable, true),
            (T::Local, true),
            (T::Modifiable, false),
            (T::Copyable, false),
        ];
        let types: Vec<T> = want.iter().map(|(t, _)| *t).collect();
        let got = with_raw_session(|s| {
            let h = object_labelled(s, &format!("{id}/v1"));
            s.get_attributes(h, &types).unwrap()
        });
        assert_eq!(got.len(), want.len(), "{binding:?}: {got:?}");
        for (a, (t, v)) in got.iter().zip(want) {
            let b = match a {
                Attribute::Encrypt(b)
                | Attribute::Decrypt(b)
                | Attribute::Wrap(b)
                | Attribute::Unwrap(b)
                | Attribute::Sign(b)
                | Attribute::Verify(b)
                | Attribute::Derive(b)
                | Attribute::Token(b)
                | Attribute::Private(b)
                | Attribute::Sensitive(b)
                | Attribute::AlwaysSensitive(b)
                | Attribute::Extractable(b)
                | Attribute::NeverExtractable(b)
                | Attribute::Local(b)
                | Attribute::Modifiable(b)
                | Attribute::Copyable(b) => *b,
                other => panic!("{other:?}"),
            };
            assert_eq!((a.attribute_type(), b), (t, v), "{binding:?}");
        }
        let (dek, w) = p.generate_data_key(&id, &c).unwrap();
        earlier.push((id, dek, w));
    }
    // The home's binding changes (as a CLI home moving to a token without CKM_AES_GCM would):
    // the GCM key's v1 cannot serve KWP wraps and says so; its wraps still open; a rotation serves.
    let p = Pkcs11Provider::open(&config(home.path(), Binding::AesKwpHmac)).unwrap();
    let (id, dek, w) = &earlier[0];
    let e = p.generate_data_key(id, &c).map(|_| ()).unwrap_err();
    assert!(
        matches!(&e, KeyError::Corrupt(m) if m.contains("CKA_WRAP and CKA_UNWRAP") && m.contains(&format!("`{id}/v1`"))),
        "{e}"
    );
    assert_eq!(p.unwrap(w, &c).unwrap().expose(), dek.expose());
    assert_eq!(p.rotate(id).unwrap().current_version, 2);
    let (dek2, w2) = p.generate_data_key(id, &c).unwrap();
    assert_eq!(p.unwrap(&w2, &c).unwrap().expose(), dek2.expose());
}
