"""Exceptions: one class per ``ssekit_result`` code under :class:`Error`, and :func:`rustcall`,
the one place where a result code becomes an exception.

Every class has ``.code`` (the ``ssekit_result`` number), ``.name`` (``"SSEKIT_RESULT_TAMPERED"``)
and ``.message`` (``ssekit_last_error_message()``, read on the calling thread right after the
failed call). :class:`S3Error` is the exception for ``SSEKIT_RESULT_S3_ERROR``: its ``.code`` is
S3's error code (``"AccessDenied"``), ``.status`` the HTTP status and ``.message`` S3's message,
for the server to send; its ``.result`` is 400 and ``.name`` ``"SSEKIT_RESULT_S3_ERROR"``.
"""

from __future__ import annotations

from typing import Any, Dict, Type

from ._ffi import NULL, ffi, lib, string

__all__ = [
    "Error", "S3Error", "ClosedError", "rustcall", "error_class",
    "NullParameterError", "InvalidParameterError", "BufferTooSmallError", "InvalidStateError", "PanicError",
    "WrongKeyError", "TamperedError", "MetadataTamperedError", "PartReplacedError", "TruncatedError",
    "LengthMismatchError", "MalformedMetadataError", "TooLargeError", "RangeNotSatisfiableError",
    "InvalidRangeError", "KeyNotFoundError", "KeyExistsError", "KeyDisabledError", "KeyPendingDeletionError",
    "KeyDestroyedError", "KeyInvalidStateError", "UnwrapFailedError", "KeyDeviceError", "KeyUnavailableError",
    "KeyringError", "KeyMalformedError", "MalformedPolicyError", "MalformedConfigurationError", "IoError",
    "AuditError", "BackendError",
]


class Error(Exception):
    """A failed ssekit call. ``code``: the ``ssekit_result``; ``name``: its constant's name;
    ``message``: what the library said."""

    code: Any
    result: int
    name: str
    message: str

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.result = code
        self.name = string(lib.ssekit_result_name(code))

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


def _make(name: str, doc: str, *bases: type) -> Type[Error]:
    return type(name, (Error,) + bases, {"__doc__": doc, "__module__": "ssekit"})


NullParameterError = _make("NullParameterError", "A required argument was missing (NULL).", TypeError)
InvalidParameterError = _make("InvalidParameterError", "An argument is outside what the function takes.", ValueError)
BufferTooSmallError = _make("BufferTooSmallError", "An output buffer is too small; nothing was written.", ValueError)
InvalidStateError = _make("InvalidStateError", "The handle cannot do this now (finished, HEAD plan, in use).")
PanicError = _make("PanicError", "An internal error in the library (a bug: please report it).")
WrongKeyError = _make("WrongKeyError", "The data key or encryption context does not match the stored object.")
TamperedError = _make("TamperedError", "The stored data was altered, reordered or spliced.")
MetadataTamperedError = _make("MetadataTamperedError", "The metadata's MAC does not match.")
PartReplacedError = _make("PartReplacedError", "A part's stored data is another upload of that part.")
TruncatedError = _make("TruncatedError", "The stored data is shorter than the object.")
LengthMismatchError = _make("LengthMismatchError", "The stored data's length differs from the authenticated size.")
MalformedMetadataError = _make("MalformedMetadataError", "The metadata record does not parse.")
TooLargeError = _make("TooLargeError", "The object is over the format's size limit.")
RangeNotSatisfiableError = _make("RangeNotSatisfiableError", "The range starts past the end of the object (S3: 416).")
InvalidRangeError = _make("InvalidRangeError", "A Range header S3 ignores (S3 then returns the whole object).")
KeyNotFoundError = _make("KeyNotFoundError", "No key with this id.")
KeyExistsError = _make("KeyExistsError", "A key with this id already exists.")
KeyDisabledError = _make("KeyDisabledError", "The key is disabled.")
KeyPendingDeletionError = _make("KeyPendingDeletionError", "The key is pending deletion.")
KeyDestroyedError = _make("KeyDestroyedError", "The key was destroyed.")
KeyInvalidStateError = _make("KeyInvalidStateError", "The operation does not apply in the key's state.")
UnwrapFailedError = _make("UnwrapFailedError", "A wrapped data key does not unwrap.")
KeyDeviceError = _make("KeyDeviceError", "The key device refused or failed a call.")
KeyUnavailableError = _make("KeyUnavailableError", "The key service could not be reached; try again later.")
KeyringError = _make("KeyringError", "The keyring's files are open to others, damaged or rolled back.")
KeyMalformedError = _make("KeyMalformedError", "A malformed key id, context or wrapped key.")
MalformedPolicyError = _make("MalformedPolicyError", "A bucket policy the evaluator refuses.", ValueError)
MalformedConfigurationError = _make("MalformedConfigurationError", "A bucket encryption configuration that does not validate.", ValueError)
IoError = _make("IoError", "Reading or writing a file failed.", OSError)
AuditError = _make("AuditError", "The audit log could not be written: the key was not used.")
BackendError = _make("BackendError", "The AES-GCM backend SSEKIT_BACKEND forces is not usable on this CPU.")


class ClosedError(InvalidStateError, ValueError):  # type: ignore[misc,valid-type]
    """The object (engine, plan, stream) was closed: like I/O on a closed file. Its ``code`` is
    ``SSEKIT_RESULT_INVALID_STATE``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 103)


class S3Error(Error):
    """S3 refused the request: ``code`` is S3's error code (``"AccessDenied"``), ``status`` the
    HTTP status (403), ``message`` the error body's message. ``retryable`` is true for 503s."""

    status: int

    def __init__(self, message: str, code: int = 400, s3_code: str = "", status: int = 0) -> None:
        super().__init__(message, code)
        self.code = s3_code
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status == 503

    def __str__(self) -> str:
        if not self.code:  # a data-path call returned SSEKIT_RESULT_S3_ERROR without an ssekit_s3_error
            return Error.__str__(self)
        return f"{self.status} {self.code}: {self.message}"


_BY_CODE: Dict[int, Type[Error]] = {
    100: NullParameterError, 101: InvalidParameterError, 102: BufferTooSmallError, 103: InvalidStateError,
    104: PanicError, 200: WrongKeyError, 201: TamperedError, 202: MetadataTamperedError,
    203: PartReplacedError, 204: TruncatedError, 205: LengthMismatchError, 206: MalformedMetadataError,
    207: TooLargeError, 208: RangeNotSatisfiableError, 209: InvalidRangeError, 300: KeyNotFoundError,
    301: KeyExistsError, 302: KeyDisabledError, 303: KeyPendingDeletionError, 304: KeyDestroyedError,
    305: KeyInvalidStateError, 306: UnwrapFailedError, 307: KeyDeviceError, 308: KeyUnavailableError,
    309: KeyringError, 310: KeyMalformedError, 400: S3Error, 401: MalformedPolicyError,
    402: MalformedConfigurationError, 500: IoError, 501: AuditError, 502: BackendError,
}


for _cls in (Error, ClosedError, S3Error):
    _cls.__module__ = "ssekit"


def error_class(code: int) -> Type[Error]:
    """The exception class for an ``ssekit_result`` (:class:`Error` for an unknown number)."""
    return _BY_CODE.get(code, Error)


_S3_ERROR_OUT = ffi.typeof("ssekit_s3_error **")


def rustcall(fn: Any, *args: Any) -> None:
    """Calls ``fn(*args)`` and raises the matching :class:`Error` unless it returned
    ``SSEKIT_RESULT_OK``. The message is read from ``ssekit_last_error_message`` at once, on this
    thread. An ``ssekit_s3_error **`` among ``args`` is read into an :class:`S3Error` and freed
    (it is freed whatever the result, if the library wrote one)."""
    rc = fn(*args)
    if rc == 0:
        return
    message = string(lib.ssekit_last_error_message())
    s3 = None
    for a in args:
        if isinstance(a, ffi.CData) and ffi.typeof(a) is _S3_ERROR_OUT and a[0] != NULL:
            err, a[0] = a[0], NULL
            try:
                s3 = (string(lib.ssekit_s3_error_code(err)), int(lib.ssekit_s3_error_status(err)),
                      string(lib.ssekit_s3_error_message(err)))
            finally:
                lib.ssekit_s3_error_free(err)
    if rc == 400:
        if s3 is None:
            raise S3Error(message, 400, "", 0)
        raise S3Error(s3[2], 400, s3[0], s3[1])
    raise error_class(rc)(message, rc)
