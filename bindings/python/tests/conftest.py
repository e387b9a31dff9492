"""Shared fixtures. The tests run against the *installed* package (pip install ./bindings/python):
the source tree's ssekit/ has no libssekit.so and refuses to import."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import sys

import pytest

# Test the installed package, never the source tree's ssekit/ (which has no library): drop the
# package's source directory from sys.path (`python -m pytest` run in bindings/python adds it).
_SOURCE = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _SOURCE]

import ssekit  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SSE = "x-amz-server-side-encryption"


def ssec_headers(key: bytes, prefix: str = "x-amz-server-side-encryption-customer") -> dict:
    """The three SSE-C headers for a 32-byte customer key."""
    return {
        f"{prefix}-algorithm": "AES256",
        f"{prefix}-key": base64.b64encode(key).decode(),
        f"{prefix}-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }


def single_layer_stored_len(n: int) -> int:
    """The published stored size of a single-layer object (docs/FORMAT.md): a 56-byte header and
    a 16-byte tag per 16 KiB chunk (the last one possibly empty)."""
    return 56 + n + 16 * (n // 16384 + 1)


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    return d


@pytest.fixture
def engine(keydir: Path):
    with ssekit.Engine.local(keydir) as e:
        yield e


def data_of(n: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating-looking test data."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:n])


def require_env(*names: str) -> dict:
    """The named environment variables; a FAILURE (never a skip) when any is missing."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: these tests need the SoftHSM2 token and the moto KMS that "
            "scripts/test.sh sets up. Run scripts/test.sh (or `source /tmp/hsm_env.sh`-style setup that "
            "exports SSEKIT_PKCS11_MODULE, SSEKIT_PKCS11_TOKEN_LABEL, SSEKIT_PKCS11_PIN, SSEKIT_KMS_ENDPOINT "
            "and the AWS test credentials) before pytest.",
            pytrace=False,
        )
    return {n: os.environ[n] for n in names}
