"""Streaming seal and open with odd piece sizes, file-likes in and out."""

from __future__ import annotations

import io
import random

import pytest

import ssekit
from conftest import SSE, data_of, single_layer_stored_len


@pytest.mark.parametrize("mode", ["AES256", "aws:kms", "aws:kms:dsse"])
@pytest.mark.parametrize("n", [0, 1, 16384, 100_003])
def test_stream_seal_matches_whole_and_opens(engine, mode, n):
    data = data_of(n)
    rng = random.Random(n)
    plan = engine.plan_write("PutObject", "b", "k", {SSE: mode})
    sink = io.BytesIO()
    sealer = plan.sealer(sink)
    at = 0
    while at < n:
        k = rng.choice([1, 7, 555, 16383, 16385, 40000])
        assert sealer.write(data[at : at + k]) == len(data[at : at + k])
        at += k
    assert sealer.plaintext_len == n
    entry = sealer.close()
    assert entry.size == n and entry.number == 0
    stored = sink.getvalue()
    assert len(stored) == plan.stored_len(n) == sealer.stored_len
    if mode != "aws:kms:dsse":
        assert len(stored) == single_layer_stored_len(n)
    meta = plan.finish(n)
    read = engine.plan_read("GetObject", "b", "k", meta)
    assert read.open(stored) == data
    # Read back through the file-like opener with odd read sizes.
    op = read.opener(io.BytesIO(stored))
    got = bytearray()
    while True:
        piece = op.read(rng.choice([1, 13, 4096, 70000]))
        if not piece:
            break
        got += piece
    assert got == data
    op.close()
    # readinto, read() of everything, and iteration over chunks.
    op = read.opener(io.BytesIO(stored))
    buf = bytearray(1000)
    k = op.readinto(buf)
    assert buf[:k] == data[:k]
    assert bytes(buf[:k]) + op.read() == data
    assert b"".join(read.opener(io.BytesIO(stored)).chunks()) == data
    assert b"".join(iter(read.opener(io.BytesIO(stored)))) == data  # lines, as a binary file iterates


def test_push_opener_odd_pieces(engine):
    data = data_of(90_000)
    stored, meta, _ = engine.put("b", "k", data)
    plan = engine.plan_read("GetObject", "b", "k", meta)
    op = plan.opener()
    assert op.size == len(data) and op.stored_len == len(stored)
    out = bytearray()
    for i in range(0, len(stored), 777):
        out += op.update(stored[i : i + 777])
    op.finish()
    assert out == data


def test_opener_releases_only_authenticated_chunks(engine):
    data = data_of(50_000)
    stored, meta, _ = engine.put("b", "k", data)
    bad = bytearray(stored)
    bad[40_000] ^= 1  # in the third chunk
    plan = engine.plan_read("GetObject", "b", "k", meta)
    op = plan.opener(io.BytesIO(bytes(bad)))
    with pytest.raises(ssekit.TamperedError):
        op.read()
    op = plan.opener()
    first = op.update(bad[:20_000])
    assert first == data[: len(first)]
    with pytest.raises(ssekit.TamperedError):
        op.update(bad[20_000:])
    with pytest.raises(ssekit.TamperedError):  # every later call fails the same way
        op.finish()


def test_truncated_stream_raises_at_eof(engine):
    data = data_of(50_000)
    stored, meta, _ = engine.put("b", "k", data)
    plan = engine.plan_read("GetObject", "b", "k", meta)
    op = plan.opener(io.BytesIO(stored[:-100]))
    with pytest.raises(ssekit.TruncatedError):
        op.read()


def test_sealer_in_memory_and_abort(engine):
    plan = engine.plan_write("PutObject", "b", "k")
    s = plan.sealer()
    s.write(b"a" * 20000)
    s.write(memoryview(b"b" * 10))
    entry = s.finish()
    stored = s.getvalue()
    meta = plan.finish(entry.size)
    assert engine.get("b", "k", stored, meta) == b"a" * 20000 + b"b" * 10
    # An exception inside `with` aborts: nothing is finished.
    plan = engine.plan_write("PutObject", "b", "k")
    sink = io.BytesIO()
    with pytest.raises(RuntimeError):
        with plan.sealer(sink) as s:
            s.write(b"x" * 30000)
            raise RuntimeError("client went away")
    assert s.entry is None and s.closed
    with pytest.raises(TypeError):
        plan.sealer(out="not a file")
    with pytest.raises(TypeError):
        plan.opener if False else engine.plan_read("GetObject", "b", "k", meta).opener(source=42)


def test_short_writes_are_completed(engine):
    class Trickle(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            piece = bytes(b[:100])
            self.data += piece
            return len(piece)

    plan = engine.plan_write("PutObject", "b", "k")
    t = Trickle()
    s = plan.sealer(t)
    s.write(data_of(40_000))
    e = s.close()
    meta = plan.finish(e.size)
    assert engine.get("b", "k", bytes(t.data), meta) == data_of(40_000)


def test_engine_stream_shortcuts(engine, tmp_path):
    data = data_of(123_457)
    path = tmp_path / "obj.bin"
    with open(path, "wb") as f:
        with engine.sealer(f, "b", "k", {SSE: "aws:kms"}) as w:
            for i in range(0, len(data), 10_000):
                w.write(data[i : i + 10_000])
        meta = w.meta
    assert meta is not None and meta.size == len(data) and w.response_headers[SSE] == "aws:kms"
    with open(path, "rb") as f:
        with engine.opener(f, "b", "k", meta.to_bytes()) as r:
            assert r.read() == data
    import shutil

    with open(path, "rb") as f:
        out = io.BytesIO()
        shutil.copyfileobj(engine.opener(f, "b", "k", meta), out, 5000)
        assert out.getvalue() == data
