from __future__ import annotations

import asyncio
import base64
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from certctl_operator.pki import (
    InvalidKeyError,
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    UnsupportedKeyError,
    generate_private_key,
    generate_private_key_async,
    key_matches_spec,
    key_spec_of,
    load_private_key,
    private_key_to_pem,
    public_keys_equal,
)
from certctl_operator.pki.keys import describe_key, public_key_sha256, public_key_to_pem, signature_hash

from .conftest import openssl, requires_openssl, write


class TestKeySpec:
    @pytest.mark.parametrize(
        ("algorithm", "size", "expected"),
        [
            (KeyAlgorithm.RSA, None, 2048),
            (KeyAlgorithm.RSA, 0, 2048),
            (KeyAlgorithm.RSA, 3072, 3072),
            (KeyAlgorithm.RSA, 4096, 4096),
            (KeyAlgorithm.ECDSA, None, 256),
            (KeyAlgorithm.ECDSA, 384, 384),
            (KeyAlgorithm.ECDSA, 521, 521),
            (KeyAlgorithm.ED25519, None, None),
            (KeyAlgorithm.ED25519, 0, None),
        ],
    )
    def test_sizes_default_per_algorithm(
        self, algorithm: KeyAlgorithm, size: int | None, expected: int | None
    ) -> None:
        assert KeySpec(algorithm, size).size == expected

    @pytest.mark.parametrize(
        ("algorithm", "size"),
        [
            (KeyAlgorithm.RSA, 1024),
            (KeyAlgorithm.RSA, 2047),
            (KeyAlgorithm.RSA, 8192),
            (KeyAlgorithm.ECDSA, 224),
            (KeyAlgorithm.ECDSA, 512),
            (KeyAlgorithm.ED25519, 256),
        ],
    )
    def test_unsupported_sizes_are_refused(self, algorithm: KeyAlgorithm, size: int) -> None:
        with pytest.raises(UnsupportedKeyError) as caught:
            KeySpec(algorithm, size)
        assert caught.value.reason == "UnsupportedKey"

    @pytest.mark.parametrize(
        ("text", "algorithm"),
        [("RSA", KeyAlgorithm.RSA), ("ecdsa", KeyAlgorithm.ECDSA), (" ED25519 ", KeyAlgorithm.ED25519)],
    )
    def test_parse_is_case_insensitive(self, text: str, algorithm: KeyAlgorithm) -> None:
        assert KeySpec.parse(text).algorithm is algorithm

    def test_parse_refuses_unknown_algorithms(self) -> None:
        with pytest.raises(UnsupportedKeyError, match="DSA"):
            KeySpec.parse("DSA", 2048)

    def test_plain_strings_are_accepted_as_algorithm(self) -> None:
        spec = KeySpec("ECDSA", 384)  # type: ignore[arg-type]
        assert spec == KeySpec(KeyAlgorithm.ECDSA, 384)

    @pytest.mark.parametrize(
        ("spec", "label"),
        [
            (KeySpec(KeyAlgorithm.RSA, 3072), "RSA 3072"),
            (KeySpec(KeyAlgorithm.ECDSA, 521), "ECDSA P-521"),
            (KeySpec(KeyAlgorithm.ED25519), "Ed25519"),
        ],
    )
    def test_describe(self, spec: KeySpec, label: str) -> None:
        assert spec.describe() == label


@pytest.mark.parametrize(
    "spec",
    [
        KeySpec(KeyAlgorithm.RSA, 2048),
        KeySpec(KeyAlgorithm.ECDSA, 256),
        KeySpec(KeyAlgorithm.ECDSA, 384),
        KeySpec(KeyAlgorithm.ECDSA, 521),
        KeySpec(KeyAlgorithm.ED25519),
    ],
    ids=lambda s: s.describe(),
)
def test_generated_keys_match_their_spec(spec: KeySpec) -> None:
    key = generate_private_key(spec)
    assert key_matches_spec(key, spec)
    assert key_matches_spec(key.public_key(), spec)
    assert key_spec_of(key) == spec
    assert describe_key(key) == spec.describe()


def test_rsa_4096_generation() -> None:
    spec = KeySpec(KeyAlgorithm.RSA, 4096)
    key = generate_private_key(spec)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 4096
    assert key.public_key().public_numbers().e == 65537
    assert not key_matches_spec(key, KeySpec(KeyAlgorithm.RSA, 2048))


def test_key_matches_spec_rejects_other_kinds(keys: dict[str, PrivateKey]) -> None:
    assert not key_matches_spec(keys["rsa"], KeySpec(KeyAlgorithm.RSA, 3072))
    assert not key_matches_spec(keys["ec"], KeySpec(KeyAlgorithm.ECDSA, 384))
    assert not key_matches_spec(keys["ec"], KeySpec(KeyAlgorithm.RSA))
    assert not key_matches_spec(keys["ed25519"], KeySpec(KeyAlgorithm.ECDSA))
    secp256k1 = ec.generate_private_key(ec.SECP256K1())
    assert not key_matches_spec(secp256k1, KeySpec(KeyAlgorithm.ECDSA, 256))


def test_public_keys_equal(keys: dict[str, PrivateKey]) -> None:
    rsa_key = keys["rsa"]
    assert public_keys_equal(rsa_key, rsa_key.public_key())
    assert public_keys_equal(rsa_key.public_key(), rsa_key)
    assert not public_keys_equal(rsa_key, keys["ec"])
    assert not public_keys_equal(keys["ed25519"], ed25519.Ed25519PrivateKey.generate())
    assert public_key_sha256(rsa_key) == public_key_sha256(rsa_key.public_key())


class TestPem:
    @pytest.mark.parametrize(
        ("name", "encoding", "header"),
        [
            ("rsa", KeyEncoding.PKCS1, "-----BEGIN RSA PRIVATE KEY-----"),
            ("rsa", KeyEncoding.PKCS8, "-----BEGIN PRIVATE KEY-----"),
            ("ec", KeyEncoding.PKCS1, "-----BEGIN EC PRIVATE KEY-----"),
            ("ec", KeyEncoding.PKCS8, "-----BEGIN PRIVATE KEY-----"),
            ("ed25519", KeyEncoding.PKCS8, "-----BEGIN PRIVATE KEY-----"),
        ],
    )
    def test_encodings_round_trip(
        self, keys: dict[str, PrivateKey], name: str, encoding: KeyEncoding, header: str
    ) -> None:
        pem = private_key_to_pem(keys[name], encoding)
        assert pem.startswith(header)
        loaded = load_private_key(pem)
        assert public_keys_equal(loaded, keys[name])
        assert public_keys_equal(load_private_key(pem.encode()), keys[name])

    def test_ed25519_has_no_pkcs1_form(self, keys: dict[str, PrivateKey]) -> None:
        with pytest.raises(UnsupportedKeyError, match="PKCS8") as caught:
            private_key_to_pem(keys["ed25519"], KeyEncoding.PKCS1)
        assert caught.value.reason == "UnsupportedKey"

    def test_public_key_pem(self, keys: dict[str, PrivateKey]) -> None:
        assert public_key_to_pem(keys["ec"]).startswith("-----BEGIN PUBLIC KEY-----")

    @requires_openssl
    @pytest.mark.parametrize(
        ("name", "encoding", "expected"),
        [
            ("rsa", KeyEncoding.PKCS1, "Private-Key: (2048 bit"),
            ("ec", KeyEncoding.PKCS1, "NIST CURVE: P-256"),
            ("ec", KeyEncoding.PKCS8, "NIST CURVE: P-256"),
            ("ed25519", KeyEncoding.PKCS8, "ED25519 Private-Key"),
        ],
    )
    def test_openssl_reads_the_keys(
        self, tmp_path: Path, keys: dict[str, PrivateKey], name: str, encoding: KeyEncoding, expected: str
    ) -> None:
        path = write(tmp_path / "key.pem", private_key_to_pem(keys[name], encoding))
        result = openssl("pkey", "-in", path, "-noout", "-text")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout

    @requires_openssl
    def test_keys_made_by_openssl_load(self, tmp_path: Path) -> None:
        key_path = tmp_path / "key.pem"
        result = openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", key_path
        )
        assert result.returncode == 0, result.stderr
        key = load_private_key(key_path.read_text())
        assert key_spec_of(key) == KeySpec(KeyAlgorithm.ECDSA, 384)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = (
        bytes([size])
        if size < 128
        else bytes([0x80 | ((size.bit_length() + 7) // 8)])
        + size.to_bytes((size.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + content


def pkcs1_pem(fields: tuple[int, ...]) -> str:
    """A PKCS#1 RSAPrivateKey of whatever numbers are given: the library refuses to build bad ones."""
    integers = b"".join(_der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big")) for value in fields)
    body = base64.b64encode(_der(0x30, integers)).decode("ascii")
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----\n"


class TestLoadErrors:
    def test_garbage(self) -> None:
        with pytest.raises(InvalidKeyError) as caught:
            load_private_key("not a key")
        assert caught.value.reason == "InvalidKey"

    def test_damaged_pem_does_not_echo_key_material(self, keys: dict[str, PrivateKey]) -> None:
        pem = private_key_to_pem(keys["rsa"])
        lines = pem.splitlines()
        damaged = "\n".join([lines[0], *(line[::-1] for line in lines[1:-1]), lines[-1]])
        with pytest.raises(InvalidKeyError) as caught:
            load_private_key(damaged)
        message = str(caught.value)
        assert all(line not in message for line in lines[1:-1])
        assert all(line[::-1] not in message for line in lines[1:-1])

    def test_encrypted_keys_are_refused(self, keys: dict[str, PrivateKey]) -> None:
        pem = keys["ec"].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        with pytest.raises(InvalidKeyError, match="encrypted"):
            load_private_key(pem)

    def test_other_algorithms_are_refused(self) -> None:
        for other in (ed448.Ed448PrivateKey.generate(), x25519.X25519PrivateKey.generate()):
            pem = other.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            with pytest.raises(InvalidKeyError, match="only RSA, ECDSA and Ed25519"):
                load_private_key(pem)

    @pytest.mark.parametrize("full_rsa_check", [True, False])
    def test_an_inconsistent_rsa_key_is_refused_with_or_without_the_full_check(
        self, keys: dict[str, PrivateKey], full_rsa_check: bool
    ) -> None:
        key = keys["rsa"]
        assert isinstance(key, rsa.RSAPrivateKey)
        numbers = key.private_numbers()
        public = numbers.public_numbers
        intact = (0, public.n, public.e, numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1)
        assert public_keys_equal(load_private_key(pkcs1_pem((*intact, numbers.iqmp))), key)
        for p, q, d in [
            (numbers.p, numbers.q, numbers.d + 2),  # d no longer inverts e
            (numbers.p + 2, numbers.q, numbers.d),  # p * q is not n
        ]:
            fields = (0, public.n, public.e, d, p, q, numbers.dmp1, numbers.dmq1, numbers.iqmp)
            pem = pkcs1_pem(fields)
            with pytest.raises(InvalidKeyError):
                load_private_key(pem, "tls.key", full_rsa_check=full_rsa_check)

    def test_a_consistent_rsa_key_loads_without_the_full_check(self, keys: dict[str, PrivateKey]) -> None:
        loaded = load_private_key(private_key_to_pem(keys["rsa"]), full_rsa_check=False)
        assert public_keys_equal(loaded, keys["rsa"])

    def test_weak_or_exotic_keys_are_refused(self) -> None:
        weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point is to be refused
        for key in (weak, ec.generate_private_key(ec.SECP256K1())):
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            with pytest.raises(InvalidKeyError):
                load_private_key(pem)


@pytest.mark.parametrize(
    ("spec", "digest"),
    [
        (KeySpec(KeyAlgorithm.RSA), hashes.SHA256),
        (KeySpec(KeyAlgorithm.ECDSA, 256), hashes.SHA256),
        (KeySpec(KeyAlgorithm.ECDSA, 384), hashes.SHA384),
        (KeySpec(KeyAlgorithm.ECDSA, 521), hashes.SHA512),
    ],
    ids=lambda v: v.describe() if isinstance(v, KeySpec) else v.name,
)
def test_signature_hash_matches_key_strength(spec: KeySpec, digest: type[hashes.HashAlgorithm]) -> None:
    assert isinstance(signature_hash(generate_private_key(spec)), digest)


def test_ed25519_signs_without_separate_digest(keys: dict[str, PrivateKey]) -> None:
    assert signature_hash(keys["ed25519"]) is None


class TestAsyncGeneration:
    async def test_default_executor(self) -> None:
        key = await generate_private_key_async(KeySpec(KeyAlgorithm.ECDSA, 384))
        assert key_matches_spec(key, KeySpec(KeyAlgorithm.ECDSA, 384))

    async def test_event_loop_keeps_running_during_rsa_generation(self) -> None:
        """RSA keygen runs off the loop (cryptography releases the GIL): the loop keeps ticking."""
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.002)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        spec = KeySpec(KeyAlgorithm.RSA, 3072)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            generated = await asyncio.gather(
                generate_private_key_async(spec, pool), generate_private_key_async(spec, pool)
            )
        elapsed = time.perf_counter() - started
        done = True
        await task
        assert all(key_matches_spec(k, spec) for k in generated)
        # A blocked loop would tick at most once; a free one ticks every few milliseconds.
        assert ticks >= min(5, int(elapsed / 0.01)), (ticks, elapsed)

    async def test_process_pool_executor(self) -> None:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            key = await generate_private_key_async(KeySpec(KeyAlgorithm.RSA, 2048), pool)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key_matches_spec(key, KeySpec(KeyAlgorithm.RSA, 2048))

    @pytest.mark.parametrize(
        "spec",
        [KeySpec(KeyAlgorithm.ECDSA, 256), KeySpec(KeyAlgorithm.ECDSA, 521), KeySpec(KeyAlgorithm.ED25519)],
        ids=KeySpec.describe,
    )
    async def test_small_keys_are_generated_without_starting_the_pool(self, spec: KeySpec) -> None:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            key = await generate_private_key_async(spec, pool)
            started = dict(pool._processes or {})
        assert key_matches_spec(key, spec)
        assert started == {}
