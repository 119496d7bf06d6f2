"""HMAC-SHA256 signatures of webhook deliveries.

A signed delivery carries two headers::

    X-Certctl-Timestamp: 1735689600
    X-Certctl-Signature: sha256=<64 lower-case hex digits>

The timestamp is the Unix time of the attempt in whole seconds (decimal
ASCII). The signature is the HMAC-SHA256, keyed with the channel's secret, of
the bytes::

    <timestamp as ASCII> "." <raw request body>

that is ``b"1735689600." + body``. A receiver recomputes it over the body
exactly as received (before any JSON parsing), compares in constant time,
and rejects timestamps too far from its own clock to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from certctl_operator.policy.clock import require_aware

SIGNATURE_HEADER = "X-Certctl-Signature"
TIMESTAMP_HEADER = "X-Certctl-Timestamp"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE = timedelta(minutes=5)


def signing_timestamp(now: datetime) -> str:
    """The ``X-Certctl-Timestamp`` value for an attempt made at ``now``."""
    require_aware(now)
    return str(int(now.timestamp()))


def signed_content(timestamp: str, body: bytes) -> bytes:
    """The exact bytes the MAC covers: ``timestamp + "." + body``."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    if not secret:
        raise ValueError("the signing secret must not be empty")
    digest = hmac.new(secret, signed_content(timestamp, body), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``signature`` is valid for ``timestamp`` and ``body``.

    The comparison is constant-time. When ``now`` is given, the timestamp must
    also lie within ``tolerance`` of it.
    """
    if not secret:
        return False
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError:
        return False
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        return False
    if now is not None:
        require_aware(now)
        try:
            sent = int(timestamp)
        except ValueError:
            return False
        if abs(now.timestamp() - sent) > tolerance.total_seconds():
            return False
    return True
