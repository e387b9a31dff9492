#!/usr/bin/env bash
# The Python package's cost against the Rust API, on the same machine, in short alternating rounds
# (the VM drifts): each round runs criterion's `abi/seal-1MiB/rust-api` and `abi/seal-4KiB/rust-api`
# (WritePlan::seal_into with a plan in hand; 1 s each) and then `bindings/python/bench.py --pair`
# (WritePlan.seal_into from Python, same sizes, 1 s each, the same statistic: the median sample),
# and prints Python's throughput over Rust's; then the median ratio over the rounds (ROUNDS, default
# 9). Then bench.py's whole table once (seal() returning bytes, 64 MiB, 2 Python threads,
# cryptography's AESGCM), and once with the library's pool at one thread (ssekit.set_threads(1)),
# where each seal runs on its calling thread alone, so 2 Python threads can only beat one if the GIL
# is released during the seal. Needs `pip install ./bindings/python` first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-9}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
median_ns() { # criterion's median estimate for a benchmark id, in ns
    .venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
        "target/criterion/$1/new/estimates.json"
}
for r in $(seq "$ROUNDS"); do
    cargo bench -q -p ssekit-ffi --bench abi --locked -- 'abi/seal-(1MiB|4KiB)/rust-api' \
        --warm-up-time 0.5 --measurement-time 1 >/dev/null 2>&1
    rust_1m=$(median_ns "abi_seal-1MiB/rust-api")
    rust_4k=$(median_ns "abi_seal-4KiB/rust-api")
    .venv/bin/python bindings/python/bench.py --pair --seconds 1 --json "$OUT/py$r.json" >/dev/null
    .venv/bin/python - "$OUT/py$r.json" "$rust_1m" "$rust_4k" "$r" >>"$OUT/rounds" <<'PY'
import json, sys
py = json.load(open(sys.argv[1]))
r1m, r4k = float(sys.argv[2]), float(sys.argv[3])
rust_1m = (1 << 20) / r1m * 1e3  # MB/s
rust_4k = 4096 / r4k * 1e3
p1m, p4k = py["seal_into"]["1 MiB"], py["seal_into"]["4 KiB"]
print(f"{p1m / rust_1m:.3f} {p4k / rust_4k:.3f} round {sys.argv[4]}: 1 MiB seal_into Rust {rust_1m:.0f} MB/s, "
      f"Python {p1m:.0f} MB/s ({p1m / rust_1m:.3f}x); 4 KiB Rust {rust_4k:.0f}, Python {p4k:.0f} ({p4k / rust_4k:.3f}x)")
PY
    tail -1 "$OUT/rounds" | cut -d' ' -f3-
done
sort -n "$OUT/rounds" | awk '{a[NR]=$1} END {printf "1 MiB Python / Rust, median of %d rounds: %.3fx (lowest %.3f, highest %.3f)\n", NR, a[int((NR+1)/2)], a[1], a[NR]}'
sort -n -k2 "$OUT/rounds" | awk '{a[NR]=$2} END {printf "4 KiB Python / Rust, median of %d rounds: %.3fx\n", NR, a[int((NR+1)/2)]}'
echo "--- bench.py, the library's pool at its default:"
.venv/bin/python bindings/python/bench.py --seconds 1
echo "--- bench.py, the library's pool at one thread:"
.venv/bin/python bindings/python/bench.py --seconds 2 --lib-threads 1 | tail -1
