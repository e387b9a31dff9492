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

# The object format on the other backends too (the default run above uses the detected one).
for b in portable aesni; do
    step "object conformance and round trips on SSEKIT_BACKEND=$b"
    SSEKIT_BACKEND=$b cargo test -p ssekit-engine --release --locked --test chunked --test object
done

step "benchmarks compile and run once (no timing)"
cargo bench --bench aead --bench object --locked -- --test

# Coverage-guided fuzzing of metadata parsing and object opening (cargo-fuzz with libFuzzer; its
# -Z flags need RUSTC_BOOTSTRAP on the stable toolchain). A short run: long runs are done by hand.
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
for t in meta open; do
    step "fuzz $t for ${FUZZ_SECONDS}s"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" -- -max_total_time="$FUZZ_SECONDS")
done

step "all checks passed"
