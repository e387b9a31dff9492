//! The engine handle: key provider, data-key cache, audit log and the S3 layer's settings, set up
//! once by a builder and shared by every server thread; and key management through it.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;

use ::ssekit_engine::audit::{AuditLog, Audited, CallbackSink, ChainPosition, FileOptions};
use ::ssekit_engine::keys::{
    CachePolicy, CachingProvider, KeyInfo, KeyProvider, KeySpec, KeyState, LocalKeyring,
    SystemClock,
};
use ::ssekit_engine::sse::{SseConfig, SseEngine};
use ssekit_hsm::{KmsConfig, KmsProvider, Pkcs11Config, Pkcs11Provider};
use zeroize::Zeroizing;

use crate::error::{Fail, boundary, guard, ssekit_result};
use crate::ptr::{self, AuditCallback};
use crate::request::ssekit_bytes;

enum ProviderChoice {
    Local {
        dir: PathBuf,
        root_key_file: Option<PathBuf>,
    },
    Pkcs11 {
        module: PathBuf,
        token_label: String,
        pin: Zeroizing<String>,
        records: PathBuf,
    },
    Kms {
        endpoint: Option<String>,
        region: Option<String>,
    },
}

enum AuditChoice {
    None,
    File(PathBuf),
    Callback(AuditCallback, ChainPosition),
}

/// Collects an engine's settings; `ssekit_engine_builder_build` makes the engine. Not shared
/// between threads.
pub struct ssekit_engine_builder {
    provider: Option<ProviderChoice>,
    cache: Option<bool>,
    config: SseConfig,
    audit: AuditChoice,
}

/// The engine: shared by every request thread of a server (all its functions may be called from
/// any number of threads at once). Free it with `ssekit_engine_free` once no call is using it.
pub struct ssekit_engine {
    pub(crate) sse: SseEngine,
    /// The provider as key management calls it (under the audit log when there is one).
    admin: Arc<dyn KeyProvider>,
}

/// A signature for the audit callback: called with each audit line (UTF-8 JSON, no newline; not
/// NUL-terminated) from whichever thread used a key, possibly several at once, while the library
/// holds the log's lock (lines arrive in chain order). Return 0 once the line is delivered; any
/// other value fails the key use (the key is not used; a key-management change is not made) and
/// the chain does not move on: the next line takes the refused line's place (its seq and prev). `userdata` is what `ssekit_engine_builder_audit_callback` was given. The callback must not
/// call back into the same engine (the log's lock is held: it would wait for itself).
pub type ssekit_audit_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, line: *const c_char, line_len: usize) -> i32,
>;

/// Starts an engine's settings: no provider yet, the data-key cache on for PKCS#11 and KMS and off
/// for the local keyring, region `us-east-1`, account `000000000000`, silent policies allowing, no
/// audit log. On success `*builder_out` is a new builder: hand it to `ssekit_engine_builder_build`
/// (which frees it) or free it with `ssekit_engine_builder_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_new(
    builder_out: *mut *mut ssekit_engine_builder,
) -> ssekit_result {
    boundary(|| {
        ptr::out(builder_out, "builder_out")?.write(ptr::into_raw(ssekit_engine_builder {
            provider: None,
            cache: None,
            config: SseConfig::default(),
            audit: AuditChoice::None,
        }));
        Ok(())
    })
}

/// Keys in the local keyring in directory `dir` (created 0700; refused if others can write it),
/// its root secret in `root_key_file` (which must exist, 32 bytes, mode 0600) or, when that is NULL,
/// `dir/root.key` (generated on first use). Nothing is read from the environment.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_local_keyring(
    builder: *mut ssekit_engine_builder,
    dir: *const c_char,
    dir_len: usize,
    root_key_file: *const c_char,
    root_key_file_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let dir = PathBuf::from(ptr::text(dir, dir_len, "dir")?);
        let root_key_file =
            ptr::opt_text(root_key_file, root_key_file_len, "root_key_file")?.map(PathBuf::from);
        b.provider = Some(ProviderChoice::Local { dir, root_key_file });
        Ok(())
    })
}

/// Keys on an HSM through the PKCS#11 module at `module` (an absolute path to a file only its
/// owner or root can write: loading it runs its code), logging in to the token labelled
/// `token_label` with `pin` (copied into memory that is zeroed when the engine is freed). The key
/// records go in `records_dir`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_pkcs11(
    builder: *mut ssekit_engine_builder,
    module: *const c_char,
    module_len: usize,
    token_label: *const c_char,
    token_label_len: usize,
    pin: *const c_char,
    pin_len: usize,
    records_dir: *const c_char,
    records_dir_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let choice = ProviderChoice::Pkcs11 {
            module: PathBuf::from(ptr::text(module, module_len, "module")?),
            token_label: ptr::text(token_label, token_label_len, "token_label")?.to_owned(),
            pin: Zeroizing::new(ptr::text(pin, pin_len, "pin")?.to_owned()),
            records: PathBuf::from(ptr::text(records_dir, records_dir_len, "records_dir")?),
        };
        b.provider = Some(choice);
        Ok(())
    })
}

/// Keys in AWS KMS, or any server speaking its API at `endpoint` (NULL: AWS's endpoint for the
/// region), in `region` (NULL: `AWS_REGION` or the AWS profile). Credentials come from the AWS
/// SDK's standard chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the profile, instance roles).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_kms(
    builder: *mut ssekit_engine_builder,
    endpoint: *const c_char,
    endpoint_len: usize,
    region: *const c_char,
    region_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let endpoint = ptr::opt_text(endpoint, endpoint_len, "endpoint")?.map(str::to_owned);
        let region = ptr::opt_text(region, region_len, "region")?.map(str::to_owned);
        b.provider = Some(ProviderChoice::Kms { endpoint, region });
        Ok(())
    })
}

/// Turns the data-key cache (60 s, 10,000 uses per entry) on or off.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_cache(
    builder: *mut ssekit_engine_builder,
    enabled: bool,
) -> ssekit_result {
    boundary(|| {
        ptr::get_mut(builder, "builder")?.cache = Some(enabled);
        Ok(())
    })
}

/// The region and account in the KMS key ARNs the engine echoes and accepts for keys that have no
/// ARN of their own (the local keyring's, PKCS#11's).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_arn(
    builder: *mut ssekit_engine_builder,
    region: *const c_char,
    region_len: usize,
    account: *const c_char,
    account_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let region = ptr::text(region, region_len, "region")?;
        let account = ptr::text(account, account_len, "account")?;
        if region.is_empty() || account.is_empty() || (region.to_owned() + account).contains(':') {
            return Err(Fail::invalid(
                "a region and an account, non-empty, without ':'",
            ));
        }
        b.config.region = region.to_owned();
        b.config.account = account.to_owned();
        Ok(())
    })
}

/// What a bucket policy's silence means: `true` (the default) lets the server's own authorization
/// stand, `false` denies what no statement allows.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_default_allow(
    builder: *mut ssekit_engine_builder,
    allow: bool,
) -> ssekit_result {
    boundary(|| {
        ptr::get_mut(builder, "builder")?.config.default_allow = allow;
        Ok(())
    })
}

/// Appends the audit log of every key use to the file at `path` (created 0600, fsynced per line,
/// rotated at 64 MiB, shared safely by several processes; check it with `ssekit audit verify`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_audit_file(
    builder: *mut ssekit_engine_builder,
    path: *const c_char,
    path_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        b.audit = AuditChoice::File(PathBuf::from(ptr::text(path, path_len, "path")?));
        Ok(())
    })
}

/// Hands every audit line to `callback` (see `ssekit_audit_callback`) instead of a file, with
/// `userdata`, which must stay valid until the engine is freed and be usable from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_audit_callback(
    builder: *mut ssekit_engine_builder,
    callback: ssekit_audit_callback,
    userdata: *mut c_void,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let f = callback.ok_or_else(|| Fail::null("callback"))?;
        b.audit = AuditChoice::Callback(AuditCallback::new(f, userdata), ChainPosition::START);
        Ok(())
    })
}

/// Makes the audit callback continue a chain its receiver already holds (after a restart): the
/// first line gets `next_seq` and links to `prev_hash` (the 32-byte hash of the receiver's last
/// line, its `hash` field decoded from hex). Without this a callback's chain starts at seq 0. Call
/// it after `ssekit_engine_builder_audit_callback`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_audit_continue(
    builder: *mut ssekit_engine_builder,
    next_seq: u64,
    prev_hash: *const u8,
    prev_hash_len: usize,
) -> ssekit_result {
    boundary(|| {
        let b = ptr::get_mut(builder, "builder")?;
        let prev: [u8; 32] = ptr::bytes(prev_hash, prev_hash_len, "prev_hash")?
            .try_into()
            .map_err(|_| Fail::invalid("prev_hash must be 32 bytes"))?;
        match &mut b.audit {
            AuditChoice::Callback(_, pos) => {
                *pos = ChainPosition {
                    seq: next_seq,
                    prev,
                };
                Ok(())
            }
            _ => Err(Fail::state(
                "set the audit callback first: a file continues its own chain",
            )),
        }
    })
}

/// Makes the engine: opens the provider (the keyring, the HSM session pool and login, the KMS
/// client) and the audit log. The builder is freed whatever the outcome: do not use it again. On
/// success `*engine_out` is a new engine the caller frees with `ssekit_engine_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_build(
    builder: *mut ssekit_engine_builder,
    engine_out: *mut *mut ssekit_engine,
) -> ssekit_result {
    boundary(|| {
        if builder.is_null() {
            return Err(Fail::null("builder"));
        }
        // SAFETY (in ptr::take): the builder was made by ssekit_engine_builder_new and is consumed here.
        let b = ptr::take(builder);
        let out = ptr::out(engine_out, "engine_out")?;
        out.write(ptr::into_raw(build(b)?));
        Ok(())
    })
}

fn build(b: ssekit_engine_builder) -> Result<ssekit_engine, Fail> {
    let choice = b.provider.ok_or_else(|| {
        Fail::state("choose a key provider first (local keyring, PKCS#11 or KMS)")
    })?;
    let (name, provider): (&str, Box<dyn KeyProvider>) = match choice {
        ProviderChoice::Local { dir, root_key_file } => (
            "local",
            Box::new(LocalKeyring::open_with(
                &dir,
                root_key_file.as_deref(),
                Arc::new(SystemClock),
            )?),
        ),
        ProviderChoice::Pkcs11 {
            module,
            token_label,
            pin,
            records,
        } => (
            "pkcs11",
            Box::new(Pkcs11Provider::open(&Pkcs11Config {
                module,
                token_label,
                pin,
                home: records,
                pool_size: 8,
                binding: None,
            })?),
        ),
        ProviderChoice::Kms { endpoint, region } => (
            "kms",
            Box::new(KmsProvider::new(&KmsConfig {
                endpoint,
                region,
                ..KmsConfig::default()
            })?),
        ),
    };
    let cache = b
        .cache
        .unwrap_or_else(|| CachePolicy::default_for(name).is_some());
    let provider: Arc<dyn KeyProvider> = if cache {
        Arc::new(CachingProvider::new(provider, CachePolicy::default()))
    } else {
        Arc::from(provider)
    };
    let log = match b.audit {
        AuditChoice::None => None,
        AuditChoice::File(path) => Some(
            AuditLog::open_file(&path, FileOptions::default()).map_err(|e| {
                Fail::new(
                    ssekit_result::SSEKIT_RESULT_AUDIT,
                    format!("audit log {}: {e}", path.display()),
                )
            })?,
        ),
        AuditChoice::Callback(cb, pos) => Some(AuditLog::new(
            CallbackSink::continuing(move |line| cb.call(line), pos),
            Arc::new(SystemClock),
        )),
    };
    let mut sse = SseEngine::with_config(Arc::clone(&provider), Arc::clone(&provider), b.config);
    let admin: Arc<dyn KeyProvider> = match log {
        None => provider,
        Some(log) => {
            sse = sse.with_audit(Arc::clone(&log));
            Arc::new(Audited::new(provider, log))
        }
    };
    Ok(ssekit_engine { sse, admin })
}

/// Frees a builder that was not built (NULL is ignored).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_builder_free(builder: *mut ssekit_engine_builder) {
    guard((), || ptr::free(builder));
}

/// Frees the engine (NULL is ignored). Every plan, sealer and opener made from it must be freed
/// first, and no call may be using it.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_free(engine: *mut ssekit_engine) {
    guard((), || ptr::free(engine));
}

/// Drops every cached S3 Bucket Key (after disabling a KMS key, say; otherwise they serve until
/// they expire, at most 5 minutes, as S3's do).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_clear_bucket_keys(engine: *const ssekit_engine) -> ssekit_result {
    boundary(|| {
        ptr::get(engine, "engine")?.sse.clear_bucket_keys();
        Ok(())
    })
}

fn info_json(i: &KeyInfo) -> Vec<u8> {
    let (state, delete_at) = match i.state {
        KeyState::PendingDeletion { delete_at } => ("PendingDeletion", Some(delete_at)),
        s => (
            match s {
                KeyState::Enabled => "Enabled",
                KeyState::Disabled => "Disabled",
                _ => "Destroyed",
            },
            None,
        ),
    };
    serde_json::json!({
        "id": i.id,
        "description": i.description,
        "state": state,
        "delete_at": delete_at,
        "current_version": i.current_version,
        "created": i.created,
        "rotated": i.rotated,
        "rotation_period_days": i.rotation_period_days,
    })
    .to_string()
    .into_bytes()
}

/// Runs a key-management call and hands back the key's description as JSON
/// (`{"id","description","state","delete_at","current_version","created","rotated",
/// "rotation_period_days"}`) in `*info_out`, a new byte string freed with `ssekit_bytes_free`.
fn manage(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    info_out: *mut *mut ssekit_bytes,
    f: impl FnOnce(&dyn KeyProvider, &str) -> Result<KeyInfo, ::ssekit_engine::keys::KeyError>,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(info_out, "info_out")?;
        let e = ptr::get(engine, "engine")?;
        let id = ptr::text(key_id, key_id_len, "key_id")?;
        let info = f(e.admin.as_ref(), id)?;
        out.write(ssekit_bytes::new(info_json(&info)));
        Ok(())
    })
}

/// Creates a key (KEK) with id `key_id` (NULL: the provider picks one), `description` (may be
/// NULL) and automatic rotation every `rotation_days` days (0: none). Its description, as JSON,
/// goes to `*info_out` (free it with `ssekit_bytes_free`). `SSEKIT_RESULT_KEY_EXISTS` if taken.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_create_key(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    description: *const c_char,
    description_len: usize,
    rotation_days: u32,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(info_out, "info_out")?;
        let e = ptr::get(engine, "engine")?;
        let spec = KeySpec {
            id: ptr::opt_text(key_id, key_id_len, "key_id")?.map(str::to_owned),
            description: ptr::opt_text(description, description_len, "description")?
                .unwrap_or("")
                .to_owned(),
            rotation_period_days: (rotation_days > 0).then_some(rotation_days),
        };
        let info = e.admin.create_key(&spec)?;
        out.write(ssekit_bytes::new(info_json(&info)));
        Ok(())
    })
}

/// Describes key `key_id` (JSON in `*info_out`, as `ssekit_engine_create_key`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_describe_key(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    manage(engine, key_id, key_id_len, info_out, |p, id| p.describe(id))
}

/// Makes a new version of key `key_id` the one new wraps use (old versions keep unwrapping).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_rotate_key(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    manage(engine, key_id, key_id_len, info_out, |p, id| p.rotate(id))
}

/// Enables (`enabled` true) or disables key `key_id`; a disabled key wraps and unwraps nothing
/// (cached bucket keys aside: `ssekit_engine_clear_bucket_keys`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_set_key_enabled(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    enabled: bool,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    manage(engine, key_id, key_id_len, info_out, |p, id| {
        if enabled { p.enable(id) } else { p.disable(id) }
    })
}

/// Schedules key `key_id`'s destruction in `days` days (7..=30); it is unusable from now on.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_schedule_key_deletion(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    days: u32,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    manage(engine, key_id, key_id_len, info_out, |p, id| {
        p.schedule_deletion(id, days)
    })
}

/// Cancels a scheduled deletion; the key comes back disabled, as in KMS.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_cancel_key_deletion(
    engine: *const ssekit_engine,
    key_id: *const c_char,
    key_id_len: usize,
    info_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    manage(engine, key_id, key_id_len, info_out, |p, id| {
        p.cancel_deletion(id)
    })
}

/// Every key, as a JSON array of descriptions, in `*list_out` (free it with `ssekit_bytes_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_list_keys(
    engine: *const ssekit_engine,
    list_out: *mut *mut ssekit_bytes,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(list_out, "list_out")?;
        let e = ptr::get(engine, "engine")?;
        let mut json = b"[".to_vec();
        for (i, k) in e.admin.list()?.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&info_json(k));
        }
        json.push(b']');
        out.write(ssekit_bytes::new(json));
        Ok(())
    })
}
