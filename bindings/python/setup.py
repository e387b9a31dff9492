"""Builds the ssekit wheel: runs cargo for libssekit.so, packages it with a cffi cdef made from
ffi/include/ssekit.h, and records where both came from.

``pip install ./bindings/python`` and ``pip wheel ./bindings/python`` both come here (through
setuptools' PEP 517 backend, see pyproject.toml). The build_py step below:

1. finds the repository root relative to this file (``../..``; or ``$SSEKIT_SOURCE_DIR``) and
   runs ``cargo build --release -p ssekit-ffi --locked`` there (``$CARGO`` or ``cargo`` on PATH;
   ``$CARGO_TARGET_DIR`` is honoured, cargo itself reads it; the target directory is asked of
   ``cargo metadata``, so a ``.cargo/config.toml`` ``target-dir`` works too);
2. copies ``<target>/release/libssekit.so`` into the package, stripped of debug info when
   ``strip`` is on PATH (``SSEKIT_STRIP=0`` keeps it as built);
3. turns ``ffi/include/ssekit.h`` into ``ssekit/_ssekit_cdef.h`` with ``ssekit/_cdef.py`` (a small
   preprocessor evaluating the header's conditionals as a C11 compiler does: no C compiler
   needed), checks cffi parses it and that the built library exports every function in it, and
   that ``ssekit_version()`` is the package's version;
4. copies the header to ``ssekit/include/ssekit.h`` and writes ``ssekit/_build_info.json``
   (versions, git commit, sha256 of the library and header, cargo/rustc versions).

The wheel is tagged ``py3-none-<platform>``: cffi's ABI mode needs no compiled extension, so one
wheel serves every CPython 3 on the platform, but the library is platform code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

HERE = Path(__file__).resolve().parent


def repo_root() -> Path:
    env = os.environ.get("SSEKIT_SOURCE_DIR")
    root = Path(env).resolve() if env else HERE.parent.parent
    if not (root / "ffi" / "include" / "ssekit.h").is_file() or not (root / "Cargo.toml").is_file():
        raise SystemExit(
            f"ssekit build: no ssekit repository at {root} (expected Cargo.toml and ffi/include/ssekit.h). "
            "Build from the repository's bindings/python directory (pip install ./bindings/python), "
            "or set SSEKIT_SOURCE_DIR to the repository root (e.g. when building from an sdist)."
        )
    return root


def crate_version(root: Path) -> str:
    """The workspace version (ffi/Cargo.toml has ``version.workspace = true``)."""
    text = (root / "Cargo.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        data = tomllib.loads(text)
        own = tomllib.loads((root / "ffi" / "Cargo.toml").read_text(encoding="utf-8"))["package"]["version"]
        return own if isinstance(own, str) else data["workspace"]["package"]["version"]
    except ImportError:
        m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
        if not m:
            raise SystemExit("ssekit build: no [workspace.package] version in Cargo.toml")
        return m.group(1)


def run(cmd, cwd: Path, capture: bool = False) -> str:
    print("ssekit build: running", " ".join(map(str, cmd)), f"(in {cwd})", flush=True)
    try:
        done = subprocess.run(cmd, cwd=cwd, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    except FileNotFoundError:
        raise SystemExit(f"ssekit build: {cmd[0]} not found: install a Rust toolchain (https://rustup.rs) "
                         "or set $CARGO") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"ssekit build: {' '.join(map(str, cmd))} failed with status {e.returncode}") from None
    return done.stdout or ""


def tool_output(cmd, cwd: Path) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_cdef_module():
    """ssekit/_cdef.py, loaded by path (importing the package would load the library)."""
    spec = importlib.util.spec_from_file_location("_ssekit_cdef_build", HERE / "ssekit" / "_cdef.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_native(package_dir: Path, version: str) -> None:
    root = repo_root()
    cargo = os.environ.get("CARGO", "cargo")
    run([cargo, "build", "--release", "-p", "ssekit-ffi", "--locked"], root)
    meta = json.loads(run([cargo, "metadata", "--format-version", "1", "--no-deps", "--locked"], root, capture=True))
    target = Path(meta["target_directory"])
    built = target / "release" / "libssekit.so"
    if not built.is_file():
        raise SystemExit(f"ssekit build: cargo finished but {built} is missing")

    package_dir.mkdir(parents=True, exist_ok=True)
    lib = package_dir / "libssekit.so"
    if lib.exists():
        lib.unlink()
    shutil.copyfile(built, lib)
    stripped = False
    if os.environ.get("SSEKIT_STRIP", "1") != "0" and shutil.which("strip"):
        subprocess.run(["strip", "--strip-debug", str(lib)], check=True)
        stripped = True
    os.chmod(lib, 0o755)

    header = root / "ffi" / "include" / "ssekit.h"
    (package_dir / "include").mkdir(exist_ok=True)
    shutil.copyfile(header, package_dir / "include" / "ssekit.h")
    cdef = load_cdef_module().header_to_cdef(header.read_text(encoding="utf-8"))
    (package_dir / "_ssekit_cdef.h").write_text(cdef, encoding="utf-8")

    # The cdef must parse and match the library: every declared function exported, same version.
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef)
    loaded = ffi.dlopen(str(lib))
    functions = re.findall(r"\b(ssekit_\w+)\s*\(", cdef)
    missing = [f for f in sorted(set(functions)) if not hasattr(loaded, f)]
    if missing:
        raise SystemExit(f"ssekit build: {built} does not export {missing} declared in {header}")
    lib_version = ffi.string(loaded.ssekit_version()).decode()
    if lib_version != version:
        raise SystemExit(f"ssekit build: the library says version {lib_version}, the crate {version}")

    git = lambda *a: tool_output(["git", *a], root)  # noqa: E731
    info = {
        "version": version,
        "library": {"file": "libssekit.so", "sha256": sha256(lib), "size": lib.stat().st_size,
                    "built_sha256": sha256(built), "built_from": str(built), "stripped_debug_info": stripped,
                    "ssekit_version": lib_version, "exported_functions": len(set(functions))},
        "header": {"file": "include/ssekit.h", "sha256": sha256(header), "source": "ffi/include/ssekit.h"},
        "cdef": {"file": "_ssekit_cdef.h", "method": "ssekit/_cdef.py: C11 conditionals evaluated in Python "
                 "(__STDC_VERSION__=201112L, no __cplusplus), comments and #include lines dropped",
                 "sha256": sha256(package_dir / "_ssekit_cdef.h")},
        "source": {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain",
                   "--untracked-files=no", "--", "ffi", "engine", "hsm", "Cargo.toml", "Cargo.lock"))},
        "cargo_command": f"{cargo} build --release -p ssekit-ffi --locked",
        "cargo": tool_output([cargo, "--version"], root),
        "rustc": tool_output(["rustc", "--version"], root),
        "python_build": sys.version.split()[0],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (package_dir / "_build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"ssekit build: packaged {built} ({info['library']['size']} bytes) and its cdef", flush=True)


class build_py(_build_py):
    """The standard build_py, then the native library and its cdef into the build tree."""

    def run(self) -> None:
        super().run()
        if not self.dry_run:
            build_native(Path(self.build_lib) / "ssekit", self.distribution.get_version())


class bdist_wheel(_bdist_wheel):
    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False  # the wheel carries platform code

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(
    version=crate_version(repo_root()),
    distclass=BinaryDistribution,
    cmdclass={"build_py": build_py, "bdist_wheel": bdist_wheel},
)
