"""Go-style duration strings (``90s``, ``45m``, ``2160h``, ``90d``, ``1h30m``).

Kubernetes users write durations the way Go prints them; certificates add the
day unit because lifetimes are counted in days. The same grammar is enforced
at admission by the CRD pattern ``DURATION_PATTERN`` so a value the API server
accepts is always one this module can parse.

Every duration is at most ``MAX_DURATION`` (36500d, about 100 years): a longer
one is no certificate lifetime, CRL validity or timeout anyone means, and an
unbounded one overflows ``timedelta``. The CRDs enforce the same bound with the
same arithmetic (``certctl_operator.api.common.cel_duration_seconds``), so the
API server and this module agree on every string.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

# Milliseconds are divided by 1000 rather than multiplied by 0.001: that is what
# the CEL rules do, and the two differ in the last bit for some numbers.
_UNIT_SECONDS: dict[str, float] = {
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")

MAX_DURATION_TEXT = "36500d"
"""The longest duration accepted anywhere, about 100 years."""
MAX_DURATION_SECONDS = 36500 * 86400.0
MAX_DURATION = timedelta(seconds=MAX_DURATION_SECONDS)


class DurationError(ValueError):
    """A string is not a duration this project understands."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def duration_seconds(text: str) -> float:
    """The seconds in ``text``, computed exactly as the CRDs' CEL rules compute them.

    Raises DurationError (and nothing else) for a malformed duration or one
    longer than ``MAX_DURATION``.
    """
    value = text.strip()
    if not _DURATION_RE.fullmatch(value):
        raise DurationError(
            f"invalid duration {_shown(text)}: use a number with a unit of ms, s, m, h or d, "
            "for example 90s, 45m, 2160h, 90d or 1h30m"
        )
    seconds = sum(
        float(number) / 1000.0 if unit == "ms" else float(number) * _UNIT_SECONDS[unit]
        for number, unit in _PART_RE.findall(value)
    )
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise DurationError(
            f"duration {_shown(text)} is longer than the maximum {MAX_DURATION_TEXT} (100 years)"
        )
    return seconds


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` into a timedelta; raise DurationError with the reason."""
    return timedelta(seconds=duration_seconds(text))


def format_duration(delta: timedelta) -> str:
    """Render a timedelta the short way (``90d``, ``1h30m``, ``45s``)."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
