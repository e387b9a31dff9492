"""The engine: key provider, key management, and the S3 layer's plans."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _ffi
from ._ffi import NULL, Native, ffi, in_buffer, integer, lib, path, text
from .errors import Error, InvalidStateError, rustcall
from .s3 import (
    Bucket, Headers, Meta, Operation, PartEntry, PartPlan, ReadPlan, Request, WritePlan, _bucket, as_meta,
    parts_array, read_headers, take_bytes,
)
from .stream import Opener, Sealer

__all__ = ["Engine"]

AuditCallback = Callable[[str], Any]


class _AuditState:
    """What the C audit callback needs (kept apart from the Engine so no cycle holds it)."""

    def __init__(self, fn: AuditCallback) -> None:
        self.fn = fn
        self.failures = threading.local()
        self.inside = threading.local()  # set while this thread runs the callback


def _make_audit_callback(state: _AuditState) -> Any:
    def deliver(_userdata: Any, line: Any, line_len: int) -> int:
        state.inside.on = True
        try:
            state.fn(ffi.unpack(line, line_len).decode("utf-8"))
            return 0
        except BaseException as e:  # any exception is a failure to deliver: the key is not used
            state.failures.last = e
            return 1
        finally:
            state.inside.on = False

    return ffi.callback("ssekit_audit_callback", deliver, error=1)


class Engine:
    """The engine a server shares between all its request threads.

    Make one with :meth:`local`, :meth:`pkcs11` or :meth:`kms`; every method may be called from
    any number of threads at once. ``close()`` (or leaving a ``with`` block) stops new calls and
    frees the engine once the plans and streams made from it are closed or collected.

    Options (keyword arguments of every constructor): ``cache`` (the data-key cache on/off;
    default on for PKCS#11 and KMS, off for the local keyring), ``region`` and ``account`` (of the
    ARNs the engine echoes), ``default_allow`` (what a policy's silence means; default True),
    ``audit_file`` (append the audit log there) or ``audit_callback`` (a callable receiving each
    audit line as a str, from whichever thread used a key; an exception in it counts as a
    failure to deliver: the key is not used and the request fails; it must not call back into
    its engine: such a call raises InvalidStateError instead of deadlocking), ``audit_continue``
    (``(next_seq, prev_hash)``: the callback's chain continues one its receiver holds).
    """

    def __init__(self, _native: Native, _audit: Optional[_AuditState] = None) -> None:
        self._h = _native
        self._audit = _audit

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def _build(cls, provider: Callable[[Any], None], cache: Optional[bool], region: Optional[str],
               account: Optional[str], default_allow: Optional[bool], audit_file: Any,
               audit_callback: Optional[AuditCallback], audit_continue: Optional[Tuple[int, bytes]] = None) -> "Engine":
        if audit_continue is not None and audit_callback is None:
            raise ValueError("audit_continue needs audit_callback")
        if audit_file is not None and audit_callback is not None:
            raise ValueError("give audit_file or audit_callback, not both")
        if audit_callback is not None and not callable(audit_callback):
            raise TypeError(f"audit_callback must be callable, not {type(audit_callback).__name__}")
        for name, v in (("cache", cache), ("default_allow", default_allow)):
            if v is not None and not isinstance(v, bool):
                raise TypeError(f"{name} must be a bool, not {type(v).__name__}")
        if (region is None) != (account is None) and not (region is not None and account is None):
            raise ValueError("give region with account")
        out = ffi.new("ssekit_engine_builder **")
        rustcall(lib.ssekit_engine_builder_new, out)
        b = out[0]
        state = callback = None
        try:
            provider(b)
            if cache is not None:
                rustcall(lib.ssekit_engine_builder_cache, b, cache)
            if region is not None or account is not None:
                r, rlen = text(region or "us-east-1", "region")
                a, alen = text(account or "000000000000", "account")
                rustcall(lib.ssekit_engine_builder_arn, b, r, rlen, a, alen)
            if default_allow is not None:
                rustcall(lib.ssekit_engine_builder_default_allow, b, default_allow)
            if audit_file is not None:
                p, plen = path(audit_file, "audit_file")
                rustcall(lib.ssekit_engine_builder_audit_file, b, p, plen)
            if audit_callback is not None:
                state = _AuditState(audit_callback)
                callback = _make_audit_callback(state)
                rustcall(lib.ssekit_engine_builder_audit_callback, b, callback, NULL)
            if audit_continue is not None:
                seq, prev = audit_continue
                seq = integer(seq, "audit_continue next_seq", _ffi.U64_MAX)
                h, hlen = in_buffer(prev, "audit_continue prev_hash")
                rustcall(lib.ssekit_engine_builder_audit_continue, b, seq, h, hlen)
        except BaseException:
            lib.ssekit_engine_builder_free(b)
            raise
        engine = ffi.new("ssekit_engine **")
        rustcall(lib.ssekit_engine_builder_build, b, engine)  # frees the builder either way
        # The callback object must live as long as the engine: the Native keeps it.
        return cls(Native(engine[0], lib.ssekit_engine_free, "engine", keep=callback), state)

    @classmethod
    def local(cls, dir: Union[str, "os.PathLike[str]"], root_key_file: Union[None, str, "os.PathLike[str]"] = None, *,
              cache: Optional[bool] = None, region: Optional[str] = None, account: Optional[str] = None,
              default_allow: Optional[bool] = None, audit_file: Any = None,
              audit_callback: Optional[AuditCallback] = None,
              audit_continue: Optional[Tuple[int, bytes]] = None) -> "Engine":
        """Keys in the local keyring in ``dir`` (created 0700), its root secret in
        ``root_key_file`` or ``dir/root.key`` (generated on first use)."""
        d, dlen = path(dir, "dir")
        r, rlen = path(root_key_file, "root_key_file", optional=True)
        return cls._build(lambda b: rustcall(lib.ssekit_engine_builder_local_keyring, b, d, dlen, r, rlen),
                          cache, region, account, default_allow, audit_file, audit_callback, audit_continue)

    @classmethod
    def pkcs11(cls, module: Union[str, "os.PathLike[str]"], token_label: str, pin: str,
               records_dir: Union[str, "os.PathLike[str]"], *, cache: Optional[bool] = None,
               region: Optional[str] = None, account: Optional[str] = None,
               default_allow: Optional[bool] = None, audit_file: Any = None,
               audit_callback: Optional[AuditCallback] = None,
               audit_continue: Optional[Tuple[int, bytes]] = None) -> "Engine":
        """Keys on an HSM through the PKCS#11 ``module`` (an absolute path), token
        ``token_label``, ``pin``; key records in ``records_dir``."""
        m, mlen = path(module, "module")
        t, tlen = text(token_label, "token_label")
        p, plen = text(pin, "pin")
        r, rlen = path(records_dir, "records_dir")
        return cls._build(lambda b: rustcall(lib.ssekit_engine_builder_pkcs11, b, m, mlen, t, tlen, p, plen, r, rlen),
                          cache, region, account, default_allow, audit_file, audit_callback, audit_continue)

    @classmethod
    def kms(cls, endpoint: Optional[str] = None, region: Optional[str] = None, *, cache: Optional[bool] = None,
            arn_region: Optional[str] = None, account: Optional[str] = None,
            default_allow: Optional[bool] = None, audit_file: Any = None,
            audit_callback: Optional[AuditCallback] = None,
            audit_continue: Optional[Tuple[int, bytes]] = None) -> "Engine":
        """Keys in AWS KMS or a server speaking its API at ``endpoint`` (None: AWS's), in
        ``region`` (None: ``AWS_REGION`` or the profile); credentials from the AWS chain.
        (``arn_region``/``account`` set the ARN region and account, as ``region`` does for the
        other constructors.)"""
        e, elen = text(endpoint, "endpoint", optional=True)
        r, rlen = text(region, "region", optional=True)
        return cls._build(lambda b: rustcall(lib.ssekit_engine_builder_kms, b, e, elen, r, rlen),
                          cache, arn_region, account, default_allow, audit_file, audit_callback, audit_continue)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """No new calls; the engine is freed once every plan and stream made from it is gone."""
        self._h.close()

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, fn: Any, *args: Any) -> None:
        """rustcall with the engine borrowed; a failure caused by the audit callback raising
        gets that exception as its ``__cause__``."""
        if self._audit is not None and getattr(self._audit.inside, "on", False):
            # The library holds the audit log's lock while the callback runs: a call back into
            # the engine would wait for itself forever.
            raise InvalidStateError("the audit callback must not call back into its engine (it would deadlock)", 103)
        with self._h.use() as e:
            try:
                rustcall(fn, e, *args)
            except Error as err:
                failure = getattr(self._audit.failures, "last", None) if self._audit else None
                if failure is not None:
                    self._audit.failures.last = None  # type: ignore[union-attr]
                    raise err from failure
                raise

    # -- keys -----------------------------------------------------------------------------

    def _key_call(self, fn: Any, key_id: str, *extra: Any) -> Dict[str, Any]:
        k, klen = text(key_id, "key_id")
        out = ffi.new("ssekit_bytes **")
        self._call(fn, k, klen, *extra, out)
        return json.loads(take_bytes(out[0]))

    def create_key(self, key_id: Optional[str] = None, description: Optional[str] = None,
                   rotation_days: int = 0) -> Dict[str, Any]:
        """Creates a key (None: the provider picks the id); automatic rotation every
        ``rotation_days`` (0: none). Returns its description. :class:`ssekit.KeyExistsError` if
        taken."""
        k, klen = text(key_id, "key_id", optional=True)
        d, dlen = text(description, "description", optional=True)
        days = integer(rotation_days, "rotation_days", _ffi.U32_MAX)
        out = ffi.new("ssekit_bytes **")
        self._call(lib.ssekit_engine_create_key, k, klen, d, dlen, days, out)
        return json.loads(take_bytes(out[0]))

    def describe_key(self, key_id: str) -> Dict[str, Any]:
        return self._key_call(lib.ssekit_engine_describe_key, key_id)

    def rotate_key(self, key_id: str) -> Dict[str, Any]:
        """A new version of the key for new wraps (old versions keep unwrapping)."""
        return self._key_call(lib.ssekit_engine_rotate_key, key_id)

    def enable_key(self, key_id: str) -> Dict[str, Any]:
        return self._key_call(lib.ssekit_engine_set_key_enabled, key_id, True)

    def disable_key(self, key_id: str) -> Dict[str, Any]:
        return self._key_call(lib.ssekit_engine_set_key_enabled, key_id, False)

    def schedule_key_deletion(self, key_id: str, days: int = 30) -> Dict[str, Any]:
        """Schedules the key's destruction in ``days`` (7..=30); it is unusable from now on."""
        return self._key_call(lib.ssekit_engine_schedule_key_deletion, key_id,
                              integer(days, "days", _ffi.U32_MAX))

    def cancel_key_deletion(self, key_id: str) -> Dict[str, Any]:
        """Cancels a scheduled deletion; the key comes back disabled."""
        return self._key_call(lib.ssekit_engine_cancel_key_deletion, key_id)

    def list_keys(self) -> List[Dict[str, Any]]:
        out = ffi.new("ssekit_bytes **")
        self._call(lib.ssekit_engine_list_keys, out)
        return json.loads(take_bytes(out[0]))

    def clear_bucket_keys(self) -> None:
        """Drops every cached S3 Bucket Key."""
        self._call(lib.ssekit_engine_clear_bucket_keys)

    # -- the S3 layer ---------------------------------------------------------------------

    def plan_write(self, op: Union[Operation, int, str], bucket_name: str, key: str, headers: Optional[Headers] = None,
                   bucket: Optional[Bucket] = None, principal: str = "*", secure: bool = False) -> WritePlan:
        """Plans a PutObject, PostObject or CreateMultipartUpload: checks the policy and SSE
        headers, picks the mode, makes the data key(s). Raises :class:`ssekit.S3Error` when S3
        would refuse the request."""
        b = _bucket(bucket)
        req = Request(op, bucket_name, key, headers, principal, secure)
        out, err = ffi.new("ssekit_write_plan **"), ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, b._h.use() as bp:
                self._call(lib.ssekit_engine_plan_write, r, bp, out, err)
        finally:
            req.close()
        return WritePlan(out[0], self._h)

    def plan_read(self, op: Union[Operation, int, str], bucket_name: str, key: str, meta: Union[Meta, bytes],
                  headers: Optional[Headers] = None, bucket: Optional[Bucket] = None, principal: str = "*",
                  secure: bool = False) -> ReadPlan:
        """Plans a GetObject or HeadObject of the object whose stored metadata is ``meta``
        (a Meta or its bytes)."""
        b = _bucket(bucket)
        m = as_meta(meta)
        req = Request(op, bucket_name, key, headers, principal, secure)
        out, err = ffi.new("ssekit_read_plan **"), ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, b._h.use() as bp, m._h.use() as mp:
                self._call(lib.ssekit_engine_plan_read, r, bp, mp, out, err)
        finally:
            req.close()
        return ReadPlan(out[0], self._h)

    def plan_copy(self, bucket_name: str, key: str, source_bucket_name: str, source_key: str,
                  source_meta: Union[Meta, bytes], headers: Optional[Headers] = None, bucket: Optional[Bucket] = None,
                  source_bucket: Optional[Bucket] = None, principal: str = "*",
                  secure: bool = False) -> Tuple[ReadPlan, WritePlan]:
        """Plans a CopyObject to ``bucket_name/key`` from ``source_bucket_name/source_key``:
        returns (the source's read plan, the target's write plan)."""
        b, sb = _bucket(bucket), _bucket(source_bucket)
        m = as_meta(source_meta, "source_meta")
        req = Request(Operation.COPY_OBJECT, bucket_name, key, headers, principal, secure)
        src = Request(Operation.GET_OBJECT, source_bucket_name, source_key, None, principal, secure)
        rout, wout = ffi.new("ssekit_read_plan **"), ffi.new("ssekit_write_plan **")
        err = ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, src.use() as s, b._h.use() as bp, sb._h.use() as sbp, m._h.use() as mp:
                self._call(lib.ssekit_engine_plan_copy, r, bp, s, sbp, mp, rout, wout, err)
        finally:
            req.close()
            src.close()
        return ReadPlan(rout[0], self._h), WritePlan(wout[0], self._h)

    def plan_part(self, bucket_name: str, key: str, upload_meta: Union[Meta, bytes], part_number: int,
                  headers: Optional[Headers] = None, bucket: Optional[Bucket] = None, principal: str = "*",
                  secure: bool = False) -> PartPlan:
        """Plans UploadPart ``part_number`` (1..=10000) of the upload whose metadata is
        ``upload_meta`` (from CreateMultipartUpload's :meth:`WritePlan.upload_meta`)."""
        b = _bucket(bucket)
        m = as_meta(upload_meta, "upload_meta")
        n = integer(part_number, "part_number", _ffi.U32_MAX)
        req = Request(Operation.UPLOAD_PART, bucket_name, key, headers, principal, secure)
        out, err = ffi.new("ssekit_part_plan **"), ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, b._h.use() as bp, m._h.use() as mp:
                self._call(lib.ssekit_engine_plan_part, r, bp, mp, n, out, err)
        finally:
            req.close()
        return PartPlan(out[0], self._h)

    def plan_part_copy(self, bucket_name: str, key: str, upload_meta: Union[Meta, bytes], part_number: int,
                       source_bucket_name: str, source_key: str, source_meta: Union[Meta, bytes],
                       headers: Optional[Headers] = None, bucket: Optional[Bucket] = None,
                       source_bucket: Optional[Bucket] = None, principal: str = "*",
                       secure: bool = False) -> Tuple[ReadPlan, PartPlan]:
        """Plans an UploadPartCopy: (the source's read plan, the part's plan)."""
        b, sb = _bucket(bucket), _bucket(source_bucket)
        m = as_meta(upload_meta, "upload_meta")
        sm = as_meta(source_meta, "source_meta")
        n = integer(part_number, "part_number", _ffi.U32_MAX)
        req = Request(Operation.UPLOAD_PART_COPY, bucket_name, key, headers, principal, secure)
        src = Request(Operation.GET_OBJECT, source_bucket_name, source_key, None, principal, secure)
        rout, pout = ffi.new("ssekit_read_plan **"), ffi.new("ssekit_part_plan **")
        err = ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, src.use() as s, b._h.use() as bp, sb._h.use() as sbp, m._h.use() as mp, \
                    sm._h.use() as smp:
                self._call(lib.ssekit_engine_plan_part_copy, r, bp, mp, n, s, sbp, smp, rout, pout, err)
        finally:
            req.close()
            src.close()
        return ReadPlan(rout[0], self._h), PartPlan(pout[0], self._h)

    def complete(self, bucket_name: str, key: str, upload_meta: Union[Meta, bytes], parts: Sequence[PartEntry],
                 headers: Optional[Headers] = None, bucket: Optional[Bucket] = None, principal: str = "*",
                 secure: bool = False) -> Tuple[Meta, Dict[str, str]]:
        """CompleteMultipartUpload with the kept parts' rows, in ascending part-number order (as
        S3, the order is checked: 400 InvalidPartOrder). Returns (the object's metadata to store,
        the response headers)."""
        b = _bucket(bucket)
        m = as_meta(upload_meta, "upload_meta")
        arr, count = parts_array(parts)
        req = Request(Operation.COMPLETE_MULTIPART_UPLOAD, bucket_name, key, headers, principal, secure)
        mout, hout = ffi.new("ssekit_meta **"), ffi.new("ssekit_headers **")
        err = ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, b._h.use() as bp, m._h.use() as mp:
                self._call(lib.ssekit_engine_complete, r, bp, mp, arr, count, mout, hout, err)
        finally:
            req.close()
        try:
            response = dict(read_headers(hout[0]))
        finally:
            lib.ssekit_headers_free(hout[0])
        return Meta(mout[0]), response

    def authorize(self, op: Union[Operation, int, str], bucket_name: str, key: str, headers: Optional[Headers] = None,
                  bucket: Optional[Bucket] = None, principal: str = "*", secure: bool = False) -> None:
        """Evaluates the bucket's policy as the plans do; raises :class:`ssekit.S3Error`
        (403 AccessDenied) when it refuses."""
        b = _bucket(bucket)
        req = Request(op, bucket_name, key, headers, principal, secure)
        err = ffi.new("ssekit_s3_error **")
        try:
            with req.use() as r, b._h.use() as bp:
                self._call(lib.ssekit_engine_authorize, r, bp, err)
        finally:
            req.close()

    # -- conveniences ---------------------------------------------------------------------

    def put(self, bucket_name: str, key: str, data: Any, headers: Optional[Headers] = None, *,
            bucket: Optional[Bucket] = None, principal: str = "*",
            secure: bool = False) -> Tuple[bytes, bytes, Dict[str, str]]:
        """A whole PutObject: returns (stored bytes, metadata bytes, response headers)."""
        with self.plan_write(Operation.PUT_OBJECT, bucket_name, key, headers, bucket, principal, secure) as plan:
            stored = plan.seal(data)
            meta = plan.finish(in_buffer(data, "data")[1])
            try:
                return stored, meta.to_bytes(), plan.response_headers
            finally:
                meta.close()

    def get(self, bucket_name: str, key: str, stored: Any, meta: Union[Meta, bytes], headers: Optional[Headers] = None,
            *, range: Optional[str] = None, bucket: Optional[Bucket] = None, principal: str = "*",
            secure: bool = False) -> bytes:
        """A whole GetObject of ``stored`` (all its stored bytes in memory): the plaintext, or
        only the ``range`` (an HTTP Range value) of it."""
        with self.plan_read(Operation.GET_OBJECT, bucket_name, key, meta, headers, bucket, principal, secure) as plan:
            if range is None:
                return plan.open(stored)
            r = plan.range(range, memoryview(stored).nbytes)
            try:
                return r.open(r.gather(stored))
            finally:
                r.close()

    def sealer(self, out: Any, bucket_name: str, key: str, headers: Optional[Headers] = None, *,
               bucket: Optional[Bucket] = None, principal: str = "*", secure: bool = False) -> "ObjectSealer":
        """A streaming PutObject: a writable file-like sealing into ``out`` (None: in memory);
        ``finish()`` returns the object's :class:`Meta` (``response_headers`` are on it too)."""
        plan = self.plan_write(Operation.PUT_OBJECT, bucket_name, key, headers, bucket, principal, secure)
        try:
            return plan.sealer(out, cls=lambda ptr, engine, target: ObjectSealer(ptr, engine, target, plan))
        except BaseException:
            plan.close()
            raise

    def opener(self, source: Any, bucket_name: str, key: str, meta: Union[Meta, bytes], headers: Optional[Headers] = None,
               *, bucket: Optional[Bucket] = None, principal: str = "*", secure: bool = False) -> Opener:
        """A streaming GetObject of a single-part object: a readable file-like over ``source``."""
        with self.plan_read(Operation.GET_OBJECT, bucket_name, key, meta, headers, bucket, principal, secure) as plan:
            return plan.opener(source)

    def __repr__(self) -> str:
        return f"<ssekit.Engine{' closed' if self.closed else ''}>"


class ObjectSealer(Sealer):
    """A PutObject's streaming sealer (:meth:`Engine.sealer`): ``finish()`` (or ``close()``)
    returns the object's :class:`Meta`; ``response_headers`` are the plan's."""

    def __init__(self, ptr: Any, engine: Native, target: Any, plan: WritePlan) -> None:
        super().__init__(ptr, engine, target)
        self.plan = plan
        self.response_headers: Dict[str, str] = plan.response_headers
        self.meta: Optional[Meta] = None

    def finish(self) -> Meta:  # type: ignore[override]
        """Seals the last chunk and returns the object's authenticated metadata."""
        if self.meta is None:
            entry = Sealer.finish(self)
            self.meta = self.plan.finish(entry.size)
        return self.meta

    def close(self) -> Optional[Meta]:  # type: ignore[override]
        if self._h.closed:
            return self.meta
        try:
            return self.finish()
        finally:
            self.abort()

    def abort(self) -> None:
        Sealer.abort(self)
        self.plan.close()
