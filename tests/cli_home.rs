//! The home directory: never the working directory, created private, and refused (one line, what to
//! change) when anyone but the user could have written it or a module it names.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output};

/// `ssekit` with no home, provider or module from the test's own environment, run in `cwd` with
/// `HOME` set to `home`.
fn bin(cwd: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssekit"));
    for v in [
        "SSEKIT_BACKEND",
        "SSEKIT_HOME",
        "SSEKIT_ROOT_KEY_FILE",
        "SSEKIT_PROVIDER",
        "SSEKIT_PKCS11_MODULE",
        "SSEKIT_PKCS11_TOKEN_LABEL",
        "SSEKIT_PKCS11_PIN_FILE",
        "XDG_DATA_HOME",
    ] {
        c.env_remove(v);
    }
    c.env("SSEKIT_PKCS11_PIN", "1234")
        .env("HOME", home)
        .current_dir(cwd);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A refusal: exit 1, nothing on stdout, one line on stderr holding each of `parts`.
fn refused(out: &Output, parts: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "{err}");
    for p in parts {
        assert!(err.contains(p), "`{p}` not in: {err}");
    }
}

#[test]
fn a_planted_dot_ssekit_in_the_working_directory_is_not_loaded() {
    let d = tempfile::tempdir().unwrap();
    // A world-writable directory where someone else left a home naming their own module.
    let shared = d.path().join("shared");
    std::fs::create_dir_all(shared.join(".ssekit")).unwrap();
    chmod(&shared, 0o777);
    let evil = shared.join("evil.so");
    std::fs::write(
        shared.join(".ssekit/config.json"),
        format!(
            r#"{{"provider": "pkcs11", "pkcs11": {{"module": "{}", "token_label": "t"}}}}"#,
            evil.display()
        ),
    )
    .unwrap();
    let user = d.path().join("user");
    std::fs::create_dir(&user).unwrap();
    let out = bin(&shared, &user).args(["key", "list"]).output().unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("no keys"),
        "{}",
        text(&out.stdout)
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    // The default home was made under ~/.local/share, private, with nothing set up beforehand.
    let home = user.join(".local/share/ssekit");
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("keys")), 0o700);
    assert_eq!(mode(&home.join("root.key")), 0o600);
    assert!(!shared.join(".ssekit/keys").exists());

    // $XDG_DATA_HOME comes first when it is absolute.
    let data = d.path().join("data");
    let out = bin(&shared, &user)
        .env("XDG_DATA_HOME", &data)
        .args(["key", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(mode(&data.join("ssekit/keys")), 0o700);
}

#[test]
fn a_home_others_can_write_is_refused_with_what_to_change() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let h = home.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--home", h];
        all.extend(args);
        bin(d.path(), d.path()).args(all).output().unwrap()
    };
    let ok = run(&["key", "create", "--id", "k"]);
    assert!(ok.status.success(), "stderr: {}", text(&ok.stderr));
    let keys = home.join("keys");
    let keys_s = keys.display().to_string();

    chmod(&keys, 0o777);
    refused(
        &run(&["key", "list"]),
        &[
            &keys_s,
            "writable by group or others",
            &format!("chmod go-w {keys_s}"),
        ],
    );
    chmod(&keys, 0o700);

    let record = keys.join("k.key");
    chmod(&record, 0o620);
    refused(
        &run(&["key", "list"]),
        &[&format!("chmod go-w {}", record.display())],
    );
    chmod(&record, 0o600);

    let config = home.join("config.json");
    std::fs::write(&config, "{}").unwrap();
    chmod(&config, 0o666);
    refused(
        &run(&["key", "list"]),
        &[&format!("chmod go-w {}", config.display())],
    );
    chmod(&config, 0o600);
    assert!(run(&["key", "list"]).status.success());

    // A symbolic link inside the home is never followed.
    let link = keys.join("planted.key");
    symlink("/etc/passwd", &link).unwrap();
    refused(
        &run(&["key", "list"]),
        &[&link.display().to_string(), "symbolic link"],
    );
    std::fs::remove_file(&link).unwrap();

    // A directory above the home that others can write (without the sticky bit) is refused:
    // they could move the home away and put theirs in its place.
    let above = d.path().join("above");
    std::fs::create_dir(&above).unwrap();
    let inner = above.join("home");
    let inner_s = inner.to_str().unwrap();
    assert!(
        bin(d.path(), d.path())
            .args(["--home", inner_s, "key", "list"])
            .output()
            .unwrap()
            .status
            .success()
    );
    chmod(&above, 0o777);
    refused(
        &bin(d.path(), d.path())
            .args(["--home", inner_s, "key", "list"])
            .output()
            .unwrap(),
        &[&format!("chmod go-w {}", above.display())],
    );
    // With the sticky bit (as /tmp has) nobody else can rename what is in it.
    chmod(&above, 0o1777);
    let out = bin(d.path(), d.path())
        .args(["--home", inner_s, "key", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}

#[test]
fn a_pkcs11_module_must_be_absolute_and_unwritable_by_others() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let pkcs11 = |extra: &[&str]| {
        let mut args = vec!["--provider", "pkcs11", "--pkcs11-token-label", "t"];
        args.extend(extra);
        args.extend(["key", "list"]);
        bin(dir, dir).args(args).output().unwrap()
    };
    std::fs::write(dir.join("mod.so"), b"not a real module").unwrap();
    chmod(&dir.join("mod.so"), 0o644);

    refused(
        &pkcs11(&["--pkcs11-module", "mod.so"]),
        &["`mod.so` is not an absolute path"],
    );
    let out = bin(dir, dir)
        .env("SSEKIT_PKCS11_MODULE", "./mod.so")
        .args(["--provider", "pkcs11", "key", "list"])
        .output()
        .unwrap();
    refused(&out, &["`./mod.so` is not an absolute path"]);
    // From a home's config, too (no longer taken relative to the home).
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o700);
    std::fs::write(
        home.join("config.json"),
        r#"{"provider": "pkcs11", "pkcs11": {"module": "mod.so", "token_label": "t"}}"#,
    )
    .unwrap();
    chmod(&home.join("config.json"), 0o600);
    let out = bin(dir, dir)
        .args(["--home", home.to_str().unwrap(), "key", "list"])
        .output()
        .unwrap();
    refused(&out, &["`mod.so` is not an absolute path"]);

    let module = dir.join("mod.so");
    chmod(&module, 0o664);
    let m = module.display().to_string();
    refused(
        &pkcs11(&["--pkcs11-module", &m]),
        &[
            &m,
            "writable by group or others",
            &format!("chmod go-w {m}"),
        ],
    );
    // Reached through a link: the file it points to is what is checked.
    let link = dir.join("link.so");
    symlink(&module, &link).unwrap();
    refused(
        &pkcs11(&["--pkcs11-module", link.to_str().unwrap()]),
        &[&format!("chmod go-w {m}")],
    );
}
