"""Go-style duration strings (``90s``, ``45m``, ``2160h``, ``90d``, ``1h30m``).

Kubernetes users write durations the way Go prints them; certificates add the
day unit because lifetimes are counted in days. The same grammar is enforced
at admission by the CRD pattern ``DURATION_PATTERN`` so a value the API server
accepts is always one this module can parse.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")


class DurationError(ValueError):
    """A string is not a duration this project understands."""


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` into a timedelta; raise DurationError with the reason."""
    value = text.strip()
    if not _DURATION_RE.match(value):
        raise DurationError(
            f"invalid duration {text!r}: use a number with a unit of ms, s, m, h or d, "
            "for example 90s, 45m, 2160h, 90d or 1h30m"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(value))
    return timedelta(seconds=seconds)


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
