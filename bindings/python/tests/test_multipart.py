"""Multipart uploads: parts, streaming parts, out of order, replaced parts, copies."""

from __future__ import annotations

import os

import pytest

import ssekit
from conftest import SSE, data_of, ssec_headers

PART = 5 * 1024 * 1024 // 64  # small parts: the format does not enforce S3's 5 MiB minimum


def upload(engine, headers, secure=False, sizes=(PART, PART, 1234)):
    plan = engine.plan_write("CreateMultipartUpload", "b", "mp", headers, secure=secure)
    umeta = plan.upload_meta().to_bytes()
    parts, stored, data = [], [], b""
    for i, n in enumerate(sizes, 1):
        body = data_of(n, i)
        part = engine.plan_part("b", "mp", umeta, i, headers if "customer" in str(headers) else None, secure=secure)
        s, entry = part.seal(body)
        assert entry.number == i and entry.size == n and len(entry.salt) == 24
        assert len(s) == part.stored_len(n)
        parts.append(entry)
        stored.append(s)
        data += body
    return plan, umeta, parts, stored, data


@pytest.mark.parametrize("mode", ["AES256", "aws:kms", "aws:kms:dsse", "sse-c"])
def test_multipart_round_trip(engine, mode):
    key = os.urandom(32)
    headers = ssec_headers(key) if mode == "sse-c" else {SSE: mode}
    secure = mode == "sse-c"
    plan, umeta, parts, stored, data = upload(engine, headers, secure)
    cheaders = headers if secure else None
    meta, response = engine.complete("b", "mp", umeta, parts, cheaders, secure=secure)
    assert meta.part_count == 3 and meta.size == len(data)
    assert response  # SSE response headers
    rheaders = headers if secure else None
    read = engine.plan_read("GetObject", "b", "mp", meta.to_bytes(), rheaders, secure=secure)
    whole = b"".join(stored)
    assert read.open(whole) == data
    for i, s in enumerate(stored, 1):
        assert read.part_stored_len(i) == len(s)
        op = read.opener(part=i)
        assert op.update(s) == data_of(len(s) and [PART, PART, 1234][i - 1], i)
        op.finish()
    r = read.range(f"bytes={PART - 10}-{PART + 10}", len(whole))
    assert r.open(r.gather(whole)) == data[PART - 10 : PART + 11]


def test_parts_out_of_order_refused(engine):
    plan, umeta, parts, stored, data = upload(engine, {SSE: "aws:kms"})
    with pytest.raises(ssekit.S3Error) as err:
        engine.complete("b", "mp", umeta, [parts[1], parts[0], parts[2]])
    assert (err.value.code, err.value.status) == ("InvalidPartOrder", 400)
    with pytest.raises(ssekit.S3Error) as err:
        engine.complete("b", "mp", umeta, [])
    assert (err.value.code, err.value.status) == ("MalformedXML", 400)


def test_parts_uploaded_out_of_order_complete_in_order(engine):
    plan = engine.plan_write("CreateMultipartUpload", "b", "mp", {SSE: "aws:kms"})
    umeta = plan.upload_meta()
    entries, bodies = {}, {}
    for i in (3, 1, 2):
        body = data_of(20_000 + i, i)
        s, e = engine.plan_part("b", "mp", umeta, i).seal(body)
        entries[i], bodies[i] = e, (s, body)
    meta, _ = engine.complete("b", "mp", umeta, [entries[1], entries[2], entries[3]])
    stored = b"".join(bodies[i][0] for i in (1, 2, 3))
    assert engine.get("b", "mp", stored, meta) == b"".join(bodies[i][1] for i in (1, 2, 3))


def test_replaced_part_detected(engine):
    plan, umeta, parts, stored, data = upload(engine, {SSE: "aws:kms"})
    meta, _ = engine.complete("b", "mp", umeta, parts)
    # Another upload of part 2 under the same upload: its data is not the part the table names.
    again, _ = engine.plan_part("b", "mp", umeta, 2).seal(data_of(PART, 2))
    read = engine.plan_read("GetObject", "b", "mp", meta)
    with pytest.raises(ssekit.PartReplacedError):
        read.open(stored[0] + again + stored[2])


def test_part_entry_encoding_and_checks(engine):
    _, umeta, parts, _, _ = upload(engine, {SSE: "AES256"})
    e = parts[0]
    assert ssekit.PartEntry.from_bytes(e.to_bytes()) == e
    with pytest.raises(ValueError):
        ssekit.PartEntry.from_bytes(b"short")
    with pytest.raises(TypeError):
        engine.complete("b", "mp", umeta, [e, "not an entry"])
    with pytest.raises(ValueError):
        engine.complete("b", "mp", umeta, [ssekit.PartEntry(1, 1, b"short salt")])
    with pytest.raises(ValueError):
        engine.complete("b", "mp", umeta, [ssekit.PartEntry(2**40, 1, bytes(24))])
    # A forged row (wrong size) does not authenticate the object.
    forged = [parts[0], ssekit.PartEntry(2, parts[1].size + 1, parts[1].salt), parts[2]]
    meta, _ = engine.complete("b", "mp", umeta, forged)
    with pytest.raises(ssekit.Error):
        engine.get("b", "mp", b"x" * 10, meta)


def test_part_number_bounds(engine):
    plan = engine.plan_write("CreateMultipartUpload", "b", "mp")
    umeta = plan.upload_meta()
    for bad in (0, 10001):
        with pytest.raises((ssekit.S3Error, ssekit.InvalidParameterError)):
            engine.plan_part("b", "mp", umeta, bad)
    with pytest.raises(ValueError):
        engine.plan_part("b", "mp", umeta, -1)


def test_sse_c_upload_part_needs_its_key(engine):
    key = os.urandom(32)
    plan = engine.plan_write("CreateMultipartUpload", "b", "mp", ssec_headers(key), secure=True)
    umeta = plan.upload_meta()
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_part("b", "mp", umeta, 1, secure=True)
    assert err.value.status == 400
    with pytest.raises(ssekit.S3Error):
        engine.plan_part("b", "mp", umeta, 1, ssec_headers(os.urandom(32)), secure=True)


def test_streamed_parts_and_part_copy(engine):
    plan = engine.plan_write("CreateMultipartUpload", "b", "mp", {SSE: "aws:kms:dsse"})
    umeta = plan.upload_meta()
    body1 = data_of(70_001, 1)
    import io

    sink = io.BytesIO()
    with engine.plan_part("b", "mp", umeta, 1).sealer(sink) as s:
        for i in range(0, len(body1), 9999):
            s.write(body1[i : i + 9999])
    e1 = s.entry
    assert e1 is not None and e1.number == 1 and e1.size == len(body1)
    # Part 2 copied from a range of another object.
    src_data = data_of(50_000, 9)
    src_stored, src_meta, _ = engine.put("src", "o", src_data)
    read, part = engine.plan_part_copy("b", "mp", umeta, 2, "src", "o", src_meta)
    r = read.range("bytes=1000-40999", len(src_stored))
    s2, e2 = part.seal(r.open(r.gather(src_stored)))
    meta, _ = engine.complete("b", "mp", umeta, [e1, e2])
    assert engine.get("b", "mp", sink.getvalue() + s2, meta) == body1 + src_data[1000:41000]
