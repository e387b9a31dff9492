"""Threads: one Engine shared by 8 threads, and proof that cffi releases the GIL around calls.

cffi documents that C function calls are made with the GIL released (since 0.3), and its
``_cffi_backend`` wraps ``ffi_call`` in ``Py_BEGIN_ALLOW_THREADS``; these tests check the
consequence rather than a speed: while one thread is inside a long ssekit call, other Python
threads keep running, and two sealing threads are inside their calls at the same time.
"""

from __future__ import annotations

import threading
import time

import ssekit
from conftest import SSE, data_of

MIB = 1024 * 1024


def test_eight_threads_share_one_engine(engine):
    modes = ["AES256", "aws:kms", "aws:kms:dsse", None]
    errors, done = [], []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(25):
                data = data_of(1000 + 4099 * j, i * 100 + j)
                h = {SSE: modes[(i + j) % 4]} if modes[(i + j) % 4] else {}
                stored, meta, _ = engine.put("b", f"k{i}-{j}", data, h)
                assert engine.get("b", f"k{i}-{j}", stored, meta) == data
                r = engine.get("b", f"k{i}-{j}", stored, meta, range="bytes=-7")
                assert r == data[-7:]
                done.append(1)
        except BaseException as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(done) == 200


def test_python_runs_while_a_seal_is_in_progress(engine):
    """Thread A seals 64 MiB (one long C call); thread B counts loop iterations meanwhile. With the
    GIL held during the call B could not run inside A's call window at all."""
    data = bytes(64 * MIB)
    plan = engine.plan_write("PutObject", "b", "k")
    out = bytearray(plan.stored_len(len(data)))
    window = {}
    ticks = []
    stop = threading.Event()

    def spinner() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())

    def sealer() -> None:
        for _ in range(3):
            t0 = time.perf_counter()
            plan.seal_into(data, out)
            window.setdefault("spans", []).append((t0, time.perf_counter()))

    b = threading.Thread(target=spinner)
    b.start()
    time.sleep(0.01)
    a = threading.Thread(target=sealer)
    a.start()
    a.join()
    stop.set()
    b.join()
    inside = 0
    for t0, t1 in window["spans"]:
        margin = (t1 - t0) * 0.2  # ignore the edges, where the GIL changes hands
        inside += sum(1 for t in ticks if t0 + margin < t < t1 - margin)
    assert inside > 100, f"only {inside} Python steps ran inside 3 seal calls of {window['spans']}: GIL held?"


def test_two_sealing_threads_overlap(engine):
    """Two threads sealing 1 MiB objects: their seal_into calls overlap in time (both threads are
    inside the library at once), which a GIL held across calls would make impossible."""
    data = bytes(MIB)
    spans = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        plan = engine.plan_write("PutObject", "b", f"k{i}")
        out = bytearray(plan.stored_len(MIB))
        barrier.wait()
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            plan.seal_into(data, out)
            spans[i].append((t0, time.perf_counter()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    overlapping = sum(1 for a0, a1 in spans[0] if any(b0 < a1 and a0 < b1 for b0, b1 in spans[1]))
    assert len(spans[0]) > 5 and len(spans[1]) > 5
    assert overlapping >= len(spans[0]) // 4, (
        f"only {overlapping} of thread 0's {len(spans[0])} seal calls overlapped one of thread 1's: serialized?")


def test_one_plan_from_two_threads_is_serialized_not_corrupted(engine):
    plan = engine.plan_write("PutObject", "b", "k")
    data = data_of(200_000)
    results, errors = [], []

    def worker() -> None:
        try:
            for _ in range(10):
                results.append(plan.seal(data))
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    meta = plan.finish(len(data))
    for stored in results:
        assert engine.get("b", "k", stored, meta) == data


def test_close_while_other_threads_use_the_engine(keydir):
    e = ssekit.Engine.local(keydir)
    outcomes = []
    start = threading.Barrier(5)

    def worker() -> None:
        start.wait()
        for _ in range(200):
            try:
                s, m, _ = e.put("b", "k", b"x" * 5000)
                outcomes.append("ok")
            except ssekit.ClosedError:
                outcomes.append("closed")
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.01)
    e.close()
    for t in threads:
        t.join()
    assert outcomes.count("closed") == 4  # every thread saw ClosedError, none crashed
