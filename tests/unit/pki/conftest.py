"""Shared fixtures for the PKI tests: keys, CAs and an ``openssl`` runner.

Keys and CAs are session-scoped because RSA generation is slow. Tests that
hand certificates to the openssl CLI use CAs made at the real current time
(openssl checks validity against the system clock); pure logic tests use the
fixed :data:`FIXED_NOW`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certctl_operator.pki import (
    GeneratedCA,
    KeyAlgorithm,
    KeySpec,
    PrivateKey,
    create_self_signed_ca,
    generate_private_key,
)

FIXED_NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
OPENSSL = shutil.which("openssl")

requires_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")

RSA = KeySpec(KeyAlgorithm.RSA, 2048)
EC = KeySpec(KeyAlgorithm.ECDSA, 256)
ED = KeySpec(KeyAlgorithm.ED25519)
SPECS = {"rsa": RSA, "ec": EC, "ed25519": ED}


def openssl(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl CLI; never raises on a non-zero exit (tests assert on it)."""
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def real_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    """One subject key per algorithm (RSA 2048, ECDSA P-256, Ed25519)."""
    return {name: generate_private_key(spec) for name, spec in SPECS.items()}


@pytest.fixture(scope="session")
def cas(real_now: datetime) -> dict[str, GeneratedCA]:
    """A self-signed root CA per key algorithm, valid around the real current time."""
    return {
        name: create_self_signed_ca(f"Test {name} Root CA", spec, timedelta(days=30), real_now)
        for name, spec in SPECS.items()
    }


@pytest.fixture(scope="session")
def fixed_cas() -> dict[str, GeneratedCA]:
    """A self-signed root CA per key algorithm, valid one year around FIXED_NOW."""
    start = FIXED_NOW - timedelta(days=1)
    return {
        name: create_self_signed_ca(f"Fixed {name} CA", spec, timedelta(days=365), start)
        for name, spec in SPECS.items()
    }


@pytest.fixture
def run_openssl() -> Callable[..., subprocess.CompletedProcess[str]]:
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed")
    return openssl
