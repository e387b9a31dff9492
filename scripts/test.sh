#!/usr/bin/env bash
# The one test entry point (README, .ci/run): formatting, lints, and every test on every backend this CPU
# has. Exits non-zero on the first failure.
#
# What it needs on a fresh machine: a Rust toolchain (cargo, rustfmt, clippy). Everything else comes from
# the package registries through cargo. Later parts of the project (SoftHSM2, a KMS server, C and Python
# tests) add their install, start and stop steps here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "scripts/test.sh: '$1' not found; install it ($2) and run again" >&2
        exit 1
    fi
}
need cargo "a Rust toolchain, e.g. with rustup"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        rustup component add rustfmt clippy
    else
        echo "scripts/test.sh: cargo fmt and cargo clippy are required (rustup component add rustfmt clippy)" >&2
        exit 1
    fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Release profile: the vector, differential and tamper suites run many thousands of messages through
# every backend, and optimised SIMD code is what ships.
step "cargo test (every backend this CPU has: $(uname -m))"
cargo test --workspace --release --locked

step "benchmarks compile and run once (no timing)"
cargo bench --bench aead --locked -- --test

step "all checks passed"
