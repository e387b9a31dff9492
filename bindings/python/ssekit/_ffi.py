"""Loads ``libssekit.so`` with cffi in ABI mode, and the low-level helpers every module uses:
argument checks for buffers, text and integers, and :class:`Native`, the owner of one C handle.

The cdef (``_ssekit_cdef.h``) and the library sit next to this file; both are put there by the
package's build (``setup.py``), generated from ``ffi/include/ssekit.h`` and built by cargo.

cffi releases the GIL around every call of a function loaded with ``ffi.dlopen`` (its
``_cffi_backend`` wraps ``ffi_call`` in ``Py_BEGIN_ALLOW_THREADS``), so bulk sealing and opening
run in parallel across Python threads; ``tests/test_threads.py`` checks it.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Tuple, Union

import cffi

_HERE = Path(__file__).resolve().parent
LIBRARY_PATH = _HERE / "libssekit.so"
CDEF_PATH = _HERE / "_ssekit_cdef.h"

if not LIBRARY_PATH.exists() or not CDEF_PATH.exists():
    raise ImportError(
        f"ssekit: {LIBRARY_PATH.name} or {CDEF_PATH.name} is missing from {_HERE}. This looks like the "
        "source tree, not an installed package: run `pip install ./bindings/python` (which builds the "
        "Rust library with cargo) and import ssekit from outside bindings/python."
    )

ffi = cffi.FFI()
ffi.cdef(CDEF_PATH.read_text(encoding="utf-8"))
lib: Any = ffi.dlopen(str(LIBRARY_PATH))

NULL = ffi.NULL
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
SIZE_MAX = 2 ** (8 * ffi.sizeof("size_t")) - 1

BytesLike = Union[bytes, bytearray, memoryview]


# ---------------------------------------------------------------------------------------------
# Argument checks: a wrong type or size raises here, in Python, before anything reaches C.


def in_buffer(data: Any, name: str) -> Tuple[Any, int]:
    """A read-only view of ``data`` (bytes, bytearray, memoryview or any C-contiguous buffer) as
    ``(uint8_t* cdata, length in bytes)``, without copying. The cdata keeps the buffer exported
    (a bytearray cannot be resized) for as long as it is referenced: keep it until the call ends."""
    t = type(data)
    if t is bytes or t is bytearray:  # always C-contiguous, one byte per item: no view needed
        return _export(data, False)
    if isinstance(data, str):
        raise TypeError(f"{name} must be a bytes-like object (bytes, bytearray, memoryview), not str; encode it first")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{name} must be a bytes-like object (bytes, bytearray, memoryview), not {type(data).__name__}"
        ) from None
    with view:
        if not view.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous buffer (got a strided memoryview)")
    return _export(data, False)


def _export(obj: Any, writable: bool) -> Tuple[Any, int]:
    """The buffer exported, and its length read from the export itself: the export pins the
    buffer (a bytearray cannot be resized while it lives), so the length handed to C is the length
    of the memory C gets, even if another thread resized the object after the checks above."""
    c = ffi.from_buffer("uint8_t[]", obj, require_writable=writable)
    return c, len(c)


class Fresh:
    """The result of a call that returns ``bytes`` (``seal()``, ``open()``): a new object of ``n``
    bytes that the library writes into (through ``ptr``), handed back without a copy.

    On CPython it is a ``bytes`` object made here and seen by no one else until :meth:`take`
    returns it: the memory behind a new ``bytes`` is plain heap, and filling it before anyone holds
    a reference is how C extensions make ``bytes`` (``PyBytes_FromStringAndSize(NULL, n)``). The
    alternative, a ``bytearray`` and then ``bytes(out)``, costs a second allocation and a copy, and
    with two large blocks alive at once the allocator maps and unmaps fresh pages on every call:
    1.8 ms per 1 MiB result on our VM, ten times the seal itself. Elsewhere (PyPy may move or copy
    a ``bytes`` buffer) it is a ``bytearray`` copied once at the end.

    Only code that digs the object out of the interpreter while the call runs (``gc.get_objects()``,
    another thread's frames) can see it before it is complete; if such code hashes it then, the
    cached hash is stale. Nothing in ordinary code holds a reference before :meth:`take`."""

    __slots__ = ("obj", "ptr", "n")

    def __init__(self, n: int) -> None:
        if _CPYTHON:
            self.obj: Any = bytes(n)  # a new object: bytes(0) is the empty singleton, never written
            self.ptr = ffi.from_buffer("uint8_t[]", self.obj)
        else:
            self.obj = bytearray(n)
            self.ptr = ffi.from_buffer("uint8_t[]", self.obj, require_writable=True)
        self.n = n

    def take(self, written: int) -> bytes:
        """The first ``written`` bytes as ``bytes``; the library writes no more into them."""
        obj, self.obj, self.ptr = self.obj, None, NULL
        if written == self.n and type(obj) is bytes:
            return obj
        return bytes(memoryview(obj)[:written])


_CPYTHON = sys.implementation.name == "cpython"


def out_buffer(buf: Any, name: str) -> Tuple[Any, int]:
    """As :func:`in_buffer`, for a buffer the library writes into: it must be writable. (Whether
    it is large enough, and apart from the input, the library checks before it writes anything.)"""
    if type(buf) is bytearray:
        return _export(buf, True)
    if isinstance(buf, (bytes, str)) or buf is None:
        raise TypeError(
            f"{name} must be a writable buffer (bytearray, writable memoryview), not {type(buf).__name__}"
        )
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"{name} must be a writable buffer (bytearray, writable memoryview), not {type(buf).__name__}") from None
    with view:
        if view.readonly:
            raise TypeError(f"{name} must be a writable buffer: this {type(buf).__name__} is read-only")
        if not view.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous buffer (got a strided memoryview)")
    return _export(buf, True)


def text(value: Any, name: str, *, optional: bool = False) -> Tuple[Any, int]:
    """UTF-8 bytes and length for a ``const char*, size_t`` pair; ``(NULL, 0)`` for None when
    ``optional``."""
    if value is None:
        if optional:
            return NULL, 0
        raise TypeError(f"{name} must be a str, not None")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    raw = value.encode("utf-8")
    return raw, len(raw)


def path(value: Any, name: str, *, optional: bool = False) -> Tuple[Any, int]:
    """A filesystem path (str or os.PathLike) as bytes and length; ``(NULL, 0)`` for None when
    ``optional``."""
    if value is None:
        if optional:
            return NULL, 0
        raise TypeError(f"{name} must be a path (str or os.PathLike), not None")
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), not {type(value).__name__}")
    raw = os.fsencode(value)
    if b"\x00" in raw:
        raise ValueError(f"{name} must not contain NUL characters")
    return raw, len(raw)


def integer(value: Any, name: str, maximum: int, minimum: int = 0) -> int:
    """An int in ``minimum..=maximum`` (bool refused), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be in {minimum}..={maximum}, got {value}")
    return value


def string(p: Any) -> str:
    """A NUL-terminated C string as str (empty for NULL)."""
    return "" if p == NULL else ffi.string(p).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Handles.


class Native:
    """Owns one C handle and frees it exactly once.

    Calls borrow the pointer with ``with handle.use() as ptr:`` (shared: any number of threads at
    once) or ``handle.use(exclusive=True)`` (one call at a time; other threads wait). ``close()``
    stops new calls at once (they raise :class:`ssekit.ClosedError`) and frees the handle when the
    last call in flight and the last handle made from it (``parents``: a plan's engine, say) are
    gone, because the library requires every plan to be freed before its engine. Without
    ``close()`` the handle is freed when it is garbage-collected; a child holds strong
    references to its parents, so parents always outlive children.
    """

    __slots__ = (
        "_ptr", "_free", "kind", "_lock", "_xlock", "_users", "_children", "_closed", "_freed",
        "_parents", "_keep", "_xactive", "__weakref__",
    )

    def __init__(self, ptr: Any, free: Callable[[Any], None], kind: str, parents: Tuple["Native", ...] = (), keep: Any = None) -> None:
        self._ptr = ptr
        self._free = free
        self.kind = kind
        self._lock = threading.Lock()
        self._xlock = threading.Lock()
        self._users = 0
        self._children = 0
        self._closed = False
        self._freed = False
        self._xactive = False
        self._keep = keep  # Python objects the C side points into (an audit callback)
        for p in parents:
            with p._lock:
                p._children += 1
        self._parents = parents

    @property
    def closed(self) -> bool:
        return self._closed

    def use(self, exclusive: bool = False) -> "_Use":
        return _Use(self, exclusive)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ready = not self._users and not self._children
        if ready:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._freed:
                return
            self._freed = True
            self._closed = True
            ptr, self._ptr = self._ptr, NULL
        if ptr != NULL:
            self._free(ptr)
        self._keep = None
        parents, self._parents = self._parents, ()
        for p in parents:
            with p._lock:
                p._children -= 1
                ready = p._closed and not p._users and not p._children
            if ready:
                p._release()

    def __del__(self) -> None:
        try:
            if not self._freed:
                self._release()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


class _Use:
    __slots__ = ("h", "x")

    def __init__(self, h: Native, x: bool) -> None:
        self.h = h
        self.x = x

    def __enter__(self) -> Any:
        h = self.h
        if self.x:
            h._xlock.acquire()
        with h._lock:
            if h._closed:
                if self.x:
                    h._xlock.release()
                from .errors import ClosedError

                raise ClosedError(f"this {h.kind} is closed")
            if self.x:
                if h._users:
                    h._xlock.release()
                    from .errors import InvalidStateError

                    raise InvalidStateError(f"this {h.kind} is in use by another thread", 103)
                h._xactive = True
            elif h._xactive:
                from .errors import InvalidStateError

                raise InvalidStateError(f"this {h.kind} is being changed by another thread", 103)
            h._users += 1
        return h._ptr

    def __exit__(self, *exc: Any) -> None:
        h = self.h
        with h._lock:
            h._users -= 1
            if self.x:
                h._xactive = False
            ready = h._closed and not h._users and not h._children
        if self.x:
            h._xlock.release()
        if ready:
            h._release()


def new_out(ctype: str) -> Any:
    """A zeroed out-parameter (``ffi.new``)."""
    return ffi.new(ctype)


def optional_native(ptr: Any) -> Optional[Any]:
    return None if ptr == NULL else ptr
