//! Whether a home directory, or a module to load, can be trusted: OpenSSH's StrictModes rules.
//!
//! A home's `config.json` can name a PKCS#11 module (code that is loaded into the process) or a KMS
//! endpoint (which then receives every data key), and its keyring holds the KEKs. Whoever can write
//! any of it can run code as the user or read every object, so nothing is read from a home unless:
//!
//! - the home directory and everything in it (every directory and file, recursively) is owned by the
//!   effective user and not writable by group or others;
//! - nothing in it is a symbolic link (nothing inside a home is ever followed: a link planted there
//!   could point anywhere) or a FIFO, socket or device;
//! - every directory above it, up to `/`, is owned by the user or root and is not writable by group
//!   or others unless it has the sticky bit (as `/tmp` has), so no one else can rename the home away
//!   and put another in its place between this check and a later read. OpenSSH walks up to the root
//!   the same way for `authorized_keys`.
//! - the path to it may pass through symbolic links (a home moved to another disk); each one must be
//!   owned by the user or root, and the path it points to is checked by the same rules.
//!
//! A PKCS#11 module must be named by an absolute path (a relative name would be looked up from the
//! working directory or the loader's search path) and be a regular file owned by the user or root,
//! not writable by group or others, reached through directories that pass the rules above.
//!
//! Each refusal is a [`KeyError::InsecurePermissions`] of one line naming the path and what to change.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::KeyError;

/// The most symbolic links followed on one path, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// The effective user id, the one that owns what this process creates.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn insecure(msg: String) -> KeyError {
    KeyError::InsecurePermissions(msg)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io(format!("{what} {}: {e}", path.display()))
}

fn writable_by_others(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o022 != 0
}

fn mode_text(meta: &fs::Metadata) -> String {
    format!("{:04o}", meta.permissions().mode() & 0o7777)
}

/// A directory a path passes through: owned by the user or root, and not writable by group or
/// others unless sticky.
fn check_passed_dir(dir: &Path, uid: u32) -> Result<(), KeyError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| io_err("cannot stat", dir, e))?;
    let owner = meta.uid();
    if owner != uid && owner != 0 {
        return Err(insecure(format!(
            "{} is owned by uid {owner}, not by you (uid {uid}) or root: use a path whose directories only you or root control",
            dir.display()
        )));
    }
    let sticky = meta.permissions().mode() & 0o1000 != 0;
    if writable_by_others(&meta) && !sticky {
        return Err(insecure(format!(
            "{} is writable by group or others (mode {}): run `chmod go-w {}` (or `chmod +t` it)",
            dir.display(),
            mode_text(&meta),
            dir.display()
        )));
    }
    Ok(())
}

/// Resolves `path` as realpath(3) does, checking every directory it looks a name up in and every
/// symbolic link it follows. Returns the real path (no links, no `.` or `..`).
fn resolve(path: &Path, uid: u32, links: &mut u32) -> Result<PathBuf, KeyError> {
    let mut real = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(name) => {
                check_passed_dir(&real, uid)?;
                let next = real.join(name);
                let meta =
                    fs::symlink_metadata(&next).map_err(|e| io_err("cannot stat", &next, e))?;
                if !meta.file_type().is_symlink() {
                    real = next;
                    continue;
                }
                let owner = meta.uid();
                if owner != uid && owner != 0 {
                    return Err(insecure(format!(
                        "{} is a symbolic link owned by uid {owner}, not by you (uid {uid}) or root: remove it or use the path it points to",
                        next.display()
                    )));
                }
                *links += 1;
                if *links > MAX_LINKS {
                    return Err(KeyError::Io(format!(
                        "{}: too many levels of symbolic links",
                        path.display()
                    )));
                }
                let target = fs::read_link(&next).map_err(|e| io_err("cannot read", &next, e))?;
                // An absolute target replaces `real` in the join; a relative one continues from it.
                real = resolve(&real.join(target), uid, links)?;
            }
        }
    }
    Ok(real)
}

fn absolute(path: &Path) -> Result<PathBuf, KeyError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| KeyError::Io(format!("cannot find the working directory: {e}")))?;
    Ok(cwd.join(path))
}

/// The home directory and everything in it: owned by the user, not writable by group or others,
/// no links, only directories and regular files.
///
/// `listed` says `path` came from listing its parent: an entry gone by the time it is examined (the
/// temporary file of another process's atomic write, renamed into place meanwhile) is skipped, as
/// nothing will be read from it; the home itself must exist.
fn check_tree(path: &Path, uid: u32, listed: bool) -> Result<(), KeyError> {
    let gone = |e: &std::io::Error| listed && e.kind() == std::io::ErrorKind::NotFound;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(io_err("cannot stat", path, e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(insecure(format!(
            "{} is a symbolic link: nothing inside a home is followed; replace it with what it points to",
            path.display()
        )));
    }
    if !kind.is_dir() && !kind.is_file() {
        return Err(insecure(format!(
            "{} is not a regular file or directory: remove it",
            path.display()
        )));
    }
    if meta.uid() != uid {
        return Err(insecure(format!(
            "{} is owned by uid {}, not by you (uid {uid}): run `chown {uid} {}` if it is yours, else remove it",
            path.display(),
            meta.uid(),
            path.display()
        )));
    }
    if writable_by_others(&meta) {
        return Err(insecure(format!(
            "{} is writable by group or others (mode {}): run `chmod go-w {}`",
            path.display(),
            mode_text(&meta),
            path.display()
        )));
    }
    if kind.is_dir() {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(io_err("cannot list", path, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot list", path, e))?;
            check_tree(&entry.path(), uid, true)?;
        }
    }
    Ok(())
}

/// Checks that the home directory `dir` can be trusted (see the [module docs](self)) before
/// anything is read from it. A relative `dir` is taken from the working directory.
///
/// Returns `Ok(false)` when `dir` does not exist (there is nothing to read yet; check again once
/// it is created), `Ok(true)` when it exists and passed.
///
/// # Errors
///
/// [`KeyError::InsecurePermissions`] naming the first path that fails and what to change;
/// [`KeyError::Io`] when a path cannot be examined.
pub fn check_home(dir: &Path) -> Result<bool, KeyError> {
    let dir = absolute(dir)?;
    match fs::symlink_metadata(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("cannot stat", &dir, e)),
    }
    let uid = euid();
    let real = resolve(&dir, uid, &mut 0)?;
    if !fs::symlink_metadata(&real)
        .map_err(|e| io_err("cannot stat", &real, e))?
        .is_dir()
    {
        return Err(insecure(format!(
            "home {} is not a directory: use another home",
            real.display()
        )));
    }
    check_tree(&real, uid, false)?;
    Ok(true)
}

/// Checks that the PKCS#11 module at `path` can be trusted before it is loaded: an absolute path
/// to a regular file owned by the user or root, not writable by group or others, through
/// directories that pass the home rules (see the [module docs](self)).
///
/// # Errors
///
/// [`KeyError::InsecurePermissions`] for a relative path or a module others could have changed,
/// [`KeyError::Io`] when it cannot be examined (it does not exist, say).
pub fn check_module(path: &Path) -> Result<(), KeyError> {
    if !path.is_absolute() {
        return Err(insecure(format!(
            "PKCS#11 module `{}` is not an absolute path: give its full path (a relative one is looked up from the working directory or the loader's search path)",
            path.display()
        )));
    }
    let uid = euid();
    let real = resolve(path, uid, &mut 0)?;
    let meta = fs::symlink_metadata(&real).map_err(|e| io_err("cannot stat", &real, e))?;
    if !meta.is_file() {
        return Err(insecure(format!(
            "PKCS#11 module {} is not a regular file",
            real.display()
        )));
    }
    let owner = meta.uid();
    if owner != uid && owner != 0 {
        return Err(insecure(format!(
            "PKCS#11 module {} is owned by uid {owner}, not by you (uid {uid}) or root: install it as root or as yourself",
            real.display()
        )));
    }
    if writable_by_others(&meta) {
        return Err(insecure(format!(
            "PKCS#11 module {} is writable by group or others (mode {}): run `chmod go-w {}`",
            real.display(),
            mode_text(&meta),
            real.display()
        )));
    }
    Ok(())
}

/// The default home directory: `$SSEKIT_HOME`, else `$XDG_DATA_HOME/ssekit`, else
/// `~/.local/share/ssekit` with `~` from `$HOME` or, when that is unset, the user's entry in
/// `/etc/passwd`. Never the working directory: relative `$XDG_DATA_HOME` and `$HOME` are ignored,
/// as the XDG Base Directory specification says.
///
/// # Errors
///
/// [`KeyError::Io`] when none of them gives a directory.
pub fn default_home() -> Result<PathBuf, KeyError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(h) = var("SSEKIT_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(d) = var("XDG_DATA_HOME").map(PathBuf::from)
        && d.is_absolute()
    {
        return Ok(d.join("ssekit"));
    }
    let user_home = var("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(passwd_home)
        .ok_or_else(|| {
            KeyError::Io(
                "no home directory to keep keys in: set SSEKIT_HOME (or HOME), or pass --home"
                    .into(),
            )
        })?;
    Ok(user_home.join(".local/share/ssekit"))
}

/// The home directory of the effective user in `/etc/passwd` (`name:pw:uid:gid:gecos:home:shell`).
fn passwd_home() -> Option<PathBuf> {
    let uid = euid().to_string();
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2] == uid)
        .map(|f| PathBuf::from(f[5]))
        .filter(|h| h.is_absolute())
}
