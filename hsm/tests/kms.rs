//! `KmsProvider` against a real KMS-API server: `SSEKIT_KMS_ENDPOINT` (scripts/test.sh runs moto on
//! 127.0.0.1; point it and the AWS variables at real KMS to run the same suite there).

use ssekit_engine::keys::{
    CachePolicy, CachingProvider, KeyError, KeyProvider, KeySpec, KeyState, WrappedKey,
};
use ssekit_hsm::{ALG_KMS, KMS_PROVIDER, KmsProvider};
mod common;

use common::kms::{config, endpoint};
use common::{ctx, unique};

fn provider() -> KmsProvider {
    KmsProvider::new(&config(&endpoint())).unwrap()
}

fn create(p: &KmsProvider, prefix: &str) -> String {
    let id = unique(prefix);
    let info = p
        .create_key(&KeySpec {
            id: Some(id.clone()),
            description: "ssekit test".into(),
            rotation_period_days: None,
        })
        .unwrap();
    assert_eq!(
        (info.id.as_str(), info.state, info.current_version),
        (id.as_str(), KeyState::Enabled, 1)
    );
    id
}

#[test]
fn data_keys_are_bound_to_their_context() {
    let p = provider();
    let id = create(&p, "bind");
    let c = ctx(&[("bucket", "b"), ("key", "o")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();
    assert_eq!(
        (w.provider.as_str(), w.key_version, w.algorithm.as_str()),
        (KMS_PROVIDER, 1, ALG_KMS)
    );
    // The envelope names the key by its ARN, not by the alias.
    assert!(w.key_id.starts_with("arn:aws:kms:"), "{w:?}");
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
    // A wrap of a key of our own (what rewrap does) opens the same way.
    let w2 = p.wrap(&id, &dek, &c).unwrap();
    assert_eq!(p.unwrap(&w2, &c).unwrap().expose(), dek.expose());

    for wrong in [ctx(&[("bucket", "b"), ("key", "other")]), ctx(&[])] {
        assert_eq!(p.unwrap(&w, &wrong).unwrap_err(), KeyError::UnwrapFailed);
    }
    let mut t = w.clone();
    let n = t.ciphertext.len();
    t.ciphertext[n - 5] ^= 1;
    assert_eq!(p.unwrap(&t, &c).unwrap_err(), KeyError::UnwrapFailed);
    let other = WrappedKey {
        provider: "local".into(),
        ..w.clone()
    };
    assert!(matches!(
        p.unwrap(&other, &c),
        Err(KeyError::WrongProvider(_))
    ));
}

#[test]
fn unknown_and_existing_keys() {
    let p = provider();
    let missing = unique("missing");
    assert_eq!(
        p.describe(&missing),
        Err(KeyError::NotFound(missing.clone()))
    );
    assert_eq!(
        p.generate_data_key(&missing, &ctx(&[])).unwrap_err(),
        KeyError::NotFound(missing.clone())
    );
    let id = create(&p, "dup");
    assert_eq!(
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        }),
        Err(KeyError::AlreadyExists(id.clone()))
    );
    assert!(matches!(
        p.create_key(&KeySpec {
            id: Some("has.dot".into()),
            ..KeySpec::default()
        }),
        Err(KeyError::Malformed(_))
    ));
    assert!(matches!(
        p.create_key(&KeySpec {
            rotation_period_days: Some(30),
            ..KeySpec::default()
        }),
        Err(KeyError::Malformed(_))
    ));
    assert!(p.list().unwrap().iter().any(|k| k.id == id));
    // A key made without a name is named by its KMS key id.
    let anon = p.create_key(&KeySpec::default()).unwrap();
    assert_eq!(anon.id.len(), 36);
    assert_eq!(p.describe(&anon.id).unwrap().id, anon.id);
}

#[test]
fn rotation_and_rewrap() {
    let p = provider();
    let id = create(&p, "rot");
    let c = ctx(&[("k", "v")]);
    let (dek, w1) = p.generate_data_key(&id, &c).unwrap();
    assert_eq!(p.rewrap(&w1, &c).unwrap(), None);
    let info = p.rotate(&id).unwrap();
    assert_eq!(info.current_version, 2);
    assert_eq!(p.describe(&id).unwrap().current_version, 2);
    let w2 = p.rewrap(&w1, &c).unwrap().expect("moves to version 2");
    assert_eq!(w2.key_version, 2);
    assert_eq!(p.unwrap(&w2, &c).unwrap().expose(), dek.expose());
    assert_eq!(p.unwrap(&w1, &c).unwrap().expose(), dek.expose());
    assert_eq!(p.generate_data_key(&id, &c).unwrap().1.key_version, 2);
    // Automatic rotation as KMS allows it.
    let auto = unique("auto");
    let info = p
        .create_key(&KeySpec {
            id: Some(auto),
            description: String::new(),
            rotation_period_days: Some(90),
        })
        .unwrap();
    // Real KMS reports the 90 days; moto reports rotation on without a period (KMS's default, 365).
    assert!(
        matches!(info.rotation_period_days, Some(90 | 365)),
        "{info:?}"
    );
}

#[test]
fn lifecycle_states_answer_like_the_other_providers() {
    let p = provider();
    let id = create(&p, "life");
    assert_eq!(p.disable(&id).unwrap().state, KeyState::Disabled);
    assert_eq!(p.rotate(&id).unwrap_err(), KeyError::Disabled(id.clone()));
    assert_eq!(p.enable(&id).unwrap().state, KeyState::Enabled);
    for days in [0, 6, 31] {
        assert_eq!(
            p.schedule_deletion(&id, days).unwrap_err(),
            KeyError::InvalidDeletionWindow(days)
        );
    }
    let info = p.schedule_deletion(&id, 7).unwrap();
    let KeyState::PendingDeletion { delete_at } = info.state else {
        panic!("{info:?}")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        delete_at.abs_diff(now + 7 * 86_400) < 120,
        "{delete_at} vs {now}"
    );
    assert!(matches!(
        p.schedule_deletion(&id, 7),
        Err(KeyError::InvalidState { .. })
    ));
    assert!(matches!(p.enable(&id), Err(KeyError::InvalidState { .. })));
    assert!(matches!(p.disable(&id), Err(KeyError::InvalidState { .. })));
    assert_eq!(
        p.rotate(&id).unwrap_err(),
        KeyError::PendingDeletion {
            id: id.clone(),
            delete_at
        }
    );
    assert_eq!(p.cancel_deletion(&id).unwrap().state, KeyState::Disabled);
    assert!(matches!(
        p.cancel_deletion(&id),
        Err(KeyError::InvalidState { .. })
    ));
    assert_eq!(p.enable(&id).unwrap().state, KeyState::Enabled);
}

#[test]
fn the_cache_answers_repeated_reads_without_a_kms_call() {
    let c = CachingProvider::new(provider(), CachePolicy::default_for(KMS_PROVIDER).unwrap());
    let id = create(c.inner(), "cache");
    let cx = ctx(&[("bucket", "b")]);
    let (dek, w) = c.inner().generate_data_key(&id, &cx).unwrap();
    for _ in 0..50 {
        assert_eq!(c.unwrap(&w, &cx).unwrap().expose(), dek.expose());
    }
    let s = c.stats();
    assert_eq!((s.hits, s.provider_calls), (49, 1));
}

#[test]
fn no_key_bytes_in_debug_or_errors() {
    let p = provider();
    let id = create(&p, "leak");
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();
    let hex: String = dek.expose().iter().map(|b| format!("{b:02x}")).collect();
    let dec: String = format!("{:?}", dek.expose());
    let err = p.unwrap(&w, &ctx(&[])).unwrap_err();
    for text in [
        format!("{dek:?}"),
        format!("{w:?}"),
        format!("{err:?} {err}"),
        format!("{:?}", ssekit_hsm::KmsConfig::from_env()),
    ] {
        assert!(!text.contains(&hex) && !text.contains(&dec), "{text}");
    }
    assert_eq!(format!("{dek:?}"), "DataKey(..)");
}

#[test]
fn re_pointing_an_alias_keeps_old_objects_opening() {
    let p = provider();
    let id = create(&p, "repoint");
    let c = ctx(&[("bucket", "b")]);
    let (dek, old) = p.generate_data_key(&id, &c).unwrap();
    let other = p.create_key(&KeySpec::default()).unwrap();

    // The alias now names another key (through the AWS SDK, not the provider).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .load(),
    );
    let sdk = aws_sdk_kms::Client::new(&conf);
    rt.block_on(
        sdk.update_alias()
            .alias_name(format!("alias/{id}"))
            .target_key_id(&other.id)
            .send(),
    )
    .unwrap();

    // Old objects open under the key that sealed them; new writes go where the alias points.
    assert_eq!(p.unwrap(&old, &c).unwrap().expose(), dek.expose());
    assert!(old.key_id.starts_with("arn:aws:kms:"), "{old:?}");
    let (dek2, new) = p.generate_data_key(&id, &c).unwrap();
    assert!(
        new.key_id.ends_with(&format!("key/{}", other.id)),
        "{new:?}"
    );
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(p.unwrap(&new, &c).unwrap().expose(), dek2.expose());
    // rewrap keeps an envelope on its own key.
    assert_eq!(p.rewrap(&old, &c).unwrap(), None);
}

/// An envelope is part of the stored object, so whoever can write the storage can make it name a
/// key ARN of their own, in another account whose key policy lets this caller decrypt: the data key
/// (and with it the content and the metadata MAC) would then be theirs. Only keys of the caller's
/// own account are sent to Decrypt.
#[test]
fn an_envelope_naming_a_key_of_another_account_is_refused_before_decrypt() {
    let p = provider();
    let id = create(&p, "foreign");
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
    // The same key id under another account's ARN.
    let (head, key) = w.key_id.split_once(":key/").unwrap();
    let (region_part, account) = head.rsplit_once(':').unwrap();
    assert_eq!(account.len(), 12, "{}", w.key_id);
    let other = if account == "999999999999" {
        "111111111111"
    } else {
        "999999999999"
    };
    let mut forged = w.clone();
    forged.key_id = format!("{region_part}:{other}:key/{key}");
    let e = p.unwrap(&forged, &c).unwrap_err();
    assert!(
        matches!(&e, KeyError::Corrupt(m) if m.contains("not a key of this account")),
        "{e:?}"
    );
    // The caller's own ARN still opens (listed once, then from memory).
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
}
