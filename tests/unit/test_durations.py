from datetime import timedelta

import pytest

from certctl_operator.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("2160h", timedelta(days=90)),
        ("90d", timedelta(days=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parses_go_style_durations_with_days(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "1y", "-5m", "5 m", "1h 30m", "ten minutes", "1.h"])
def test_rejects_malformed_durations_with_a_hint(text: str) -> None:
    with pytest.raises(DurationError, match="use a number with a unit"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=90), "90d"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
        (timedelta(days=-1), "-1d"),
    ],
)
def test_formats_durations_back(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text.lstrip("-")) == abs(delta)
