#!/usr/bin/env python3
"""Turn criterion's estimates from `cargo bench --bench aead` into the tables of docs/BENCHMARKS.md.

Reads target/criterion/<group>/<function>/new/{estimates,benchmark}.json and prints, per group, each
implementation's throughput (GB/s, 10^9 bytes, from the mean) and its ratio against each peer measured
in the same run. Usage: scripts/bench-report.py [criterion dir] [--markdown]
"""
import json
import pathlib
import sys

PEERS = ["ring", "aws-lc-rs", "rustcrypto-aes-gcm"]


def load(root):
    groups = {}
    for est in sorted(root.glob("**/new/estimates.json")):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        tp = bench.get("throughput") or {}
        nbytes = tp.get("Bytes")
        if not nbytes:
            continue
        mean_ns = json.loads(est.read_text())["mean"]["point_estimate"]
        groups.setdefault(bench["group_id"], {})[bench["function_id"]] = nbytes / mean_ns
    return groups


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = pathlib.Path(args[0] if args else "target/criterion")
    md = "--markdown" in sys.argv
    groups = load(root)
    if not groups:
        sys.exit(f"no criterion results under {root}")
    for name in sorted(groups, key=lambda g: (g.split("/")[0], g)):
        g = groups[name]
        peers = [p for p in PEERS if p in g]
        if md:
            print(f"\n**{name}**\n")
            print("| implementation | GB/s | " + " | ".join(f"vs {p}" for p in peers) + " |")
            print("|---|---:|" + "---:|" * len(peers))
        else:
            print(f"\n{name}")
        for fn, gbps in sorted(g.items(), key=lambda kv: -kv[1]):
            ratios = [f"{gbps / g[p]:.2f}x" for p in peers]
            if md:
                print(f"| {fn} | {gbps:.2f} | " + " | ".join(ratios) + " |")
            else:
                print(f"  {fn:32} {gbps:7.2f} GB/s  " + "  ".join(f"{p}:{r}" for p, r in zip(peers, ratios)))


if __name__ == "__main__":
    main()
