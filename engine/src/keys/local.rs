//! `LocalKeyring`: KEKs in files under a directory, the embedded default provider.
//!
//! Layout of the directory (the home, see [`super::home`]):
//!
//! - `root.key`: the 32-byte root secret, created on first use unless `SSEKIT_ROOT_KEY_FILE` names
//!   one elsewhere (keep it on other storage than the keyring in production).
//! - `keys/<id>.key`: one file per KEK: `"SSEKKEY2" ‖ generation ‖ nonce ‖ AES-256-GCM(root, record)`,
//!   with the key id and the generation (big-endian u64, counting every write of this key's record)
//!   as AAD, the record a JSON document with the key's state, schedule and every version's material.
//!   Sealing the whole record means a file cannot be edited (to revive a disabled key, say) or
//!   swapped for another key's without detection.
//! - `keys.index`: `"SSEKIDX1" ‖ nonce ‖ AES-256-GCM(root, index)`: every key id and the generation of
//!   its current record. Every load checks the record against it, so an older copy of one record put
//!   back (the disabled key's record from before the disable, say), a record deleted, or one added
//!   behind the keyring's back is [`KeyError::RolledBack`] naming the key, never used.
//! - `.lock`: taken exclusively around every read and read-modify-write of records and index, so
//!   several processes can share a keyring: the index and the records change together under it.
//!
//! Every write goes to a temporary file in the same directory which is written, fsynced, renamed
//! over the old file, and the directory fsynced: a crash leaves either the old or the new file,
//! never a torn one. A record write is three such writes: the index with the new generation marked
//! pending, the record, the index with the mark cleared; while the mark is there (after a crash
//! between the first two) the index also accepts the previous generation, and nothing else. Files
//! are created 0600 and directories 0700, and files readable or writable by group or others are
//! refused.
//!
//! What this does not catch: the whole directory (records *and* index) put back to an earlier copy.
//! That is a state the keyring itself was in, and nothing inside the directory can tell it from the
//! present; every key then has the state it had then (a disabled key enabled again, a destroyed
//! key's material back). Detecting it needs state kept outside the directory (see docs/PROVIDERS.md
//! for what an operator can do).
//!
//! Wraps are AES-256-GCM under the KEK version's material with a random 96-bit nonce and, as AAD,
//! the key id, the version and the canonical encryption context: a wrap opens only with the context
//! it was made with.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{
    DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, KeyState, WrappedKey,
};
use crate::aead::Aes256Gcm;

/// The wrap algorithm this provider records.
pub const WRAP_ALGORITHM: &str = "AES256-GCM";
const PROVIDER: &str = "local";
const RECORD_MAGIC: &[u8; 8] = b"SSEKKEY2";
const INDEX_MAGIC: &[u8; 8] = b"SSEKIDX1";
const INDEX_FILE: &str = "keys.index";
const DAY: u64 = 86_400;

/// A source of the current time, in Unix seconds; tests use their own to move through rotation
/// schedules and deletion windows.
pub trait Clock: Send + Sync {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;

    /// Now, in Unix milliseconds (the audit log's time stamps); by default from [`Clock::now`].
    fn now_millis(&self) -> u64 {
        self.now().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

#[derive(Serialize, Deserialize)]
struct Version {
    version: u32,
    created: u64,
    /// Base64 of the 32-byte KEK; empty once destroyed.
    material: String,
}

impl Drop for Version {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    /// Which write of this key's record this is (1 for the first); kept in the file's header and
    /// its AAD, not in the JSON.
    #[serde(skip)]
    generation: u64,
    id: String,
    description: String,
    created: u64,
    #[serde(flatten)]
    state: KeyState,
    rotation_period_days: Option<u32>,
    versions: Vec<Version>,
}

impl Record {
    fn info(&self) -> KeyInfo {
        let newest = self.versions.last();
        KeyInfo {
            id: self.id.clone(),
            description: self.description.clone(),
            state: self.state,
            current_version: newest.map_or(0, |v| v.version),
            created: self.created,
            rotated: newest.map_or(self.created, |v| v.created),
            rotation_period_days: self.rotation_period_days,
        }
    }

    /// Refuses use unless enabled, with the typed error of the state it is in.
    fn require_enabled(&self) -> Result<(), KeyError> {
        self.state.require_enabled(&self.id)
    }

    /// Adds the next version, made by `store`.
    fn add_version(&mut self, now: u64, store: &dyn VersionStore) -> Result<(), KeyError> {
        let mut version = self.versions.last().map_or(1, |v| v.version + 1);
        // Versions the device made through a copy of this record are recorded, never made again.
        for held in store.held_versions(&self.id, version)? {
            if held >= version {
                self.versions.push(Version {
                    version: held,
                    created: now,
                    material: String::new(),
                });
                version = held.checked_add(1).ok_or_else(|| {
                    KeyError::Corrupt(format!("key `{}` has no version numbers left", self.id))
                })?;
            }
        }
        let material = store.create_version(&self.id, version)?;
        self.versions.push(Version {
            version,
            created: now,
            material: BASE64.encode(&*material),
        });
        Ok(())
    }

    /// What the record keeps for `version`: its KEK, or nothing where the KEK lives elsewhere.
    fn material(&self, version: u32) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let v = self
            .versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(|| {
                KeyError::WrongProvider(format!("key `{}` has no version {version}", self.id))
            })?;
        BASE64.decode(&v.material).map(Zeroizing::new).map_err(|_| {
            KeyError::Corrupt(format!("key `{}` version {version} is damaged", self.id))
        })
    }

    /// Every version's material, decoded.
    fn materials(&self) -> Result<Vec<Material>, KeyError> {
        self.versions
            .iter()
            .map(|v| Ok((v.version, self.material(v.version)?)))
            .collect()
    }

    /// Applies what time alone changes: destruction after the deletion window, scheduled rotation.
    /// Returns true when the record changed and must be written.
    fn refresh(&mut self, now: u64, store: &dyn VersionStore) -> Result<bool, KeyError> {
        match self.state {
            KeyState::PendingDeletion { delete_at } if now >= delete_at => {
                let versions: Vec<u32> = self.versions.iter().map(|v| v.version).collect();
                store.destroy_versions(&self.id, &versions)?;
                self.versions.clear();
                self.state = KeyState::Destroyed;
                Ok(true)
            }
            KeyState::Enabled if now >= self.next_rotation() => {
                self.add_version(now, store)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// When the rotation schedule makes the next version (Unix seconds); never without one.
    fn next_rotation(&self) -> u64 {
        match self.rotation_period_days {
            Some(days) => self.info().rotated.saturating_add(u64::from(days) * DAY),
            None => u64::MAX,
        }
    }
}

/// The keyring's index: every key id and the generation of its current record.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    keys: std::collections::BTreeMap<String, IndexEntry>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexEntry {
    generation: u64,
    /// A write of `generation` was started and may not have finished: the previous generation is
    /// accepted too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
}

/// Where each key version's secret lives, for [`KeyRecords`]: in the record itself (the local
/// keyring) or in a device that keeps it (an HSM), the record then holding only its lifecycle.
pub trait VersionStore: Send + Sync {
    /// Makes version `version` of key `id`; returns what the record keeps for it: the KEK itself, or
    /// nothing when the KEK stays in the device.
    ///
    /// # Errors
    ///
    /// The device's error; the version is then not added.
    fn create_version(&self, id: &str, version: u32) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// Destroys the versions of `id` once its deletion window has passed.
    ///
    /// # Errors
    ///
    /// The device's error; the key then stays pending deletion and destruction is retried on its
    /// next use.
    fn destroy_versions(&self, id: &str, versions: &[u32]) -> Result<(), KeyError>;
    /// The versions of `id` numbered `from` or above that the device already holds, ascending: made
    /// through a copy of the record (a restored backup, another host). The record adopts them,
    /// keeping nothing for them, and the next version is made above them. None by default.
    ///
    /// # Errors
    ///
    /// The device's error; no version is then added.
    fn held_versions(&self, _id: &str, _from: u32) -> Result<Vec<u32>, KeyError> {
        Ok(Vec::new())
    }
}

/// The local keyring's versions: 32 random bytes each, kept (sealed) in the record.
struct RandomVersions;

impl VersionStore for RandomVersions {
    fn create_version(&self, _id: &str, _version: u32) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(Zeroizing::new(DataKey::generate().expose().to_vec()))
    }

    fn destroy_versions(&self, _id: &str, _versions: &[u32]) -> Result<(), KeyError> {
        // The material is in the record, which destruction clears.
        Ok(())
    }
}

/// The embedded default provider: KEKs in files under a directory. See the module documentation for
/// the layout and its guarantees.
pub struct LocalKeyring {
    records: KeyRecords,
}

impl std::fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("dir", &self.records.dir)
            .finish_non_exhaustive()
    }
}

/// Key records in a directory: each key's state, schedule and versions, in the layout and with the
/// guarantees of the module documentation, and every lifecycle transition of [`KeyProvider`]. The
/// local keyring keeps its KEKs in them; the HSM provider keeps only the lifecycle here and the KEKs
/// on the token (its [`VersionStore`]).
pub struct KeyRecords {
    dir: PathBuf,
    root: Aes256Gcm,
    clock: Arc<dyn Clock>,
    versions: Arc<dyn VersionStore>,
    /// Serialises read-modify-write cycles within the process (the lock file does across processes).
    busy: Mutex<()>,
    /// Enabled keys as last read, for [`KeyRecords::use_version`]'s fast path.
    hot: Mutex<HashMap<String, Hot>>,
}

/// What [`KeyRecords::use_version`] needs of an enabled key, valid while its record file is the
/// one `stamp` names (every write replaces the file by rename: a new inode, so any change shows)
/// and until `until`, when time alone may change the record (a scheduled rotation). The file is
/// checked again at most every [`RECHECK`]: a change another process makes is seen by every use
/// that starts more than that after it. Changes made through this `KeyRecords` drop the entry at
/// once.
struct Hot {
    stamp: Stamp,
    checked: std::time::Instant,
    until: u64,
    current: u32,
    materials: Vec<Material>,
}

/// A key version and its material (empty when the KEK lives in a device).
type Material = (u32, Zeroizing<Vec<u8>>);

/// How long a checked record file is trusted without looking again.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    // A file copied over in place (`cp -p`) keeps its inode and can keep size and mtime; the change
    // time is set by the kernel on every write.
    ctime: i64,
    ctime_nsec: i64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }
}

impl std::fmt::Debug for KeyRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecords")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every change under these locks is a single map call: a panic leaves them consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io(format!("{what} {}: {e}", path.display()))
}

fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions(format!(
            "{} is accessible to group or others (mode {:o}); run `chmod go-rwx {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// Reads a file that must be private to its owner.
fn read_private(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot open", path, e)),
    };
    let meta = f.metadata().map_err(|e| io_err("cannot stat", path, e))?;
    check_private(path, &meta)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    f.read_to_end(&mut buf)
        .map_err(|e| io_err("cannot read", path, e))?;
    Ok(Some(buf))
}

/// Writes `bytes` to `path` atomically: temporary file (0600) in the same directory, write, fsync,
/// rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let dir = path.parent().expect("keyring paths have a parent");
    let name = path
        .file_name()
        .expect("keyring paths have a name")
        .to_string_lossy();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
    let tmp = dir.join(format!(".{name}.tmp.{}", u64::from_le_bytes(nonce)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("cannot create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| io_err("cannot sync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err("cannot rename onto", path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot sync", dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err("cannot create", dir, e)),
    }
}

/// Checks a key id: 1..=64 characters from `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub(crate) fn check_id(id: &str) -> Result<(), KeyError> {
    super::check_name(
        id,
        64,
        b"._-",
        ".",
        "key id",
        "use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)",
    )
}

fn wrap_aad(id: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = b"ssekit local wrap v1\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&context.canonical_bytes());
    aad
}

fn record_aad(id: &str, generation: u64) -> Vec<u8> {
    let mut aad = b"ssekit keyring record v2\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&generation.to_be_bytes());
    aad
}

const INDEX_AAD: &[u8] = b"ssekit keyring index v1";

/// `value` as JSON in one zeroizing buffer of exactly its size. `serde_json::to_vec` grows its `Vec`
/// as it writes, and each reallocation frees a copy of what was written so far (every KEK version of
/// a record) without wiping it; here a first pass counts the bytes, the second writes them into a
/// buffer allocated once, which a byte slice as the writer cannot grow.
fn to_json_zeroizing<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let failed = |e: serde_json::Error| KeyError::Io(format!("cannot encode a key record: {e}"));
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_err(failed)?;
    let mut buf = Zeroizing::new(vec![0u8; count.0]);
    let mut rest: &mut [u8] = &mut buf;
    serde_json::to_writer(&mut rest, value).map_err(failed)?;
    if !rest.is_empty() {
        return Err(KeyError::Io(
            "cannot encode a key record: its size changed between two passes".into(),
        ));
    }
    Ok(buf)
}

fn random_nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    getrandom::fill(&mut n).expect("the operating system's random number generator failed");
    n
}

impl LocalKeyring {
    /// Opens (creating if needed) the keyring in `dir`, with the root secret from
    /// `SSEKIT_ROOT_KEY_FILE` if set, else `dir/root.key` (generated on first use).
    ///
    /// # Errors
    ///
    /// [`KeyError::InsecurePermissions`] for a root secret or directory others can read,
    /// [`KeyError::Io`], [`KeyError::Corrupt`] for a root secret of the wrong size.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, KeyError> {
        let root_file = std::env::var_os("SSEKIT_ROOT_KEY_FILE").map(PathBuf::from);
        Self::open_with(dir, root_file.as_deref(), Arc::new(SystemClock))
    }

    /// As [`LocalKeyring::open`] with an explicit root-secret file (`None`: `dir/root.key`) and clock.
    ///
    /// # Errors
    ///
    /// As [`LocalKeyring::open`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        root_key_file: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyError> {
        let records = KeyRecords::open_with(dir, root_key_file, clock, Arc::new(RandomVersions))?;
        Ok(LocalKeyring { records })
    }

    /// The keyring's directory.
    pub fn dir(&self) -> &Path {
        &self.records.dir
    }

    /// The AES-256-GCM key of `id`'s `version` (the newest when `None`), if the key is enabled.
    fn kek(&self, id: &str, version: Option<u32>) -> Result<(u32, Aes256Gcm), KeyError> {
        let (version, material) = self.records.use_version(id, version)?;
        let key = DataKey::try_from_slice(&material)
            .map_err(|_| KeyError::Corrupt(format!("key `{id}` version {version} is damaged")))?;
        let gcm = Aes256Gcm::from_env(key.expose()).map_err(|e| KeyError::Io(e.to_string()))?;
        Ok((version, gcm))
    }
}

impl KeyRecords {
    /// Opens (creating if needed) the records in `dir`, sealed under the root secret in
    /// `root_key_file` (`None`: `dir/root.key`, generated on first use), with new versions made by
    /// `versions`.
    ///
    /// # Errors
    ///
    /// As [`LocalKeyring::open`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        root_key_file: Option<&Path>,
        clock: Arc<dyn Clock>,
        versions: Arc<dyn VersionStore>,
    ) -> Result<Self, KeyError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir.join("keys"))?;
        super::home::check_home(&dir)?;
        let meta = fs::metadata(&dir).map_err(|e| io_err("cannot stat", &dir, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions(format!(
                "keyring directory {} is accessible to group or others; run `chmod 700 {}`",
                dir.display(),
                dir.display()
            )));
        }
        let root_path = root_key_file.map_or_else(|| dir.join("root.key"), Path::to_path_buf);
        let root_bytes = match read_private(&root_path)? {
            Some(b) => b,
            None if root_key_file.is_some() => {
                return Err(KeyError::Io(format!(
                    "the named root secret file {} does not exist (a named one is never generated)",
                    root_path.display()
                )));
            }
            None => {
                let fresh = DataKey::generate();
                // Create-if-absent without a window: a fresh file is linked in place only if no
                // other process got there first; whoever lost reads the winner's.
                // A random name, not the process id: two openers in one process (two threads)
                // would share it, and one would remove the other's file before its link.
                let mut r = [0u8; 8];
                getrandom::fill(&mut r)
                    .expect("the operating system's random number generator failed");
                let tmp = dir.join(format!(".root.key.tmp.{:016x}", u64::from_le_bytes(r)));
                write_atomic(&tmp, fresh.expose())?;
                let linked = fs::hard_link(&tmp, &root_path);
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err("cannot create", &root_path, e)),
                }
                read_private(&root_path)?
                    .ok_or_else(|| KeyError::Io("root secret vanished".into()))?
            }
        };
        let root = DataKey::try_from_slice(&root_bytes).map_err(|_| {
            KeyError::Corrupt(format!(
                "root secret {} must be exactly 32 bytes (it has {})",
                root_path.display(),
                root_bytes.len()
            ))
        })?;
        let root = Aes256Gcm::from_env(root.expose()).map_err(|e| KeyError::Io(e.to_string()))?;
        Ok(KeyRecords {
            dir,
            root,
            clock,
            versions,
            busy: Mutex::new(()),
            hot: Mutex::new(HashMap::new()),
        })
    }

    /// The records' directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest version of `id` (or `version`) and what its record keeps for it, if the key is
    /// enabled (after applying scheduled rotation and destruction).
    ///
    /// # Errors
    ///
    /// [`KeyError::NotFound`], the typed error of a key not enabled, [`KeyError::WrongProvider`] for
    /// a version the key does not have.
    pub fn use_version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<(u32, Zeroizing<Vec<u8>>), KeyError> {
        if let Some(hit) = self.use_hot(id, version)? {
            return Ok(hit);
        }
        let ((v, material, hot), stamp) = self.update_stamped(id, |rec, _| {
            rec.require_enabled()?;
            let current = rec.info().current_version;
            let v = version.unwrap_or(current);
            let material = rec.material(v)?;
            let hot = (rec.next_rotation(), current, rec.materials()?);
            Ok(((v, material, hot), false))
        })?;
        let (until, current, materials) = hot;
        lock(&self.hot).insert(
            id.to_owned(),
            Hot {
                stamp,
                checked: std::time::Instant::now(),
                until,
                current,
                materials,
            },
        );
        Ok((v, material))
    }

    /// [`KeyRecords::use_version`] without the lock or a read: when the record file is unchanged
    /// since it was last read and no scheduled change is due. `None`: take the slow path.
    fn use_hot(&self, id: &str, version: Option<u32>) -> Result<Option<Material>, KeyError> {
        let mut hot = lock(&self.hot);
        let Some(h) = hot.get_mut(id) else {
            return Ok(None);
        };
        if h.checked.elapsed() >= RECHECK {
            let path = self.path(id);
            let Ok(meta) = fs::metadata(&path) else {
                return Ok(None);
            };
            check_private(&path, &meta)?;
            if Stamp::of(&meta) != h.stamp {
                return Ok(None);
            }
            h.checked = std::time::Instant::now();
        }
        if self.clock.now() >= h.until {
            return Ok(None);
        }
        let v = version.unwrap_or(h.current);
        Ok(h.materials
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, m)| (v, m.clone())))
    }

    /// Enable or disable: allowed between those two states only.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidState`] when pending deletion, [`KeyError::Destroyed`].
    pub fn set_enabled(&self, key_id: &str, on: bool) -> Result<KeyInfo, KeyError> {
        let want = if on {
            KeyState::Enabled
        } else {
            KeyState::Disabled
        };
        self.update(key_id, |rec, _| match rec.state {
            KeyState::Enabled | KeyState::Disabled => {
                let changed = rec.state != want;
                rec.state = want;
                Ok((rec.info(), changed))
            }
            KeyState::PendingDeletion { .. } => Err(KeyError::InvalidState {
                id: rec.id.clone(),
                state: "pending deletion (cancel the deletion first)".into(),
            }),
            KeyState::Destroyed => Err(KeyError::Destroyed(rec.id.clone())),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{id}.key"))
    }

    /// Runs `f` holding the process mutex and the keyring's lock file.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, KeyError>) -> Result<T, KeyError> {
        let _guard = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock_path = self.dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open", &lock_path, e))?;
        lock.lock()
            .map_err(|e| io_err("cannot lock", &lock_path, e))?;
        let r = f();
        let _ = lock.unlock();
        r
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// Reads the index (under the lock). No index file is an empty index while `keys/` holds no
    /// record (a new keyring), and an error otherwise.
    fn read_index(&self) -> Result<Index, KeyError> {
        let path = self.index_path();
        let corrupt = || {
            KeyError::Corrupt(format!(
                "keyring index {} does not open under this keyring's root secret: it is damaged, or from another keyring",
                path.display()
            ))
        };
        let Some(sealed) = read_private(&path)? else {
            if self.record_ids()?.is_empty() {
                return Ok(Index::default());
            }
            return Err(KeyError::Corrupt(format!(
                "keyring index {} is missing while {} holds key records: it was deleted; restore it from the backup the records came from",
                path.display(),
                self.dir.join("keys").display()
            )));
        };
        if sealed.len() < 8 + 12 + 16 || &sealed[..8] != INDEX_MAGIC {
            return Err(corrupt());
        }
        let nonce: [u8; 12] = sealed[8..20].try_into().expect("12");
        let mut body = sealed[20..sealed.len() - 16].to_vec();
        let tag: [u8; 16] = sealed[sealed.len() - 16..].try_into().expect("16");
        self.root
            .open_in_place(&nonce, INDEX_AAD, &mut body, &tag)
            .map_err(|_| corrupt())?;
        serde_json::from_slice(&body).map_err(|_| corrupt())
    }

    fn write_index(&self, index: &Index) -> Result<(), KeyError> {
        let mut body = serde_json::to_vec(index)
            .map_err(|e| KeyError::Io(format!("cannot encode the keyring index: {e}")))?;
        let nonce = random_nonce();
        let tag = self.root.seal_in_place(&nonce, INDEX_AAD, &mut body);
        let mut file = Vec::with_capacity(8 + 12 + body.len() + 16);
        file.extend_from_slice(INDEX_MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&body);
        file.extend_from_slice(&tag);
        write_atomic(&self.index_path(), &file)
    }

    /// The ids of the record files in `keys/`.
    fn record_ids(&self) -> Result<Vec<String>, KeyError> {
        let keys = self.dir.join("keys");
        Ok(fs::read_dir(&keys)
            .map_err(|e| io_err("cannot list", &keys, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".key")?;
                check_id(id).ok().map(|()| id.to_owned())
            })
            .collect())
    }

    /// Reads `id`'s record (under the lock) and checks its generation against `index`.
    fn load(&self, id: &str, index: &Index) -> Result<Record, KeyError> {
        check_id(id)?;
        let path = self.path(id);
        let entry = index.keys.get(id).copied();
        let rolled_back = |detail: String| KeyError::RolledBack {
            id: id.to_owned(),
            detail,
        };
        let Some(sealed) = read_private(&path)? else {
            return match entry {
                None => Err(KeyError::NotFound(id.to_owned())),
                // A creation that stopped before its record was written.
                Some(IndexEntry {
                    generation: 1,
                    pending: true,
                }) => Err(KeyError::NotFound(id.to_owned())),
                Some(e) => Err(rolled_back(format!(
                    "the index lists generation {} but the record file {} is missing",
                    e.generation,
                    path.display()
                ))),
            };
        };
        let corrupt = || {
            KeyError::Corrupt(format!(
                "key file {} does not open under this keyring's root secret: it is damaged, or from another keyring",
                path.display()
            ))
        };
        if sealed.len() < 8 + 8 + 12 + 16 || &sealed[..8] != RECORD_MAGIC {
            return Err(corrupt());
        }
        let generation = u64::from_be_bytes(sealed[8..16].try_into().expect("8"));
        let nonce: [u8; 12] = sealed[16..28].try_into().expect("12");
        let mut body = Zeroizing::new(sealed[28..sealed.len() - 16].to_vec());
        let tag: [u8; 16] = sealed[sealed.len() - 16..].try_into().expect("16");
        self.root
            .open_in_place(&nonce, &record_aad(id, generation), &mut body, &tag)
            .map_err(|_| corrupt())?;
        let mut rec: Record = serde_json::from_slice(&body).map_err(|_| corrupt())?;
        if rec.id != id {
            return Err(corrupt());
        }
        match entry {
            Some(e) if e.generation == generation => {}
            Some(e) if e.pending && generation.checked_add(1) == Some(e.generation) => {}
            Some(e) if generation < e.generation => {
                return Err(rolled_back(format!(
                    "the record is generation {generation} but the index says {}: an older copy of it was put back",
                    e.generation
                )));
            }
            Some(e) => {
                return Err(rolled_back(format!(
                    "the record is generation {generation} but the index says {}: the index was put back to an older copy",
                    e.generation
                )));
            }
            None => {
                return Err(rolled_back(format!(
                    "the record (generation {generation}) is not in the keyring's index: it was added behind the keyring's back"
                )));
            }
        }
        rec.generation = generation;
        Ok(rec)
    }

    /// Writes `rec` as the next generation of its key (under the lock): index marked pending,
    /// record, index unmarked (see the module docs). The generation is one above the index's, which
    /// is never below any the key's record was ever sealed with, so no earlier file can match it.
    fn store(&self, rec: &mut Record, index: &mut Index) -> Result<(), KeyError> {
        let generation = index
            .keys
            .get(&rec.id)
            .map_or(0, |e| e.generation)
            .checked_add(1)
            .ok_or_else(|| KeyError::Corrupt(format!("key `{}`: generation overflow", rec.id)))?;
        index.keys.insert(
            rec.id.clone(),
            IndexEntry {
                generation,
                pending: true,
            },
        );
        self.write_index(index)?;
        rec.generation = generation;
        let mut body = to_json_zeroizing(&*rec)?;
        let nonce = random_nonce();
        let tag = self
            .root
            .seal_in_place(&nonce, &record_aad(&rec.id, generation), &mut body);
        let mut file = Vec::with_capacity(8 + 8 + 12 + body.len() + 16);
        file.extend_from_slice(RECORD_MAGIC);
        file.extend_from_slice(&generation.to_be_bytes());
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&body);
        file.extend_from_slice(&tag);
        write_atomic(&self.path(&rec.id), &file)?;
        index.keys.insert(
            rec.id.clone(),
            IndexEntry {
                generation,
                pending: false,
            },
        );
        self.write_index(index)
    }

    /// Creates a key with its first version.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::create_key`].
    pub fn create(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
        let id = match &spec.id {
            Some(id) => id.clone(),
            None => {
                let mut r = [0u8; 8];
                getrandom::fill(&mut r)
                    .expect("the operating system's random number generator failed");
                format!("key-{:016x}", u64::from_be_bytes(r))
            }
        };
        check_id(&id)?;
        if spec.rotation_period_days == Some(0) {
            return Err(KeyError::Malformed(
                "a rotation period must be at least 1 day".into(),
            ));
        }
        self.locked(|| {
            let mut index = self.read_index()?;
            match self.load(&id, &index) {
                Err(KeyError::NotFound(_)) => {}
                Ok(_) => return Err(KeyError::AlreadyExists(id.clone())),
                Err(e) => return Err(e),
            }
            let now = self.clock.now();
            let mut rec = Record {
                generation: 0,
                id: id.clone(),
                description: spec.description.clone(),
                created: now,
                state: KeyState::Enabled,
                rotation_period_days: spec.rotation_period_days,
                versions: Vec::new(),
            };
            rec.add_version(now, &*self.versions)?;
            self.store(&mut rec, &mut index)?;
            Ok(rec.info())
        })
    }

    /// The key's state and versions.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::describe`].
    pub fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.update(key_id, |rec, _| Ok((rec.info(), false)))
    }

    /// Every key, sorted by id: those of the index and those with a record file, so a record deleted
    /// or added behind the keyring's back is an error here too.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::list`]; [`KeyError::RolledBack`] for a record that does not match the index.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let ids = self.locked(|| {
            let mut ids: std::collections::BTreeSet<String> =
                self.read_index()?.keys.into_keys().collect();
            ids.extend(self.record_ids()?);
            Ok(ids)
        })?;
        let mut infos = Vec::with_capacity(ids.len());
        for id in &ids {
            match self.describe(id) {
                Ok(info) => infos.push(info),
                // Listed by an index entry of a creation that never finished.
                Err(KeyError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(infos)
    }

    /// Adds a version; new wraps use it.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::rotate`].
    pub fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.update(key_id, |rec, now| {
            rec.require_enabled()?;
            rec.add_version(now, &*self.versions)?;
            Ok((rec.info(), true))
        })
    }

    /// Schedules destruction `days` (7..=30) ahead.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::schedule_deletion`].
    pub fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
        if !(7..=30).contains(&days) {
            return Err(KeyError::InvalidDeletionWindow(days));
        }
        self.update(key_id, |rec, now| match rec.state {
            KeyState::Enabled | KeyState::Disabled => {
                rec.state = KeyState::PendingDeletion {
                    delete_at: now + u64::from(days) * DAY,
                };
                Ok((rec.info(), true))
            }
            KeyState::PendingDeletion { .. } => Err(KeyError::InvalidState {
                id: rec.id.clone(),
                state: "already pending deletion".into(),
            }),
            KeyState::Destroyed => Err(KeyError::Destroyed(rec.id.clone())),
        })
    }

    /// Cancels a scheduled deletion; the key comes back disabled.
    ///
    /// # Errors
    ///
    /// As [`KeyProvider::cancel_deletion`].
    pub fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
        self.update(key_id, |rec, _| match rec.state {
            KeyState::PendingDeletion { .. } => {
                rec.state = KeyState::Disabled;
                Ok((rec.info(), true))
            }
            KeyState::Destroyed => Err(KeyError::Destroyed(rec.id.clone())),
            _ => Err(KeyError::InvalidState {
                id: rec.id.clone(),
                state: "not pending deletion".into(),
            }),
        })
    }

    /// Loads a record under the lock, applies time (destruction, scheduled rotation), lets `f` change
    /// it, and writes it back if anything changed.
    fn update<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Record, u64) -> Result<(T, bool), KeyError>,
    ) -> Result<T, KeyError> {
        self.update_stamped(id, f).map(|(t, _)| t)
    }

    /// As [`KeyRecords::update`], also returning the stamp of the record file as left (taken under
    /// the lock, so it names exactly the record `f` saw).
    fn update_stamped<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Record, u64) -> Result<(T, bool), KeyError>,
    ) -> Result<(T, Stamp), KeyError> {
        self.locked(|| {
            let mut index = self.read_index()?;
            let mut rec = self.load(id, &index)?;
            let now = self.clock.now();
            let aged = rec.refresh(now, &*self.versions)?;
            let r = f(&mut rec, now);
            let changed = matches!(r, Ok((_, true)));
            if aged || changed {
                lock(&self.hot).remove(id);
                self.store(&mut rec, &mut index)?;
            }
            let (t, _) = r?;
            let path = self.path(id);
            let meta = fs::metadata(&path).map_err(|e| io_err("cannot stat", &path, e))?;
            Ok((t, Stamp::of(&meta)))
        })
    }
}

impl KeyProvider for LocalKeyring {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn wrap(
        &self,
        key_id: &str,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, KeyError> {
        let (version, gcm) = self.kek(key_id, None)?;
        let nonce = random_nonce();
        let mut body = Zeroizing::new(dek.expose().to_vec());
        let tag = gcm.seal_in_place(&nonce, &wrap_aad(key_id, version, context), &mut body);
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&body);
        ciphertext.extend_from_slice(&tag);
        Ok(WrappedKey {
            provider: PROVIDER.into(),
            key_id: key_id.to_owned(),
            key_version: version,
            algorithm: WRAP_ALGORITHM.into(),
            ciphertext,
        })
    }

    fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        wrapped.expect_provider(PROVIDER)?;
        wrapped.expect_algorithm(&[WRAP_ALGORITHM])?;
        if wrapped.ciphertext.len() != 12 + 32 + 16 {
            return Err(KeyError::UnwrapFailed);
        }
        let (_, gcm) = self.kek(&wrapped.key_id, Some(wrapped.key_version))?;
        let c = &wrapped.ciphertext;
        let nonce: [u8; 12] = c[..12].try_into().expect("12");
        let tag: [u8; 16] = c[44..].try_into().expect("16");
        let mut body = Zeroizing::new([0u8; 32]);
        body.copy_from_slice(&c[12..44]);
        gcm.open_in_place(
            &nonce,
            &wrap_aad(&wrapped.key_id, wrapped.key_version, context),
            body.as_mut(),
            &tag,
        )
        .map_err(|_| KeyError::UnwrapFailed)?;
        Ok(DataKey::from_bytes(&body))
    }

    crate::lifecycle_from_records!(records);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_encoded_into_a_buffer_of_exactly_their_size() {
        let rec = Record {
            generation: 7,
            id: "k".into(),
            description: "a \"quoted\" description\n".into(),
            created: 1,
            state: KeyState::PendingDeletion { delete_at: 9 },
            rotation_period_days: Some(30),
            versions: (1..=40)
                .map(|version| Version {
                    version,
                    created: u64::from(version),
                    material: BASE64.encode(DataKey::generate().expose()),
                })
                .collect(),
        };
        let buf = to_json_zeroizing(&rec).unwrap();
        assert_eq!(&buf[..], &serde_json::to_vec(&rec).unwrap()[..]);
        // Allocated once at its final size: no reallocation left a copy behind.
        assert_eq!(buf.capacity(), buf.len());
    }

    fn generation_of(file: &[u8]) -> u64 {
        u64::from_be_bytes(file[8..16].try_into().unwrap())
    }

    #[test]
    fn an_unfinished_write_accepts_the_previous_generation_and_nothing_older() {
        let dir = tempfile::tempdir().unwrap();
        let r = KeyRecords::open_with(
            dir.path().join("home"),
            None,
            Arc::new(SystemClock),
            Arc::new(RandomVersions),
        )
        .unwrap();
        let spec = |id: &str| KeySpec {
            id: Some(id.into()),
            ..KeySpec::default()
        };
        r.create(&spec("k")).unwrap();
        let gen1 = fs::read(r.path("k")).unwrap();
        r.set_enabled("k", false).unwrap();
        let gen2 = fs::read(r.path("k")).unwrap();
        assert_eq!((generation_of(&gen1), generation_of(&gen2)), (1, 2));
        // A write of generation 3 that stopped after marking the index (a crash), and a creation
        // that stopped before writing its record.
        let mut index = r.read_index().unwrap();
        for (id, generation) in [("k", 3), ("n", 1)] {
            let pending = IndexEntry {
                generation,
                pending: true,
            };
            index.keys.insert(id.into(), pending);
        }
        r.write_index(&index).unwrap();
        assert_eq!(r.describe("k").unwrap().state, KeyState::Disabled);
        assert_eq!(r.describe("n").unwrap_err(), KeyError::NotFound("n".into()));
        assert_eq!(r.list().unwrap().len(), 1);
        // Only the one generation before the pending one.
        fs::write(r.path("k"), &gen1).unwrap();
        assert!(matches!(
            r.describe("k").unwrap_err(),
            KeyError::RolledBack { .. }
        ));
        fs::write(r.path("k"), &gen2).unwrap();
        // The next write goes above the unfinished one, and clears the mark.
        r.set_enabled("k", true).unwrap();
        assert_eq!(generation_of(&fs::read(r.path("k")).unwrap()), 4);
        let entry = r.read_index().unwrap().keys["k"];
        assert_eq!((entry.generation, entry.pending), (4, false));
        fs::write(r.path("k"), &gen2).unwrap();
        assert!(matches!(
            r.describe("k").unwrap_err(),
            KeyError::RolledBack { .. }
        ));
        // The unfinished creation can be made again.
        r.create(&spec("n")).unwrap();
        assert_eq!(r.read_index().unwrap().keys["n"].generation, 2);
    }
}
