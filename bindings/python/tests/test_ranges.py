"""Range reads: bytes=A-B, bytes=A-, bytes=-N, past the end, ignored forms."""

from __future__ import annotations

import pytest

import ssekit
from conftest import SSE, data_of

N = 100_000


@pytest.fixture(params=["AES256", "aws:kms", "aws:kms:dsse"])
def obj(engine, request):
    data = data_of(N)
    stored, meta, _ = engine.put("b", "k", data, {SSE: request.param})
    return engine.plan_read("GetObject", "b", "k", meta), data, stored


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-0", 0, 1),
    ("bytes=0-99", 0, 100),
    ("bytes=16383-16384", 16383, 16385),
    ("bytes=50000-50099", 50000, 50100),
    ("bytes=99990-", 99990, N),
    ("bytes=99990-200000", 99990, N),
    ("bytes=-10", N - 10, N),
    ("bytes=-200000", 0, N),
    ("bytes=0-", 0, N),
])
def test_ranges(obj, header, start, end):
    plan, data, stored = obj
    r = plan.range(header, len(stored))
    assert r.plaintext == (start, end) and r.size == N and r.length == end - start
    assert r.content_range == f"bytes {start}-{end - 1}/{N}"
    assert r.fetch_total == sum(n for _, n in r.fetches)
    assert all(0 <= o and o + n <= len(stored) for o, n in r.fetches)
    if end - start < 1000:
        assert r.fetch_total < len(stored)  # only the chunks needed are fetched
    fetched = r.gather(stored)
    assert r.open(fetched) == data[start:end]
    out = bytearray(r.length + 5)
    assert r.open_into(memoryview(fetched), out) == r.length and out[: r.length] == data[start:end]


def test_past_the_end_is_416(obj):
    plan, data, stored = obj
    for header in ("bytes=100000-", f"bytes={N}-{N + 10}", "bytes=200000-300000"):
        with pytest.raises(ssekit.RangeNotSatisfiableError):
            plan.range(header, len(stored))


@pytest.mark.parametrize("header", ["items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=abc", "", "bytes=-0"])
def test_ranges_s3_ignores(obj, header):
    plan, _, stored = obj
    with pytest.raises((ssekit.InvalidRangeError, ssekit.RangeNotSatisfiableError)):
        plan.range(header, len(stored))


def test_range_of_tampered_data(obj):
    plan, data, stored = obj
    r = plan.range("bytes=20000-20010", len(stored))
    fetched = bytearray(r.gather(stored))
    fetched[-1] ^= 1
    with pytest.raises((ssekit.TamperedError, ssekit.WrongKeyError)):
        r.open(fetched)
    with pytest.raises(ssekit.Error):
        r.open(bytes(fetched[:-1]))


def test_range_of_a_wrong_stored_len(obj):
    plan, data, stored = obj
    with pytest.raises(ssekit.Error):
        r = plan.range("bytes=0-10", len(stored) - 1)
        r.open(r.gather(stored))


def test_engine_get_with_range(engine):
    data = data_of(30_000)
    stored, meta, _ = engine.put("b", "k", data)
    assert engine.get("b", "k", stored, meta, range="bytes=-5") == data[-5:]
    assert engine.get("b", "k", stored, meta, range="bytes=100-199") == data[100:200]
    with pytest.raises(ssekit.RangeNotSatisfiableError):
        engine.get("b", "k", stored, meta, range="bytes=30000-")


def test_empty_object_ranges(engine):
    stored, meta, _ = engine.put("b", "k", b"")
    plan = engine.plan_read("GetObject", "b", "k", meta)
    with pytest.raises(ssekit.RangeNotSatisfiableError):
        plan.range("bytes=0-0", len(stored))
