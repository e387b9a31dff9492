//! Where lines go: the [`Sink`] trait and the [`CallbackSink`]; the file sink is in `file.rs`.

use super::AuditError;
use super::line::GENESIS;

/// Where the next line goes in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPosition {
    /// The next line's `seq`.
    pub seq: u64,
    /// The previous line's hash ([`GENESIS`](super::GENESIS) before seq 0).
    pub prev: [u8; 32],
}

impl ChainPosition {
    /// The start of a new log: seq 0 after the all-zero hash.
    pub const START: ChainPosition = ChainPosition {
        seq: 0,
        prev: GENESIS,
    };
}

/// A line made for a [`ChainPosition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedLine {
    /// The line, without its newline.
    pub line: String,
    /// Its `hash` field: the next line's `prev`.
    pub hash: [u8; 32],
}

/// A place lines are appended to. The [`AuditLog`](super::AuditLog) calls it under its mutex, one
/// line at a time.
pub trait Sink: Send {
    /// Appends one line: the sink finds where the chain stands (its own record of it, or the
    /// storage's when another writer may have appended), calls `seal` exactly once with that
    /// position, and stores the line it returns. On success the chain stands after that line.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the line could not be stored (it may or may not have been, e.g. when
    /// only the fsync failed); the next append finds the chain from the storage again.
    fn append(
        &mut self,
        seal: &mut dyn FnMut(ChainPosition) -> SealedLine,
    ) -> Result<(), AuditError>;
}

/// The function a [`CallbackSink`] hands each line to.
pub type LineCallback = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Hands every complete line (no newline) to a function: ship it to syslog, a queue, another
/// machine. The chain position is kept in memory: a process that restarts and must continue a chain
/// the receiver already holds says where with [`CallbackSink::continuing`].
pub struct CallbackSink {
    callback: LineCallback,
    next: ChainPosition,
}

impl CallbackSink {
    /// A sink starting a new chain at seq 0.
    pub fn new(callback: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self::continuing(callback, ChainPosition::START)
    }

    /// A sink continuing a chain: its first line gets `next.seq` and links to `next.prev`.
    pub fn continuing(
        callback: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
        next: ChainPosition,
    ) -> Self {
        CallbackSink {
            callback: Box::new(callback),
            next,
        }
    }

    /// Where the next line goes.
    pub fn position(&self) -> ChainPosition {
        self.next
    }
}

impl Sink for CallbackSink {
    fn append(
        &mut self,
        seal: &mut dyn FnMut(ChainPosition) -> SealedLine,
    ) -> Result<(), AuditError> {
        let sealed = seal(self.next);
        (self.callback)(&sealed.line).map_err(AuditError::Callback)?;
        // Only a delivered line moves the chain on: a refused one is offered again, same seq.
        self.next = ChainPosition {
            seq: self.next.seq + 1,
            prev: sealed.hash,
        };
        Ok(())
    }
}
