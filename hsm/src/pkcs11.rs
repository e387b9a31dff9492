//! [`Pkcs11Provider`]: key-encryption keys on an HSM over PKCS#11.
//!
//! [`Pkcs11Provider`] implements the engine's [`KeyProvider`] on any PKCS#11 module (SoftHSM2 in the
//! tests, a cloud HSM's module in production):
//!
//! - **KEKs live on the token**, one AES-256 secret-key object per key version, labelled
//!   `<key-id>/v<version>`, generated with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
//!   `CKA_EXTRACTABLE`, `CKA_MODIFIABLE`, `CKA_COPYABLE`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` false,
//!   only the uses of the binding (`CKA_ENCRYPT`/`CKA_DECRYPT` for GCM, `CKA_WRAP`/`CKA_UNWRAP` for
//!   KWP), and `CKA_ID` set to the keyring's namespace: 16 random bytes made with its records
//!   (`kek-namespace`), so keyrings in different homes sharing a token never find or destroy each
//!   other's KEKs, even under the same key ids. They never leave the token. A KEK found on the token
//!   is read back before its first use (`inspect_kek`: class, key type, length, generated on the
//!   token, always sensitive, never extractable, the binding's uses) and refused otherwise.
//! - **Versions are never made twice**: a new one is numbered above every version the token holds
//!   for the key (records restored from a backup, or a second host's copy, adopt the versions they
//!   did not know), and nothing on the token is destroyed to make room.
//! - **The lifecycle** (state, deletion window, rotation schedule, the list of versions) is kept in
//!   the engine's [`KeyRecords`] under `<home>/pkcs11/<token label>/`: sealed, atomic, locked files,
//!   the same transitions and typed errors as the local keyring. Destruction after the deletion
//!   window destroys the key's AES secret keys on the token, nothing of another kind.
//! - **Wrapping**, by [`Binding`]: `HsmGcm` (the default where the token offers `CKM_AES_GCM`)
//!   encrypts the DEK on the token with the context as AAD; `AesKwpHmac` wraps the DEK with `CKM_AES_KEY_WRAP_PAD`
//!   (RFC 5649) and binds the encryption context with HMAC-SHA-256 under a key derived from the DEK,
//!   checked after unwrap (the binding the engine's design gives for mechanisms without AAD).
//! - **DEKs in host memory** are only ever in `Zeroizing` buffers. With [`Binding::AesKwpHmac`] a
//!   wrap imports the DEK as a session object (from a template wiped right after), wraps it and
//!   destroys it at once; an unwrap creates a session object, reads its value with the module's own
//!   `C_GetAttributeValue` straight into `Zeroizing` memory (cryptoki's `get_attributes` would leave
//!   a copy in freed memory) and destroys it at once.
//! - **Sessions**: one `C_Initialize` per module per process, a pool of read-write sessions shared by
//!   all threads, login once (PKCS#11 logs the whole application in). A session that saw a failure
//!   is closed, never pooled (it may hold an unfinished operation). A call that fails because the
//!   session was lost, a handle went stale or the application was logged out (a session no longer
//!   logged in explains any code) re-opens, logs in again and retries, four times at most. Every
//!   other failure is [`KeyError::Device`] with the `C_*` function and the `CKR_*` code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use ssekit_engine::keys::{
    Clock, DataKey, EncryptionContext, KeyError, KeyProvider, KeyRecords, SystemClock,
    VersionStore, WrappedKey,
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
    /// The unwrapped DEK is a session object, read with `C_GetAttributeValue` straight into zeroizing
    /// memory and destroyed at once.
    AesKwpHmac,
    /// `CKM_AES_GCM` on the token with the context as AAD: checked inside the HSM.
    HsmGcm,
}

impl Binding {
    /// The uses a KEK of this binding is made with, and the only ones it gets: `CKA_ENCRYPT` and
    /// `CKA_DECRYPT` for [`Binding::HsmGcm`], `CKA_WRAP` and `CKA_UNWRAP` for
    /// [`Binding::AesKwpHmac`].
    fn kek_uses(self) -> [Attribute; 4] {
        let gcm = self == Binding::HsmGcm;
        [
            Attribute::Encrypt(gcm),
            Attribute::Decrypt(gcm),
            Attribute::Wrap(!gcm),
            Attribute::Unwrap(!gcm),
        ]
    }

    fn algorithm(self) -> &'static str {
        match self {
            Binding::AesKwpHmac => ALG_KWP_HMAC,
            Binding::HsmGcm => ALG_HSM_GCM,
        }
    }
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
    /// A PIN from a file: its content, trailing newline ignored, in zeroizing memory.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] for an unreadable file.
    pub fn read_pin_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
        let raw =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                KeyError::Io(format!("cannot read PIN file {}: {e}", path.display()))
            })?);
        Ok(Zeroizing::new(
            raw.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    }

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
            Ok(path) => Self::read_pin_file(Path::new(&path))?,
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
    let mut map = lock(CONTEXTS.get_or_init(Default::default));
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

/// Why a call on a session failed.
enum Fail {
    /// A PKCS#11 function failed.
    Ck(CkError),
    /// No token object carries this KEK label, or none is visible (a logged-out application does
    /// not see private objects).
    NoKek(String),
    /// The token object under this KEK label is not a KEK this provider would use: which attribute
    /// failed (or that several objects carry the label).
    BadKek {
        /// The label, `<key id>/v<version>`.
        label: String,
        /// What failed, e.g. `CKA_NEVER_EXTRACTABLE is false`.
        why: String,
    },
    /// Another keyring sharing this namespace (a copy of this home) made the same version at the
    /// same time; the one made here was destroyed.
    Raced(String),
    /// Destroying a short-lived session object failed (SoftHSM2 answers so once a logout has
    /// already destroyed it): closing the session ends it for sure, so the call is retried.
    Cleanup(CkError),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Ck(e)
    }
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

fn recovery(e: &Fail) -> Recovery {
    let rv = match e {
        Fail::Ck(CkError::Pkcs11(rv, _)) => rv,
        Fail::Ck(_) => return Recovery::None,
        Fail::NoKek(_) | Fail::Cleanup(_) => return Recovery::Login,
        Fail::BadKek { .. } | Fail::Raced(_) => return Recovery::None,
    };
    match rv {
        RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::DeviceRemoved
        | RvError::TokenNotPresent => Recovery::Reopen,
        // A logged-out application no longer sees private objects: their handles read as invalid,
        // so look them up again after logging in.
        RvError::UserNotLoggedIn
        | RvError::KeyHandleInvalid
        | RvError::ObjectHandleInvalid
        | RvError::WrappingKeyHandleInvalid
        | RvError::UnwrappingKeyHandleInvalid => Recovery::Login,
        // SoftHSM2 answers operations on private objects after a logout this way (C_EncryptInit,
        // C_DecryptInit, C_GenerateKey were seen). Retrying is bounded by ATTEMPTS; a GCM tag
        // mismatch (also this code, from C_Decrypt) is handled before it gets here.
        RvError::GeneralError => Recovery::Login,
        // SoftHSM2 has answered a logout with these too. The session's own state cannot settle it:
        // another thread may have logged the application back in by the time it is asked. A real
        // template error fails again on every try and is returned after ATTEMPTS.
        RvError::TemplateInconsistent | RvError::FunctionFailed => Recovery::Login,
        _ => Recovery::None,
    }
}

/// Whether `s` runs as the logged-in user (a failure to ask counts as not).
fn logged_in(s: &Session) -> bool {
    s.get_session_info().is_ok_and(|i| {
        matches!(
            i.session_state(),
            SessionState::RoUser | SessionState::RwUser
        )
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The token: context, slot, PIN, the session pool and the KEK handle cache.
struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    pool: Mutex<Vec<Session>>,
    pool_size: usize,
    /// The binding new wraps use, and so the uses new KEKs are made with.
    binding: Binding,
    /// KEK handles found and checked so far, by key id: version, handle, what it may be used for.
    keks: Mutex<HashMap<String, Vec<CheckedKek>>>,
    /// `C_GetAttributeValue`, called directly to read unwrapped DEKs into zeroizing memory.
    raw: RawGetValue,
    /// The `CKA_ID` of this keyring's KEKs: random, made with its records. Keyrings in other homes
    /// on the same token never see (or destroy) each other's KEKs, whatever their key ids.
    namespace: Vec<u8>,
}

/// Tries per call: the first, then up to four more after recovering the session. Three were too
/// few on a SoftHSM2 token holding a few hundred objects under a logout every 40 ms (5 of 12 runs
/// of the fault test failed); five held in every run.
const ATTEMPTS: usize = 5;

impl Token {
    fn open(config: &Pkcs11Config, dir: &Path) -> Result<Self, KeyError> {
        let namespace = namespace(dir)?;
        // Loading a module runs its code: only an absolute path to a file nobody else could have
        // written (every caller gets this check, not only the CLI).
        ssekit_engine::keys::home::check_module(&config.module)?;
        let ctx = context(&config.module)?;
        let raw = RawGetValue::load(&config.module)?;
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
        let supports_gcm = ctx
            .get_mechanism_list(slot)
            .is_ok_and(|m| m.contains(&cryptoki::mechanism::MechanismType::AES_GCM));
        let binding = match config.binding {
            Some(b) => b,
            None if supports_gcm => Binding::HsmGcm,
            None => Binding::AesKwpHmac,
        };
        let token = Token {
            ctx,
            slot,
            label: config.token_label.clone(),
            pin: AuthPin::new(config.pin.as_str().into()),
            pool: Mutex::new(Vec::new()),
            pool_size: config.pool_size.max(1),
            binding,
            keks: Mutex::new(HashMap::new()),
            raw,
            namespace,
        };
        // Log in now, so a wrong PIN is reported when the provider is opened.
        token.with_session(|_| Ok(()))?;
        Ok(token)
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

    /// Puts a live session back in the pool, unless the pool is full.
    fn give_back(&self, session: Session) {
        let mut pool = lock(&self.pool);
        if pool.len() < self.pool_size {
            pool.push(session);
        }
    }

    /// Runs `f` on a pooled session, recovering from lost sessions and logouts.
    fn with_session<T>(
        &self,
        mut f: impl FnMut(&Session) -> Result<T, Fail>,
    ) -> Result<T, KeyError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pooled = lock(&self.pool).pop();
            let session = match pooled {
                Some(s) => s,
                None => self.new_session().map_err(|e| device(&e))?,
            };
            let e = match f(&session) {
                Ok(t) => {
                    self.give_back(session);
                    return Ok(t);
                }
                Err(e) => e,
            };
            // A session that saw a failure may hold an unfinished operation (a search, an
            // encryption): it is closed here rather than pooled, whatever the failure was.
            let mut what = recovery(&e);
            if matches!(what, Recovery::None) && !logged_in(&session) {
                // Whatever code the module chose (SoftHSM2 has answered a logout with
                // CKR_TEMPLATE_INCONSISTENT and CKR_FUNCTION_FAILED too), a session that is no
                // longer logged in explains the failure.
                what = Recovery::Login;
            }
            match what {
                Recovery::None => return Err(self.fail(e)),
                // Every pooled session of a lost token is as dead as this one.
                Recovery::Reopen => lock(&self.pool).clear(),
                // Logging in is per application: this logs the pooled sessions back in too.
                Recovery::Login => {
                    let _ = self.login(&session);
                }
            }
            drop(session);
            lock(&self.keks).clear();
            if attempt == ATTEMPTS {
                return Err(self.fail(e));
            }
        }
    }

    /// A failure as the engine's typed error.
    fn fail(&self, e: Fail) -> KeyError {
        match e {
            Fail::Ck(e) | Fail::Cleanup(e) => device(&e),
            Fail::NoKek(label) => KeyError::Corrupt(format!(
                "KEK `{label}` is missing from PKCS#11 token `{}` (deleted on the token?)",
                self.label
            )),
            Fail::BadKek { label, why } => KeyError::Corrupt(format!(
                "KEK `{label}` on PKCS#11 token `{}` is refused and was not used: {why}",
                self.label
            )),
            Fail::Raced(label) => KeyError::Unavailable {
                call: "C_GenerateKey".into(),
                detail: format!(
                    "another keyring sharing this one's namespace made KEK `{label}` on PKCS#11 \
                     token `{}` at the same time; nothing was changed, retry",
                    self.label
                ),
            },
        }
    }

    /// The token object of `id`'s `version`, checked (see [`inspect_kek`]) before its first use,
    /// for an operation of `binding`.
    fn kek(
        &self,
        s: &Session,
        id: &str,
        version: u32,
        binding: Binding,
    ) -> Result<ObjectHandle, Fail> {
        let label = kek_label(id, version);
        let known = lock(&self.keks).get(id).and_then(|vs| {
            vs.iter()
                .find(|(v, ..)| *v == version)
                .map(|(_, h, uses)| (*h, *uses))
        });
        let (h, uses) = match known {
            Some(k) => k,
            None => {
                // Any class: an object of another kind under this label is refused, not skipped.
                let found = s.find_objects(&[
                    Attribute::Label(label.clone().into_bytes()),
                    Attribute::Id(self.namespace.clone()),
                ])?;
                let h = match found.as_slice() {
                    [] => return Err(Fail::NoKek(label)),
                    [h] => *h,
                    more => {
                        return Err(Fail::BadKek {
                            label,
                            why: format!("{} objects carry this label", more.len()),
                        });
                    }
                };
                let uses = inspect_kek(s, h)?.map_err(|why| Fail::BadKek {
                    label: label.clone(),
                    why,
                })?;
                lock(&self.keks)
                    .entry(id.to_owned())
                    .or_default()
                    .push((version, h, uses));
                (h, uses)
            }
        };
        if !uses.allows(binding) {
            let pair = match binding {
                Binding::HsmGcm => "CKA_ENCRYPT and CKA_DECRYPT",
                Binding::AesKwpHmac => "CKA_WRAP and CKA_UNWRAP",
            };
            return Err(Fail::BadKek {
                label,
                why: format!(
                    "{pair} are not both true (it was made for the other binding); rotate the key \
                     to make a version for {}",
                    binding.algorithm()
                ),
            });
        }
        Ok(h)
    }
}

/// A KEK found and checked: its version, handle and uses.
type CheckedKek = (u32, ObjectHandle, KekUses);

/// What a checked KEK may be used for.
#[derive(Clone, Copy)]
struct KekUses {
    gcm: bool,
    kwp: bool,
}

impl KekUses {
    fn allows(self, binding: Binding) -> bool {
        match binding {
            Binding::HsmGcm => self.gcm,
            Binding::AesKwpHmac => self.kwp,
        }
    }
}

/// What a token object must be to serve as a KEK, read back before its first use: a 256-bit AES
/// secret key, generated on the token (`CKA_LOCAL`), always sensitive and never extractable,
/// private, a token object. `Ok(Err(why))` names the first attribute that fails.
fn inspect_kek(s: &Session, h: ObjectHandle) -> Result<Result<KekUses, String>, CkError> {
    use AttributeType as T;
    const REQUIRED: [(AttributeType, bool); 7] = [
        (T::Token, true),
        (T::Private, true),
        (T::Local, true),
        (T::Sensitive, true),
        (T::AlwaysSensitive, true),
        (T::Extractable, false),
        (T::NeverExtractable, true),
    ];
    let mut wanted = vec![T::Class, T::KeyType, T::ValueLen];
    wanted.extend(REQUIRED.iter().map(|(t, _)| *t));
    wanted.extend([T::Encrypt, T::Decrypt, T::Wrap, T::Unwrap]);
    let mut class = None;
    let mut key_type = None;
    let mut len = None;
    let mut flags = HashMap::new();
    for a in s.get_attributes(h, &wanted)? {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::ValueLen(n) => len = Some(cryptoki_sys::CK_ULONG::from(n)),
            Attribute::Token(b)
            | Attribute::Private(b)
            | Attribute::Local(b)
            | Attribute::Sensitive(b)
            | Attribute::AlwaysSensitive(b)
            | Attribute::Extractable(b)
            | Attribute::NeverExtractable(b)
            | Attribute::Encrypt(b)
            | Attribute::Decrypt(b)
            | Attribute::Wrap(b)
            | Attribute::Unwrap(b) => {
                flags.insert(a.attribute_type(), b);
            }
            _ => {}
        }
    }
    if class != Some(ObjectClass::SECRET_KEY) {
        return Ok(Err(match class {
            Some(c) => format!("CKA_CLASS is {c}, not CKO_SECRET_KEY"),
            None => "CKA_CLASS is not readable".into(),
        }));
    }
    if key_type != Some(KeyType::AES) {
        return Ok(Err(match key_type {
            Some(k) => format!("CKA_KEY_TYPE is {k}, not CKK_AES"),
            None => "CKA_KEY_TYPE is not readable".into(),
        }));
    }
    if len != Some(32) {
        return Ok(Err(match len {
            Some(n) => format!("CKA_VALUE_LEN is {n}, not 32"),
            None => "CKA_VALUE_LEN is not readable".into(),
        }));
    }
    for (t, want) in REQUIRED {
        match flags.get(&t) {
            Some(&b) if b == want => {}
            Some(&b) => return Ok(Err(format!("{t} is {b}, not {want}"))),
            None => return Ok(Err(format!("{t} is not readable"))),
        }
    }
    let flag = |t: AttributeType| flags.get(&t).copied().unwrap_or(false);
    Ok(Ok(KekUses {
        gcm: flag(T::Encrypt) && flag(T::Decrypt),
        kwp: flag(T::Wrap) && flag(T::Unwrap),
    }))
}

/// The module's `C_GetAttributeValue`, called directly: cryptoki's `get_attributes` copies a value
/// out of a buffer it frees without wiping, and an unwrapped DEK must only ever sit in zeroizing
/// memory.
struct RawGetValue {
    get_attribute_value: unsafe extern "C" fn(
        cryptoki_sys::CK_SESSION_HANDLE,
        cryptoki_sys::CK_OBJECT_HANDLE,
        *mut cryptoki_sys::CK_ATTRIBUTE,
        cryptoki_sys::CK_ULONG,
    ) -> cryptoki_sys::CK_RV,
    // Keeps the module mapped while the function pointer is in use.
    _module: libloading::Library,
}

impl RawGetValue {
    fn load(module: &Path) -> Result<Self, KeyError> {
        let fail =
            |what: String| KeyError::Io(format!("PKCS#11 module {}: {what}", module.display()));
        // SAFETY: this is the module cryptoki has loaded and initialised already: the loader hands
        // back the same mapping (reference-counted), so no initialiser runs a second time.
        let lib = unsafe { libloading::Library::new(module) }.map_err(|e| fail(e.to_string()))?;
        // SAFETY: every PKCS#11 module exports C_GetFunctionList with exactly this signature.
        let get_list: libloading::Symbol<
            unsafe extern "C" fn(*mut *mut cryptoki_sys::CK_FUNCTION_LIST) -> cryptoki_sys::CK_RV,
        > = unsafe { lib.get(b"C_GetFunctionList\0") }.map_err(|e| fail(e.to_string()))?;
        let mut list: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: `list` is a valid place for the module to write its table's address to.
        let rv = unsafe { get_list(&mut list) };
        if rv != cryptoki_sys::CKR_OK || list.is_null() {
            let code = match Rv::from(rv) {
                Rv::Error(e) => ckr_name(e),
                Rv::Ok => "no function table".into(),
            };
            return Err(fail(format!("C_GetFunctionList failed: {code}")));
        }
        // SAFETY: the module returned a non-null pointer to its function table, which lives as long
        // as the module stays loaded (`_module` keeps it so).
        let get_attribute_value = unsafe { (*list).C_GetAttributeValue }
            .ok_or_else(|| fail("no C_GetAttributeValue".into()))?;
        Ok(RawGetValue {
            get_attribute_value,
            _module: lib,
        })
    }

    /// `CKA_VALUE` of `obj` if it is 32 bytes long, read straight into zeroizing memory; `None` if
    /// it is another length.
    fn value32(
        &self,
        s: &Session,
        obj: ObjectHandle,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CkError> {
        let mut value = Zeroizing::new([0u8; 32]);
        let mut attr = cryptoki_sys::CK_ATTRIBUTE {
            type_: cryptoki_sys::CKA_VALUE,
            pValue: value.as_mut_ptr().cast(),
            ulValueLen: 32,
        };
        // SAFETY: the session and object handles come from live cryptoki objects of this module,
        // and the one attribute points at 32 writable bytes and says so.
        let rv = unsafe { (self.get_attribute_value)(s.handle(), obj.handle(), &mut attr, 1) };
        match Rv::from(rv) {
            Rv::Error(RvError::BufferTooSmall) => Ok(None),
            r => {
                r.into_result(Function::GetAttributeValue)?;
                Ok((attr.ulValueLen == 32).then_some(value))
            }
        }
    }
}

fn kek_label(id: &str, version: u32) -> String {
    format!("{id}/v{version}")
}

/// The version in a KEK label of key `id`, `<id>/v<version>` (key ids hold no `/`): decimal, no
/// sign or leading zero, at least 1.
fn label_version(label: &[u8], id: &str) -> Option<u32> {
    let digits = label.strip_prefix(id.as_bytes())?.strip_prefix(b"/v")?;
    if digits.first() == Some(&b'0') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Fails unless `s` runs as the logged-in user: a search made logged out misses every private
/// object, and one that decides a version number must not.
fn require_login(s: &Session) -> Result<(), Fail> {
    if logged_in(s) {
        Ok(())
    } else {
        Err(Fail::Ck(CkError::Pkcs11(
            RvError::UserNotLoggedIn,
            Function::FindObjects,
        )))
    }
}

/// Destroys this keyring's AES secret keys labelled `label` (no object of another kind under the
/// label is touched); returns how many there were.
fn destroy_labelled(s: &Session, namespace: &[u8], label: &str) -> Result<usize, CkError> {
    let found = s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(namespace.to_vec()),
    ])?;
    for &h in &found {
        s.destroy_object(h)?;
    }
    Ok(found.len())
}

impl Token {
    /// The template of a new KEK: AES-256 on the token, private, sensitive, never extractable,
    /// not modifiable or copyable, with the uses of this token's binding and no others.
    fn kek_template(&self, label: &str) -> Vec<Attribute> {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(self.namespace.clone()),
        ];
        t.extend(self.binding.kek_uses());
        t
    }
}

impl VersionStore for Token {
    fn held_versions(&self, id: &str, from: u32) -> Result<Vec<u32>, KeyError> {
        self.with_session(|s| {
            require_login(s)?;
            // Every object of this namespace, of any kind: a number in use under any label is
            // skipped, never made again.
            let mut held = Vec::new();
            for h in s.find_objects(&[Attribute::Id(self.namespace.clone())])? {
                for a in s.get_attributes(h, &[AttributeType::Label])? {
                    if let Attribute::Label(l) = a {
                        held.extend(label_version(&l, id).filter(|v| *v >= from));
                    }
                }
            }
            require_login(s)?;
            held.sort_unstable();
            held.dedup();
            Ok(held)
        })
    }

    fn create_version(&self, id: &str, version: u32) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let label = kek_label(id, version);
        let template = self.kek_template(&label);
        self.with_session(|s| {
            // Nothing is destroyed to make room: the records chose `version` above every version
            // the token holds (`held_versions`). What is checked after generating is only ever the
            // object made here, destroyed if it fails (nothing was wrapped under it yet).
            let h = s.generate_key(&Mechanism::AesKeyGen, &template)?;
            let checked = (|| {
                let found = s.find_objects(&[
                    Attribute::Label(label.clone().into_bytes()),
                    Attribute::Id(self.namespace.clone()),
                ])?;
                match found.as_slice() {
                    [f] if *f == h => {}
                    [] => require_login(s)?,
                    _ => return Err(Fail::Raced(label.clone())),
                }
                match inspect_kek(s, h)? {
                    Ok(uses) if uses.allows(self.binding) => Ok(()),
                    Ok(_) => Err(Fail::BadKek {
                        label: label.clone(),
                        why: "the token did not give it the uses asked for".into(),
                    }),
                    Err(why) => Err(Fail::BadKek {
                        label: label.clone(),
                        why: format!("the token made it so: {why}"),
                    }),
                }
            })();
            if checked.is_err() {
                let _ = s.destroy_object(h);
            }
            checked
        })?;
        // The KEK stays on the token: the record keeps nothing for it.
        Ok(Zeroizing::new(Vec::new()))
    }

    fn destroy_versions(&self, id: &str, versions: &[u32]) -> Result<(), KeyError> {
        for &v in versions {
            let label = kek_label(id, v);
            // Finding nothing may only mean the application was logged out (private objects are
            // then invisible): that is retried after logging in like a missing KEK, and only a
            // KEK still missing then is taken as already gone.
            let destroyed =
                self.with_session(|s| match destroy_labelled(s, &self.namespace, &label)? {
                    0 => Err(Fail::NoKek(label.clone())),
                    _ => Ok(()),
                });
            match destroyed {
                Ok(()) | Err(KeyError::Corrupt(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // Versions made through a copy of the records (which these never adopted) go with the key.
        for v in self.held_versions(id, 1)? {
            if !versions.contains(&v) {
                let label = kek_label(id, v);
                self.with_session(|s| Ok(destroy_labelled(s, &self.namespace, &label)?))?;
            }
        }
        lock(&self.keks).remove(id);
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
/// The bytes a wrap of key `id` version `version` is bound to: the AAD of [`Binding::HsmGcm`], the
/// HMAC message of [`Binding::AesKwpHmac`]. `"ssekit pkcs11 wrap v1\0"`, the id, a zero byte, the
/// version (4 bytes, big-endian), then the context's canonical encoding.
pub fn binding_data(id: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let ctx = context.canonical_bytes();
    let mut d = Vec::with_capacity(22 + id.len() + 1 + 4 + ctx.len());
    d.extend_from_slice(b"ssekit pkcs11 wrap v1\0");
    d.extend_from_slice(id.as_bytes());
    d.push(0);
    d.extend_from_slice(&version.to_be_bytes());
    d.extend_from_slice(&ctx);
    d
}

/// HMAC-SHA-256 over the binding data under `HMAC-SHA-256(dek, "ssekit context binding v1")`.
fn binding_mac(dek: &DataKey, data: &[u8]) -> Hmac<Sha256> {
    let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(dek.expose()).expect("any key length");
    kdf.update(b"ssekit context binding v1");
    let key = Zeroizing::new(<[u8; 32]>::from(kdf.finalize().into_bytes()));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*key).expect("any key length");
    mac.update(data);
    mac
}

/// The template of a DEK as a short-lived session object: readable, so an unwrap can return it.
fn session_key_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
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
        let dir = config
            .home
            .join("pkcs11")
            .join(sanitize(&config.token_label));
        let token = Arc::new(Token::open(config, &dir)?);
        // The records hold no key material, only the lifecycle; their own root secret (generated on
        // first use) seals them so that a state cannot be edited back to Enabled unnoticed.
        let records = KeyRecords::open_with(&dir, None, clock, token.clone())?;
        let binding = token.binding;
        Ok(Pkcs11Provider {
            token,
            records,
            binding,
        })
    }

    /// Ends every pooled session (as an HSM dropping connections would): the next call opens new
    /// ones. For fault tests and for callers that know the HSM restarted.
    pub fn drop_sessions(&self) {
        lock(&self.token.pool).clear();
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
            Err(e) => Err(e.into()),
        })
    }

    fn wrap_kwp(
        &self,
        id: &str,
        version: u32,
        dek: &DataKey,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut out = self.token.with_session(|s| {
            let kek = self.token.kek(s, id, version, Binding::AesKwpHmac)?;
            let mut template = session_key_template();
            template.push(Attribute::Value(dek.expose().to_vec()));
            let obj = s.create_object(&template);
            wipe(&mut template);
            let obj = obj?;
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, obj);
            let destroyed = s.destroy_object(obj);
            let wrapped = wrapped?;
            destroyed.map_err(Fail::Cleanup)?;
            Ok(wrapped)
        })?;
        out.extend_from_slice(&binding_mac(dek, data).finalize().into_bytes());
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
                let kek = self
                    .token
                    .kek(s, &w.key_id, w.key_version, Binding::AesKwpHmac)?;
                let obj = s.unwrap_key(
                    &Mechanism::AesKeyWrapPad,
                    kek,
                    body,
                    &session_key_template(),
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
                    Err(e) => return Err(e.into()),
                };
                let value = self.token.raw.value32(s, obj);
                let destroyed = s.destroy_object(obj);
                let dek = value?.map(|v| DataKey::from_bytes(&v));
                destroyed.map_err(Fail::Cleanup)?;
                Ok(dek)
            })?
            .ok_or(KeyError::UnwrapFailed)?;
        binding_mac(&dek, data)
            .verify_slice(tag)
            .map_err(|_| KeyError::UnwrapFailed)?;
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
        getrandom::fill(&mut iv).expect("the operating system's random number generator failed");
        let ct = self.token.with_session(|s| {
            let kek = self.token.kek(s, id, version, Binding::HsmGcm)?;
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, data, 128.into())?;
            Ok(s.encrypt(&Mechanism::AesGcm(params), kek, dek.expose())?)
        })?;
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
                let kek = self
                    .token
                    .kek(s, &w.key_id, w.key_version, Binding::HsmGcm)?;
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
                    Err(e) => Err(e.into()),
                }
            })?
            .ok_or(KeyError::UnwrapFailed)?;
        DataKey::try_from_slice(&plain).map_err(|_| KeyError::UnwrapFailed)
    }
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
/// The keyring's KEK namespace in `dir`: 16 random bytes, made once (atomically: written beside
/// and hard-linked into place, so two processes starting together agree on one).
fn namespace(dir: &Path) -> Result<Vec<u8>, KeyError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e: std::io::Error| KeyError::Io(format!("{}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let path = dir.join("kek-namespace");
    if !path.exists() {
        let mut fresh = [0u8; 16];
        getrandom::fill(&mut fresh).map_err(|e| KeyError::Io(format!("random: {e}")))?;
        let tmp = dir.join(format!("kek-namespace.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        std::io::Write::write_all(&mut f, hex(&fresh).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        let linked = std::fs::hard_link(&tmp, &path);
        std::fs::remove_file(&tmp).map_err(io)?;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let bytes = (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>();
    match bytes {
        Ok(b) if b.len() == 16 && text.len() == 32 => Ok(b),
        _ => Err(KeyError::Corrupt(format!(
            "{} is damaged: it must hold 32 hex digits",
            path.display()
        ))),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

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
        wrapped.expect_provider(PROVIDER)?;
        wrapped.expect_algorithm(&[ALG_KWP_HMAC, ALG_HSM_GCM])?;
        self.records
            .use_version(&wrapped.key_id, Some(wrapped.key_version))?;
        let data = binding_data(&wrapped.key_id, wrapped.key_version, context);
        if wrapped.algorithm == ALG_KWP_HMAC {
            self.unwrap_kwp(wrapped, &data)
        } else {
            self.unwrap_gcm(wrapped, &data)
        }
    }

    ssekit_engine::lifecycle_from_records!(records);
}
