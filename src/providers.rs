//! Which key provider a command uses and how it is configured: flags first, then environment
//! variables, then `$SSEKIT_HOME/config.json`, then the defaults (the local keyring; the data-key
//! cache on for the HSM and KMS providers, off for the local keyring). Relative paths in the config
//! file (the PIN file) are taken from the home; the PKCS#11 module must be an absolute path.
//!
//! Nothing is read from the home until it passed [`home::check_home`]: its config can name code to
//! load and a KMS endpoint to send data keys to, so it must be the user's alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use ssekit::engine::audit::{AuditLog, Audited, FileOptions};
use ssekit::keys::{CachePolicy, CachingProvider, KeyProvider, LocalKeyring, home};
use ssekit_hsm::{KmsConfig, KmsProvider, Pkcs11Config, Pkcs11Provider};
use zeroize::Zeroizing;

/// The provider settings a command line can give.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ProviderFlags {
    /// Key provider: local (the keyring in the home directory), pkcs11 (an HSM) or kms
    /// (default: $SSEKIT_PROVIDER, then config.json, then local; `get` and `rewrap` follow each
    /// object's wrapped key).
    #[arg(long, global = true, value_name = "NAME")]
    pub provider: Option<String>,
    /// PKCS#11 module, an absolute path (default: $SSEKIT_PKCS11_MODULE).
    #[arg(long, global = true, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// PKCS#11 token label (default: $SSEKIT_PKCS11_TOKEN_LABEL).
    #[arg(long, global = true, value_name = "LABEL")]
    pub pkcs11_token_label: Option<String>,
    /// File holding the PKCS#11 user PIN (default: $SSEKIT_PKCS11_PIN, then
    /// $SSEKIT_PKCS11_PIN_FILE). The PIN itself is never a flag: flags show in `ps`.
    #[arg(long, global = true, value_name = "PATH")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// KMS endpoint URL (default: $SSEKIT_KMS_ENDPOINT, else AWS's for the region).
    #[arg(long, global = true, value_name = "URL")]
    pub kms_endpoint: Option<String>,
    /// KMS region (default: $AWS_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub kms_region: Option<String>,
    /// Turn the data-key cache on or off (default: on for pkcs11 and kms, off for local).
    #[arg(long, global = true, value_name = "on|off")]
    pub cache: Option<String>,
    /// Append the audit log of every key use to FILE (default: audit.log in the home). Check it
    /// with `ssekit audit verify`.
    #[arg(long, global = true, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// `$SSEKIT_HOME/config.json`.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    provider: Option<String>,
    cache: Option<bool>,
    #[serde(default)]
    pkcs11: FilePkcs11,
    #[serde(default)]
    kms: FileKms,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FilePkcs11 {
    module: Option<PathBuf>,
    token_label: Option<String>,
    pin_file: Option<PathBuf>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileKms {
    endpoint: Option<String>,
    region: Option<String>,
}

/// A provider as opened: under the audit log, and the same provider without it.
#[derive(Clone)]
struct Opened {
    audited: Arc<dyn KeyProvider>,
    raw: Arc<dyn KeyProvider>,
}

/// The providers' settings, resolved; providers are opened when a command needs one.
pub struct Providers {
    home: PathBuf,
    flags: ProviderFlags,
    file: FileConfig,
    /// Each provider is opened once (a KMS client, a PKCS#11 login), however many objects use it.
    /// Each is kept twice: under the audit log (for the CLI's own calls) and without it (for the S3
    /// layer, which records its calls itself, with their principal and the uses no provider sees).
    opened: Mutex<HashMap<String, Opened>>,
    /// The audit log, opened with the first provider.
    audit: Mutex<Option<Arc<AuditLog>>>,
}

const NAMES: &str = "local, pkcs11 or kms";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Providers {
    /// Checks the home (when it exists) and reads its `config.json` if there is one.
    ///
    /// # Errors
    ///
    /// A home others could have written, an unreadable or malformed config file, an unknown
    /// `--cache` value.
    pub fn new(home: PathBuf, flags: ProviderFlags) -> Result<Self, String> {
        let path = home.join("config.json");
        // A home that does not exist yet has no config; the keyring creates it (0700) and checks it.
        let trusted = home::check_home(&home).map_err(|e| format!("refusing home: {e}"))?;
        let read = if trusted {
            std::fs::read(&path)
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        };
        let file = match read {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if let Some(c) = &flags.cache
            && !matches!(c.as_str(), "on" | "off")
        {
            return Err(format!("--cache `{c}`: use on or off"));
        }
        Ok(Providers {
            home,
            flags,
            file,
            opened: Mutex::default(),
            audit: Mutex::default(),
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The provider new keys and new objects go to.
    pub fn chosen(&self) -> String {
        self.flags
            .provider
            .clone()
            .or_else(|| env("SSEKIT_PROVIDER"))
            .or_else(|| self.file.provider.clone())
            .unwrap_or_else(|| "local".into())
    }

    /// The provider to open an object's key with: the one that wrapped it, unless `--provider`
    /// says otherwise (then they must agree).
    pub fn for_wrapped(&self, provider: &str) -> Result<Arc<dyn KeyProvider>, String> {
        self.check_wrapped(provider)?;
        self.open(provider)
    }

    fn check_wrapped(&self, provider: &str) -> Result<(), String> {
        if let Some(p) = &self.flags.provider
            && p != provider
        {
            return Err(format!(
                "the object's data key was wrapped by provider `{provider}`, not `{p}`: drop --provider or use {provider}"
            ));
        }
        Ok(())
    }

    /// Opens the chosen provider.
    pub fn open_chosen(&self) -> Result<Arc<dyn KeyProvider>, String> {
        self.open(&self.chosen())
    }

    /// Provider `name`, under the data-key cache when it is on and under the audit log; opened on
    /// first use.
    pub fn open(&self, name: &str) -> Result<Arc<dyn KeyProvider>, String> {
        Ok(self.opened(name)?.audited)
    }

    /// For the S3 layer: the provider (as [`Providers::for_wrapped`] or the chosen one) without the
    /// audit log, and the log, which the layer records to itself (`SseEngine::with_audit`).
    pub fn for_s3(
        &self,
        wrapped_by: Option<&str>,
    ) -> Result<(Arc<dyn KeyProvider>, Arc<AuditLog>), String> {
        let name = match wrapped_by {
            Some(p) => {
                self.check_wrapped(p)?;
                p.to_owned()
            }
            None => self.chosen(),
        };
        let raw = self.opened(&name)?.raw;
        Ok((raw, self.audit_log()?))
    }

    fn opened(&self, name: &str) -> Result<Opened, String> {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = opened.get(name) {
            return Ok(p.clone());
        }
        let provider: Box<dyn KeyProvider> = match name {
            "local" => Box::new(
                LocalKeyring::open(&self.home)
                    .map_err(|e| format!("keyring {}: {e}", self.home.display()))?,
            ),
            "pkcs11" => Box::new(
                Pkcs11Provider::open(&self.pkcs11_config()?)
                    .map_err(|e| format!("PKCS#11 provider: {e}"))?,
            ),
            "kms" => Box::new(
                KmsProvider::new(&self.kms_config()).map_err(|e| format!("KMS provider: {e}"))?,
            ),
            other => return Err(format!("unknown provider `{other}`: use {NAMES}")),
        };
        let cache = match self.flags.cache.as_deref() {
            Some(c) => c == "on",
            None => self
                .file
                .cache
                .unwrap_or_else(|| CachePolicy::default_for(name).is_some()),
        };
        let provider: Arc<dyn KeyProvider> = if cache {
            Arc::new(CachingProvider::new(provider, CachePolicy::default()))
        } else {
            Arc::from(provider)
        };
        // Every key use is recorded, cache hits included: the log is above the cache.
        let audited: Arc<dyn KeyProvider> = Arc::new(
            Audited::new(Arc::clone(&provider), self.audit_log()?)
                .attributed_to(&crate::sse_cmd::principal()),
        );
        let o = Opened {
            audited,
            raw: provider,
        };
        opened.insert(name.to_owned(), o.clone());
        Ok(o)
    }

    /// The audit log: `--audit-log`, else `audit.log` in the home (created 0600 beside the keys).
    pub fn audit_log(&self) -> Result<Arc<AuditLog>, String> {
        let mut slot = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = &*slot {
            return Ok(Arc::clone(log));
        }
        let path = match &self.flags.audit_log {
            Some(p) => p.clone(),
            None => {
                // The keyring makes the home (0700) when it opens; the log may come first.
                if !self.home.exists() {
                    LocalKeyring::open(&self.home)
                        .map_err(|e| format!("keyring {}: {e}", self.home.display()))?;
                }
                self.home.join("audit.log")
            }
        };
        let log = AuditLog::open_file(&path, FileOptions::default())
            .map_err(|e| format!("audit log {}: {e}", path.display()))?;
        *slot = Some(Arc::clone(&log));
        Ok(log)
    }

    fn pkcs11_config(&self) -> Result<Pkcs11Config, String> {
        let f = &self.file.pkcs11;
        let missing = |what: &str, flag: &str, var: &str, key: &str| {
            format!(
                "the PKCS#11 provider needs its {what}: give {flag}, set {var}, or set pkcs11.{key} in {}",
                self.home.join("config.json").display()
            )
        };
        let module = self
            .flags
            .pkcs11_module
            .clone()
            .or_else(|| env("SSEKIT_PKCS11_MODULE").map(PathBuf::from))
            .or_else(|| f.module.clone())
            .ok_or_else(|| {
                missing(
                    "module",
                    "--pkcs11-module",
                    "SSEKIT_PKCS11_MODULE",
                    "module",
                )
            })?;
        // Loading a module runs its code: only from a file nobody else could have written.
        // Pkcs11Provider::open checks it too, for every caller; here it comes before the other
        // settings are asked for.
        home::check_module(&module).map_err(|e| e.to_string())?;
        let token_label = self
            .flags
            .pkcs11_token_label
            .clone()
            .or_else(|| env("SSEKIT_PKCS11_TOKEN_LABEL"))
            .or_else(|| f.token_label.clone())
            .ok_or_else(|| {
                missing(
                    "token label",
                    "--pkcs11-token-label",
                    "SSEKIT_PKCS11_TOKEN_LABEL",
                    "token_label",
                )
            })?;
        let pin_file = self.flags.pkcs11_pin_file.clone();
        let pin = match (pin_file, std::env::var("SSEKIT_PKCS11_PIN")) {
            (Some(path), _) => read_pin(&path)?,
            (None, Ok(pin)) => Zeroizing::new(pin),
            (None, Err(_)) => match env("SSEKIT_PKCS11_PIN_FILE")
                .map(PathBuf::from)
                .or_else(|| f.pin_file.as_ref().map(|p| self.home.join(p)))
            {
                Some(path) => read_pin(&path)?,
                None => {
                    return Err(missing(
                        "PIN",
                        "--pkcs11-pin-file",
                        "SSEKIT_PKCS11_PIN or SSEKIT_PKCS11_PIN_FILE",
                        "pin_file",
                    ));
                }
            },
        };
        Ok(Pkcs11Config {
            module,
            token_label,
            pin,
            home: self.home.clone(),
            pool_size: 8,
            binding: None,
        })
    }

    fn kms_config(&self) -> KmsConfig {
        let f = &self.file.kms;
        KmsConfig {
            endpoint: self
                .flags
                .kms_endpoint
                .clone()
                .or_else(|| env("SSEKIT_KMS_ENDPOINT"))
                .or_else(|| f.endpoint.clone()),
            region: self
                .flags
                .kms_region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| f.region.clone()),
            ..KmsConfig::default()
        }
    }
}

fn read_pin(path: &Path) -> Result<Zeroizing<String>, String> {
    Pkcs11Config::read_pin_file(path).map_err(|e| e.to_string())
}
