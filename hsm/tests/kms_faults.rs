//! `KmsProvider` under faults: real KMS error responses injected by the tests' own proxy in front of
//! the KMS server (throttling, disabled and pending-deletion keys, unknown keys), the proxy going
//! down and coming back, a moto server of the test's own killed and restarted, 16 threads of
//! mixed calls through throttling, and state-changing calls whose answers are lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ssekit_engine::keys::{KeyError, KeyProvider, KeySpec, KeyState};
use ssekit_hsm::KmsProvider;
mod common;

use common::kms::{Moto, Proxy, config, endpoint};
use common::{ctx, unique};

fn create(p: &KmsProvider, prefix: &str) -> String {
    let id = unique(prefix);
    p.create_key(&KeySpec {
        id: Some(id.clone()),
        ..KeySpec::default()
    })
    .unwrap();
    id
}

#[test]
fn kms_state_errors_are_typed() {
    let proxy = Proxy::start(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "state");
    let c = ctx(&[("bucket", "b")]);
    let (_, w) = p.generate_data_key(&id, &c).unwrap();
    // Unwrap errors name the key the envelope names: its ARN.
    let arn = w.key_id.clone();

    // What real KMS answers for a disabled key (moto answers the call).
    p.disable(&id).unwrap();
    proxy.inject("GenerateDataKey", "DisabledException", 1);
    proxy.inject("Decrypt", "DisabledException", 1);
    assert_eq!(
        p.generate_data_key(&id, &c).unwrap_err(),
        KeyError::Disabled(id.clone())
    );
    assert_eq!(
        p.unwrap(&w, &c).unwrap_err(),
        KeyError::Disabled(arn.clone())
    );
    p.enable(&id).unwrap();

    // Pending deletion: KMSInvalidStateException, read back as the state with its date.
    let KeyState::PendingDeletion { delete_at } = p.schedule_deletion(&id, 7).unwrap().state else {
        panic!("not pending")
    };
    proxy.inject("Decrypt", "KMSInvalidStateException", 1);
    proxy.inject("Encrypt", "KMSInvalidStateException", 1);
    let pending = |id: &str| KeyError::PendingDeletion {
        id: id.to_owned(),
        delete_at,
    };
    assert_eq!(p.unwrap(&w, &c).unwrap_err(), pending(&arn));
    assert_eq!(
        p.wrap(&id, &ssekit_engine::keys::DataKey::generate(), &c)
            .unwrap_err(),
        pending(&id)
    );
    p.cancel_deletion(&id).unwrap();
    p.enable(&id).unwrap();

    // A key that is gone.
    proxy.inject("Decrypt", "NotFoundException", 1);
    assert_eq!(p.unwrap(&w, &c).unwrap_err(), KeyError::NotFound(arn));
    // A ciphertext KMS does not accept.
    proxy.inject("Decrypt", "InvalidCiphertextException", 1);
    assert_eq!(p.unwrap(&w, &c).unwrap_err(), KeyError::UnwrapFailed);
    // Any other code names the call and the code.
    proxy.inject("Decrypt", "KMSInvalidMacException", 1);
    assert_eq!(
        p.unwrap(&w, &c).unwrap_err(),
        KeyError::Device {
            call: "kms:Decrypt".into(),
            code: "KMSInvalidMacException".into()
        }
    );
    // Nothing above was retried, and the key still works.
    assert_eq!(proxy.seen("Decrypt"), 5);
    p.unwrap(&w, &c).unwrap();
}

#[test]
fn throttling_is_retried_with_a_bound() {
    let proxy = Proxy::start(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "throttle");
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();

    // Fewer throttles than attempts: the call succeeds.
    let before = proxy.seen("Decrypt");
    proxy.inject("Decrypt", "ThrottlingException", 3);
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
    assert_eq!(proxy.seen("Decrypt") - before, 4);

    // Throttled throughout: exactly max_attempts tries, then a typed error.
    let before = proxy.seen("GenerateDataKey");
    proxy.inject("GenerateDataKey", "ThrottlingException", u64::MAX);
    let t0 = Instant::now();
    assert_eq!(
        p.generate_data_key(&id, &c).unwrap_err(),
        KeyError::Unavailable {
            call: "kms:GenerateDataKey".into(),
            detail: "ThrottlingException".into()
        }
    );
    assert_eq!(proxy.seen("GenerateDataKey") - before, 4);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    proxy.clear();

    // Internal errors are retried the same way.
    proxy.inject("Decrypt", "KMSInternalException", 2);
    p.unwrap(&w, &c).unwrap();
}

#[test]
fn an_unreachable_kms_is_a_typed_error_and_work_resumes() {
    let mut proxy = Proxy::start(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "down");
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();

    proxy.down();
    let t0 = Instant::now();
    let err = p.unwrap(&w, &c).unwrap_err();
    assert!(
        matches!(&err, KeyError::Unavailable { call, .. } if call == "kms:Decrypt"),
        "{err:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(err.to_string().contains("try again later"), "{err}");

    proxy.up();
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
    p.generate_data_key(&id, &c).unwrap();
}

#[test]
fn the_kms_server_killed_and_restarted_mid_run() {
    let mut moto = Moto::spawn();
    let p = Arc::new(KmsProvider::new(&config(&moto.endpoint())).unwrap());
    let id = create(&p, "kill");
    let c = ctx(&[("bucket", "b")]);

    // Threads keep sealing while the server dies; each call either works or fails typed.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (p, id, c, stop) = (p.clone(), id.clone(), c.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut unavailable) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match p.generate_data_key(&id, &c) {
                        Ok((dek, w)) => {
                            // What was sealed can be opened, or the server died in between.
                            match p.unwrap(&w, &c) {
                                Ok(k) => assert_eq!(k.expose(), dek.expose()),
                                Err(KeyError::Unavailable { .. }) => {}
                                Err(e) => panic!("{e:?}"),
                            }
                            ok += 1;
                        }
                        Err(KeyError::Unavailable { .. }) => unavailable += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                (ok, unavailable)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    moto.kill();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut unavailable) = (0, 0);
    for w in workers {
        let (o, u) = w.join().unwrap();
        ok += o;
        unavailable += u;
    }
    assert!(
        ok > 0 && unavailable > 0,
        "ok {ok}, unavailable {unavailable}"
    );

    // Bounded: a call on a dead server gives up within the retry budget.
    let t0 = Instant::now();
    assert!(matches!(p.describe(&id), Err(KeyError::Unavailable { .. })));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // Restarted: the same provider works again. moto keeps keys in memory only, so the old key is
    // gone there (real KMS would still have it): a typed NotFound, and a new key works end to end.
    moto.start();
    assert_eq!(p.describe(&id), Err(KeyError::NotFound(id.clone())));
    let id2 = create(&p, "kill-after");
    let (dek, w) = p.generate_data_key(&id2, &c).unwrap();
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());
}

#[test]
fn sixteen_threads_through_throttling() {
    let proxy = Arc::new(Proxy::start(&endpoint()));
    let p = Arc::new(KmsProvider::new(&config(&proxy.endpoint())).unwrap());
    let id = create(&p, "load");
    // One call in about seven is throttled, for as long as the run lasts.
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (p, id, proxy) = (p.clone(), id.clone(), proxy.clone());
            std::thread::spawn(move || {
                let mut keys = Vec::new();
                for n in 0..100 {
                    if (t + n) % 7 == 0 {
                        proxy.inject("*", "ThrottlingException", 1);
                    }
                    let c = ctx(&[("thread", &t.to_string()), ("n", &n.to_string())]);
                    if n % 2 == 0 || keys.is_empty() {
                        let (dek, w) = p.generate_data_key(&id, &c).unwrap();
                        keys.push((dek, w, c));
                    } else {
                        let (dek, w, c) = &keys[n % keys.len()];
                        assert_eq!(p.unwrap(w, c).unwrap().expose(), dek.expose());
                    }
                }
                keys.len()
            })
        })
        .collect();
    let made: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(made, 16 * 50);
    assert!(proxy.seen("GenerateDataKey") + proxy.seen("Decrypt") > 1600);
}

/// The tag the provider puts on each key it makes (`ssekit_hsm::kms::CREATION_TOKEN_TAG`).
const CREATION_TOKEN_TAG: &str = "ssekit:creation-token";

/// The AWS SDK itself, for what the tests look at behind the provider's back.
struct Sdk {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_kms::Client,
}

impl Sdk {
    fn new(endpoint: &str) -> Sdk {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let conf = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .load(),
        );
        Sdk {
            client: aws_sdk_kms::Client::new(&conf),
            rt,
        }
    }

    /// Every key's id (moto answers in one page).
    fn keys(&self) -> Vec<String> {
        let out = self.rt.block_on(self.client.list_keys().send()).unwrap();
        out.keys()
            .iter()
            .filter_map(|k| k.key_id().map(str::to_owned))
            .collect()
    }

    /// The value of the key's creation-token tag.
    fn token(&self, key_id: &str) -> Option<String> {
        let out = self
            .rt
            .block_on(self.client.list_resource_tags().key_id(key_id).send())
            .unwrap();
        out.tags()
            .iter()
            .find(|t| t.tag_key() == CREATION_TOKEN_TAG)
            .map(|t| t.tag_value().to_owned())
    }

    /// The key id and state of the key `alias/<name>` points at.
    fn target(&self, name: &str) -> (String, aws_sdk_kms::types::KeyState) {
        let out = self
            .rt
            .block_on(
                self.client
                    .describe_key()
                    .key_id(format!("alias/{name}"))
                    .send(),
            )
            .unwrap();
        let meta = out.key_metadata.unwrap();
        (meta.key_id().to_owned(), meta.key_state.unwrap())
    }

    fn rotations(&self, key_id: &str) -> usize {
        let out = self
            .rt
            .block_on(self.client.list_key_rotations().key_id(key_id).send())
            .unwrap();
        out.rotations().len()
    }
}

#[test]
fn a_lost_create_alias_answer_leaves_the_key_named_and_alive() {
    let proxy = Proxy::start(&endpoint());
    let sdk = Sdk::new(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = unique("lost-alias");
    // KMS makes the alias; the provider never hears it did.
    proxy.lose_answer("CreateAlias", 1);
    let info = p
        .create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
    assert_eq!(
        (info.id.as_str(), info.state),
        (id.as_str(), KeyState::Enabled)
    );
    assert_eq!(proxy.seen("ScheduleKeyDeletion"), 0);
    // The alias points at the key this call made (it carries the call's token), still enabled.
    let (key_id, state) = sdk.target(&id);
    assert_eq!(state, aws_sdk_kms::types::KeyState::Enabled);
    assert!(sdk.token(&key_id).is_some());
    let c = ctx(&[("bucket", "b")]);
    let (dek, w) = p.generate_data_key(&id, &c).unwrap();
    assert_eq!(p.unwrap(&w, &c).unwrap().expose(), dek.expose());

    // A name that another key holds is AlreadyExists, and that other key is left alone.
    let taken = unique("taken");
    p.create_key(&KeySpec {
        id: Some(taken.clone()),
        ..KeySpec::default()
    })
    .unwrap();
    let (holder, _) = sdk.target(&taken);
    // Slip past the provider's own check: the alias seems free when it looks first.
    proxy.inject("DescribeKey", "NotFoundException", 1);
    let before = sdk.keys().len();
    assert_eq!(
        p.create_key(&KeySpec {
            id: Some(taken.clone()),
            ..KeySpec::default()
        }),
        Err(KeyError::AlreadyExists(taken.clone()))
    );
    assert_eq!(
        sdk.target(&taken),
        (holder, aws_sdk_kms::types::KeyState::Enabled)
    );
    // The key made for the name, and only it, is scheduled for deletion.
    assert_eq!(proxy.seen("ScheduleKeyDeletion"), 1);
    let keys = sdk.keys();
    assert_eq!(keys.len(), before + 1);
    p.describe(&taken).unwrap();
}

#[test]
fn a_lost_create_key_answer_makes_one_key() {
    // A server of this test's own, so every key on it is one this test made.
    let moto = Moto::spawn();
    let proxy = Proxy::start(&moto.endpoint());
    let sdk = Sdk::new(&moto.endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();

    let id = unique("lost-create");
    proxy.lose_answer("CreateKey", 1);
    p.create_key(&KeySpec {
        id: Some(id.clone()),
        ..KeySpec::default()
    })
    .unwrap();
    assert_eq!(proxy.seen("CreateKey"), 1);
    let keys = sdk.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(sdk.token(&keys[0]).is_some());
    assert_eq!(sdk.target(&id).0, keys[0]);

    // A key without a name: the lost answer's key is the one returned.
    proxy.lose_answer("CreateKey", 1);
    let anon = p.create_key(&KeySpec::default()).unwrap();
    let keys = sdk.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&anon.id));
    // Each call's own token.
    assert_ne!(sdk.token(&keys[0]), sdk.token(&keys[1]));
}

#[test]
fn a_lost_rotation_answer_rotates_once() {
    let proxy = Proxy::start(&endpoint());
    let sdk = Sdk::new(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "lost-rotate");
    let (key_id, _) = sdk.target(&id);
    proxy.lose_answer("RotateKeyOnDemand", 1);
    assert_eq!(p.rotate(&id).unwrap().current_version, 2);
    assert_eq!(proxy.seen("RotateKeyOnDemand"), 1);
    assert_eq!(sdk.rotations(&key_id), 1);
    assert_eq!(p.describe(&id).unwrap().current_version, 2);
}

#[test]
fn lost_deletion_answers_are_read_back() {
    let proxy = Proxy::start(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "lost-delete");
    proxy.lose_answer("ScheduleKeyDeletion", 1);
    assert!(matches!(
        p.schedule_deletion(&id, 7).unwrap().state,
        KeyState::PendingDeletion { .. }
    ));
    assert_eq!(proxy.seen("ScheduleKeyDeletion"), 1);
    proxy.lose_answer("CancelKeyDeletion", 1);
    assert_eq!(p.cancel_deletion(&id).unwrap().state, KeyState::Disabled);
    assert_eq!(proxy.seen("CancelKeyDeletion"), 1);
}

#[test]
fn a_state_change_whose_outcome_cannot_be_read_is_not_repeated() {
    let proxy = Proxy::start(&endpoint());
    let p = KmsProvider::new(&config(&proxy.endpoint())).unwrap();
    let id = create(&p, "unknown");
    // The rotation is carried out, its answer lost, and every read after it fails.
    proxy.lose_answer_then_fail("RotateKeyOnDemand", "KMSInternalException");
    let err = p.rotate(&id).unwrap_err();
    assert!(
        matches!(&err, KeyError::Device { call, code }
            if call == "kms:RotateKeyOnDemand" && code.starts_with("outcome unknown")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("look at the key before trying again"),
        "{err}"
    );
    assert_eq!(proxy.seen("RotateKeyOnDemand"), 1);
    proxy.clear();
    assert_eq!(p.describe(&id).unwrap().current_version, 2);

    // The same for an alias: the key it may name is not deleted.
    let name = unique("unknown-alias");
    proxy.lose_answer_then_fail("CreateAlias", "KMSInternalException");
    let err = p
        .create_key(&KeySpec {
            id: Some(name.clone()),
            ..KeySpec::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, KeyError::Device { call, code }
            if call == "kms:CreateAlias" && code.starts_with("outcome unknown")),
        "{err:?}"
    );
    assert_eq!(proxy.seen("ScheduleKeyDeletion"), 0);
    proxy.clear();
    assert_eq!(p.describe(&name).unwrap().state, KeyState::Enabled);
}
