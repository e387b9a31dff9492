//! Result codes, the thread-local last error, and the panic boundary every export runs inside.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use ::ssekit_engine::keys::KeyError;
use ::ssekit_engine::object::{self, MetaError};
use ::ssekit_engine::sse::S3Error;

/// What a call did. `SSEKIT_RESULT_OK` is 0; the others come in blocks (1xx: the caller's
/// arguments, 2xx: stored data, 3xx: keys, 4xx: the S3 layer, 5xx: the environment). Numbers are
/// never reused or renumbered; new codes are added at the end of their block.
/// `ssekit_result_name` names each; `ssekit_last_error_message` says what happened.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ssekit_result {
    /// Success.
    SSEKIT_RESULT_OK = 0,
    /// A required pointer argument was NULL.
    SSEKIT_RESULT_NULL_PARAMETER = 100,
    /// An argument is outside what the function takes (not UTF-8, an unknown code, a bad length).
    SSEKIT_RESULT_INVALID_PARAMETER = 101,
    /// An output buffer is too small; the matching `_len` function says how large it must be.
    /// Nothing was consumed or written.
    SSEKIT_RESULT_BUFFER_TOO_SMALL = 102,
    /// The handle cannot do this now (a finished stream, a plan already finished, a HEAD plan asked
    /// to open data).
    SSEKIT_RESULT_INVALID_STATE = 103,
    /// An internal error was caught at the boundary (a bug: please report it). The handle involved
    /// should be freed and not used again.
    SSEKIT_RESULT_PANIC = 104,
    /// The data key or encryption context does not match the stored object (or its header is
    /// damaged).
    SSEKIT_RESULT_WRONG_KEY = 200,
    /// The stored data was altered, reordered or spliced: a chunk failed authentication.
    SSEKIT_RESULT_TAMPERED = 201,
    /// The metadata's MAC does not match: its mode, size, context or part table was altered.
    SSEKIT_RESULT_METADATA_TAMPERED = 202,
    /// A part's stored data is not the upload the part table names (another upload of the same part
    /// number was put in its place).
    SSEKIT_RESULT_PART_REPLACED = 203,
    /// The stored data is shorter than the object or ends inside a chunk.
    SSEKIT_RESULT_TRUNCATED = 204,
    /// The stored data holds more or fewer bytes than the authenticated size says.
    SSEKIT_RESULT_LENGTH_MISMATCH = 205,
    /// The metadata record does not parse or is outside the format's limits.
    SSEKIT_RESULT_MALFORMED_METADATA = 206,
    /// The object is over the format's size limit.
    SSEKIT_RESULT_TOO_LARGE = 207,
    /// The range starts past the end of the object (S3: 416).
    SSEKIT_RESULT_RANGE_NOT_SATISFIABLE = 208,
    /// A range that is not one S3 reads (`bytes=A-B`, `bytes=A-`, `bytes=-N`).
    SSEKIT_RESULT_INVALID_RANGE = 209,
    /// No key with this id.
    SSEKIT_RESULT_KEY_NOT_FOUND = 300,
    /// A key with this id already exists.
    SSEKIT_RESULT_KEY_EXISTS = 301,
    /// The key is disabled.
    SSEKIT_RESULT_KEY_DISABLED = 302,
    /// The key is pending deletion.
    SSEKIT_RESULT_KEY_PENDING_DELETION = 303,
    /// The key was destroyed.
    SSEKIT_RESULT_KEY_DESTROYED = 304,
    /// The operation does not apply in the key's state, or a deletion window outside 7..=30 days.
    SSEKIT_RESULT_KEY_INVALID_STATE = 305,
    /// A wrapped data key does not unwrap (wrong context, altered bytes, another provider's).
    SSEKIT_RESULT_UNWRAP_FAILED = 306,
    /// The key device refused or failed a call (an HSM error code; a dead session).
    SSEKIT_RESULT_KEY_DEVICE = 307,
    /// The key service could not be reached after retries; nothing changed, try again later.
    SSEKIT_RESULT_KEY_UNAVAILABLE = 308,
    /// The keyring's files are open to others, damaged, rolled back, or under another root secret.
    SSEKIT_RESULT_KEYRING = 309,
    /// A malformed key id, context or wrapped key.
    SSEKIT_RESULT_KEY_MALFORMED = 310,
    /// The S3 layer refused the request: the `ssekit_s3_error` handed back carries S3's code, HTTP
    /// status and message, for the server to send.
    SSEKIT_RESULT_S3_ERROR = 400,
    /// A bucket policy document that does not parse or uses what the evaluator refuses.
    SSEKIT_RESULT_MALFORMED_POLICY = 401,
    /// A bucket encryption configuration that does not parse or validate.
    SSEKIT_RESULT_MALFORMED_CONFIGURATION = 402,
    /// Reading or writing a file failed.
    SSEKIT_RESULT_IO = 500,
    /// The audit log could not be written: the key was not used, a key-management change was not
    /// made (or, when only the line of its outcome failed, was made with its request on record:
    /// describe the key before retrying).
    SSEKIT_RESULT_AUDIT = 501,
    /// The AES-GCM backend `SSEKIT_BACKEND` forces is not usable on this CPU.
    SSEKIT_RESULT_BACKEND = 502,
}

use ssekit_result as R;

/// The constant's name for `result` (`"SSEKIT_RESULT_TAMPERED"`; static, NUL-terminated; never free
/// it), `"SSEKIT_RESULT_UNKNOWN"` for a number that is no result.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_result_name(result: u32) -> *const c_char {
    let s: &'static std::ffi::CStr = match result {
        0 => c"SSEKIT_RESULT_OK",
        100 => c"SSEKIT_RESULT_NULL_PARAMETER",
        101 => c"SSEKIT_RESULT_INVALID_PARAMETER",
        102 => c"SSEKIT_RESULT_BUFFER_TOO_SMALL",
        103 => c"SSEKIT_RESULT_INVALID_STATE",
        104 => c"SSEKIT_RESULT_PANIC",
        200 => c"SSEKIT_RESULT_WRONG_KEY",
        201 => c"SSEKIT_RESULT_TAMPERED",
        202 => c"SSEKIT_RESULT_METADATA_TAMPERED",
        203 => c"SSEKIT_RESULT_PART_REPLACED",
        204 => c"SSEKIT_RESULT_TRUNCATED",
        205 => c"SSEKIT_RESULT_LENGTH_MISMATCH",
        206 => c"SSEKIT_RESULT_MALFORMED_METADATA",
        207 => c"SSEKIT_RESULT_TOO_LARGE",
        208 => c"SSEKIT_RESULT_RANGE_NOT_SATISFIABLE",
        209 => c"SSEKIT_RESULT_INVALID_RANGE",
        300 => c"SSEKIT_RESULT_KEY_NOT_FOUND",
        301 => c"SSEKIT_RESULT_KEY_EXISTS",
        302 => c"SSEKIT_RESULT_KEY_DISABLED",
        303 => c"SSEKIT_RESULT_KEY_PENDING_DELETION",
        304 => c"SSEKIT_RESULT_KEY_DESTROYED",
        305 => c"SSEKIT_RESULT_KEY_INVALID_STATE",
        306 => c"SSEKIT_RESULT_UNWRAP_FAILED",
        307 => c"SSEKIT_RESULT_KEY_DEVICE",
        308 => c"SSEKIT_RESULT_KEY_UNAVAILABLE",
        309 => c"SSEKIT_RESULT_KEYRING",
        310 => c"SSEKIT_RESULT_KEY_MALFORMED",
        400 => c"SSEKIT_RESULT_S3_ERROR",
        401 => c"SSEKIT_RESULT_MALFORMED_POLICY",
        402 => c"SSEKIT_RESULT_MALFORMED_CONFIGURATION",
        500 => c"SSEKIT_RESULT_IO",
        501 => c"SSEKIT_RESULT_AUDIT",
        502 => c"SSEKIT_RESULT_BACKEND",
        _ => c"SSEKIT_RESULT_UNKNOWN",
    };
    s.as_ptr()
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// What the last call that failed on this thread said (NUL-terminated, never NULL, `""` when
/// nothing failed yet). The pointer stays valid until the next ssekit call on this thread; copy the
/// text to keep it. Never holds key material.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// A failed call: its code and its message (and, for the S3 layer, S3's error).
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: ssekit_result,
    pub(crate) message: String,
    pub(crate) s3: Option<S3Error>,
}

impl Fail {
    pub(crate) fn new(code: ssekit_result, message: impl Into<String>) -> Self {
        Fail {
            code,
            message: message.into(),
            s3: None,
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Fail::new(R::SSEKIT_RESULT_NULL_PARAMETER, format!("`{what}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Fail::new(R::SSEKIT_RESULT_INVALID_PARAMETER, message)
    }

    pub(crate) fn state(message: impl Into<String>) -> Self {
        Fail::new(R::SSEKIT_RESULT_INVALID_STATE, message)
    }

    pub(crate) fn buffer(need: u64, got: usize) -> Self {
        Fail::new(
            R::SSEKIT_RESULT_BUFFER_TOO_SMALL,
            format!("the output buffer holds {got} bytes where {need} are needed"),
        )
    }
}

impl From<object::Error> for Fail {
    fn from(e: object::Error) -> Self {
        use object::Error as E;
        let code = match &e {
            E::WrongKey => R::SSEKIT_RESULT_WRONG_KEY,
            E::Tampered { .. } => R::SSEKIT_RESULT_TAMPERED,
            E::MetadataTampered => R::SSEKIT_RESULT_METADATA_TAMPERED,
            E::Metadata(_) => R::SSEKIT_RESULT_MALFORMED_METADATA,
            E::PartReplaced { .. } => R::SSEKIT_RESULT_PART_REPLACED,
            E::LengthMismatch { .. } => R::SSEKIT_RESULT_LENGTH_MISMATCH,
            E::Truncated => R::SSEKIT_RESULT_TRUNCATED,
            E::TooLarge => R::SSEKIT_RESULT_TOO_LARGE,
            E::BufferSize { .. } => R::SSEKIT_RESULT_BUFFER_TOO_SMALL,
            E::BadLayout(_) => R::SSEKIT_RESULT_LENGTH_MISMATCH,
            E::RangeNotSatisfiable { .. } => R::SSEKIT_RESULT_RANGE_NOT_SATISFIABLE,
            E::InvalidRange => R::SSEKIT_RESULT_INVALID_RANGE,
            E::Backend(_) => R::SSEKIT_RESULT_BACKEND,
            E::Finished => R::SSEKIT_RESULT_INVALID_STATE,
            E::Io { .. } => R::SSEKIT_RESULT_IO,
            _ => R::SSEKIT_RESULT_INVALID_PARAMETER,
        };
        Fail::new(code, e.to_string())
    }
}

impl From<MetaError> for Fail {
    fn from(e: MetaError) -> Self {
        Fail::new(R::SSEKIT_RESULT_MALFORMED_METADATA, e.to_string())
    }
}

impl From<KeyError> for Fail {
    fn from(e: KeyError) -> Self {
        use KeyError as K;
        let code = match &e {
            K::NotFound(_) => R::SSEKIT_RESULT_KEY_NOT_FOUND,
            K::AlreadyExists(_) => R::SSEKIT_RESULT_KEY_EXISTS,
            K::Disabled(_) => R::SSEKIT_RESULT_KEY_DISABLED,
            K::PendingDeletion { .. } => R::SSEKIT_RESULT_KEY_PENDING_DELETION,
            K::Destroyed(_) => R::SSEKIT_RESULT_KEY_DESTROYED,
            K::InvalidState { .. } | K::InvalidDeletionWindow(_) => {
                R::SSEKIT_RESULT_KEY_INVALID_STATE
            }
            K::UnwrapFailed | K::WrongProvider(_) => R::SSEKIT_RESULT_UNWRAP_FAILED,
            K::Malformed(_) => R::SSEKIT_RESULT_KEY_MALFORMED,
            K::Device { .. } => R::SSEKIT_RESULT_KEY_DEVICE,
            K::Unavailable { .. } => R::SSEKIT_RESULT_KEY_UNAVAILABLE,
            K::InsecurePermissions(_) | K::RolledBack { .. } | K::Corrupt(_) => {
                R::SSEKIT_RESULT_KEYRING
            }
            // `Audited`'s refusal: the call's audit line could not be written.
            K::Io(m) if m.starts_with("audit log: ") => R::SSEKIT_RESULT_AUDIT,
            K::Io(_) => R::SSEKIT_RESULT_IO,
            _ => R::SSEKIT_RESULT_KEY_DEVICE,
        };
        Fail::new(code, e.to_string())
    }
}

impl From<S3Error> for Fail {
    fn from(e: S3Error) -> Self {
        Fail {
            code: R::SSEKIT_RESULT_S3_ERROR,
            message: format!("{} ({}): {}", e.code, e.status, e.message),
            s3: Some(e),
        }
    }
}

/// Runs an export's body: a panic becomes [`ssekit_result::SSEKIT_RESULT_PANIC`], a failure sets
/// the thread's last error message.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), Fail>) -> ssekit_result {
    boundary_s3(std::ptr::null_mut(), f)
}

/// [`boundary`] for the S3 layer's calls: an S3 refusal is also handed back as a new
/// `ssekit_s3_error` in `*s3_out` when `s3_out` is not NULL.
pub(crate) fn boundary_s3(
    s3_out: *mut *mut crate::ssekit_s3_error,
    f: impl FnOnce() -> Result<(), Fail>,
) -> ssekit_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => R::SSEKIT_RESULT_OK,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            if let Some(e) = fail.s3 {
                crate::request::hand_back_s3_error(s3_out, e);
            }
            fail.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error (please report it): {what}"));
            R::SSEKIT_RESULT_PANIC
        }
    }
}

/// Runs a getter that cannot fail but must not unwind: `fallback` on a panic.
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// A failure of the S3 layer while opening or sealing data: the object-format error behind it when
/// there is one (so C sees `SSEKIT_RESULT_TAMPERED`, not a generic S3 500), else what the S3 error
/// means for a call that is not a request's plan.
pub(crate) fn data_fail(e: S3Error) -> Fail {
    if let Some(cause) = e.cause.clone() {
        return Fail::from(cause);
    }
    let code = match e.code {
        "EntityTooLarge" => R::SSEKIT_RESULT_TOO_LARGE,
        "InvalidArgument" | "InvalidPartNumber" => R::SSEKIT_RESULT_INVALID_PARAMETER,
        "InvalidRange" => R::SSEKIT_RESULT_RANGE_NOT_SATISFIABLE,
        // A HEAD plan asked to open data, a finished stream.
        "InternalError" => R::SSEKIT_RESULT_INVALID_STATE,
        _ => return Fail::from(e),
    };
    Fail::new(code, e.message)
}
