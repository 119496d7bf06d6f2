"""Private keys: specs, generation, PEM encoding and comparison.

Supported algorithms follow the cert-manager vocabulary: RSA (2048, 3072,
4096 bits), ECDSA (P-256, P-384, P-521, written as sizes 256, 384, 521) and
Ed25519 (no size).

RSA generation costs tens to hundreds of milliseconds of CPU. cryptography
releases the GIL while OpenSSL generates the key, so
:func:`generate_private_key_async` runs it on a thread pool and the event loop
keeps serving other work meanwhile. A :class:`~concurrent.futures.ProcessPoolExecutor`
may be passed instead; the key then travels back as PEM bytes. ECDSA and
Ed25519 keys take 30 to 400 microseconds, less than handing the work to a pool
and taking the answer back: they are generated where they are asked for.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias, TypeGuard

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import InvalidKeyError, UnsupportedKeyError
from .key_pool import KeyGenerationPool

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
AnyKey: TypeAlias = PrivateKey | PublicKey
SignatureHash: TypeAlias = hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None

_PRIVATE_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)

RSA_PUBLIC_EXPONENT = 65537
#: Smallest RSA modulus accepted anywhere (generated keys and existing CA keys).
MIN_RSA_BITS = 2048


class KeyAlgorithm(StrEnum):
    RSA = "RSA"
    ECDSA = "ECDSA"
    ED25519 = "Ed25519"


class KeyEncoding(StrEnum):
    """How a private key is written to PEM.

    ``PKCS1`` means the algorithm's traditional form: ``RSA PRIVATE KEY``
    (PKCS#1) for RSA and ``EC PRIVATE KEY`` (SEC 1) for ECDSA. Ed25519 has no
    such form and is only written as PKCS#8.
    """

    PKCS1 = "PKCS1"
    PKCS8 = "PKCS8"


RSA_SIZES: tuple[int, ...] = (2048, 3072, 4096)
ECDSA_SIZES: tuple[int, ...] = (256, 384, 521)
DEFAULT_SIZES: dict[KeyAlgorithm, int | None] = {
    KeyAlgorithm.RSA: 2048,
    KeyAlgorithm.ECDSA: 256,
    KeyAlgorithm.ED25519: None,
}
_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}
_CURVE_SIZES: dict[str, int] = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}
_CURVE_LABELS: dict[int, str] = {256: "P-256", 384: "P-384", 521: "P-521"}


@dataclass(frozen=True)
class KeySpec:
    """The kind of private key a certificate should have.

    ``size`` defaults per algorithm (RSA 2048, ECDSA 256) and is always
    ``None`` for Ed25519 (a given size of 0 is accepted and dropped, as
    cert-manager ignores the size of Ed25519 keys).
    """

    algorithm: KeyAlgorithm = KeyAlgorithm.RSA
    size: int | None = None

    def __post_init__(self) -> None:
        given: object = self.algorithm
        if not isinstance(given, KeyAlgorithm):
            if not isinstance(given, str):
                raise UnsupportedKeyError(f"unsupported key algorithm {given!r}")
            object.__setattr__(self, "algorithm", _parse_algorithm(given))
        algorithm = self.algorithm
        size = self.size
        if algorithm is KeyAlgorithm.ED25519:
            if size not in (None, 0):
                raise UnsupportedKeyError("Ed25519 keys have a fixed size; leave size unset")
            object.__setattr__(self, "size", None)
            return
        if size is None or size == 0:
            object.__setattr__(self, "size", DEFAULT_SIZES[algorithm])
            return
        allowed = RSA_SIZES if algorithm is KeyAlgorithm.RSA else ECDSA_SIZES
        if size not in allowed:
            raise UnsupportedKeyError(
                f"unsupported {algorithm.value} key size {size}; "
                f"use one of {', '.join(str(s) for s in allowed)}"
            )

    @classmethod
    def parse(cls, algorithm: str, size: int | None = None) -> KeySpec:
        """Build a spec from user text; the algorithm name is case-insensitive."""
        return cls(_parse_algorithm(algorithm), size)

    def describe(self) -> str:
        """Short human label: ``RSA 2048``, ``ECDSA P-256``, ``Ed25519``."""
        if self.algorithm is KeyAlgorithm.ECDSA and self.size is not None:
            return f"ECDSA {_CURVE_LABELS[self.size]}"
        if self.size is None:
            return self.algorithm.value
        return f"{self.algorithm.value} {self.size}"


def _parse_algorithm(text: str) -> KeyAlgorithm:
    wanted = text.strip().lower()
    for candidate in KeyAlgorithm:
        if candidate.value.lower() == wanted:
            return candidate
    raise UnsupportedKeyError(
        f"unsupported key algorithm {text!r}; use one of " + ", ".join(a.value for a in KeyAlgorithm)
    )


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """Generate a fresh private key matching ``spec`` (CPU-bound for RSA)."""
    if spec.algorithm is KeyAlgorithm.RSA:
        assert spec.size is not None
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=spec.size)
    if spec.algorithm is KeyAlgorithm.ECDSA:
        assert spec.size is not None
        return ec.generate_private_key(_CURVES[spec.size]())
    return ed25519.Ed25519PrivateKey.generate()


def _generate_private_key_pem(spec: KeySpec) -> bytes:
    """Worker for process pools: key objects cannot be pickled, PEM bytes can."""
    return generate_private_key(spec).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def generate_private_key_async(spec: KeySpec, executor: Executor | None = None) -> PrivateKey:
    """Generate a key without blocking the event loop for longer than a fraction of a millisecond.

    RSA keys are generated by ``executor``; with ``executor=None`` the loop's
    default thread pool is used, which is enough: key generation happens
    inside OpenSSL with the GIL released. Other keys are generated at once
    (see the module's docstring): a process pool is then not even started.
    """
    if spec.algorithm is not KeyAlgorithm.RSA:
        return generate_private_key(spec)
    loop = asyncio.get_running_loop()
    if isinstance(executor, ProcessPoolExecutor | KeyGenerationPool):
        pem = await loop.run_in_executor(executor, _generate_private_key_pem, spec)
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
        if not isinstance(key, _PRIVATE_TYPES):
            raise InvalidKeyError("the key generation worker returned an unexpected key type")
        return key
    return await loop.run_in_executor(executor, generate_private_key, spec)


def private_key_to_pem(key: PrivateKey, encoding: KeyEncoding = KeyEncoding.PKCS1) -> str:
    """Serialize an unencrypted private key to PEM text."""
    if encoding is KeyEncoding.PKCS1:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raise UnsupportedKeyError(
                "Ed25519 private keys have no PKCS#1 (traditional) encoding; use the PKCS8 encoding"
            )
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        private_format = serialization.PrivateFormat.PKCS8
    data = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    return data.decode("ascii")


def public_key_to_pem(key: AnyKey) -> str:
    return (
        as_public_key(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def load_private_key(
    data: str | bytes, what: str = "private key", *, full_rsa_check: bool = True
) -> PrivateKey:
    """Parse an unencrypted PEM private key (PKCS#1, SEC 1 or PKCS#8).

    Raises :class:`InvalidKeyError` for unreadable, encrypted or unsupported
    keys (the message never quotes the data).

    ``full_rsa_check=False`` is for a certificate's own key read back from its
    Secret: compared with the certificate and the spec, and carried into the
    next certificate when the key is reused. OpenSSL's full check of an RSA
    key tests its primes, about 50 ms for 2048 bits, so in a burst of
    certificates it was the operator's largest cost. The key's numbers are
    then checked to agree with each other instead (``p * q = n``, ``d`` the
    inverse of ``e``), which catches a damaged or spliced key in microseconds.
    Keys that sign for others (CA and OCSP responder keys) keep the full check.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if b"-----BEGIN" not in raw or b"PRIVATE KEY-----" not in raw:
        raise InvalidKeyError(f"{what} holds no PEM PRIVATE KEY block")
    try:
        key = serialization.load_pem_private_key(
            raw, password=None, unsafe_skip_rsa_key_validation=not full_rsa_check
        )
    except TypeError:
        raise InvalidKeyError(f"{what} is encrypted; store it unencrypted") from None
    except UnsupportedAlgorithm:
        raise InvalidKeyError(f"{what} uses an unsupported algorithm") from None
    except ValueError:
        raise InvalidKeyError(f"{what} cannot be parsed as a PEM private key") from None
    if not isinstance(key, _PRIVATE_TYPES):
        raise InvalidKeyError(f"{what} is a {type(key).__name__}; only RSA, ECDSA and Ed25519 are supported")
    if isinstance(key, rsa.RSAPrivateKey) and not full_rsa_check and not _rsa_numbers_agree(key):
        raise InvalidKeyError(f"{what} is not a consistent RSA key")
    try:
        check_key_strength(key)
    except UnsupportedKeyError as exc:
        raise InvalidKeyError(f"{what}: {exc.message}") from None
    return key


def _rsa_numbers_agree(key: rsa.RSAPrivateKey) -> bool:
    numbers = key.private_numbers()
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    return p > 1 and q > 1 and p * q == n and (d * e) % math.lcm(p - 1, q - 1) == 1


def as_public_key(key: AnyKey) -> PublicKey:
    if isinstance(key, _PRIVATE_TYPES):
        return key.public_key()
    return key


def is_private_key(key: object) -> TypeGuard[PrivateKey]:
    return isinstance(key, _PRIVATE_TYPES)


def is_public_key(key: object) -> TypeGuard[PublicKey]:
    return isinstance(key, _PUBLIC_TYPES)


def key_algorithm_and_size(key: AnyKey) -> tuple[KeyAlgorithm, int | None]:
    """Algorithm and size of a key (size: RSA modulus bits, ECDSA curve bits, None for Ed25519)."""
    public = as_public_key(key)
    if isinstance(public, rsa.RSAPublicKey):
        return KeyAlgorithm.RSA, public.key_size
    if isinstance(public, ec.EllipticCurvePublicKey):
        size = _CURVE_SIZES.get(public.curve.name)
        if size is None:
            raise UnsupportedKeyError(f"unsupported elliptic curve {public.curve.name}")
        return KeyAlgorithm.ECDSA, size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519, None
    raise UnsupportedKeyError(f"unsupported key type {type(public).__name__}")


def check_key_strength(key: AnyKey) -> None:
    """Refuse keys too weak or too exotic to sign with (RSA below 2048 bits, other curves)."""
    algorithm, size = key_algorithm_and_size(key)
    if algorithm is KeyAlgorithm.RSA and size is not None and size < MIN_RSA_BITS:
        raise UnsupportedKeyError(f"RSA key of {size} bits is too small; at least {MIN_RSA_BITS} required")


def key_spec_of(key: AnyKey) -> KeySpec:
    """The :class:`KeySpec` a key satisfies; raises UnsupportedKeyError for other sizes."""
    algorithm, size = key_algorithm_and_size(key)
    return KeySpec(algorithm, size)


def describe_key(key: AnyKey) -> str:
    """Short label such as ``RSA 3072``, ``ECDSA P-384`` or ``Ed25519``."""
    algorithm, size = key_algorithm_and_size(key)
    if algorithm is KeyAlgorithm.ECDSA and size is not None:
        return f"ECDSA {_CURVE_LABELS[size]}"
    return algorithm.value if size is None else f"{algorithm.value} {size}"


def key_matches_spec(key: AnyKey, spec: KeySpec) -> bool:
    """True when the key has the spec's algorithm and size."""
    try:
        algorithm, size = key_algorithm_and_size(key)
    except UnsupportedKeyError:
        return False
    return algorithm is spec.algorithm and size == spec.size


def _spki_der(key: AnyKey) -> bytes:
    return as_public_key(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_keys_equal(a: AnyKey, b: AnyKey) -> bool:
    """True when both keys (private or public) have the same public key."""
    return _spki_der(a) == _spki_der(b)


def public_key_sha256(key: AnyKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo DER, uppercase hex (a key's identity)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(_spki_der(key))
    return digest.finalize().hex().upper()


def signature_hash(key: PrivateKey) -> SignatureHash:
    """Digest used when ``key`` signs certificates, CRLs and OCSP responses.

    SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521 (the
    digest matches the curve's strength) and none for Ed25519, which hashes
    internally.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = _CURVE_SIZES.get(key.curve.name, 256)
        if size == 384:
            return hashes.SHA384()
        if size == 521:
            return hashes.SHA512()
    return hashes.SHA256()
