"""ssekit: Amazon-S3-style server-side encryption for storage servers, over ``libssekit``'s C ABI.

>>> import ssekit
>>> with ssekit.Engine.local("/tmp/keys") as engine:            # doctest: +SKIP
...     stored, meta, headers = engine.put("bkt", "obj", b"hello", {"x-amz-server-side-encryption": "aws:kms"})
...     assert engine.get("bkt", "obj", stored, meta) == b"hello"

The pieces: :class:`Engine` (key provider, key management, the S3 plans), :class:`Bucket`
(default encryption, policy), :class:`WritePlan` / :class:`ReadPlan` / :class:`PartPlan` /
:class:`Range`, :class:`Meta` (what is stored beside the data), :class:`PartEntry`, the streaming
:class:`Sealer` / :class:`Opener`, and one exception class per result code under :class:`Error`
(:class:`S3Error` carries S3's code, status and message).
"""

from __future__ import annotations

import json as _json
from importlib import resources as _resources
from typing import Any, Dict

from ._ffi import lib as _lib, string as _string
from .engine import Engine, ObjectSealer
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _error_names
from .s3 import (
    Bucket, Decision, Headers, Meta, Mode, Operation, PartEntry, PartPlan, Range, ReadPlan, WritePlan, policy_check,
)
from .stream import Opener, Sealer

__version__: str = _string(_lib.ssekit_version())


def library_version() -> str:
    """The loaded libssekit's version (``ssekit_version``)."""
    return _string(_lib.ssekit_version())


def backend_name() -> str:
    """The AES-GCM backend this process uses (``"vaes-avx512"``, ``"aesni"``, ...)."""
    return _string(_lib.ssekit_backend_name())


def set_threads(threads: int) -> None:
    """The number of threads a large seal or open uses, the calling thread's included (one pool
    per process; 0: one per CPU; 1: every call on its calling thread alone). Call it at start-up,
    before any seal or open (:class:`InvalidStateError` afterwards)."""
    from ._ffi import SIZE_MAX, integer
    from .errors import rustcall

    rustcall(_lib.ssekit_set_threads, integer(threads, "threads", SIZE_MAX))


def build_info() -> Dict[str, Any]:
    """Where the packaged library and header came from (written by the build: versions, git
    commit, sha256 of ``libssekit.so`` and ``ssekit.h``, cargo and rustc versions, how the cdef
    was made)."""
    return _json.loads((_resources.files(__name__) / "_build_info.json").read_text(encoding="utf-8"))


__all__ = [
    "Engine", "ObjectSealer", "Bucket", "Decision", "Headers", "Meta", "Mode", "Operation", "PartEntry", "PartPlan",
    "Range", "ReadPlan", "WritePlan", "Sealer", "Opener", "policy_check", "library_version", "backend_name", "set_threads",
    "build_info", "__version__",
] + list(_error_names)
