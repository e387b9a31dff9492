"""Streaming: seal a body pushed in pieces, open stored bytes read in pieces.

:class:`Sealer` is a writable file-like: ``write(plaintext)`` seals every 16 KiB chunk as soon as
it is complete and writes the stored bytes to the target file-like (or keeps them in memory);
``finish()`` (or ``close()``) seals the last chunk and returns the part's :class:`PartEntry`.

:class:`Opener` is a readable file-like over a source of stored bytes: ``read(n)``,
``readinto(buf)``, iteration (lines, as for any binary file) and :meth:`Opener.chunks`. Each chunk's
plaintext is released only once it authenticated; at the end of the source it checks the whole
part arrived (:class:`ssekit.TruncatedError` otherwise). Without a source it is push-style:
``update(stored) -> plaintext`` and ``finish()``.

Both hold a lock: one call at a time (they are not meant to be shared between threads).
"""

from __future__ import annotations

import io
from typing import Any, Iterator, Optional

from ._ffi import SIZE_MAX, Native, ffi, in_buffer, integer, lib, out_buffer
from .errors import ClosedError, InvalidStateError, rustcall
from .s3 import PartEntry

__all__ = ["Sealer", "Opener"]

_READ_SIZE = 256 * 1024


def _write_all(target: Any, view: memoryview) -> None:
    """Writes all of ``view`` to ``target`` (looping over short writes; None counts as all)."""
    while len(view):
        n = target.write(view)
        if n is None:
            return
        view = view[n:]


class Sealer(io.RawIOBase):
    """A streaming sealer (from :meth:`WritePlan.sealer`, :meth:`PartPlan.sealer`)."""

    def __init__(self, ptr: Any, engine: Native, target: Any = None) -> None:
        super().__init__()
        self._h = Native(ptr, lib.ssekit_sealer_free, "sealer", (engine,))
        if target is not None and not callable(getattr(target, "write", None)):
            raise TypeError(f"the sealer's output must have a write() method, not {type(target).__name__}")
        self._target = target
        self._memory = bytearray() if target is None else None
        self._scratch = bytearray(64 * 1024)
        self._len = ffi.new("size_t *")
        self._written = ffi.new("size_t *")
        self.entry: Optional[PartEntry] = None
        self.stored_len = 0

    def writable(self) -> bool:
        return True

    def _emit(self, n: int) -> None:
        self.stored_len += n
        if not n:
            return
        with memoryview(self._scratch) as view:
            if self._memory is not None:
                self._memory += view[:n]
            else:
                _write_all(self._target, view[:n])

    def _room(self, need: int) -> Any:
        if len(self._scratch) < need:
            # A new buffer rather than a resize: the target may still hold a view of the old one.
            self._scratch = bytearray(need)
        return out_buffer(self._scratch, "scratch")

    def write(self, data: Any) -> int:
        """Seals ``data`` (any bytes-like object); returns ``len(data)`` in bytes."""
        src, n = in_buffer(data, "data")
        if self.entry is not None:
            raise InvalidStateError("this sealer is finished: it takes nothing more", 103)
        with self._h.use(exclusive=True) as s:
            rustcall(lib.ssekit_sealer_update_len, s, n, self._len)
            dst, cap = self._room(self._len[0])
            rustcall(lib.ssekit_sealer_update, s, src, n, dst, cap, self._written)
            self._emit(self._written[0])
        return n

    update = write

    @property
    def plaintext_len(self) -> int:
        """Plaintext bytes taken so far."""
        with self._h.use(exclusive=True) as s:
            return int(lib.ssekit_sealer_plaintext_len(s))

    def finish(self) -> PartEntry:
        """Seals the final chunk, writes it out and returns the part's row (its ``size`` is the
        plaintext size). Calling it again returns the same row."""
        if self.entry is not None:
            return self.entry
        entry = ffi.new("ssekit_part_entry *")
        with self._h.use(exclusive=True) as s:
            rustcall(lib.ssekit_sealer_finish_len, s, self._len)
            dst, cap = self._room(self._len[0])
            rustcall(lib.ssekit_sealer_finish, s, dst, cap, self._written, entry)
            self._emit(self._written[0])
        self.entry = PartEntry._from_c(entry)
        if self._target is not None and callable(getattr(self._target, "flush", None)):
            self._target.flush()
        return self.entry

    def getvalue(self) -> bytes:
        """The stored bytes written so far, when the sealer has no target."""
        if self._memory is None:
            raise InvalidStateError("this sealer writes to its target; it keeps nothing in memory", 103)
        return bytes(self._memory)

    def close(self) -> Optional[PartEntry]:  # type: ignore[override]
        """Finishes (if not yet finished) and frees the sealer; returns the part's row."""
        if self._h.closed:
            return self.entry
        try:
            return self.finish()
        finally:
            self.abort()

    def abort(self) -> None:
        """Frees the sealer without finishing: what it wrote is not a complete object."""
        self._h.close()
        super().close()

    def __del__(self) -> None:
        # io's __del__ would close(), i.e. finish: an abandoned sealer is aborted instead.
        try:
            self.abort()
        except Exception:
            pass

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class Opener(io.RawIOBase):
    """A streaming opener (from :meth:`ReadPlan.opener`)."""

    def __init__(self, ptr: Any, engine: Native, source: Any = None) -> None:
        super().__init__()
        self._h = Native(ptr, lib.ssekit_opener_free, "opener", (engine,))
        if source is not None and not callable(getattr(source, "read", None)):
            raise TypeError(f"the opener's source must have a read() method, not {type(source).__name__}")
        self._source = source
        self._pending = bytearray()  # plaintext released but not yet read
        self._pos = 0
        self._eof = False
        self._finished = False
        self._len = ffi.new("size_t *")
        self._written = ffi.new("size_t *")
        with self._h.use(exclusive=True) as o:
            self.size: int = int(lib.ssekit_opener_size(o))
            self.stored_len: int = int(lib.ssekit_opener_stored_len(o))

    def readable(self) -> bool:
        return self._source is not None

    def update_into(self, stored: Any, out: Any) -> int:
        """Push-style: takes stored bytes, writes the plaintext of every chunk they complete into
        ``out`` (at least ``update_len(len(stored))`` bytes); returns the count."""
        src, n = in_buffer(stored, "stored")
        dst, cap = out_buffer(out, "out")
        with self._h.use(exclusive=True) as o:
            rustcall(lib.ssekit_opener_update, o, src, n, dst, cap, self._written)
            return int(self._written[0])

    def update_len(self, stored_len: int) -> int:
        stored_len = integer(stored_len, "stored_len", SIZE_MAX)
        with self._h.use(exclusive=True) as o:
            rustcall(lib.ssekit_opener_update_len, o, stored_len, self._len)
            return int(self._len[0])

    def update(self, stored: Any) -> bytes:
        """Push-style: takes stored bytes, returns the plaintext of every chunk they complete
        (authenticated)."""
        src, n = in_buffer(stored, "stored")
        with self._h.use(exclusive=True) as o:
            rustcall(lib.ssekit_opener_update_len, o, n, self._len)
            out = bytearray(self._len[0])
            dst, cap = out_buffer(out, "out")
            rustcall(lib.ssekit_opener_update, o, src, n, dst, cap, self._written)
        w = self._written[0]
        return bytes(out) if w == len(out) else bytes(memoryview(out)[:w])

    def finish(self) -> None:
        """Checks the whole part arrived and authenticated (:class:`ssekit.TruncatedError` when
        stored bytes are missing, or an earlier failure again)."""
        with self._h.use(exclusive=True) as o:
            rustcall(lib.ssekit_opener_finish, o)
        self._finished = True

    def _fill(self) -> bool:
        """Reads stored bytes until some plaintext is pending or the source ends; False at EOF."""
        if self._source is None:
            raise InvalidStateError("this opener has no source: use update() and finish()", 103)
        while self._pos >= len(self._pending):
            if self._eof:
                return False
            piece = self._source.read(_READ_SIZE)
            if piece is None:
                raise BlockingIOError("the opener's source has no data now (non-blocking source)")
            if not piece:
                self._eof = True
                self.finish()
                return False
            self._pending = bytearray(self.update(piece))
            self._pos = 0
        return True

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        """Reads authenticated plaintext into ``buffer``; 0 at the end (after checking the whole
        part arrived)."""
        dst, cap = out_buffer(buffer, "buffer")
        if self._h.closed:
            raise ClosedError("this opener is closed")
        if not cap or not self._fill():
            return 0
        n = min(cap, len(self._pending) - self._pos)
        ffi.memmove(dst, memoryview(self._pending)[self._pos : self._pos + n], n)
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Reads up to ``size`` plaintext bytes (all of the rest for -1)."""
        if self._h.closed:
            raise ClosedError("this opener is closed")
        if size is None or size < 0:
            return self.readall()
        if not size or not self._fill():
            return b""
        n = min(size, len(self._pending) - self._pos)
        out = bytes(memoryview(self._pending)[self._pos : self._pos + n])
        self._pos += n
        return out

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(bytes(memoryview(self._pending)[self._pos :]))
            self._pos = len(self._pending)
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes]:
        """The plaintext as it authenticates, in pieces of up to a few hundred KiB."""
        while self._fill():
            piece = bytes(memoryview(self._pending)[self._pos :])
            self._pos = len(self._pending)
            yield piece

    def close(self) -> None:
        """Frees the opener (whether or not everything was read)."""
        self._h.close()
        super().close()
