//! The CLI on every provider: `--provider local|pkcs11|kms` (and the config file and environment
//! variables that choose one) through key create / rotate / rewrap / disable / enable /
//! schedule-deletion / cancel, `put`/`get` round trips and ranges, each wrong-state use answered
//! with its error; and a multipart object whose data key comes from each provider. PKCS#11 runs on
//! the token of `SSEKIT_PKCS11_*`, KMS on `SSEKIT_KMS_ENDPOINT` (scripts/test.sh sets both up); for
//! KMS the states that moto does not enforce are answered by the tests' proxy with KMS's own error
//! responses.

use std::path::Path;
use std::process::{Command, Output};

use ssekit::keys::{EncryptionContext, KeyProvider, KeySpec};
use ssekit::object::{self, ObjectMeta, PartEntry, SseMode};

#[path = "../hsm/tests/common/kms.rs"]
mod kms;

fn ssekit(home: &Path, provider_env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    c.env_remove("SSEKIT_BACKEND");
    // Only what the test gives: nothing from the environment scripts/test.sh set up.
    for v in [
        "SSEKIT_PROVIDER",
        "SSEKIT_PKCS11_MODULE",
        "SSEKIT_PKCS11_TOKEN_LABEL",
        "SSEKIT_PKCS11_PIN",
        "SSEKIT_PKCS11_PIN_FILE",
        "SSEKIT_KMS_ENDPOINT",
    ] {
        c.env_remove(v);
    }
    c.env("SSEKIT_HOME", home).current_dir(home);
    for (k, v) in provider_env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// A fresh home directory (0700, as the keyring requires).
fn home() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::DirBuilderExt;
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("home");
    std::fs::DirBuilder::new().mode(0o700).create(&h).unwrap();
    (d, h)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// The same script on `provider`; `inject` makes the KMS answer a state the server does not enforce.
fn script(provider: &str, env: &[(&str, String)], inject: &dyn Fn(Option<&str>)) {
    let (_d, home) = home();
    let h = home.as_path();
    let run = |args: &[&str]| ssekit(h, env, args);
    let id = format!("cli-{provider}-{}", std::process::id());
    let out = ok(&run(&[
        "key",
        "create",
        "--id",
        &id,
        "--description",
        "cli test",
    ]));
    assert!(out.contains(&format!("id:          {id}")), "{out}");
    assert!(ok(&run(&["key", "list"])).contains(&id));

    // Round trips and ranges.
    for (n, size) in [0usize, 1, 16_385, 300_000].into_iter().enumerate() {
        let plain = data(size, n as u8);
        std::fs::write(h.join("in"), &plain).unwrap();
        ok(&run(&[
            "put",
            "in",
            "obj",
            "--key-id",
            &id,
            "--context",
            "bucket=b",
        ]));
        ok(&run(&["get", "obj", "out", "--context", "bucket=b"]));
        assert_eq!(std::fs::read(h.join("out")).unwrap(), plain, "size {size}");
        if size > 20_000 {
            ok(&run(&["get", "obj", "out", "--range", "16000-20000"]));
            assert_eq!(
                std::fs::read(h.join("out")).unwrap(),
                &plain[16_000..=20_000]
            );
        }
        let meta = ok(&run(&["inspect", "obj", "--json"]));
        assert!(
            meta.contains(&format!("\"provider\": \"{provider}\"")),
            "{meta}"
        );
    }
    // The default key, made on first use.
    ok(&run(&["put", "in", "default.obj"]));
    ok(&run(&["get", "default.obj", "out"]));
    assert_eq!(std::fs::read(h.join("out")).unwrap(), data(300_000, 3));

    // Rotation and rewrap.
    std::fs::copy(h.join("obj"), h.join("old.obj")).unwrap();
    assert!(ok(&run(&["key", "rotate", &id])).contains("new wraps use version 2"));
    let rewrapped = ok(&run(&["rewrap", "old.obj"]));
    assert!(rewrapped.contains("version 1 -> 2"), "{rewrapped}");
    ok(&run(&["get", "old.obj", "out"]));
    assert_eq!(std::fs::read(h.join("out")).unwrap(), data(300_000, 3));

    // Disabled: refused both ways, then back.
    ok(&run(&["key", "disable", &id]));
    inject(Some("DisabledException"));
    fails(
        &run(&["put", "in", "x.obj", "--key-id", &id]),
        "is disabled",
    );
    fails(&run(&["get", "obj", "out"]), "is disabled");
    inject(None);
    ok(&run(&["key", "enable", &id]));
    ok(&run(&["get", "obj", "out"]));

    // Deletion window: checked, scheduled, refused, cancelled (comes back disabled).
    fails(
        &run(&["key", "schedule-deletion", &id, "--days", "6"]),
        "use 7 to 30 days",
    );
    fails(
        &run(&["key", "schedule-deletion", &id, "--days", "31"]),
        "use 7 to 30 days",
    );
    assert!(
        ok(&run(&["key", "schedule-deletion", &id, "--days", "7"]))
            .contains("scheduled for deletion at")
    );
    inject(Some("KMSInvalidStateException"));
    fails(&run(&["get", "obj", "out"]), "pending deletion");
    fails(
        &run(&["put", "in", "x.obj", "--key-id", &id]),
        "pending deletion",
    );
    inject(None);
    ok(&run(&["key", "cancel-deletion", &id]));
    assert!(ok(&run(&["key", "describe", &id])).contains("Disabled"));
    ok(&run(&["key", "enable", &id]));
    ok(&run(&["get", "obj", "out"]));
    assert!(!h.join("x.obj").exists(), "no partial output left behind");
}

fn pkcs11_env() -> Vec<(&'static str, String)> {
    let var = |n: &str| {
        std::env::var(n).unwrap_or_else(|_| {
            panic!("{n} is not set: run scripts/test.sh (it creates a SoftHSM2 token)")
        })
    };
    vec![
        ("SSEKIT_PROVIDER", "pkcs11".into()),
        ("SSEKIT_PKCS11_MODULE", var("SSEKIT_PKCS11_MODULE")),
        (
            "SSEKIT_PKCS11_TOKEN_LABEL",
            var("SSEKIT_PKCS11_TOKEN_LABEL"),
        ),
        ("SSEKIT_PKCS11_PIN", var("SSEKIT_PKCS11_PIN")),
    ]
}

#[test]
fn local_provider() {
    script("local", &[("SSEKIT_PROVIDER", "local".into())], &|_| {});
}

#[test]
fn pkcs11_provider() {
    script("pkcs11", &pkcs11_env(), &|_| {});
}

#[test]
fn kms_provider() {
    let proxy = kms::Proxy::start(&kms::endpoint());
    let env = [
        ("SSEKIT_PROVIDER", "kms".to_owned()),
        ("SSEKIT_KMS_ENDPOINT", proxy.endpoint()),
    ];
    script("kms", &env, &|code| {
        proxy.clear();
        if let Some(code) = code {
            for call in ["GenerateDataKey", "Decrypt"] {
                proxy.inject(call, code, u64::MAX);
            }
        }
    });
}

#[test]
fn flags_and_the_config_file_choose_the_provider() {
    let (_d, home) = home();
    let h = home.as_path();
    let (none, pk) = (Vec::new(), pkcs11_env());
    // PKCS#11 settings from the config file and flags; the PIN from a file.
    std::fs::write(h.join("pin"), format!("{}\n", pk[3].1)).unwrap();
    std::fs::write(
        h.join("config.json"),
        format!(
            r#"{{"provider": "pkcs11", "pkcs11": {{"module": "{}", "pin_file": "pin"}}}}"#,
            pk[1].1
        ),
    )
    .unwrap();
    let id = format!("cfg-{}", std::process::id());
    let label = ["--pkcs11-token-label", &pk[2].1];
    let create = ["key", "create", "--id", &id];
    ok(&ssekit(h, &none, &[&label[..], &create[..]].concat()));
    std::fs::write(h.join("in"), b"configured").unwrap();
    ok(&ssekit(
        h,
        &none,
        &[&label[..], &["put", "in", "obj", "--key-id", &id]].concat(),
    ));
    assert!(ok(&ssekit(h, &none, &["inspect", "obj"])).contains("pkcs11"));
    // `get` follows the object's provider; a contradicting --provider is refused.
    ok(&ssekit(
        h,
        &none,
        &[&label[..], &["get", "obj", "out"]].concat(),
    ));
    assert_eq!(std::fs::read(h.join("out")).unwrap(), b"configured");
    fails(
        &ssekit(h, &none, &["get", "obj", "out", "--provider", "local"]),
        "wrapped by provider `pkcs11`, not `local`",
    );
    // The flag beats the file; the file is checked.
    assert!(ok(&ssekit(h, &none, &["key", "list", "--provider", "local"])).contains("no keys"));
    fails(&ssekit(h, &none, &["key", "list"]), "token label");
    fails(
        &ssekit(h, &none, &["key", "list", "--provider", "hsm"]),
        "unknown provider `hsm`",
    );
    std::fs::write(h.join("config.json"), r#"{"provder": "kms"}"#).unwrap();
    fails(
        &ssekit(h, &none, &["key", "list"]),
        "unknown field `provder`",
    );
}

#[test]
fn multipart_with_each_providers_data_key() {
    let home = tempfile::tempdir().unwrap();
    let mut providers: Vec<Box<dyn KeyProvider>> = vec![Box::new(
        ssekit::keys::LocalKeyring::open(home.path().join("local")).unwrap(),
    )];
    let pk = pkcs11_env();
    providers.push(Box::new(
        ssekit_hsm::Pkcs11Provider::open(&ssekit_hsm::Pkcs11Config {
            module: pk[1].1.clone().into(),
            token_label: pk[2].1.clone(),
            pin: pk[3].1.clone().into(),
            home: home.path().join("pkcs11"),
            pool_size: 4,
            binding: None,
        })
        .unwrap(),
    ));
    providers.push(Box::new(
        ssekit_hsm::KmsProvider::new(&kms::config(&kms::endpoint())).unwrap(),
    ));
    for p in &providers {
        let id = format!("mp-{}-{}", p.name(), std::process::id());
        p.create_key(&KeySpec {
            id: Some(id.clone()),
            ..KeySpec::default()
        })
        .unwrap();
        let ctx = EncryptionContext::from_pairs([("bucket", "b"), ("key", "big")]).unwrap();
        let (dek, wrapped) = p.generate_data_key(&id, &ctx).unwrap();
        let parts = [data(40_000, 1), data(16_384, 2), data(5, 3)];
        // Parts sealed in reverse order, each on its own.
        let mut sealed: Vec<Vec<u8>> = (0..3)
            .rev()
            .map(|i| object::seal_part(&dek, i as u32 + 1, &parts[i]).unwrap())
            .collect();
        sealed.reverse();
        let table: Vec<PartEntry> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartEntry::of_message(i as u32 + 1, p.len() as u64, &sealed[i]).unwrap())
            .collect();
        // Completed: the part table authenticated under the data key.
        let mut meta = ObjectMeta::new(SseMode::SseKms, ctx.clone(), vec![wrapped.clone()]);
        meta.size = table.iter().map(|p| p.size).sum();
        meta.parts = table;
        meta.authenticate(&dek).unwrap();
        // A reader with only the wrapped key gets it back from the provider.
        let dek2 = p.unwrap(&wrapped, &ctx).unwrap();
        assert_eq!(
            meta.verify(&dek2).unwrap().open(&sealed.concat()).unwrap(),
            parts.concat(),
            "{}",
            p.name()
        );
    }
}

#[test]
fn kms_without_credentials_or_server_says_so_in_one_line() {
    let (_d, home) = home();
    let run = |creds: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", &home)
            .args(["--home"])
            .arg(&home)
            .args([
                "key",
                "list",
                "--provider",
                "kms",
                "--kms-region",
                "us-east-1",
            ])
            // Nothing listens on the discard port.
            .args(["--kms-endpoint", "http://127.0.0.1:9"]);
        if creds {
            c.env("AWS_ACCESS_KEY_ID", "x")
                .env("AWS_SECRET_ACCESS_KEY", "y");
        }
        c.output().unwrap()
    };
    fails(&run(false), "kms:ListAliases failed: no AWS credentials");
    fails(
        &run(true),
        "the key service is unavailable (could not reach the endpoint: Connection refused",
    );
}
