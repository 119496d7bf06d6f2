from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.notify.signing import sign, signed_content, signing_timestamp, verify

SECRET = b"topsecret"
TIMESTAMP = "1700000000"
BODY = b'{"a":1}'
# Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac topsecret
KNOWN = "sha256=6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e50f"


def test_signature_matches_an_independent_computation() -> None:
    assert signed_content(TIMESTAMP, BODY) == b'1700000000.{"a":1}'
    assert sign(SECRET, TIMESTAMP, BODY) == KNOWN


def test_verify_accepts_the_signature() -> None:
    assert verify(SECRET, TIMESTAMP, BODY, KNOWN)
    assert verify(SECRET, TIMESTAMP, BODY, f"  {KNOWN}\n")


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature"),
    [
        (b"other", TIMESTAMP, BODY, KNOWN),
        (SECRET, "1700000001", BODY, KNOWN),
        (SECRET, TIMESTAMP, b'{"a":2}', KNOWN),
        (SECRET, TIMESTAMP, BODY, KNOWN.upper()),
        (SECRET, TIMESTAMP, BODY, KNOWN.removeprefix("sha256=")),
        (SECRET, TIMESTAMP, BODY, "sha256=\u00e9"),
        (SECRET, TIMESTAMP, BODY, ""),
        (b"", TIMESTAMP, BODY, KNOWN),
        (SECRET, "17000000\u00e9", BODY, KNOWN),
    ],
)
def test_verify_rejects_anything_else(secret: bytes, timestamp: str, body: bytes, signature: str) -> None:
    assert not verify(secret, timestamp, body, signature)


def test_freshness_window() -> None:
    sent = datetime.fromtimestamp(int(TIMESTAMP), UTC)
    assert verify(SECRET, TIMESTAMP, BODY, KNOWN, now=sent + timedelta(minutes=4))
    assert not verify(SECRET, TIMESTAMP, BODY, KNOWN, now=sent + timedelta(minutes=6))
    assert not verify(SECRET, TIMESTAMP, BODY, KNOWN, now=sent - timedelta(minutes=6))
    assert verify(
        SECRET, TIMESTAMP, BODY, KNOWN, now=sent + timedelta(minutes=6), tolerance=timedelta(minutes=10)
    )


def test_non_numeric_timestamp_fails_the_freshness_check() -> None:
    signature = sign(SECRET, "yesterday", BODY)
    assert verify(SECRET, "yesterday", BODY, signature)
    assert not verify(SECRET, "yesterday", BODY, signature, now=datetime.now(UTC))


def test_timestamp_is_unix_seconds() -> None:
    assert signing_timestamp(datetime(2023, 11, 14, 22, 13, 20, 999_000, tzinfo=UTC)) == TIMESTAMP


def test_empty_secret_cannot_sign() -> None:
    with pytest.raises(ValueError):
        sign(b"", TIMESTAMP, BODY)
