#!/usr/bin/env bash
# The one test entry point (README, .ci/run): formatting, lints, and every test on every backend this CPU
# has. Exits non-zero on the first failure.
#
# What it needs on a fresh machine: a Rust toolchain (cargo, rustfmt, clippy) and a C compiler. It installs
# SoftHSM2, valgrind, pkg-config and Go (golang-go, for the cgo example) with apt-get when missing (the
# C ABI's tests run under valgrind and AddressSanitizer; the PKCS#11 tests create their own token in a temporary directory, with their
# own SOFTHSM2_CONF; set SSEKIT_PKCS11_MODULE, SSEKIT_PKCS11_TOKEN_LABEL and SSEKIT_PKCS11_PIN to run
# them against another module). It installs moto (a KMS-API server) with pip into the ignored .venv and
# runs it on 127.0.0.1 for the KMS tests (set SSEKIT_KMS_ENDPOINT and the AWS variables to run them
# against another KMS). It installs cffi, pytest, cryptography, setuptools and wheel into the same .venv,
# then the Python package from bindings/python (which builds the C library with cargo). Everything else
# comes from the package registries through cargo.
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

# Debian packages the suites need: SoftHSM2 (the PKCS#11 tests), valgrind (the C ABI's tests run
# under memcheck), pkg-config (the installed library is linked through ssekit.pc) and Go (the cgo
# example).
MISSING=()
command -v softhsm2-util >/dev/null 2>&1 || MISSING+=(softhsm2)
command -v valgrind >/dev/null 2>&1 || MISSING+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || MISSING+=(pkg-config)
command -v go >/dev/null 2>&1 || MISSING+=(golang-go)
if [ ${#MISSING[@]} -gt 0 ]; then
    step "installing ${MISSING[*]} (apt-get)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${MISSING[@]}"
fi
need softhsm2-util "SoftHSM2: apt-get install softhsm2"
need valgrind "valgrind: apt-get install valgrind"
need pkg-config "pkg-config: apt-get install pkg-config"
need go "Go: apt-get install golang-go"
need cc "a C compiler: apt-get install gcc"

# What this script starts and makes, stopped and removed however it exits.
CLEANUP=()
cleanup() { for c in "${CLEANUP[@]}"; do eval "$c" || true; done; }
trap cleanup EXIT

# A SoftHSM2 token of our own, unless the caller points the suite at another PKCS#11 module.
if [ -z "${SSEKIT_PKCS11_MODULE:-}" ]; then
    HSM_DIR="$(mktemp -d)"
    CLEANUP+=('rm -rf "$HSM_DIR"')
    mkdir "$HSM_DIR/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$HSM_DIR/tokens" >"$HSM_DIR/softhsm2.conf"
    export SOFTHSM2_CONF="$HSM_DIR/softhsm2.conf"
    softhsm2-util --init-token --free --label ssekit-test --pin 1234 --so-pin 5678 >/dev/null
    for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
        if [ -e "$m" ]; then export SSEKIT_PKCS11_MODULE="$m"; break; fi
    done
    export SSEKIT_PKCS11_TOKEN_LABEL=ssekit-test SSEKIT_PKCS11_PIN=1234
fi

# moto in server mode as the KMS endpoint (and for the test that kills and restarts a server of its
# own), in a venv inside the repo.
MOTO_VERSION=5.2.5
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    step "installing moto $MOTO_VERSION into .venv (pip)"
    need python3 "Python 3: apt-get install python3"
    if ! python3 -m venv .venv 2>/dev/null; then
        SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
        rm -rf .venv
        python3 -m venv .venv
    fi
    .venv/bin/pip install -q "moto[server]==$MOTO_VERSION"
fi
# What the Python package's build and tests need (the package itself is built from the tree below).
if ! .venv/bin/python -c "import cffi, pytest, cryptography, setuptools, wheel" 2>/dev/null; then
    step "installing cffi, pytest, cryptography, setuptools and wheel into .venv (pip)"
    .venv/bin/pip install -q cffi pytest cryptography setuptools wheel
fi
export SSEKIT_MOTO_SERVER="$PWD/.venv/bin/moto_server"
export AWS_REGION="${AWS_REGION:-us-east-1}"
if [ -z "${SSEKIT_KMS_ENDPOINT:-}" ]; then
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
    MOTO_PORT="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$SSEKIT_MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
    MOTO_PID=$!
    CLEANUP+=('kill "$MOTO_PID"')
    export SSEKIT_KMS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
    for _ in $(seq 100); do
        if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $MOTO_PORT), 1)" 2>/dev/null; then break; fi
        sleep 0.2
    done
    .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $MOTO_PORT), 1)" \
        || { echo "scripts/test.sh: moto did not start on 127.0.0.1:$MOTO_PORT" >&2; exit 1; }
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Release profile: the vector, differential and tamper suites run many thousands of messages through
# every backend, and optimised SIMD code is what ships.
# The C library first: the C ABI's tests link libssekit.a and libssekit.so, which `cargo test` does
# not build; the same command as scripts/install-ffi.sh and the Python package's build (one build).
step "cargo build -p ssekit-ffi (the C library the C, Go and Python tests link)"
cargo build --release --locked -p ssekit-ffi

step "cargo test (every backend this CPU has: $(uname -m))"
cargo test --workspace --release --locked

# The object format on the other backends too (the default run above uses the detected one).
for b in portable aesni; do
    step "object conformance, round trips and the S3 layer on SSEKIT_BACKEND=$b"
    SSEKIT_BACKEND=$b cargo test -p ssekit-engine --release --locked --test chunked --test object --test sse
done

# The C library installed to a prefix and linked the way docs/FFI.md says, with pkg-config.
step "scripts/install-ffi.sh to a temporary prefix; objstore.c built with pkg-config"
PREFIX_DIR="$(mktemp -d)"
CLEANUP+=('rm -rf "$PREFIX_DIR"')
scripts/install-ffi.sh "$PREFIX_DIR/usr"
PKG_CONFIG_PATH="$PREFIX_DIR/usr/lib/pkgconfig" pkg-config --exists ssekit
cc -std=c11 -Wall -Wextra -Werror -o "$PREFIX_DIR/objstore" ffi/examples/objstore.c \
    $(PKG_CONFIG_PATH="$PREFIX_DIR/usr/lib/pkgconfig" pkg-config --cflags --libs ssekit) \
    -Wl,-rpath,"$PREFIX_DIR/usr/lib"
head -c 100000 /dev/urandom >"$PREFIX_DIR/body"
"$PREFIX_DIR/objstore" "$PREFIX_DIR/store" put bkt photo.jpg --file "$PREFIX_DIR/body" \
    -H 'x-amz-server-side-encryption: aws:kms:dsse'
"$PREFIX_DIR/objstore" "$PREFIX_DIR/store" get bkt photo.jpg >"$PREFIX_DIR/back"
cmp "$PREFIX_DIR/body" "$PREFIX_DIR/back"

# The Python package: installed into the venv from the tree (it builds the Rust library), a wheel
# built, and its tests run against the installed copy, from outside the tree.
step "pip install ./bindings/python; pip wheel; pytest"
.venv/bin/pip install -q ./bindings/python
.venv/bin/pip wheel -q --no-deps -w "$PREFIX_DIR/wheel" ./bindings/python
ls "$PREFIX_DIR"/wheel/ssekit-*.whl >/dev/null
(cd "$PREFIX_DIR" && "$OLDPWD/.venv/bin/python" -m pytest -q "$OLDPWD/bindings/python/tests")

step "benchmarks compile and run once (no timing)"
cargo bench --bench aead --bench object --bench sse --locked -- --test
cargo bench -p ssekit-hsm --bench providers --locked -- --test
cargo bench -p ssekit-ffi --bench abi --locked -- --test

# Coverage-guided fuzzing of metadata parsing, object opening, the SSE header parser and the bucket
# policy parser (cargo-fuzz with libFuzzer; its -Z flags need RUSTC_BOOTSTRAP on the stable
# toolchain). A short run: long runs are done by hand.
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
for t in meta open headers policy; do
    step "fuzz $t for ${FUZZ_SECONDS}s"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" -- -max_total_time="$FUZZ_SECONDS")
done

step "all checks passed"
