"""Round trips of every mode through every way in and out."""

from __future__ import annotations

import os

import pytest

import ssekit
from conftest import SSE, data_of, single_layer_stored_len, ssec_headers

CUSTOMER_KEY = bytes(range(32))

MODES = {
    "default": ({}, ssekit.Mode.SSE_S3, False),
    "sse-s3": ({SSE: "AES256"}, ssekit.Mode.SSE_S3, False),
    "sse-kms": ({SSE: "aws:kms"}, ssekit.Mode.SSE_KMS, False),
    "sse-kms-bucket-key": ({SSE: "aws:kms", f"{SSE}-bucket-key-enabled": "true"}, ssekit.Mode.SSE_KMS, False),
    "dsse-kms": ({SSE: "aws:kms:dsse"}, ssekit.Mode.DSSE_KMS, False),
    "sse-c": (ssec_headers(CUSTOMER_KEY), ssekit.Mode.SSE_C, True),
}


def read_headers_for(mode: str) -> dict:
    return ssec_headers(CUSTOMER_KEY) if mode == "sse-c" else {}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [0, 1, 16383, 16384, 16385, 100_000])
def test_round_trip_every_mode(engine, mode, n):
    headers, expected_mode, secure = MODES[mode]
    data = data_of(n)
    plan = engine.plan_write("PutObject", "bkt", "obj", headers, secure=secure)
    assert plan.mode == expected_mode
    stored = plan.seal(data)
    assert len(stored) == plan.stored_len(n)
    if expected_mode != ssekit.Mode.DSSE_KMS:
        assert len(stored) == single_layer_stored_len(n)
    meta = plan.finish(n)
    assert meta.size == n and meta.mode == expected_mode and meta.part_count == 0
    blob = meta.to_bytes()
    read = engine.plan_read("GetObject", "bkt", "obj", blob, read_headers_for(mode), secure=secure)
    assert read.size == n
    assert read.open(stored) == data
    out = bytearray(n)
    assert read.open_into(stored, out) == n and out == data
    buf = bytearray(stored)
    k = read.open_in_place(buf)
    assert k == n and buf[:k] == data
    if n >= 16:
        # No 16-byte run of the plaintext survives in what is stored (a
        # 1-byte comparison would fail by chance once in 256 runs).
        assert all(data[i : i + 16] not in stored for i in range(0, n - 15, 4096))


def test_response_headers_name_the_mode(engine):
    p = engine.plan_write("PutObject", "b", "k", {SSE: "aws:kms"})
    assert p.response_headers[SSE] == "aws:kms"
    assert p.response_headers[f"{SSE}-aws-kms-key-id"].startswith("arn:aws:kms:")
    assert p.response_header_list[0] == (SSE, "aws:kms")
    p = engine.plan_write("PutObject", "b", "k", {SSE: "aws:kms", f"{SSE}-bucket-key-enabled": "true"})
    assert p.response_headers.get(f"{SSE}-bucket-key-enabled") == "true"
    p = engine.plan_write("PutObject", "b", "k", ssec_headers(CUSTOMER_KEY), secure=True)
    assert p.response_headers[f"{SSE}-customer-algorithm"] == "AES256"


def test_seal_into_and_in_place_accept_every_buffer_kind(engine):
    data = data_of(50_000)
    plan = engine.plan_write("PutObject", "b", "k")
    need = plan.stored_len(len(data))
    out = bytearray(need + 10)
    assert plan.seal_into(memoryview(data), memoryview(out)) == need
    assert plan.seal_into(bytearray(data), out) == need
    import array

    words = array.array("I", data[: 4 * 1000])
    sealed_words = plan.seal(words)  # any C-contiguous buffer: 4000 bytes
    assert len(sealed_words) == plan.stored_len(4000)
    buf = bytearray(need)
    buf[: len(data)] = data
    assert plan.seal_in_place(buf, len(data)) == need
    meta = plan.finish(len(data))
    read = engine.plan_read("GetObject", "b", "k", meta)
    assert read.open(bytes(buf)) == data
    assert read.open(out[:need]) == data
    # A slice of a larger buffer, without copying.
    big = bytearray(need * 2)
    big[100 : 100 + need] = buf
    assert read.open(memoryview(big)[100 : 100 + need]) == data


def test_object_from_python_opens_in_a_fresh_engine_on_the_same_keyring(keydir):
    data = data_of(70_000)
    objects = {}
    with ssekit.Engine.local(keydir) as first:
        for mode, (headers, _, secure) in MODES.items():
            stored, meta, _ = first.put("bkt", mode, data, headers, secure=secure)
            objects[mode] = (stored, meta)
    with ssekit.Engine.local(keydir) as second:
        for mode, (stored, meta) in objects.items():
            secure = MODES[mode][2]
            assert second.get("bkt", mode, stored, meta, read_headers_for(mode), secure=secure) == data


def test_another_keyring_cannot_open(tmp_path):
    with ssekit.Engine.local(tmp_path / "a") as a, ssekit.Engine.local(tmp_path / "b") as b:
        stored, meta, _ = a.put("bkt", "k", b"secret", {SSE: "aws:kms"})
        with pytest.raises(ssekit.Error) as err:
            b.get("bkt", "k", stored, meta)
        # Another keyring has no such key, or its root cannot unwrap this one.
        assert isinstance(err.value, (ssekit.S3Error, ssekit.UnwrapFailedError, ssekit.KeyNotFoundError)), err.value


def test_explicit_root_key_file(tmp_path):
    root = tmp_path / "root.key"
    fd = os.open(root, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    with ssekit.Engine.local(tmp_path / "k1", root) as e:
        stored, meta, _ = e.put("b", "k", b"abc")
    assert not (tmp_path / "k1" / "root.key").exists()
    with ssekit.Engine.local(tmp_path / "k1", root) as e:
        assert e.get("b", "k", stored, meta) == b"abc"


def test_missing_root_key_file_is_an_io_error(tmp_path):
    with pytest.raises(ssekit.IoError, match="does not exist"):
        ssekit.Engine.local(tmp_path / "k", tmp_path / "absent.key")


def test_bucket_default_encryption(engine):
    bucket = ssekit.Bucket({"algorithm": "aws:kms:dsse", "kms_key_id": None, "bucket_key_enabled": False})
    assert bucket.encryption["algorithm"] == "aws:kms:dsse"
    plan = engine.plan_write("PutObject", "b", "k", bucket=bucket)
    assert plan.mode == ssekit.Mode.DSSE_KMS
    # A request's own mode wins over the bucket's default.
    plan = engine.plan_write("PutObject", "b", "k", {SSE: "AES256"}, bucket=bucket)
    assert plan.mode == ssekit.Mode.SSE_S3
    bucket.set_encryption(None)
    assert bucket.encryption["algorithm"] == "AES256"
    assert engine.plan_write("PutObject", "b", "k", bucket=bucket).mode == ssekit.Mode.SSE_S3
    bucket.set_encryption('{"algorithm":"aws:kms","kms_key_id":null,"bucket_key_enabled":true}')
    stored, meta, headers = engine.put("b", "k", b"bucket key", bucket=bucket)
    assert headers[SSE] == "aws:kms" and headers.get(f"{SSE}-bucket-key-enabled") == "true"
    assert engine.get("b", "k", stored, meta, bucket=bucket) == b"bucket key"


def test_bucket_keys_serve_many_objects(engine):
    h = {SSE: "aws:kms", f"{SSE}-bucket-key-enabled": "true"}
    objs = [engine.put("b", f"k{i}", data_of(1000, i), h) for i in range(20)]
    engine.clear_bucket_keys()
    for i, (stored, meta, _) in enumerate(objs):
        assert engine.get("b", f"k{i}", stored, meta) == data_of(1000, i)


def test_named_kms_key_and_context(engine):
    engine.create_key("app-key", "for the test")
    import base64
    import json

    ctx = base64.b64encode(json.dumps({"tenant": "t1"}).encode()).decode()
    h = {SSE: "aws:kms", f"{SSE}-aws-kms-key-id": "app-key", f"{SSE}-context": ctx}
    stored, meta, headers = engine.put("b", "k", b"ctx", h)
    assert headers[f"{SSE}-aws-kms-key-id"].endswith("key/app-key")
    assert engine.get("b", "k", stored, meta) == b"ctx"


def test_head_plan_gives_size_and_opens_nothing(engine):
    stored, meta, _ = engine.put("b", "k", b"12345", {SSE: "aws:kms"})
    head = engine.plan_read("HeadObject", "b", "k", meta)
    assert head.size == 5 and head.response_headers[SSE] == "aws:kms"


def test_abi_bug_head_plan_open_is_invalid_state(engine):
    """ABI BUG (reported): the header says SSEKIT_RESULT_INVALID_STATE is what "a HEAD plan asked
    to open data" gets; ssekit_read_plan_open_into / _open_in_place / ssekit_read_plan_opener /
    ssekit_range_open on a HEAD plan return SSEKIT_RESULT_S3_ERROR (400, "InternalError (500): a
    HEAD plan opens nothing") instead, and these functions have no error_out to hand an
    ssekit_s3_error back."""
    stored, meta, _ = engine.put("b", "k", b"12345", {SSE: "aws:kms"})
    head = engine.plan_read("HeadObject", "b", "k", meta)
    failures = []
    for what, call in [
        ("open_into", lambda: head.open_into(stored, bytearray(5))),
        ("open_in_place", lambda: head.open_in_place(bytearray(stored))),
        ("opener", lambda: head.opener().update(stored)),
    ]:
        try:
            call()
            failures.append(f"{what}: no error")
        except ssekit.InvalidStateError:
            pass
        except ssekit.Error as e:
            failures.append(f"{what}: {e.name} ({e!s})")
    assert not failures, failures


def test_meta_round_trip(engine):
    plan = engine.plan_write(ssekit.Operation.PUT_OBJECT, "b", "k", {SSE: "aws:kms:dsse"})
    plan.seal(b"abc")
    meta = plan.finish(3)
    again = ssekit.Meta.from_bytes(meta.to_bytes())
    assert again.to_bytes() == meta.to_bytes() == bytes(meta)
    assert (again.size, again.mode, again.part_count) == (3, ssekit.Mode.DSSE_KMS, 0)
    assert "DSSE_KMS" in repr(again)


def test_copy_object_re_encrypts_under_the_target_mode(engine):
    data = data_of(40_000)
    key = os.urandom(32)
    stored, meta, _ = engine.put("src", "a", data, ssec_headers(key), secure=True)
    copy_headers = {SSE: "aws:kms", **ssec_headers(key, "x-amz-copy-source-server-side-encryption-customer")}
    read, write = engine.plan_copy("dst", "b", "src", "a", meta, copy_headers, secure=True)
    assert write.mode == ssekit.Mode.SSE_KMS
    target = write.seal(read.open(stored))
    tmeta = write.finish(len(data))
    assert engine.get("dst", "b", target, tmeta) == data
    # The copy's source needs its SSE-C key.
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_copy("dst", "b", "src", "a", meta, {SSE: "aws:kms"}, secure=True)
    assert (err.value.code, err.value.status) == ("InvalidRequest", 400)


def test_metadata_is_bound_to_the_object_name(engine):
    stored, meta, _ = engine.put("b", "k", b"bound", {SSE: "aws:kms"})
    with pytest.raises(ssekit.Error):
        engine.get("b", "other", stored, meta)


def test_client_and_library_versions():
    assert ssekit.__version__ == ssekit.library_version() == "0.1.0"
    assert ssekit.backend_name() in {"vaes-avx512", "vaes-avx2", "aesni", "portable"}


@pytest.mark.parametrize("n", [0, 1, 2, 1 << 20])
def test_results_are_new_bytes_objects(engine, n):
    """seal() and open() fill a new bytes object in place (no second buffer): each result is an
    exact, hashable bytes of its own, never one shared with another call or with the input."""
    data = data_of(n)
    plan = engine.plan_write("PutObject", "b", "k")
    a, b = plan.seal(data), plan.seal(data)
    assert type(a) is bytes and type(b) is bytes and a is not b and a != b  # fresh salts
    assert hash(a) == hash(bytes(bytearray(a)))
    meta = plan.finish(n).to_bytes()
    read = engine.plan_read("GetObject", "b", "k", meta, {})
    opened = read.open(b)
    assert type(opened) is bytes and opened == data and (n == 0 or opened is not data)
    again = read.open(b)
    assert again == opened and (n < 2 or again is not opened)
    if n:
        empty_before = bytes(0)
        bad = bytearray(b)
        bad[-1] ^= 1
        with pytest.raises((ssekit.TamperedError, ssekit.WrongKeyError)):
            read.open(bad)
        assert bytes(0) == empty_before == b""  # the empty singleton was never written
