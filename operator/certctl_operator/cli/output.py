"""Terminal output: rich consoles, and times and durations written for people."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

PIPE_WIDTH = 200
"""Line width when the output is not a terminal, so tables in logs and pipes are not folded."""


def make_console(file: TextIO | None = None) -> Console:
    """A console on ``file`` (stdout by default): colours only on a terminal, wide tables in pipes.

    Markup is off: names, messages and errors from the cluster are printed as
    they are (``[...]`` in them is text, not style); styles come from :func:`styled`.
    Lines are never wrapped (soft wrap), so messages stay greppable; tables fit the width.
    """
    stream = file if file is not None else sys.stdout
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    width = None if is_tty or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, markup=False, soft_wrap=True)


def styled(text: object, style: str = "") -> Text:
    """``text`` in ``style`` (no style for ""), never read as markup."""
    return Text(str(text), style=style)


def print_json(value: Any, file: TextIO | None = None) -> None:
    """Stable, indented JSON on stdout (for ``-o json``)."""
    stream = file if file is not None else sys.stdout
    stream.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
    stream.flush()


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from an object's status, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(value: datetime | None) -> str:
    """``2025-01-31 12:00:00 UTC``; ``-`` for None."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_span(span: timedelta) -> str:
    """The two largest units of a duration: ``29d 3h``, ``4h 10m``, ``45s``."""
    seconds = int(abs(span.total_seconds()))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for label, size in units:
        if seconds >= size or (label == "s" and not parts):
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{label}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def relative(value: datetime | None, now: datetime) -> str:
    """``in 29d 3h`` or ``2h 5m ago``; ``-`` for None."""
    if value is None:
        return "-"
    span = value - now
    return f"in {format_span(span)}" if span >= timedelta(0) else f"{format_span(span)} ago"


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 certificate``, ``2 certificates``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"
