"""Times and durations as the plugin writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certctl_operator.cli.output import format_span, parse_time, plural, relative


def test_format_span_keeps_the_two_largest_units() -> None:
    assert format_span(timedelta(days=29, hours=3, minutes=5)) == "29d 3h"
    assert format_span(timedelta(hours=4, seconds=30)) == "4h 30s"
    assert format_span(timedelta(seconds=45)) == "45s"
    assert format_span(timedelta(0)) == "0s"
    assert format_span(-timedelta(minutes=90)) == "1h 30m"


def test_relative_and_parse_time() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert relative(parse_time("2025-01-03T00:00:00Z"), now) == "in 2d"
    assert relative(parse_time("2024-12-31T22:00:00Z"), now) == "2h ago"
    assert relative(None, now) == "-"
    assert parse_time("not a time") is None
    assert parse_time(None) is None
    assert parse_time("2025-01-01T00:00:00") == now, "a timestamp without zone is UTC"


def test_plural() -> None:
    assert plural(1, "certificate") == "1 certificate"
    assert plural(3, "entry", "entries") == "3 entries"
