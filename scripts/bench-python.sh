#!/usr/bin/env bash
# The Python package's cost against the Rust API, on the same machine, in alternating rounds (the
# VM drifts): each round runs criterion's `abi/seal-1MiB/rust-api` and `abi/seal-4KiB/rust-api`
# (WritePlan::seal_into with a plan in hand) and then bindings/python/bench.py (WritePlan.seal_into
# from Python, same sizes), and prints Python's throughput over Rust's. Then bench.py once with the
# library's pool at one thread (ssekit.set_threads(1)), where 2 Python threads can only go faster
# than one if the GIL is released during the seal. Needs `pip install ./bindings/python` first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
median_ns() { # criterion's median estimate for a benchmark id, in ns
    .venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
        "target/criterion/$1/new/estimates.json"
}
for r in $(seq "$ROUNDS"); do
    cargo bench -q -p ssekit-ffi --bench abi --locked -- 'abi/seal-(1MiB|4KiB)/rust-api' \
        --measurement-time 3 >/dev/null 2>&1
    rust_1m=$(median_ns "abi_seal-1MiB/rust-api")
    rust_4k=$(median_ns "abi_seal-4KiB/rust-api")
    .venv/bin/python bindings/python/bench.py --seconds 1 --json "$OUT/py$r.json" >/dev/null
    .venv/bin/python - "$OUT/py$r.json" "$rust_1m" "$rust_4k" "$r" <<'PY'
import json, sys
py = json.load(open(sys.argv[1]))
r1m, r4k = float(sys.argv[2]), float(sys.argv[3])
rust_1m = (1 << 20) / r1m * 1e3  # MB/s
rust_4k = 4096 / r4k * 1e3
p1m, p4k = py["seal_into"]["1 MiB"], py["seal_into"]["4 KiB"]
a1m, a64 = py["aesgcm"].get("1 MiB"), py["aesgcm"].get("64 MiB")
print(f"round {sys.argv[4]}: 1 MiB seal_into Rust {rust_1m:.0f} MB/s, Python {p1m:.0f} MB/s ({p1m / rust_1m:.3f}x); "
      f"4 KiB Rust {rust_4k:.0f}, Python {p4k:.0f} ({p4k / rust_4k:.3f}x); Python seal() 1 MiB {py['seal']['1 MiB']:.0f}, "
      f"64 MiB seal_into {py['seal_into']['64 MiB']:.0f} / seal() {py['seal']['64 MiB']:.0f}; "
      f"cryptography AESGCM 1 MiB {a1m:.0f}, 64 MiB {a64:.0f}; "
      f"2 threads {py['threads']['speedup']:.2f}x one")
PY
done
.venv/bin/python bindings/python/bench.py --seconds 2 --lib-threads 1 | tail -1
