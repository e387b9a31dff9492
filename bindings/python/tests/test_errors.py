"""Every error path: stored data, keys, S3 refusals, misuse, wrong types, sizes."""

from __future__ import annotations

import os
import re

import pytest

import ssekit
from ssekit import _ffi
from conftest import REPO, SSE, data_of, ssec_headers


@pytest.fixture
def obj(engine):
    data = data_of(40_000)
    stored, meta, _ = engine.put("b", "k", data, {SSE: "aws:kms"})
    return data, stored, meta


def test_every_result_code_has_its_class():
    names = [n for n in dir(_ffi.lib) if n.startswith("SSEKIT_RESULT_") and n != "SSEKIT_RESULT_OK"]
    assert len(names) >= 32
    for name in names:
        code = getattr(_ffi.lib, name)
        cls = ssekit.error_class(code)
        assert cls is not ssekit.Error, f"{name} ({code}) has no exception class"
        assert issubclass(cls, ssekit.Error)
        e = cls("m", code) if cls is not ssekit.S3Error else cls("m", code, "X", 400)
        assert e.name == name and e.result == code
    assert len({ssekit.error_class(getattr(_ffi.lib, n)) for n in names}) == len(names)


def test_tampered(engine, obj):
    data, stored, meta = obj
    for at in (0, 60, 100, len(stored) // 2, len(stored) - 1):
        bad = bytearray(stored)
        bad[at] ^= 0x01
        with pytest.raises((ssekit.TamperedError, ssekit.WrongKeyError)) as err:
            engine.get("b", "k", bad, meta)
        assert err.value.message and err.value.code in (200, 201)
    bad = bytearray(stored)
    bad[500] ^= 0x80
    with pytest.raises(ssekit.TamperedError, match="authentication"):
        engine.get("b", "k", bad, meta)


def test_open_into_writes_nothing_on_failure(engine, obj):
    data, stored, meta = obj
    bad = bytearray(stored)
    bad[len(bad) - 5] ^= 1
    plan = engine.plan_read("GetObject", "b", "k", meta)
    out = bytearray(b"\xaa" * len(data))
    with pytest.raises(ssekit.TamperedError):
        plan.open_into(bad, out)
    # No plaintext is released (the library clears what it wrote: the buffer is all zeros).
    assert data[:64] not in out and data[-64:] not in out
    with pytest.raises(ssekit.TamperedError):
        plan.open_in_place(bad)
    assert data[:100] not in bad


def test_truncated_and_extended(engine, obj):
    data, stored, meta = obj
    for cut in (stored[:-1], stored[:-16], stored[:1000], stored[:56], b""):
        with pytest.raises((ssekit.TruncatedError, ssekit.LengthMismatchError)):
            engine.get("b", "k", cut, meta)
    with pytest.raises(ssekit.LengthMismatchError):
        engine.get("b", "k", stored + b"\0", meta)
    # Streaming: the opener notices missing bytes only at finish.
    plan = engine.plan_read("GetObject", "b", "k", meta)
    op = plan.opener()
    op.update(stored[:-20])
    with pytest.raises(ssekit.TruncatedError):
        op.finish()


def test_tampered_metadata(engine, obj):
    data, stored, meta = obj
    bad = bytearray(meta)
    bad[-3] ^= 1
    with pytest.raises((ssekit.MetadataTamperedError, ssekit.MalformedMetadataError, ssekit.UnwrapFailedError,
                        ssekit.S3Error, ssekit.WrongKeyError)):
        engine.get("b", "k", stored, bytes(bad))
    with pytest.raises(ssekit.MalformedMetadataError):
        ssekit.Meta.from_bytes(b"not metadata")
    with pytest.raises(ssekit.MalformedMetadataError):
        ssekit.Meta.from_bytes(b"")


def test_wrong_object_data_under_the_right_metadata(engine, obj):
    data, stored, meta = obj
    other, _, _ = engine.put("b", "k", data, {SSE: "aws:kms"})
    with pytest.raises(ssekit.WrongKeyError):
        engine.get("b", "k", other, meta)


def test_sse_c_errors(engine):
    key = os.urandom(32)
    h = ssec_headers(key)
    stored, meta, _ = engine.put("b", "k", b"customer data", h, secure=True)
    cases = [
        # (headers, secure, code, status)
        (ssec_headers(os.urandom(32)), True, "AccessDenied", 403),  # a wrong key
        ({}, True, "InvalidRequest", 400),  # no key
        (h, False, "InvalidRequest", 400),  # over plain HTTP
    ]
    for headers, secure, code, status in cases:
        with pytest.raises(ssekit.S3Error) as err:
            engine.plan_read("GetObject", "b", "k", meta, headers, secure=secure)
        assert (err.value.code, err.value.status) == (code, status), err.value
        assert err.value.name == "SSEKIT_RESULT_S3_ERROR" and err.value.result == 400
    assert engine.get("b", "k", stored, meta, h, secure=True) == b"customer data"


BAD_WRITES = [
    ({SSE: "AES192"}, False, "InvalidArgument", 400),
    ({SSE: "aes256"}, False, "InvalidArgument", 400),
    ({SSE: "AES256", f"{SSE}-aws-kms-key-id": "k"}, False, "InvalidArgument", 400),
    ({SSE: "aws:kms", f"{SSE}-aws-kms-key-id": "no-such-key"}, False, "KMS.NotFoundException", 400),
    ({SSE: "aws:kms", f"{SSE}-context": "not base64!"}, False, "InvalidArgument", 400),
    ({SSE: "aws:kms:dsse", f"{SSE}-bucket-key-enabled": "true"}, False, "InvalidArgument", 400),
    ([(SSE, "AES256"), (SSE, "AES256")], False, "InvalidArgument", 400),
    ({**ssec_headers(bytes(32)), SSE: "AES256"}, True, "InvalidArgument", 400),
    ({**ssec_headers(bytes(32)), "x-amz-server-side-encryption-customer-algorithm": "AES128"}, True,
     "InvalidEncryptionAlgorithmError", 400),
    ({**ssec_headers(bytes(32)), "x-amz-server-side-encryption-customer-key-MD5": "AAAA"}, True,
     "InvalidArgument", 400),
    ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, True, "InvalidArgument", 400),
    (ssec_headers(bytes(16)), True, "InvalidArgument", 400),
    (ssec_headers(bytes(32)), False, "InvalidRequest", 400),
]


@pytest.mark.parametrize("headers,secure,code,status", BAD_WRITES)
def test_bad_headers_are_s3_errors(engine, headers, secure, code, status):
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "bkt", "obj", headers, secure=secure)
    assert (err.value.code, err.value.status) == (code, status), str(err.value)
    assert err.value.message and not err.value.retryable
    assert str(err.value).startswith(f"{status} {code}")


def test_bad_names_are_s3_errors(engine):
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "bad/bucket", "k")
    assert (err.value.code, err.value.status) == ("InvalidBucketName", 400)
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "b", "k" * 1025)
    assert (err.value.code, err.value.status) == ("KeyTooLongError", 400)
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "b", "")
    assert err.value.status == 400


def test_get_headers_refused(engine, obj):
    _, _, meta = obj
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_read("GetObject", "b", "k", meta, {SSE: "aws:kms"})
    assert (err.value.code, err.value.status) == ("InvalidArgument", 400)


def test_wrong_operation_for_the_call(engine, obj):
    _, _, meta = obj
    with pytest.raises(ssekit.Error):
        engine.plan_write("GetObject", "b", "k")
    with pytest.raises(ssekit.Error):
        engine.plan_read("PutObject", "b", "k", meta)


def test_closed_engine_raises_not_crashes(keydir):
    e = ssekit.Engine.local(keydir)
    plan = e.plan_write("PutObject", "b", "k")
    e.close()
    assert e.closed
    with pytest.raises(ssekit.ClosedError, match="engine is closed"):
        e.plan_write("PutObject", "b", "k")
    with pytest.raises(ssekit.ClosedError):
        e.list_keys()
    # The plan made before close still works (the engine is freed after it).
    stored = plan.seal(b"still fine")
    meta = plan.finish(10)
    plan.close()
    with pytest.raises(ssekit.ClosedError):
        plan.seal(b"x")
    with pytest.raises(ssekit.ClosedError):
        plan.stored_len(1)
    e.close()  # twice is fine
    assert isinstance(ssekit.ClosedError("x"), (ValueError, ssekit.InvalidStateError))
    with ssekit.Engine.local(keydir) as e2:
        assert e2.get("b", "k", stored, meta) == b"still fine"


def test_finished_plan_and_stream_states(engine):
    plan = engine.plan_write("PutObject", "b", "k")
    plan.seal(b"abc")
    plan.finish(3)
    with pytest.raises(ssekit.InvalidStateError):
        plan.seal(b"abc")
    with pytest.raises(ssekit.InvalidStateError):
        plan.finish(3)
    plan = engine.plan_write("PutObject", "b", "k")
    s = plan.sealer()
    s.write(b"abc")
    entry = s.finish()
    assert s.finish() == entry
    with pytest.raises(ssekit.InvalidStateError):
        s.write(b"more")
    s.close()
    with pytest.raises(ssekit.ClosedError):
        _ = s.plaintext_len


WRONG_DATA = ["text", 12, None, 1.5, [1, 2], object()]


@pytest.mark.parametrize("bad", WRONG_DATA, ids=lambda v: type(v).__name__)
def test_wrong_data_types_raise_typeerror(engine, obj, bad):
    _, stored, meta = obj
    plan = engine.plan_write("PutObject", "b", "k")
    with pytest.raises(TypeError, match="bytes-like"):
        plan.seal(bad)
    with pytest.raises(TypeError, match="bytes-like"):
        plan.seal_into(bad, bytearray(100))
    read = engine.plan_read("GetObject", "b", "k", meta)
    with pytest.raises(TypeError, match="bytes-like"):
        read.open(bad)
    with pytest.raises(TypeError):
        ssekit.Meta.from_bytes(bad)


@pytest.mark.parametrize("bad", [b"readonly", "text", 7, None, memoryview(b"ro")], ids=repr)
def test_outputs_must_be_writable(engine, obj, bad):
    _, stored, meta = obj
    plan = engine.plan_write("PutObject", "b", "k")
    with pytest.raises(TypeError, match="writable"):
        plan.seal_into(b"abc", bad)
    with pytest.raises(TypeError, match="writable"):
        plan.seal_in_place(bad, 0)
    read = engine.plan_read("GetObject", "b", "k", meta)
    with pytest.raises(TypeError, match="writable"):
        read.open_into(stored, bad)


def test_strided_buffers_refused(engine):
    plan = engine.plan_write("PutObject", "b", "k")
    strided = memoryview(bytearray(100))[::2]
    with pytest.raises(ValueError, match="contiguous"):
        plan.seal(strided)
    with pytest.raises(ValueError, match="contiguous"):
        plan.seal_into(b"ab", strided)


def test_lengths_checked_before_anything_is_written(engine, obj):
    data, stored, meta = obj
    plan = engine.plan_write("PutObject", "b", "k")
    short = bytearray(len(data))
    with pytest.raises(ssekit.BufferTooSmallError, match="needed"):
        plan.seal_into(data, short)
    assert short == bytearray(len(data)), "a refused seal_into wrote into the buffer"
    with pytest.raises(ValueError, match="past the end"):
        plan.seal_in_place(bytearray(10), 11)
    with pytest.raises(ssekit.BufferTooSmallError):
        plan.seal_in_place(bytearray(10), 10)
    for huge in (2**64, 2**70, -1):
        with pytest.raises((ValueError, OverflowError)):
            plan.stored_len(huge)
        with pytest.raises(ValueError):
            plan.seal_in_place(bytearray(10), huge)
        with pytest.raises(ValueError):
            plan.finish(huge)
    with pytest.raises(ssekit.TooLargeError):
        plan.stored_len(2**63)
    with pytest.raises(TypeError):
        plan.stored_len("10")
    with pytest.raises(TypeError):
        plan.stored_len(True)
    read = engine.plan_read("GetObject", "b", "k", meta)
    with pytest.raises(ssekit.BufferTooSmallError):
        read.open_into(stored, bytearray(len(data) - 1))
    with pytest.raises(ValueError):
        read.range("bytes=0-1", 2**64)


def test_overlapping_buffers_refused(engine):
    plan = engine.plan_write("PutObject", "b", "k")
    buf = bytearray(1000)
    view = memoryview(buf)
    with pytest.raises(ValueError, match="overlaps"):
        plan.seal_into(view[:100], view[50:])
    assert plan.seal_into(view[:100], view[100:]) == plan.stored_len(100)
    with pytest.raises(ValueError, match="overlaps"):
        plan.seal_into(buf, buf)  # one bytearray as both (the fast path for exact bytearrays)
    with pytest.raises(ValueError, match="overlaps"):
        plan.seal_into(memoryview(buf)[10:20], buf)


def test_empty_versus_missing(engine):
    # Empty data is an object of 0 bytes; None is no data at all.
    stored, meta, _ = engine.put("b", "k", b"")
    assert engine.get("b", "k", stored, meta) == b""
    assert engine.get("b", "k", stored, meta, None) == b""
    stored2, meta2, _ = engine.put("b", "k", bytearray())
    assert engine.get("b", "k", memoryview(stored2), meta2) == b""
    with pytest.raises(TypeError):
        engine.put("b", "k", None)
    # A header with an empty value is sent (and refused as S3 would), not dropped.
    with pytest.raises(ssekit.S3Error):
        engine.plan_write("PutObject", "b", "k", {SSE: ""})
    # Names: str required; None is refused in Python.
    with pytest.raises(TypeError, match="bucket_name"):
        engine.plan_write("PutObject", None, "k")
    with pytest.raises(TypeError, match="key"):
        engine.plan_write("PutObject", "b", b"bytes key")
    with pytest.raises(TypeError, match="header"):
        engine.plan_write("PutObject", "b", "k", {SSE: None})
    with pytest.raises(TypeError):
        engine.plan_write("PutObject", "b", "k", "x-amz-server-side-encryption: AES256")
    with pytest.raises(ValueError, match="NUL"):
        engine.plan_write("PutObject", "b\0", "k")
    with pytest.raises(ValueError):
        engine.plan_write("NoSuchOperation", "b", "k")
    with pytest.raises(TypeError):
        engine.plan_write("PutObject", "b", "k", bucket="not a bucket")
    with pytest.raises(TypeError):
        engine.plan_read("GetObject", "b", "k", "meta as str")


def test_engine_constructor_errors(tmp_path):
    with pytest.raises(TypeError):
        ssekit.Engine.local(None)
    with pytest.raises(TypeError):
        ssekit.Engine.local(123)
    d = tmp_path / "open"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    with pytest.raises(ssekit.KeyringError, match="chmod"):
        ssekit.Engine.local(d)
    with pytest.raises(ValueError, match="not both"):
        ssekit.Engine.local(tmp_path / "k", audit_file=tmp_path / "a", audit_callback=print)
    with pytest.raises(TypeError):
        ssekit.Engine.local(tmp_path / "k", cache="yes")


def test_message_is_read_on_the_calling_thread(engine, obj):
    import threading

    data, stored, meta = obj
    bad = bytearray(stored)
    bad[300] ^= 1
    messages = []

    def fail_tampered():
        for _ in range(50):
            try:
                engine.get("b", "k", bad, meta)
            except ssekit.TamperedError as e:
                messages.append(("t", e.message))

    def fail_truncated():
        for _ in range(50):
            try:
                engine.get("b", "k", stored[:-1], meta)
            except ssekit.LengthMismatchError as e:
                messages.append(("l", e.message))

    threads = [threading.Thread(target=fail_tampered), threading.Thread(target=fail_truncated)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(messages) == 100
    for kind, m in messages:
        assert ("authentication" in m) if kind == "t" else ("cut or extended" in m), m


def test_s3_error_struct_is_freed_every_time(engine):
    # Thousands of refusals: each ssekit_s3_error is freed (watch RSS: it must not grow by MBs).
    import resource

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    for _ in range(2000):
        with pytest.raises(ssekit.S3Error):
            engine.plan_write("PutObject", "b", "k", {SSE: "AES192" + "x" * 1000})
    before = rss()
    for _ in range(20000):
        try:
            engine.plan_write("PutObject", "b", "k", {SSE: "AES192" + "x" * 1000})
        except ssekit.S3Error:
            pass
    assert rss() - before < 20_000, "max RSS grew by more than 20 MB over 20000 refusals"


def test_length_handed_to_c_is_the_exports_even_while_another_thread_resizes():
    """The length given with a buffer comes from the export that pins it, not from an earlier
    look: a bytearray subclass (the path that checks through a memoryview first) resized by
    another thread between the check and the export would otherwise tell C it holds more than
    it does."""
    import sys
    import threading

    from ssekit import _ffi

    class Sub(bytearray):
        pass

    buf = Sub(4096)
    stop = threading.Event()

    def resize() -> None:
        while not stop.is_set():
            try:
                buf.extend(bytes(4096))
                del buf[4096:]
            except BufferError:  # exported right now: the pin works
                pass

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=resize)
    t.start()
    try:
        for _ in range(20_000):
            for fn in (_ffi.in_buffer, _ffi.out_buffer):
                cdata, n = fn(buf, "b")
                assert n == len(cdata), f"{fn.__name__}: told C {n} bytes, the export holds {len(cdata)}"
                del cdata
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
