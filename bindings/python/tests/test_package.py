"""The installed package: where it lives, its provenance, its cdef."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ssekit
from ssekit import _cdef, _ffi
from conftest import REPO

PKG = Path(ssekit.__file__).resolve().parent
HEADER = REPO / "ffi" / "include" / "ssekit.h"


def test_imported_from_the_installed_package_not_the_source_tree():
    assert PKG != (REPO / "bindings" / "python" / "ssekit").resolve(), PKG
    assert (PKG / "libssekit.so").is_file() and (PKG / "py.typed").is_file()


def test_works_from_outside_the_source_tree(tmp_path):
    script = (
        "import ssekit, sys, tempfile\n"
        "e = ssekit.Engine.local(tempfile.mkdtemp() + '/k')\n"
        "s, m, h = e.put('b', 'k', b'outside', {'x-amz-server-side-encryption': 'aws:kms:dsse'})\n"
        "assert e.get('b', 'k', s, m) == b'outside'\n"
        "print(ssekit.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "site-packages" in done.stdout or str(PKG) in done.stdout


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_provenance():
    info = ssekit.build_info()
    assert info["version"] == ssekit.__version__ == "0.1.0"
    cargo = (REPO / "Cargo.toml").read_text()
    assert re.search(r'^version\s*=\s*"0\.1\.0"', cargo, re.M)
    assert info["library"]["sha256"] == sha256(PKG / "libssekit.so")
    assert info["header"]["sha256"] == sha256(PKG / "include" / "ssekit.h")
    assert info["cdef"]["sha256"] == sha256(PKG / "_ssekit_cdef.h")
    assert re.fullmatch(r"[0-9a-f]{40}", info["source"]["git_commit"])
    assert info["cargo"].startswith("cargo ") and info["rustc"].startswith("rustc ")
    assert "--locked" in info["cargo_command"]


def test_packaged_header_is_the_repository_header():
    assert (PKG / "include" / "ssekit.h").read_bytes() == HEADER.read_bytes(), (
        "ffi/include/ssekit.h changed since the package was built: pip install ./bindings/python again")


def test_cdef_is_the_header_as_a_c11_compiler_sees_it():
    cdef = _cdef.header_to_cdef(HEADER.read_text())
    assert (PKG / "_ssekit_cdef.h").read_text() == cdef
    assert "#" not in cdef and "//" not in cdef and "/*" not in cdef
    assert ": uint32_t" not in cdef  # the C23 enum base is not taken in C11
    assert "typedef uint32_t ssekit_result;" in cdef
    assert 'extern "C"' not in cdef


def tokens(text: str) -> list:
    return re.findall(r"[A-Za-z_]\w*|\d+\w*|\S", text)


def test_cdef_matches_cc_preprocessor(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "no C compiler on PATH to cross-check the cdef (cargo needs one to link: install cc)"
    src = tmp_path / "h.h"
    src.write_text("".join(line for line in HEADER.read_text().splitlines(True) if not line.startswith("#include")))
    done = subprocess.run([cc, "-E", "-P", "-std=c11", str(src)], capture_output=True, text=True, check=True)
    assert tokens(done.stdout) == tokens(_cdef.header_to_cdef(HEADER.read_text()))


@pytest.mark.parametrize("src,expected", [
    ("#if __STDC_VERSION__ >= 202311L\nA\n#else\nB\n#endif\n", "B"),
    ("#if defined(__cplusplus) || __STDC_VERSION__ >= 201112L\nA\n#endif\n", "A"),
    ("#ifdef __cplusplus\nA\n#elif __STDC_VERSION__ == 201112L && !defined(X)\nB\n#else\nC\n#endif\n", "B"),
    ("#ifndef G\n#define G\n#if 0\n#error no\n#endif\nA // c\n#endif\n", "A"),
    ("#if (1 || 0) && (UNKNOWN < 1)\nA /* x\n y */ B\n#endif\n", "A\nB"),
    ("#if 0\n#if 1\nA\n#else\nB\n#endif\n#else\nC\n#endif\n", "C"),
])
def test_cdef_preprocessor_cases(src, expected):
    assert tokens(_cdef.header_to_cdef(src)) == tokens(expected)


@pytest.mark.parametrize("src", [
    "#define X 1\n", "#include <stdio.h>\n", "#pragma once\n", "#if 1\nA\n", "#endif\n", "#if 1 +\n#endif\n",
    "/* open\n",
])
def test_cdef_refuses_what_it_does_not_handle(src):
    with pytest.raises(_cdef.CdefError):
        _cdef.header_to_cdef(src)


def test_every_header_function_is_declared_and_exported():
    declared = set(re.findall(r"\b(ssekit_\w+)\s*\(", (PKG / "_ssekit_cdef.h").read_text()))
    in_header = set(re.findall(r"^[\w \*]*?\b(ssekit_\w+)\(", HEADER.read_text(), re.M))
    assert declared == in_header and len(declared) > 90
    for name in declared:
        assert getattr(_ffi.lib, name)


def test_public_api_is_annotated():
    import inspect

    for name in ("plan_write", "plan_read", "put", "get", "complete", "create_key"):
        sig = inspect.signature(getattr(ssekit.Engine, name))
        assert sig.return_annotation is not inspect.Signature.empty, name
