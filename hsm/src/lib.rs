//! Key providers for ssekit backed by an HSM over PKCS#11.
//!
//! [`Pkcs11Provider`] implements the engine's [`KeyProvider`] on any PKCS#11 module (SoftHSM2 in the
//! tests, a cloud HSM's module in production):
//!
//! - **KEKs live on the token**, one AES-256 secret-key object per key version, labelled
//!   `<key-id>/v<version>`, created with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
//!   `CKA_EXTRACTABLE` false and `CKA_WRAP`/`CKA_UNWRAP` (and `CKA_ENCRYPT`/`CKA_DECRYPT` for the GCM
//!   binding) true. They never leave it.
//! - **The lifecycle** (state, deletion window, rotation schedule, the list of versions) is kept in
//!   the engine's [`KeyRecords`] under `<home>/pkcs11/<token label>/`: sealed, atomic, locked files,
//!   the same transitions and typed errors as the local keyring. Destruction after the deletion
//!   window destroys the token objects.
//! - **Wrapping**, by [`Binding`]: `HsmGcm` (the default where the token offers `CKM_AES_GCM`)
//!   encrypts the DEK on the token with the context as AAD; `AesKwpHmac` wraps the DEK with `CKM_AES_KEY_WRAP_PAD`
//!   (RFC 5649) and binds the encryption context with HMAC-SHA-256 under a key derived from the DEK,
//!   checked after unwrap (the binding the engine's design gives for mechanisms without AAD).
//! - **DEKs in host memory** are only ever in `Zeroizing` buffers. A wrap imports the DEK as a
//!   session object, wraps it and destroys it at once; an unwrap creates a session object, reads its
//!   value into `Zeroizing` memory and destroys it at once.
//! - **Sessions**: one `C_Initialize` per module per process, a pool of read-write sessions shared by
//!   all threads, login once (PKCS#11 logs the whole application in). A call that fails because the
//!   session was closed, the handle went stale or the token was logged out re-opens, logs in again
//!   and retries (twice at most). Every other failure is [`KeyError::Device`] with the `C_*` function
//!   and the `CKR_*` code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use ssekit_engine::keys::{
    Clock, DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeyRecords, KeySpec,
    SystemClock, VersionStore, WrappedKey,
};
use zeroize::{Zeroize, Zeroizing};

/// The provider name recorded in wrapped keys.
pub const PROVIDER: &str = "pkcs11";
/// Wrap algorithm of [`Binding::AesKwpHmac`].
pub const ALG_KWP_HMAC: &str = "AES-KWP+HMAC-SHA256";
/// Wrap algorithm of [`Binding::HsmGcm`].
pub const ALG_HSM_GCM: &str = "AES256-GCM-HSM";

/// How a wrap is bound to its encryption context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// `CKM_AES_KEY_WRAP_PAD`, plus an HMAC-SHA-256 of the context under a key derived from the DEK.
    /// Known gap: the unwrapped DEK is read back with `C_GetAttributeValue`, and the `cryptoki`
    /// crate copies attribute values out of a buffer it frees without zeroing.
    AesKwpHmac,
    /// `CKM_AES_GCM` on the token with the context as AAD: checked inside the HSM.
    HsmGcm,
}

/// Where the token is and how to log in.
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (`libsofthsm2.so`, a cloud HSM's client library).
    pub module: PathBuf,
    /// Label of the token to use.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
    /// Where the key records go: `<home>/pkcs11/<token label>/`.
    pub home: PathBuf,
    /// Sessions kept open for reuse (more are opened under load and closed when not needed).
    pub pool_size: usize,
    /// How wraps bind the encryption context; `None`: [`Binding::HsmGcm`] where the token offers
    /// `CKM_AES_GCM`, else [`Binding::AesKwpHmac`].
    pub binding: Option<Binding>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("home", &self.home)
            .field("pool_size", &self.pool_size)
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Config {
    /// From `SSEKIT_PKCS11_MODULE`, `SSEKIT_PKCS11_TOKEN_LABEL` and `SSEKIT_PKCS11_PIN` (or
    /// `SSEKIT_PKCS11_PIN_FILE`, whose content is the PIN, trailing newline ignored).
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] naming the variable that is missing; [`KeyError::Io`] for an
    /// unreadable PIN file.
    pub fn from_env(home: &Path) -> Result<Self, KeyError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                KeyError::Malformed(format!("{name} is not set (the PKCS#11 provider needs it)"))
            })
        };
        let pin = match std::env::var("SSEKIT_PKCS11_PIN_FILE") {
            Ok(path) => {
                let raw = Zeroizing::new(
                    std::fs::read_to_string(&path)
                        .map_err(|e| KeyError::Io(format!("cannot read PIN file {path}: {e}")))?,
                );
                Zeroizing::new(raw.trim_end_matches(['\n', '\r']).to_owned())
            }
            Err(_) => Zeroizing::new(var("SSEKIT_PKCS11_PIN")?),
        };
        Ok(Pkcs11Config {
            module: var("SSEKIT_PKCS11_MODULE")?.into(),
            token_label: var("SSEKIT_PKCS11_TOKEN_LABEL")?,
            pin,
            home: home.to_path_buf(),
            pool_size: 8,
            binding: None,
        })
    }
}

/// One initialised context per module path, for the whole process (PKCS#11 allows one
/// `C_Initialize` per application).
fn context(module: &Path) -> Result<Pkcs11, KeyError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = map.get(module) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        KeyError::Io(format!(
            "cannot load PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(device(&e)),
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A PKCS#11 failure as the engine's typed error, with the `C_*` function and `CKR_*` code.
fn device(e: &CkError) -> KeyError {
    match e {
        CkError::Pkcs11(rv, f) => KeyError::Device {
            call: format!("C_{f:?}"),
            code: ckr_name(*rv),
        },
        other => KeyError::Device {
            call: "PKCS#11".into(),
            code: other.to_string(),
        },
    }
}

/// `UserNotLoggedIn` → `CKR_USER_NOT_LOGGED_IN`.
fn ckr_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// What a failed call means for the session it ran on.
enum Recovery {
    /// The session is gone: open another.
    Reopen,
    /// The application is logged out: log in again.
    Login,
    /// Not a session problem.
    None,
}

fn recovery(e: &CkError) -> Recovery {
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent => Recovery::Reopen,
            // A logged-out application no longer sees private objects: their handles read as
            // invalid, so look them up again after logging in.
            RvError::UserNotLoggedIn
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
            | RvError::WrappingKeyHandleInvalid
            | RvError::UnwrappingKeyHandleInvalid => Recovery::Login,
            // SoftHSM2 answers operations on private objects after a logout this way (C_EncryptInit,
            // C_DecryptInit, C_GenerateKey were seen). Retrying is bounded by ATTEMPTS; a GCM tag
            // mismatch (also this code, from C_Decrypt) is handled before it gets here.
            RvError::GeneralError => Recovery::Login,
            _ => Recovery::None,
        },
        _ => Recovery::None,
    }
}

/// The token: context, slot, PIN, the session pool and the KEK handle cache.
struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    pool: Mutex<Vec<Session>>,
    pool_size: usize,
    keks: Mutex<HashMap<String, ObjectHandle>>,
}

/// Retries after recovering a session: the first try, then two more.
const ATTEMPTS: usize = 3;

impl Token {
    fn open(config: &Pkcs11Config) -> Result<Self, KeyError> {
        let ctx = context(&config.module)?;
        let slots = ctx.get_slots_with_token().map_err(|e| device(&e))?;
        let slot = slots
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == config.token_label)
            })
            .ok_or_else(|| {
                KeyError::NotFound(format!("PKCS#11 token labelled `{}`", config.token_label))
            })?;
        let token = Token {
            ctx,
            slot,
            label: config.token_label.clone(),
            pin: AuthPin::new(config.pin.as_str().into()),
            pool: Mutex::new(Vec::new()),
            pool_size: config.pool_size.max(1),
            keks: Mutex::new(HashMap::new()),
        };
        // Log in now, so a wrong PIN is reported when the provider is opened.
        token.with_session(|_| Ok(()))?;
        Ok(token)
    }

    fn supports_gcm(&self) -> bool {
        self.ctx
            .get_mechanism_list(self.slot)
            .is_ok_and(|m| m.contains(&cryptoki::mechanism::MechanismType::AES_GCM))
    }

    fn new_session(&self) -> Result<Session, CkError> {
        let s = self.ctx.open_rw_session(self.slot)?;
        self.login(&s)?;
        Ok(s)
    }

    fn login(&self, s: &Session) -> Result<(), CkError> {
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on a pooled session, recovering from lost sessions and logouts.
    fn with_session<T>(
        &self,
        mut f: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, KeyError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let pooled = self
                .pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let session = match pooled {
                Some(s) => s,
                None => self.new_session().map_err(|e| device(&e))?,
            };
            match f(&session) {
                Ok(t) => {
                    let mut pool = self
                        .pool
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if pool.len() < self.pool_size {
                        pool.push(session);
                    }
                    return Ok(t);
                }
                Err(e) => {
                    match recovery(&e) {
                        Recovery::None => {
                            self.pool
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(session);
                            return Err(device(&e));
                        }
                        Recovery::Reopen => {
                            // Every pooled session of a lost token is as dead as this one.
                            self.pool
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .clear();
                            drop(session);
                        }
                        Recovery::Login => {
                            let _ = self.login(&session);
                            self.pool
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(session);
                        }
                    }
                    self.keks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clear();
                    last = Some(e);
                }
            }
        }
        Err(device(&last.expect("at least one attempt failed")))
    }

    /// The token object of `id`'s `version`.
    fn kek(&self, s: &Session, id: &str, version: u32) -> Result<ObjectHandle, CkError> {
        let label = kek_label(id, version);
        if let Some(h) = self
            .keks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&label)
        {
            return Ok(*h);
        }
        let found = s.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.clone().into_bytes()),
        ])?;
        match found.as_slice() {
            [h] => {
                self.keks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(label, *h);
                Ok(*h)
            }
            // Reported by the caller as a missing version (see `missing`).
            _ => Err(CkError::Pkcs11(RvError::KeyHandleInvalid, FIND_KEK)),
        }
    }
}

/// Marks "the KEK is not on the token" apart from real `C_*` failures.
const FIND_KEK: Function = Function::FindObjects;

fn kek_label(id: &str, version: u32) -> String {
    format!("{id}/v{version}")
}

impl VersionStore for Token {
    fn create_version(&self, id: &str, version: u32) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let label = kek_label(id, version);
        self.with_session(|s| {
            // A version never recorded (a crash between creating it and writing the record) may
            // be left over: nothing was wrapped under it, so replace it.
            for h in s.find_objects(&[Attribute::Label(label.clone().into_bytes())])? {
                s.destroy_object(h)?;
            }
            s.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Wrap(true),
                    Attribute::Unwrap(true),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(label.clone().into_bytes()),
                    Attribute::Id(id.as_bytes().to_vec()),
                ],
            )
            .map(|_| ())
        })?;
        // The KEK stays on the token: the record keeps nothing for it.
        Ok(Zeroizing::new(Vec::new()))
    }

    fn destroy_versions(&self, id: &str, versions: &[u32]) -> Result<(), KeyError> {
        for &v in versions {
            let label = kek_label(id, v);
            self.with_session(|s| {
                for h in s.find_objects(&[Attribute::Label(label.clone().into_bytes())])? {
                    s.destroy_object(h)?;
                }
                Ok(())
            })?;
            self.keks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&label);
        }
        Ok(())
    }
}

/// A [`KeyProvider`] whose KEKs live on a PKCS#11 token. See the crate documentation.
pub struct Pkcs11Provider {
    token: Arc<Token>,
    records: KeyRecords,
    binding: Binding,
}

impl std::fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("token", &self.token.label)
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

/// The bytes a wrap is bound to: provider, key id, version and the canonical context.
fn binding_data(id: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let mut d = b"ssekit pkcs11 wrap v1\0".to_vec();
    d.extend_from_slice(id.as_bytes());
    d.push(0);
    d.extend_from_slice(&version.to_be_bytes());
    d.extend_from_slice(&context.canonical_bytes());
    d
}

/// HMAC-SHA-256 of the binding data under `HMAC-SHA-256(dek, "ssekit context binding v1")`.
fn binding_tag(dek: &DataKey, data: &[u8]) -> [u8; 32] {
    let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(dek.expose()).expect("any key length");
    kdf.update(b"ssekit context binding v1");
    let key = Zeroizing::new(<[u8; 32]>::from(kdf.finalize().into_bytes()));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A missing KEK version reads as a typed error naming it, not as a device failure.
fn missing(e: KeyError, id: &str, version: u32, token: &str) -> KeyError {
    match e {
        KeyError::Device { ref call, ref code }
            if call == "C_FindObjects" && code == "CKR_KEY_HANDLE_INVALID" =>
        {
            KeyError::Corrupt(format!(
                "key `{id}` version {version} is missing from PKCS#11 token `{token}` (deleted on the token?)"
            ))
        }
        other => other,
    }
}

impl Pkcs11Provider {
    /// Opens the token and the key records.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] for a module that does not load, [`KeyError::NotFound`] for no token with
    /// that label, [`KeyError::Device`] for a wrong PIN (`C_Login`, `CKR_PIN_INCORRECT`), and the
    /// records' errors.
    pub fn open(config: &Pkcs11Config) -> Result<Self, KeyError> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// As [`Pkcs11Provider::open`], with a clock of the caller's (tests move through schedules).
    ///
    /// # Errors
    ///
    /// As [`Pkcs11Provider::open`].
    pub fn open_with_clock(config: &Pkcs11Config, clock: Arc<dyn Clock>) -> Result<Self, KeyError> {
        let token = Arc::new(Token::open(config)?);
        let dir = config
            .home
            .join("pkcs11")
            .join(sanitize(&config.token_label));
        // The records hold no key material, only the lifecycle; their own root secret (generated on
        // first use) seals them so that a state cannot be edited back to Enabled unnoticed.
        let records = KeyRecords::open_with(&dir, None, clock, token.clone())?;
        let binding = match config.binding {
            Some(b) => b,
            None if token.supports_gcm() => Binding::HsmGcm,
            None => Binding::AesKwpHmac,
        };
        Ok(Pkcs11Provider {
            token,
            records,
            binding,
        })
    }

    /// Ends every pooled session (as an HSM dropping connections would): the next call opens new
    /// ones. For fault tests and for callers that know the HSM restarted.
    pub fn drop_sessions(&self) {
        self.token
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Logs the application out of the token (all sessions), as an HSM-side timeout would. The next
    /// call logs in again. For fault tests.
    ///
    /// # Errors
    ///
    /// [`KeyError::Device`].
    pub fn logout(&self) -> Result<(), KeyError> {
        self.token.with_session(|s| match s.logout() {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => Ok(()),
            Err(e) => Err(e),
        })
    }

    fn wrap_kwp(
        &self,
        id: &str,
        version: u32,
        dek: &DataKey,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut out = self
            .token
            .with_session(|s| {
                let kek = self.token.kek(s, id, version)?;
                let mut template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Value(dek.expose().to_vec()),
                ];
                let obj = s.create_object(&template);
                wipe(&mut template);
                let obj = obj?;
                let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, obj);
                let destroyed = s.destroy_object(obj);
                let wrapped = wrapped?;
                destroyed?;
                Ok(wrapped)
            })
            .map_err(|e| missing(e, id, version, &self.token.label))?;
        out.extend_from_slice(&binding_tag(dek, data));
        Ok(out)
    }

    fn unwrap_kwp(&self, w: &WrappedKey, data: &[u8]) -> Result<DataKey, KeyError> {
        let c = &w.ciphertext;
        if c.len() != 40 + 32 {
            return Err(KeyError::UnwrapFailed);
        }
        let (body, tag) = c.split_at(40);
        let dek = self
            .token
            .with_session(|s| {
                let kek = self.token.kek(s, &w.key_id, w.key_version)?;
                let obj = s.unwrap_key(
                    &Mechanism::AesKeyWrapPad,
                    kek,
                    body,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(false),
                        Attribute::Private(true),
                        Attribute::Sensitive(false),
                        Attribute::Extractable(true),
                    ],
                );
                let obj = match obj {
                    Ok(o) => o,
                    Err(CkError::Pkcs11(
                        RvError::WrappedKeyInvalid
                        | RvError::WrappedKeyLenRange
                        | RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange,
                        _,
                    )) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let value = s.get_attributes(obj, &[AttributeType::Value]);
                let destroyed = s.destroy_object(obj);
                let mut attrs = value?;
                destroyed?;
                let mut dek = None;
                for a in &mut attrs {
                    if let Attribute::Value(v) = a {
                        dek = DataKey::try_from_slice(v).ok();
                        v.zeroize();
                    }
                }
                Ok(dek)
            })
            .map_err(|e| missing(e, &w.key_id, w.key_version, &self.token.label))?
            .ok_or(KeyError::UnwrapFailed)?;
        let want = binding_tag(&dek, data);
        if !constant_time_eq(&want, tag) {
            return Err(KeyError::UnwrapFailed);
        }
        Ok(dek)
    }

    fn wrap_gcm(
        &self,
        id: &str,
        version: u32,
        dek: &DataKey,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut iv = [0u8; 12];
        getrandom(&mut iv);
        let ct = self
            .token
            .with_session(|s| {
                let kek = self.token.kek(s, id, version)?;
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, data, 128.into())?;
                s.encrypt(&Mechanism::AesGcm(params), kek, dek.expose())
            })
            .map_err(|e| missing(e, id, version, &self.token.label))?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn unwrap_gcm(&self, w: &WrappedKey, data: &[u8]) -> Result<DataKey, KeyError> {
        let c = &w.ciphertext;
        if c.len() != 12 + 32 + 16 {
            return Err(KeyError::UnwrapFailed);
        }
        let plain = self
            .token
            .with_session(|s| {
                let kek = self.token.kek(s, &w.key_id, w.key_version)?;
                let mut iv: [u8; 12] = c[..12].try_into().expect("12 bytes");
                let params = GcmParams::new(&mut iv, data, 128.into())?;
                match s.decrypt(&Mechanism::AesGcm(params), kek, &c[12..]) {
                    Ok(p) => Ok(Some(Zeroizing::new(p))),
                    Err(CkError::Pkcs11(
                        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                        _,
                    )) => Ok(None),
                    // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR from C_Decrypt
                    // (after C_DecryptInit succeeded, so the key and session were fine).
                    Err(CkError::Pkcs11(RvError::GeneralError, Function::Decrypt)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| missing(e, &w.key_id, w.key_version, &self.token.label))?
            .ok_or(KeyError::UnwrapFailed)?;
        DataKey::try_from_slice(&plain).map_err(|_| KeyError::UnwrapFailed)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn getrandom(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// Zeroes every `CKA_VALUE` in a template once the call that needed it returned.
fn wipe(template: &mut [Attribute]) {
    for a in template {
        if let Attribute::Value(v) = a {
            v.zeroize();
        }
    }
}

/// A token label as a directory name.
fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        let (version, _) = self.records.use_version(key_id, None)?;
        let data = binding_data(key_id, version, context);
        let (algorithm, ciphertext) = match self.binding {
            Binding::AesKwpHmac => (ALG_KWP_HMAC, self.wrap_kwp(key_id, version, dek, &data)?),
            Binding::HsmGcm => (ALG_HSM_GCM, self.wrap_gcm(key_id, version, dek, &data)?),
        };
        Ok(WrappedKey {
            provider: PROVIDER.into(),
            key_id: key_id.to_owned(),
            key_version: version,
            algorithm: algorithm.into(),
            ciphertext,
        })
    }

    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        if wrapped.provider != PROVIDER {
            return Err(KeyError::WrongProvider(format!(
                "the data key was wrapped by provider `{}`, not PKCS#11",
                wrapped.provider
            )));
        }
        self.records
            .use_version(&wrapped.key_id, Some(wrapped.key_version))?;
        let data = binding_data(&wrapped.key_id, wrapped.key_version, context);
        match wrapped.algorithm.as_str() {
            ALG_KWP_HMAC => self.unwrap_kwp(wrapped, &data),
            ALG_HSM_GCM => self.unwrap_gcm(wrapped, &data),
            other => Err(KeyError::WrongProvider(format!(
                "unknown wrap algorithm `{other}`"
            ))),
        }
    }

    fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        self.records.create(spec)
    }

    fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.records.describe(key_id)
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.records.list()
    }

    fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.records.rotate(key_id)
    }

    fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.records.set_enabled(key_id, true)
    }

    fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.records.set_enabled(key_id, false)
    }

    fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        self.records.schedule_deletion(key_id, days)
    }

    fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.records.cancel_deletion(key_id)
    }
}
