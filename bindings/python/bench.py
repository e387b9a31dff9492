#!/usr/bin/env python3
"""Benchmark of the Python bindings (run by hand, after `pip install ./bindings/python`).

    python bindings/python/bench.py [--json out.json] [--seconds 1.0]

Prints MB/s (10^6 bytes of plaintext per second) of:
- WritePlan.seal_into with a preallocated output buffer, and WritePlan.seal returning bytes,
  for 4 KiB, 1 MiB and 64 MiB bodies (SSE-S3, local keyring);
- 1 vs 2 Python threads each sealing 1 MiB objects (seal_into), and the speedup;
- cryptography's AESGCM (OpenSSL) encrypting the same 1 MiB and 64 MiB, in the same run.
Compare the 1 MiB seal_into line with the Rust API's number (cargo bench) for the binding's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # the installed package

import ssekit  # noqa: E402

SIZES = {"4 KiB": 4096, "1 MiB": 1 << 20, "64 MiB": 64 << 20}


def rate(fn, nbytes: int, seconds: float) -> float:
    """MB/s from the median time per call, taken as criterion takes it for the Rust rows: samples
    of back-to-back calls (each about 10 ms long), the time per call of the median sample. A mean
    over the whole run would let one scheduling hiccup of this shared VM move the figure, and would
    not be the statistic the Rust side reports."""
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.01 or calls < 1:
        fn()
        calls += 1
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) / calls)
    return nbytes / statistics.median(samples) / 1e6


def threaded_rate(engine: ssekit.Engine, threads: int, nbytes: int, seconds: float) -> float:
    data = os.urandom(nbytes)
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        plan = engine.plan_write("PutObject", "bench", f"t{i}")
        out = bytearray(plan.stored_len(nbytes))
        plan.seal_into(data, out)
        barrier.wait()
        while not stop.is_set():
            plan.seal_into(data, out)
            counts[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) * nbytes / (time.perf_counter() - start) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement (default 1.0)")
    ap.add_argument("--lib-threads", type=int, default=None,
                    help="ssekit.set_threads(N) first: the library's own pool for large seals (default: one per "
                         "CPU, which already spreads one 1 MiB seal over the cores; 1 shows what Python threads add)")
    ap.add_argument("--pair", action="store_true",
                    help="only seal_into at 4 KiB and 1 MiB, as JSON to --json (the rows scripts/bench-python.sh "
                         "pairs with the Rust API's, one round at a time)")
    args = ap.parse_args()
    if args.lib_threads is not None:
        ssekit.set_threads(args.lib_threads)
    results = {"ssekit_version": ssekit.__version__, "backend": ssekit.backend_name(),
               "cpus": os.cpu_count(), "lib_threads": args.lib_threads, "python": sys.version.split()[0], "seal_into": {}, "seal": {},
               "threads": {}, "aesgcm": {}}
    with tempfile.TemporaryDirectory() as d, ssekit.Engine.local(Path(d) / "keys") as engine:
        plan = engine.plan_write("PutObject", "bench", "obj")
        sizes = {k: SIZES[k] for k in ("4 KiB", "1 MiB")} if args.pair else SIZES
        for label, n in sizes.items():
            data = os.urandom(n)
            out = bytearray(plan.stored_len(n))
            results["seal_into"][label] = rate(lambda: plan.seal_into(data, out), n, args.seconds)
            if not args.pair:
                results["seal"][label] = rate(lambda: plan.seal(data), n, args.seconds)
        if args.pair:
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps(results["seal_into"]))
            return
        one = threaded_rate(engine, 1, 1 << 20, args.seconds * 2)
        two = threaded_rate(engine, 2, 1 << 20, args.seconds * 2)
        results["threads"] = {"1 thread": one, "2 threads": two, "speedup": two / one}
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aes = AESGCM(AESGCM.generate_key(256))
        nonce = os.urandom(12)
        for label in ("1 MiB", "64 MiB"):
            data = os.urandom(SIZES[label])
            results["aesgcm"][label] = rate(lambda: aes.encrypt(nonce, data, None), SIZES[label], args.seconds)
    except ImportError:
        results["aesgcm"] = {"error": "pip install cryptography to compare with OpenSSL's AES-GCM"}

    print(f"ssekit {results['ssekit_version']} ({results['backend']}), {results['cpus']} CPUs, "
          f"Python {results['python']}, library pool threads {args.lib_threads or 'one per CPU'}; MB/s of plaintext")
    print(f"{'body':>8} | {'seal_into':>10} | {'seal()':>10} | {'AESGCM':>10}")
    print("-" * 49)
    for label in SIZES:
        a = results["aesgcm"].get(label)
        a_s = f"{a:10.0f}" if isinstance(a, float) else f"{'-':>10}"
        print(f"{label:>8} | {results['seal_into'][label]:10.0f} | {results['seal'][label]:10.0f} | {a_s}")
    t = results["threads"]
    print(f"\n1 MiB seal_into, 1 thread: {t['1 thread']:.0f} MB/s; 2 threads: {t['2 threads']:.0f} MB/s; "
          f"speedup {t['speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
