"""The S3 layer's objects: operations and modes, bucket configurations, stored metadata, the
plans a request gets (write, read, part) and range reads.

Plans come from :class:`ssekit.Engine` (``plan_write``, ``plan_read``, ``plan_copy``,
``plan_part``, ``plan_part_copy``). Every method that takes data accepts bytes, bytearray,
memoryview or any C-contiguous buffer without copying it; ``*_into`` methods write into a buffer
you provide (bytearray, writable memoryview) and return the byte count.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _ffi
from ._ffi import NULL, Fresh, Native, ffi, in_buffer, integer, lib, out_buffer, text
from .errors import TruncatedError, rustcall

__all__ = [
    "Operation", "Mode", "Decision", "Bucket", "Meta", "PartEntry", "WritePlan", "ReadPlan", "PartPlan",
    "Range", "Headers", "policy_check",
]

#: Request headers: a mapping, or pairs (to send a header twice, as a client could).
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class Operation(enum.IntEnum):
    """The S3 operation a request is (``ssekit_operation``)."""

    PUT_OBJECT = 1
    GET_OBJECT = 2
    HEAD_OBJECT = 3
    COPY_OBJECT = 4
    CREATE_MULTIPART_UPLOAD = 5
    UPLOAD_PART = 6
    UPLOAD_PART_COPY = 7
    COMPLETE_MULTIPART_UPLOAD = 8
    POST_OBJECT = 9

    @classmethod
    def of(cls, op: Union["Operation", int, str]) -> "Operation":
        """An Operation from itself, its number, its name (``"PUT_OBJECT"``) or S3's
        (``"PutObject"``)."""
        if isinstance(op, cls):
            return op
        if isinstance(op, bool):
            raise TypeError("op must be an Operation, int or str, not bool")
        if isinstance(op, int):
            try:
                return cls(op)
            except ValueError:
                raise ValueError(f"unknown operation number {op}") from None
        if isinstance(op, str):
            key = op.upper() if op.upper() in cls.__members__ else _S3_NAMES.get(op)
            if key is None:
                raise ValueError(f"unknown operation {op!r} (e.g. 'PutObject' or Operation.PUT_OBJECT)")
            return cls[key]
        raise TypeError(f"op must be an Operation, int or str, not {type(op).__name__}")


_S3_NAMES = {
    "PutObject": "PUT_OBJECT", "GetObject": "GET_OBJECT", "HeadObject": "HEAD_OBJECT", "CopyObject": "COPY_OBJECT",
    "CreateMultipartUpload": "CREATE_MULTIPART_UPLOAD", "UploadPart": "UPLOAD_PART",
    "UploadPartCopy": "UPLOAD_PART_COPY", "CompleteMultipartUpload": "COMPLETE_MULTIPART_UPLOAD",
    "PostObject": "POST_OBJECT",
}


class Mode(enum.IntEnum):
    """How an object is encrypted (``ssekit_mode``)."""

    SSE_S3 = 1
    SSE_KMS = 2
    DSSE_KMS = 3
    SSE_C = 4
    CLIENT = 5


class Decision(enum.IntEnum):
    """What a policy says about a request (``ssekit_decision``)."""

    ALLOW = 1
    DENY = 2
    NO_MATCH = 3


# ---------------------------------------------------------------------------------------------
# Small helpers shared by the modules.


def _json_text(value: Any, name: str) -> Tuple[Any, int]:
    if value is None:
        return NULL, 0
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a dict or a JSON str, not {type(value).__name__}")
    return text(value, name)


def take_bytes(ptr: Any) -> bytes:
    """Copies an ``ssekit_bytes`` out and frees it."""
    try:
        return bytes(ffi.buffer(lib.ssekit_bytes_data(ptr), lib.ssekit_bytes_len(ptr)))
    finally:
        lib.ssekit_bytes_free(ptr)


def read_headers(h: Any) -> List[Tuple[str, str]]:
    """The (name, value) pairs of an ``ssekit_headers``."""
    pairs = []
    name, nlen = ffi.new("char **"), ffi.new("size_t *")
    value, vlen = ffi.new("char **"), ffi.new("size_t *")
    for i in range(lib.ssekit_headers_len(h)):
        rustcall(lib.ssekit_headers_get, h, i, name, nlen, value, vlen)
        pairs.append((ffi.unpack(name[0], nlen[0]).decode("utf-8"), ffi.unpack(value[0], vlen[0]).decode("utf-8")))
    return pairs


class Request:
    """One request as the S3 layer sees it (internal: the plan functions build one per call)."""

    def __init__(self, op: Union[Operation, int, str], bucket_name: str, key: str, headers: Optional[Headers] = None,
                 principal: str = "*", secure: bool = False) -> None:
        op = Operation.of(op)
        b, blen = text(bucket_name, "bucket_name")
        k, klen = text(key, "key")
        if not isinstance(secure, bool):
            raise TypeError(f"secure must be a bool, not {type(secure).__name__}")
        p, plen = text(principal, "principal")
        out = ffi.new("ssekit_request **")
        rustcall(lib.ssekit_request_new, int(op), b, blen, k, klen, out)
        self._h = Native(out[0], lib.ssekit_request_free, "request")
        ptr = out[0]
        rustcall(lib.ssekit_request_set_principal, ptr, p, plen)
        rustcall(lib.ssekit_request_set_secure, ptr, secure)
        if headers is not None:
            if isinstance(headers, (str, bytes)):
                raise TypeError("headers must be a dict or (name, value) pairs, not a string")
            items = headers.items() if isinstance(headers, Mapping) else headers
            for item in items:
                try:
                    hname, hvalue = item
                except (TypeError, ValueError):
                    raise TypeError(f"headers must be (name, value) pairs, got {item!r}") from None
                n, nlen = text(hname, "header name")
                v, vlen = text(hvalue, f"header {hname!r}")
                rustcall(lib.ssekit_request_add_header, ptr, n, nlen, v, vlen)

    def use(self):
        return self._h.use(exclusive=True)

    def close(self) -> None:
        self._h.close()


def policy_check(policy: Union[str, Dict[str, Any]], op: Union[Operation, int, str], bucket_name: str, key: str,
                 headers: Optional[Headers] = None, *, principal: str = "*", secure: bool = False) -> Decision:
    """Evaluates a bucket policy document on a request, as the S3 layer does, without deciding
    what silence means (``ssekit_policy_check``)."""
    doc, dlen = _json_text(policy, "policy")
    if doc == NULL:
        raise TypeError("policy must be a dict or a JSON str, not None")
    req = Request(op, bucket_name, key, headers, principal, secure)
    out = ffi.new("uint32_t *")
    try:
        with req.use() as r:
            rustcall(lib.ssekit_policy_check, doc, dlen, r, out)
    finally:
        req.close()
    return Decision(out[0])


# ---------------------------------------------------------------------------------------------


class Bucket:
    """A bucket's SSE configuration: its default encryption and its policy.

    ``encryption``: ``{"algorithm": "AES256"|"aws:kms"|"aws:kms:dsse", "kms_key_id": None|"ID",
    "bucket_key_enabled": bool}`` (a dict or its JSON); ``policy``: an S3 bucket policy document
    (dict or JSON). Share it between threads freely; change it only while no plan call is using it
    (a change while one is raises :class:`ssekit.InvalidStateError`).
    """

    def __init__(self, encryption: Union[None, str, Dict[str, Any]] = None,
                 policy: Union[None, str, Dict[str, Any]] = None) -> None:
        out = ffi.new("ssekit_bucket **")
        rustcall(lib.ssekit_bucket_new, out)
        self._h = Native(out[0], lib.ssekit_bucket_free, "bucket")
        self._policy: Optional[str] = None
        if encryption is not None:
            self.set_encryption(encryption)
        if policy is not None:
            self.set_policy(policy)

    def set_encryption(self, encryption: Union[None, str, Dict[str, Any]]) -> None:
        """PutBucketEncryption (None: DeleteBucketEncryption). Raises
        :class:`ssekit.MalformedConfigurationError` for a configuration S3 refuses."""
        doc, dlen = _json_text(encryption, "encryption")
        with self._h.use(exclusive=True) as b:
            rustcall(lib.ssekit_bucket_set_encryption, b, doc, dlen)

    def set_policy(self, policy: Union[None, str, Dict[str, Any]]) -> None:
        """Sets the bucket policy (None removes it). Raises :class:`ssekit.MalformedPolicyError`."""
        doc, dlen = _json_text(policy, "policy")
        with self._h.use(exclusive=True) as b:
            rustcall(lib.ssekit_bucket_set_policy, b, doc, dlen)
        self._policy = None if doc == NULL else doc.decode("utf-8")

    @property
    def encryption(self) -> Dict[str, Any]:
        """The default encryption as a dict (GetBucketEncryption; SSE-S3 when none is set)."""
        out = ffi.new("ssekit_bytes **")
        with self._h.use() as b:
            rustcall(lib.ssekit_bucket_encryption, b, out)
        return json.loads(take_bytes(out[0]))

    @property
    def policy(self) -> Optional[Dict[str, Any]]:
        """The policy last set, parsed (None when there is none)."""
        return None if self._policy is None else json.loads(self._policy)

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> "Bucket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_default_bucket: Optional[Bucket] = None


def default_bucket() -> Bucket:
    """The bucket used when a call names none: no default encryption, no policy."""
    global _default_bucket
    if _default_bucket is None:
        _default_bucket = Bucket()
    return _default_bucket


def _bucket(bucket: Optional[Bucket]) -> Bucket:
    if bucket is None:
        return default_bucket()
    if not isinstance(bucket, Bucket):
        raise TypeError(f"bucket must be an ssekit.Bucket, not {type(bucket).__name__}")
    return bucket


# ---------------------------------------------------------------------------------------------


class Meta:
    """An object's stored metadata: keep :meth:`to_bytes` beside the ciphertext and hand
    :meth:`from_bytes` of it to a read. It is authenticated when a read opens data with it."""

    def __init__(self, _ptr: Any) -> None:
        self._h = Native(_ptr, lib.ssekit_meta_free, "meta")

    @classmethod
    def from_bytes(cls, data: Any) -> "Meta":
        """Parses stored metadata (:class:`ssekit.MalformedMetadataError` if it does not parse)."""
        p, n = in_buffer(data, "data")
        out = ffi.new("ssekit_meta **")
        rustcall(lib.ssekit_meta_parse, p, n, out)
        return cls(out[0])

    def to_bytes(self) -> bytes:
        """The metadata's encoding for storage (at most 512 KiB)."""
        out = ffi.new("ssekit_bytes **")
        with self._h.use() as m:
            rustcall(lib.ssekit_meta_encode, m, out)
        return take_bytes(out[0])

    __bytes__ = to_bytes

    @property
    def size(self) -> int:
        """The plaintext size the metadata states."""
        with self._h.use() as m:
            return int(lib.ssekit_meta_size(m))

    @property
    def mode(self) -> Mode:
        with self._h.use() as m:
            return Mode(lib.ssekit_meta_mode(m))

    @property
    def part_count(self) -> int:
        """The number of parts (0 for a single-part object)."""
        with self._h.use() as m:
            return int(lib.ssekit_meta_part_count(m))

    def close(self) -> None:
        self._h.close()

    def __repr__(self) -> str:
        return f"<ssekit.Meta {self.mode.name} size={self.size} parts={self.part_count}>"


def as_meta(meta: Any, name: str = "meta") -> Meta:
    if isinstance(meta, Meta):
        return meta
    if isinstance(meta, (bytes, bytearray, memoryview)):
        return Meta.from_bytes(meta)
    raise TypeError(f"{name} must be an ssekit.Meta or its bytes, not {type(meta).__name__}")


@dataclass(frozen=True)
class PartEntry:
    """One row of a multipart object's part table: keep it with the part (as its ETag) and hand
    the rows to :meth:`ssekit.Engine.complete`."""

    number: int
    size: int
    salt: bytes

    _FORMAT = struct.Struct("<IQ24s")

    def to_bytes(self) -> bytes:
        """A 36-byte encoding (number u32 LE, size u64 LE, salt)."""
        return self._FORMAT.pack(self.number, self.size, self.salt)

    @classmethod
    def from_bytes(cls, data: bytes) -> "PartEntry":
        if len(data) != cls._FORMAT.size:
            raise ValueError(f"a PartEntry encoding is {cls._FORMAT.size} bytes, got {len(data)}")
        return cls(*cls._FORMAT.unpack(bytes(data)))

    @classmethod
    def _from_c(cls, c: Any) -> "PartEntry":
        return cls(int(c.number), int(c.size), bytes(ffi.buffer(c.salt)))

    def _to_c(self, c: Any) -> None:
        c.number = integer(self.number, "PartEntry.number", _ffi.U32_MAX)
        c.size = integer(self.size, "PartEntry.size", _ffi.U64_MAX)
        if not isinstance(self.salt, (bytes, bytearray)) or len(self.salt) != 24:
            raise ValueError("PartEntry.salt must be 24 bytes")
        ffi.memmove(c.salt, bytes(self.salt), 24)


def parts_array(parts: Sequence[PartEntry]) -> Tuple[Any, int]:
    if isinstance(parts, (bytes, str)) or not isinstance(parts, Iterable):
        raise TypeError("parts must be a sequence of ssekit.PartEntry")
    parts = list(parts)
    arr = ffi.new("ssekit_part_entry[]", max(len(parts), 1))
    for i, p in enumerate(parts):
        if not isinstance(p, PartEntry):
            raise TypeError(f"parts[{i}] must be an ssekit.PartEntry, not {type(p).__name__}")
        p._to_c(arr[i])
    return arr, len(parts)


# ---------------------------------------------------------------------------------------------
# Plans.


class _Plan:
    _h: Native
    _kind = "plan"

    def close(self) -> None:
        """Frees the plan (its data keys are zeroed). Closing twice is fine."""
        self._h.close()

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _headers(self, fn: Any) -> List[Tuple[str, str]]:
        with self._h.use(exclusive=self._exclusive) as p:
            return read_headers(fn(p))

    _exclusive = True


class WritePlan(_Plan):
    """A write's plan (PutObject, PostObject, CopyObject's target, CreateMultipartUpload): the
    mode and fresh data key(s), the response headers. One per request, not shared between
    threads (calls from several threads are serialized)."""

    def __init__(self, ptr: Any, engine: Native) -> None:
        self._h = Native(ptr, lib.ssekit_write_plan_free, "write plan", (engine,))
        self._engine = engine
        with self._h.use(exclusive=True) as p:
            self._mode = Mode(lib.ssekit_write_plan_mode(p))
            self._response = read_headers(lib.ssekit_write_plan_response_headers(p))

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def response_headers(self) -> Dict[str, str]:
        """The SSE response headers to send, as a dict (in the library's order)."""
        return dict(self._response)

    @property
    def response_header_list(self) -> List[Tuple[str, str]]:
        """The response headers as (name, value) pairs."""
        return list(self._response)

    def stored_len(self, plaintext_len: int) -> int:
        """The stored size of a body of ``plaintext_len`` bytes (:class:`ssekit.TooLargeError`
        past the format's limit)."""
        n = integer(plaintext_len, "plaintext_len", _ffi.U64_MAX)
        out = ffi.new("uint64_t *")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_stored_len, p, n, out)
        return int(out[0])

    def seal_into(self, data: Any, out: Any) -> int:
        """Seals ``data`` (the whole body) into ``out`` (at least ``stored_len(len(data))``
        bytes, not overlapping ``data``); returns the stored length."""
        return self._seal(*in_buffer(data, "data"), *out_buffer(out, "out"))

    def seal(self, data: Any) -> bytes:
        """Seals ``data`` and returns the stored bytes."""
        src, n = in_buffer(data, "data")
        out = Fresh(self.stored_len(n))
        return out.take(self._seal(src, n, out.ptr, out.n))

    def _seal(self, src: Any, n: int, dst: Any, cap: int) -> int:
        # One call: the library checks the capacity and the overlap itself (BufferTooSmallError,
        # InvalidParameterError; nothing written).
        written = ffi.new("size_t *")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_seal_into, p, src, n, dst, cap, written)
        return int(written[0])

    def seal_in_place(self, buffer: Any, plaintext_len: int) -> int:
        """Seals the first ``plaintext_len`` bytes of ``buffer`` in place (``buffer`` at least
        ``stored_len(plaintext_len)`` bytes); returns the stored length, now at its start."""
        dst, cap = out_buffer(buffer, "buffer")
        n = integer(plaintext_len, "plaintext_len", _ffi.SIZE_MAX)
        if n > cap:
            raise ValueError(f"plaintext_len {n} is past the end of the {cap}-byte buffer")
        written = ffi.new("size_t *")  # the library checks the room for the sealed form itself
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_seal_in_place, p, dst, cap, n, written)
        return int(written[0])

    def finish(self, size: int) -> Meta:
        """The authenticated metadata of the single-part object of ``size`` plaintext bytes;
        the plan seals nothing more afterwards."""
        n = integer(size, "size", _ffi.U64_MAX)
        out = ffi.new("ssekit_meta **")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_finish, p, n, out)
        return Meta(out[0])

    def upload_meta(self) -> Meta:
        """CreateMultipartUpload: the upload's metadata, for plan_part and complete."""
        out = ffi.new("ssekit_meta **")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_upload_meta, p, out)
        return Meta(out[0])

    def sealer(self, out: Any = None, part: int = 0, *, cls: Any = None):
        """A streaming sealer of part ``part`` (0: the single-part object): a writable
        file-like writing the stored bytes to ``out`` (a file-like with ``write``; None: kept
        in memory, see :meth:`ssekit.Sealer.getvalue`). ``finish()`` returns the PartEntry."""
        from .stream import Sealer

        number = integer(part, "part", 10000)
        handle = ffi.new("ssekit_sealer **")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_write_plan_sealer, p, number, handle)
        return (cls or Sealer)(handle[0], self._engine, out)

    def __repr__(self) -> str:
        return f"<ssekit.WritePlan {self._mode.name}{' closed' if self.closed else ''}>"


class ReadPlan(_Plan):
    """A read's plan (GetObject, HeadObject, a copy's source): the object's keys unwrapped (none
    for HEAD) and the response headers. Its methods may be called from several threads."""

    _exclusive = False

    def __init__(self, ptr: Any, engine: Native) -> None:
        self._h = Native(ptr, lib.ssekit_read_plan_free, "read plan", (engine,))
        self._engine = engine
        out = ffi.new("uint64_t *")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_size, p, out)
            self._response = read_headers(lib.ssekit_read_plan_response_headers(p))
        self._size = int(out[0])

    @property
    def size(self) -> int:
        """The object's plaintext size (Content-Length)."""
        return self._size

    @property
    def response_headers(self) -> Dict[str, str]:
        return dict(self._response)

    @property
    def response_header_list(self) -> List[Tuple[str, str]]:
        return list(self._response)

    def part_stored_len(self, part: int = 0) -> int:
        """The stored length of part ``part`` (0: a single-part object)."""
        number = integer(part, "part", 10000)
        out = ffi.new("uint64_t *")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_part_stored_len, p, number, out)
        return int(out[0])

    def open_into(self, stored: Any, out: Any) -> int:
        """Opens the whole stored object (every part back to back) into ``out`` (at least
        :attr:`size` bytes); returns the plaintext length. Nothing is written unless every chunk
        and the metadata authenticate."""
        return self._open(*in_buffer(stored, "stored"), *out_buffer(out, "out"))

    def _open(self, src: Any, n: int, dst: Any, cap: int) -> int:
        # The library checks the capacity and the overlap itself, before reading anything.
        written = ffi.new("size_t *")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_open_into, p, src, n, dst, cap, written)
        return int(written[0])

    def open(self, stored: Any) -> bytes:
        """Opens the whole stored object and returns its plaintext."""
        src, n = in_buffer(stored, "stored")
        if self._size > n:
            # The plaintext never outgrows its stored form: refuse before allocating the size an
            # unauthenticated metadata record states.
            raise TruncatedError(f"the stored data holds {n} bytes, fewer than the object's {self._size} "
                                 "plaintext bytes (checked in Python before opening)", 204)
        out = Fresh(self._size)
        return out.take(self._open(src, n, out.ptr, out.n))

    def open_in_place(self, buffer: Any) -> int:
        """Opens the stored object held in ``buffer`` (exactly its stored bytes) in place;
        returns the plaintext length: the plaintext is ``buffer[:n]``."""
        dst, cap = out_buffer(buffer, "buffer")
        written = ffi.new("size_t *")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_open_in_place, p, dst, cap, written)
        return int(written[0])

    def range(self, range_header: str, stored_len: int) -> "Range":
        """Plans a read of the HTTP ``Range`` (``bytes=A-B``, ``bytes=A-``, ``bytes=-N``) of the
        object stored as ``stored_len`` bytes. :class:`ssekit.InvalidRangeError` for a header S3
        ignores, :class:`ssekit.RangeNotSatisfiableError` past the end (416)."""
        r, rlen = text(range_header, "range_header")
        n = integer(stored_len, "stored_len", _ffi.U64_MAX)
        out = ffi.new("ssekit_range **")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_range, p, r, rlen, n, out)
        return Range(out[0], self)

    def opener(self, source: Any = None, part: int = 0):
        """A streaming opener of part ``part`` (0: a single-part object): a readable file-like
        reading the stored bytes from ``source`` (a file-like with ``read``), or, with no source,
        a push-style :class:`ssekit.Opener` (``update``/``finish``)."""
        from .stream import Opener

        number = integer(part, "part", 10000)
        handle = ffi.new("ssekit_opener **")
        with self._h.use() as p:
            rustcall(lib.ssekit_read_plan_opener, p, number, handle)
        return Opener(handle[0], self._engine, source)

    def __repr__(self) -> str:
        return f"<ssekit.ReadPlan size={self._size}{' closed' if self.closed else ''}>"


class PartPlan(_Plan):
    """An UploadPart's plan: seals one part's body and gives its :class:`PartEntry`."""

    def __init__(self, ptr: Any, engine: Native) -> None:
        self._h = Native(ptr, lib.ssekit_part_plan_free, "part plan", (engine,))
        self._engine = engine
        with self._h.use(exclusive=True) as p:
            self._response = read_headers(lib.ssekit_part_plan_response_headers(p))

    @property
    def response_headers(self) -> Dict[str, str]:
        return dict(self._response)

    @property
    def response_header_list(self) -> List[Tuple[str, str]]:
        return list(self._response)

    def stored_len(self, plaintext_len: int) -> int:
        n = integer(plaintext_len, "plaintext_len", _ffi.U64_MAX)
        out = ffi.new("uint64_t *")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_part_plan_stored_len, p, n, out)
        return int(out[0])

    def seal_into(self, data: Any, out: Any) -> Tuple[int, PartEntry]:
        """Seals the part's body into ``out``; returns (stored length, the part's row)."""
        return self._seal(*in_buffer(data, "data"), *out_buffer(out, "out"))

    def seal(self, data: Any) -> Tuple[bytes, PartEntry]:
        """Seals the part's body; returns (stored bytes, the part's row)."""
        src, n = in_buffer(data, "data")
        out = Fresh(self.stored_len(n))
        w, entry = self._seal(src, n, out.ptr, out.n)
        return out.take(w), entry

    def _seal(self, src: Any, n: int, dst: Any, cap: int) -> Tuple[int, PartEntry]:
        # The library checks the capacity and the overlap itself (nothing written).
        written = ffi.new("size_t *")
        entry = ffi.new("ssekit_part_entry *")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_part_plan_seal_into, p, src, n, dst, cap, written, entry)
        return int(written[0]), PartEntry._from_c(entry)

    def sealer(self, out: Any = None):
        """A streaming sealer of this part (see :meth:`WritePlan.sealer`)."""
        from .stream import Sealer

        handle = ffi.new("ssekit_sealer **")
        with self._h.use(exclusive=True) as p:
            rustcall(lib.ssekit_part_plan_sealer, p, handle)
        return Sealer(handle[0], self._engine, out)


class Range:
    """A planned range read: fetch :attr:`fetches` (``(offset, length)`` into the stored data),
    back to back, and :meth:`open` them. :attr:`plaintext` is ``(start, end)``, the returned
    bytes' offsets in the object (``Content-Range: bytes start-(end-1)/size``)."""

    def __init__(self, ptr: Any, plan: ReadPlan) -> None:
        self._h = Native(ptr, lib.ssekit_range_free, "range", (plan._h,))
        self._plan = plan
        start, end, size = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("uint64_t *")
        off, ln = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        with self._h.use() as r:
            rustcall(lib.ssekit_range_plaintext, r, start, end, size)
            fetches = []
            for i in range(lib.ssekit_range_fetch_count(r)):
                rustcall(lib.ssekit_range_fetch, r, i, off, ln)
                fetches.append((int(off[0]), int(ln[0])))
            self.fetch_total: int = int(lib.ssekit_range_fetch_total(r))
        self.fetches: List[Tuple[int, int]] = fetches
        self.plaintext: Tuple[int, int] = (int(start[0]), int(end[0]))
        self.size: int = int(size[0])

    @property
    def length(self) -> int:
        """The number of plaintext bytes the range returns."""
        return self.plaintext[1] - self.plaintext[0]

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header value."""
        return f"bytes {self.plaintext[0]}-{self.plaintext[1] - 1}/{self.size}"

    def gather(self, stored: Any) -> bytes:
        """The bytes to hand to :meth:`open`, taken from the whole stored object in memory."""
        view = memoryview(stored).cast("B")
        return b"".join(view[o : o + n] for o, n in self.fetches)

    def open_into(self, fetched: Any, out: Any) -> int:
        """Opens the fetched bytes into ``out`` (at least :attr:`length` bytes)."""
        return self._open(*in_buffer(fetched, "fetched"), *out_buffer(out, "out"))

    def open(self, fetched: Any) -> bytes:
        """Opens the fetched bytes (every fetch, back to back) and returns the range's plaintext."""
        src, n = in_buffer(fetched, "fetched")
        out = Fresh(self.length)
        return out.take(self._open(src, n, out.ptr, out.n))

    def _open(self, src: Any, n: int, dst: Any, cap: int) -> int:
        # The library checks the capacity and the overlap itself, before reading anything.
        written = ffi.new("size_t *")
        with self._h.use() as r, self._plan._h.use() as p:
            rustcall(lib.ssekit_range_open, r, p, src, n, dst, cap, written)
        return int(written[0])

    def close(self) -> None:
        self._h.close()

    def __repr__(self) -> str:
        return f"<ssekit.Range {self.content_range} fetches={self.fetches}>"
