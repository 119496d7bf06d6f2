import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certctl_operator.durations import (
    MAX_DURATION,
    MAX_DURATION_SECONDS,
    DurationError,
    duration_seconds,
    format_duration,
    parse_duration,
)


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


# --------------------------------------------------------------------------- the upper bound


@pytest.mark.parametrize("text", ["36500d", "876000h", "52560000m", "3153600000s", "3153600000000ms"])
def test_the_maximum_is_100_years_in_every_unit(text: str) -> None:
    assert parse_duration(text) == MAX_DURATION == timedelta(days=36500)


@pytest.mark.parametrize(
    "text",
    [
        "36500d1ms",
        "36501d",
        "3153600000001ms",
        "9999999999999999999999999999d",
        "9" * 400 + "d",
        "1d" * 40000,
    ],
)
def test_longer_durations_are_refused_not_overflowing(text: str) -> None:
    with pytest.raises(DurationError, match=r"is longer than the maximum 36500d \(100 years\)"):
        parse_duration(text)


def test_long_inputs_are_shortened_in_the_message() -> None:
    with pytest.raises(DurationError) as excinfo:
        parse_duration("9" * 400 + "d")
    assert len(str(excinfo.value)) < 120


def test_milliseconds_are_divided_like_the_cel_rule() -> None:
    # 0.001 * 3 != 3 / 1000 in binary floating point; the CRD divides.
    assert duration_seconds("3ms") == 3 / 1000.0
    assert duration_seconds("1h30m") == 5400.0


parts = st.tuples(
    st.one_of(
        st.integers(min_value=0, max_value=10**35).map(str),
        st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)).map(lambda p: f"{p[0]}.{p[1]}"),
    ),
    st.sampled_from(["ms", "s", "m", "h", "d"]),
).map("".join)
well_formed = st.lists(parts, min_size=1, max_size=5).map("".join)


@given(st.one_of(well_formed, st.text(max_size=60)))
@settings(max_examples=500)
def test_parse_duration_raises_only_duration_error(text: str) -> None:
    try:
        delta = parse_duration(text)
    except DurationError:
        return
    assert timedelta(0) <= delta <= MAX_DURATION


@given(well_formed)
@settings(max_examples=500)
def test_well_formed_durations_are_refused_exactly_beyond_the_maximum(text: str) -> None:
    seconds = sum(
        float(number) / 1000.0
        if unit == "ms"
        else float(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        for number, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)", text)
    )
    if seconds <= MAX_DURATION_SECONDS:
        assert duration_seconds(text) == seconds
    else:
        with pytest.raises(DurationError):
            duration_seconds(text)


@given(st.integers(min_value=0, max_value=int(MAX_DURATION_SECONDS)))
def test_formatted_durations_parse_back(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta
