//! The hash-chained audit log of every key provider call (docs/AUDIT.md has the format).
//!
//! [`Audited`] wraps a [`KeyProvider`] and appends one JSON line to an [`AuditLog`] for every data
//! call (generate, wrap, unwrap, rewrap) and every lifecycle call (create, rotate, enable, disable,
//! schedule and cancel deletion), with its outcome; `describe` and `list` pass through unlogged.
//! [`Audited::with_principal`] attributes calls to a request's caller without a provider per
//! request.
//!
//! Each line carries `seq` (0, 1, 2, … over the whole log, across rotations), `prev` (the previous
//! line's `hash`) and `hash` (SHA-256 of its own bytes up to `,"hash":`), so [`verify`] finds a line
//! edited, removed, inserted or moved. Lines never hold key material: no data key, no wrapped key.
//!
//! Fail closed: when a line cannot be written, a data call drops (zeroizes) the key it got and
//! returns [`KeyError::Io`] (`audit log: …`), so no key is used without a record. A lifecycle call
//! writes a `requested` line before it is made: if that fails, nothing is changed; if the line of
//! its outcome fails afterwards, the change stands (its request is on record) and the call returns
//! the same error.
//!
//! Sinks: [`FileSink`] (locked appends shared with other processes, fsync, rotation by size) and
//! [`CallbackSink`] (each line to a function, to ship it off the machine).

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::keys::{
    Clock, DataKey, EncryptionContext, KeyError, KeyInfo, KeyProvider, KeySpec, SystemClock,
    WrappedKey,
};

mod file;
mod line;
mod sink;
mod verify;

pub use file::{FileOptions, FileSink};
pub use line::{GENESIS, Record, format_millis, hex, unhex};
pub use sink::{CallbackSink, ChainPosition, LineCallback, SealedLine, Sink};
pub use verify::{
    BadLine, Problem, VerifyError, VerifyOptions, VerifySummary, verify, verify_readers,
};

/// A provider call that is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`KeyProvider::generate_data_key`].
    Generate,
    /// [`KeyProvider::wrap`].
    Wrap,
    /// [`KeyProvider::unwrap`].
    Unwrap,
    /// [`KeyProvider::create_key`].
    Create,
    /// [`KeyProvider::rotate`].
    Rotate,
    /// [`KeyProvider::enable`].
    Enable,
    /// [`KeyProvider::disable`].
    Disable,
    /// [`KeyProvider::schedule_deletion`].
    ScheduleDeletion,
    /// [`KeyProvider::cancel_deletion`].
    CancelDeletion,
    /// [`KeyProvider::rewrap`].
    Rewrap,
    /// An object's data key wrapped under a cached S3 Bucket Key (no provider call: logged by the
    /// S3 layer, naming the object).
    BucketKeyWrap,
    /// An object's data key unwrapped under a cached S3 Bucket Key.
    BucketKeyUnwrap,
    /// An object's data key wrapped under an SSE-C customer key (logged by the S3 layer).
    CustomerKeyWrap,
    /// An object's data key unwrapped with an SSE-C customer key (a wrong key is a failed one).
    CustomerKeyUnwrap,
}

impl Op {
    /// The `op` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Generate => "generate",
            Op::Wrap => "wrap",
            Op::Unwrap => "unwrap",
            Op::Create => "create",
            Op::Rotate => "rotate",
            Op::Enable => "enable",
            Op::Disable => "disable",
            Op::ScheduleDeletion => "schedule_deletion",
            Op::CancelDeletion => "cancel_deletion",
            Op::Rewrap => "rewrap",
            Op::BucketKeyWrap => "bucket_key_wrap",
            Op::BucketKeyUnwrap => "bucket_key_unwrap",
            Op::CustomerKeyWrap => "sse_c_wrap",
            Op::CustomerKeyUnwrap => "sse_c_unwrap",
        }
    }
}

/// One call to record.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The call.
    pub op: Op,
    /// The provider's name.
    pub provider: &'a str,
    /// The key id the call named (`None` only for a `create` that named none and failed).
    pub key_id: Option<&'a str>,
    /// The KEK version, when known.
    pub key_version: Option<u32>,
    /// The encryption context of a data call (`None` for lifecycle calls).
    pub context: Option<&'a EncryptionContext>,
    /// Who asked.
    pub principal: Option<&'a str>,
    /// What happened.
    pub outcome: Result<(), &'a KeyError>,
}

/// The `outcome` of the line written before a lifecycle call ([`AuditLog::record_request`]).
pub const OUTCOME_REQUESTED: &str = "requested";

/// The `outcome` of a failed call: the [`KeyError`] variant's name.
pub fn error_kind(e: &KeyError) -> &'static str {
    match e {
        KeyError::NotFound(_) => "NotFound",
        KeyError::AlreadyExists(_) => "AlreadyExists",
        KeyError::Disabled(_) => "Disabled",
        KeyError::PendingDeletion { .. } => "PendingDeletion",
        KeyError::Destroyed(_) => "Destroyed",
        KeyError::InvalidState { .. } => "InvalidState",
        KeyError::InvalidDeletionWindow(_) => "InvalidDeletionWindow",
        KeyError::UnwrapFailed => "UnwrapFailed",
        KeyError::WrongProvider(_) => "WrongProvider",
        KeyError::Malformed(_) => "Malformed",
        KeyError::InsecurePermissions(_) => "InsecurePermissions",
        KeyError::Device { .. } => "Device",
        KeyError::Unavailable { .. } => "Unavailable",
        KeyError::RolledBack { .. } => "RolledBack",
        KeyError::Corrupt(_) => "Corrupt",
        KeyError::Io(_) => "Io",
    }
}

/// The `error` field keeps at most this many bytes of the message.
const MAX_ERROR_BYTES: usize = 256;

fn short_message(e: &KeyError) -> String {
    let mut m = e.to_string();
    if m.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    m
}

/// Why a line could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// Opening, locking, writing, syncing or rotating the log file failed.
    Io(String),
    /// The log file's last line cannot be continued (incomplete or not an audit line).
    Tail(String),
    /// The callback refused the line.
    Callback(String),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Io(what) | AuditError::Tail(what) => f.write_str(what),
            AuditError::Callback(what) => write!(f, "the audit sink refused the line: {what}"),
        }
    }
}

impl std::error::Error for AuditError {}

/// A log: a sink, its chain, a clock. Shared (`Arc`) by every provider wrapper writing to it;
/// appends from all threads are serialised, so the chain never forks.
pub struct AuditLog {
    sink: Mutex<Box<dyn Sink>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditLog(..)")
    }
}

impl AuditLog {
    /// A log writing to `sink`, stamped by `clock`'s [`Clock::now_millis`] (the keyring's clock
    /// type; tests give their own).
    pub fn new(sink: impl Sink + 'static, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(AuditLog {
            sink: Mutex::new(Box::new(sink)),
            clock,
        })
    }

    /// A log appending to the file at `path` (created mode 0600, with `<path>.lock` beside it),
    /// stamped by the system clock.
    ///
    /// # Errors
    ///
    /// As [`FileSink::open`].
    pub fn open_file(
        path: impl AsRef<std::path::Path>,
        options: FileOptions,
    ) -> Result<Arc<Self>, AuditError> {
        Ok(Self::new(
            FileSink::open(path, options)?,
            Arc::new(SystemClock),
        ))
    }

    /// A log handing each line to `callback`, from seq 0, stamped by the system clock.
    pub fn to_callback(
        callback: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::new(CallbackSink::new(callback), Arc::new(SystemClock))
    }

    /// Appends the line for `event`.
    ///
    /// # Errors
    ///
    /// The sink's [`AuditError`].
    pub fn record(&self, event: &Event<'_>) -> Result<(), AuditError> {
        let (outcome, error) = match event.outcome {
            Ok(()) => ("ok", None),
            Err(e) => (error_kind(e), Some(short_message(e))),
        };
        self.append(event, outcome, error)
    }

    /// Appends the line saying a lifecycle call is about to be made (outcome `requested`; the
    /// event's own outcome is not used): written before the change, so no change is made without a
    /// line, even when the line of its outcome cannot be written afterwards.
    ///
    /// # Errors
    ///
    /// The sink's [`AuditError`].
    pub fn record_request(&self, event: &Event<'_>) -> Result<(), AuditError> {
        self.append(event, OUTCOME_REQUESTED, None)
    }

    fn append(
        &self,
        event: &Event<'_>,
        outcome: &str,
        error: Option<String>,
    ) -> Result<(), AuditError> {
        // A panic while appending leaves nothing half-changed that matters: the file sink reads
        // the chain from the file again, the callback sink moves on only after a delivery.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        sink.append(&mut |pos| {
            // Stamped under the lock, so times never run backwards along the chain.
            let time = format_millis(self.clock.now_millis());
            let prev = hex(&pos.prev);
            let mut text = String::with_capacity(384);
            line::Fields {
                seq: pos.seq,
                time: &time,
                op: event.op.as_str(),
                provider: event.provider,
                key_id: event.key_id,
                key_version: event.key_version,
                context: event.context.map(EncryptionContext::iter),
                principal: event.principal,
                outcome,
                error: error.as_deref(),
                prev: &prev,
            }
            .body(&mut text);
            let hash = line::finish(&mut text);
            SealedLine { line: text, hash }
        })
    }
}

/// A [`KeyProvider`] that logs every call of `P` to an [`AuditLog`]; see the module docs.
pub struct Audited<P> {
    inner: P,
    log: Arc<AuditLog>,
    principal: Option<String>,
}

/// An [`Audited`] provider whose calls are recorded as made by one principal: made per request by
/// [`Audited::with_principal`], costs nothing to make.
pub struct Attributed<'a, P> {
    audited: &'a Audited<P>,
    principal: &'a str,
}

impl<P: KeyProvider> Audited<P> {
    /// Logs `inner`'s calls to `log`, with no principal.
    pub fn new(inner: P, log: Arc<AuditLog>) -> Self {
        Audited {
            inner,
            log,
            principal: None,
        }
    }

    /// Records calls made on this provider directly (not through [`Audited::with_principal`]) as
    /// made by `principal` (a command-line tool's user, say).
    pub fn attributed_to(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }

    /// The provider underneath (calls made on it directly are not logged).
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The log.
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// This provider, with calls recorded as made by `principal`.
    pub fn with_principal<'a>(&'a self, principal: &'a str) -> Attributed<'a, P> {
        Attributed {
            audited: self,
            principal,
        }
    }

    /// Records a call; a line that cannot be written becomes the call's error.
    #[allow(clippy::too_many_arguments)]
    fn note(
        &self,
        op: Op,
        key_id: Option<&str>,
        key_version: Option<u32>,
        context: Option<&EncryptionContext>,
        principal: Option<&str>,
        outcome: Result<(), &KeyError>,
    ) -> Result<(), KeyError> {
        self.log
            .record(&Event {
                op,
                provider: self.inner.name(),
                key_id,
                key_version,
                context,
                principal,
                outcome,
            })
            .map_err(|e| KeyError::Io(format!("audit log: {e}")))
    }

    /// A lifecycle call: its `requested` line first (if it cannot be written, nothing is changed and
    /// the call fails), then the call, then its outcome's line (if that cannot be written, the change
    /// stands, its request is on record, and the call returns the log's error).
    fn lifecycle<F>(
        &self,
        op: Op,
        key_id: Option<&str>,
        principal: Option<&str>,
        call: F,
    ) -> Result<KeyInfo, KeyError>
    where
        F: FnOnce() -> Result<KeyInfo, KeyError>,
    {
        let event = Event {
            op,
            provider: self.inner.name(),
            key_id,
            key_version: None,
            context: None,
            principal,
            outcome: Ok(()),
        };
        self.log
            .record_request(&event)
            .map_err(|e| KeyError::Io(format!("audit log: {e}: nothing was changed")))?;
        let r = call();
        let version = match (&r, op) {
            (Ok(info), Op::Rotate) => Some(info.current_version),
            _ => None,
        };
        let id = key_id.or_else(|| r.as_ref().ok().map(|i| i.id.as_str()));
        self.note(op, id, version, None, principal, r.as_ref().map(|_| ()))?;
        r
    }
}

/// How the two provider types reach the wrapper and the principal.
trait Attribution<P> {
    fn parts(&self) -> (&Audited<P>, Option<&str>);
}

impl<P> Attribution<P> for Audited<P> {
    fn parts(&self) -> (&Audited<P>, Option<&str>) {
        (self, self.principal.as_deref())
    }
}

impl<P> Attribution<P> for Attributed<'_, P> {
    fn parts(&self) -> (&Audited<P>, Option<&str>) {
        (self.audited, Some(self.principal))
    }
}

/// The logged `KeyProvider` methods, the same for [`Audited`] and [`Attributed`].
macro_rules! audited_calls {
    () => {
        fn name(&self) -> &'static str {
            self.parts().0.inner.name()
        }

        fn generate_data_key(
            &self,
            key_id: &str,
            context: &EncryptionContext,
        ) -> Result<(DataKey, WrappedKey), KeyError> {
            let (a, who) = self.parts();
            let r = a.inner.generate_data_key(key_id, context);
            let version = r.as_ref().ok().map(|(_, w)| w.key_version);
            // On a failed line `r` is dropped here, and its data key zeroized with it.
            a.note(
                Op::Generate,
                Some(key_id),
                version,
                Some(context),
                who,
                r.as_ref().map(|_| ()),
            )?;
            r
        }

        fn wrap(
            &self,
            key_id: &str,
            dek: &DataKey,
            context: &EncryptionContext,
        ) -> Result<WrappedKey, KeyError> {
            let (a, who) = self.parts();
            let r = a.inner.wrap(key_id, dek, context);
            let version = r.as_ref().ok().map(|w| w.key_version);
            a.note(
                Op::Wrap,
                Some(key_id),
                version,
                Some(context),
                who,
                r.as_ref().map(|_| ()),
            )?;
            r
        }

        fn unwrap(
            &self,
            wrapped: &WrappedKey,
            context: &EncryptionContext,
        ) -> Result<DataKey, KeyError> {
            let (a, who) = self.parts();
            let r = a.inner.unwrap(wrapped, context);
            a.note(
                Op::Unwrap,
                Some(&wrapped.key_id),
                Some(wrapped.key_version),
                Some(context),
                who,
                r.as_ref().map(|_| ()),
            )?;
            r
        }

        fn rewrap(
            &self,
            wrapped: &WrappedKey,
            context: &EncryptionContext,
        ) -> Result<Option<WrappedKey>, KeyError> {
            let (a, who) = self.parts();
            // One line for the whole call: the inner provider's own unwrap and wrap are not logged.
            let r = a.inner.rewrap(wrapped, context);
            let version = match &r {
                Ok(Some(moved)) => moved.key_version,
                _ => wrapped.key_version,
            };
            a.note(
                Op::Rewrap,
                Some(&wrapped.key_id),
                Some(version),
                Some(context),
                who,
                r.as_ref().map(|_| ()),
            )?;
            r
        }

        fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::Create, spec.id.as_deref(), who, || {
                a.inner.create_key(spec)
            })
        }

        fn describe(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
            self.parts().0.inner.describe(key_id)
        }

        fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
            self.parts().0.inner.list()
        }

        fn rotate(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::Rotate, Some(key_id), who, || a.inner.rotate(key_id))
        }

        fn enable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::Enable, Some(key_id), who, || a.inner.enable(key_id))
        }

        fn disable(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::Disable, Some(key_id), who, || a.inner.disable(key_id))
        }

        fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::ScheduleDeletion, Some(key_id), who, || {
                a.inner.schedule_deletion(key_id, days)
            })
        }

        fn cancel_deletion(&self, key_id: &str) -> Result<KeyInfo, KeyError> {
            let (a, who) = self.parts();
            a.lifecycle(Op::CancelDeletion, Some(key_id), who, || {
                a.inner.cancel_deletion(key_id)
            })
        }
    };
}

impl<P: KeyProvider> KeyProvider for Audited<P> {
    audited_calls!();
}

impl<P: KeyProvider> KeyProvider for Attributed<'_, P> {
    audited_calls!();
}
