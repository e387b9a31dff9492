#!/usr/bin/env bash
# Installs the C library to a prefix: scripts/install-ffi.sh PREFIX (e.g. /usr/local, or $HOME/.local).
# Afterwards: cc app.c $(pkg-config --cflags --libs ssekit)   (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
# when PREFIX is not a system one; run with LD_LIBRARY_PATH=PREFIX/lib, an -Wl,-rpath, or ldconfig).
# Static linking: cc app.c $(pkg-config --static --cflags --libs ssekit) with -l:libssekit.a, or link
# PREFIX/lib/libssekit.a directly.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:?usage: scripts/install-ffi.sh PREFIX}"
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac
# pkg-config splits its output on whitespace, and the prefix goes through sed below.
case "$PREFIX" in *[[:space:]\|\&\\]*) echo "install-ffi.sh: a prefix without whitespace, |, & or \\ please: $PREFIX" >&2; exit 2 ;; esac
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p ssekit-ffi
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
MAJOR="${VERSION%%.*}"
install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 0644 ffi/include/ssekit.h "$PREFIX/include/ssekit.h"
install -m 0644 "$TARGET_DIR/release/libssekit.a" "$PREFIX/lib/libssekit.a"
install -m 0755 "$TARGET_DIR/release/libssekit.so" "$PREFIX/lib/libssekit.so.$VERSION"
# The release profile keeps line tables for backtraces in benchmarks; installed copies drop them
# (113 MB to 24 MB for the shared library; symbols stay).
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$PREFIX/lib/libssekit.a" "$PREFIX/lib/libssekit.so.$VERSION"
fi
ln -sf "libssekit.so.$VERSION" "$PREFIX/lib/libssekit.so.$MAJOR"
ln -sf "libssekit.so.$MAJOR" "$PREFIX/lib/libssekit.so"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" ffi/ssekit.pc.in >"$PREFIX/lib/pkgconfig/ssekit.pc"
chmod 0644 "$PREFIX/lib/pkgconfig/ssekit.pc"
echo "installed ssekit $VERSION to $PREFIX"
