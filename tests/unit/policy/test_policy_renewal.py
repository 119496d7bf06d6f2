from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.policy.renewal import (
    DEFAULT_EXPIRY_THRESHOLDS,
    expiry_event_name,
    expiry_thresholds_due,
    issuance_backoff,
    most_urgent_threshold,
    next_issuance_attempt,
    next_threshold_time,
    notification_event_name,
    object_name,
    renewal_time,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ------------------------------------------------------------------ renewal_time


def test_default_renews_with_a_third_of_the_lifetime_left() -> None:
    assert renewal_time(T0, T0 + 90 * DAY) == T0 + 60 * DAY


def test_renew_before() -> None:
    assert renewal_time(T0, T0 + 90 * DAY, renew_before=10 * DAY) == T0 + 80 * DAY


def test_renew_before_zero_renews_at_expiry() -> None:
    assert renewal_time(T0, T0 + 90 * DAY, renew_before=timedelta(0)) == T0 + 90 * DAY


@pytest.mark.parametrize("renew_before", [90 * DAY, 120 * DAY])
def test_renew_before_not_shorter_than_the_lifetime_falls_back_to_default(renew_before: timedelta) -> None:
    assert renewal_time(T0, T0 + 90 * DAY, renew_before=renew_before) == T0 + 60 * DAY


def test_percentage_is_the_share_of_lifetime_left() -> None:
    assert renewal_time(T0, T0 + timedelta(minutes=60), renew_before_percentage=25) == T0 + timedelta(
        minutes=45
    )


def test_result_is_truncated_to_whole_seconds() -> None:
    # 100 s lifetime, a third left: 66.67 s after issuance, truncated.
    assert renewal_time(T0, T0 + timedelta(seconds=100)) == T0 + timedelta(seconds=66)


def test_inverted_validity_renews_at_once() -> None:
    assert renewal_time(T0, T0 - DAY) == T0 - DAY


def test_result_in_other_timezone_inputs_is_the_same_instant() -> None:
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    assert renewal_time(T0.astimezone(plus_two), (T0 + 90 * DAY).astimezone(plus_two)) == T0 + 60 * DAY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"renew_before": DAY, "renew_before_percentage": 10}, "mutually exclusive"),
        ({"renew_before_percentage": 0}, "between 1 and 99"),
        ({"renew_before_percentage": 100}, "between 1 and 99"),
        ({"renew_before": -DAY}, "negative"),
    ],
)
def test_invalid_renewal_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        renewal_time(T0, T0 + 90 * DAY, **kwargs)  # type: ignore[arg-type]


def test_naive_validity_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        renewal_time(datetime(2025, 1, 1), T0)


# ------------------------------------------------------------------ issuance backoff


def test_issuance_backoff() -> None:
    base, cap = timedelta(minutes=1), timedelta(hours=1)
    assert issuance_backoff(0, base, cap) == timedelta(0)
    assert issuance_backoff(1, base, cap) == base
    assert issuance_backoff(2, base, cap) == 2 * base
    assert issuance_backoff(4, base, cap) == 8 * base
    assert issuance_backoff(10_000, base, cap) == cap
    assert next_issuance_attempt(T0, 3, base, cap) == T0 + 4 * base


# ------------------------------------------------------------------ expiry thresholds


def test_thresholds_crossed_largest_first() -> None:
    not_after = T0 + 10 * DAY
    assert expiry_thresholds_due(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) == (30 * DAY, 14 * DAY)
    assert most_urgent_threshold(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) == 14 * DAY
    assert next_threshold_time(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) == not_after - 7 * DAY


def test_threshold_is_crossed_at_its_exact_instant() -> None:
    not_after = T0 + 7 * DAY
    assert 7 * DAY in expiry_thresholds_due(not_after, [7 * DAY], T0)
    assert expiry_thresholds_due(not_after, [7 * DAY], T0 - timedelta(seconds=1)) == ()


def test_zero_threshold_is_crossed_on_expiry() -> None:
    crossed = expiry_thresholds_due(T0, DEFAULT_EXPIRY_THRESHOLDS, T0)
    assert crossed == (30 * DAY, 14 * DAY, 7 * DAY, timedelta(0))
    assert most_urgent_threshold(T0, DEFAULT_EXPIRY_THRESHOLDS, T0) == timedelta(0)
    assert next_threshold_time(T0, DEFAULT_EXPIRY_THRESHOLDS, T0) is None


def test_nothing_crossed_far_from_expiry() -> None:
    not_after = T0 + 60 * DAY
    assert expiry_thresholds_due(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) == ()
    assert most_urgent_threshold(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) is None
    assert next_threshold_time(not_after, DEFAULT_EXPIRY_THRESHOLDS, T0) == not_after - 30 * DAY


def test_duplicate_thresholds_are_merged_and_negative_ones_rejected() -> None:
    assert expiry_thresholds_due(T0, [DAY, DAY], T0) == (DAY,)
    with pytest.raises(ValueError, match="negative"):
        expiry_thresholds_due(T0, [-DAY], T0)


# ------------------------------------------------------------------ names


def test_expiry_event_names() -> None:
    assert expiry_event_name("web", 3, 7 * DAY, "ops-slack") == "web-expiring-7d-r3-ops-slack"
    assert expiry_event_name("web", 3, timedelta(0)) == "web-expiring-0s-r3"
    assert expiry_event_name("web", 3, timedelta(hours=12)) == "web-expiring-12h-r3"


def test_names_are_deterministic_and_distinct() -> None:
    names = {expiry_event_name("web", rev, t) for rev in (1, 2) for t in DEFAULT_EXPIRY_THRESHOLDS}
    assert len(names) == 8
    assert expiry_event_name("web", 1, DAY) == expiry_event_name("web", 1, DAY)


def test_notification_event_names() -> None:
    assert notification_event_name("web", "Renewed", 4, "ops-webhook") == "web-renewed-r4-ops-webhook"
    assert notification_event_name("api.example", "RenewalFailed", 1, "mail") == (
        "api.example-renewalfailed-r1-mail"
    )


def test_long_names_get_a_hash_suffix() -> None:
    long_cert = "c" * 250
    first = expiry_event_name(long_cert, 1, 30 * DAY, "slack")
    second = expiry_event_name(long_cert, 1, 30 * DAY, "teams")
    for name in (first, second):
        assert len(name) <= 253
        assert DNS1123_SUBDOMAIN.match(name)
        assert re.search(r"-[0-9a-f]{10}$", name)
    assert first != second
    assert first == expiry_event_name(long_cert, 1, 30 * DAY, "slack")


def test_max_length_is_respected() -> None:
    name = notification_event_name("certificate-" + "x" * 60, "Issued", 12, "pagerduty", max_length=63)
    assert len(name) <= 63
    assert DNS1123_SUBDOMAIN.match(name)


def test_invalid_characters_are_replaced_and_hashed() -> None:
    name = object_name("Web_Cert", "Renewed", "r1", "ops slack")
    assert DNS1123_SUBDOMAIN.match(name)
    assert name.startswith("web-cert-renewed-r1-ops-slack-")
    assert name != object_name("web-cert", "renewed", "r1", "ops-slack")


def test_upper_case_valid_names_are_lowered() -> None:
    assert object_name("Web", "R1") == "web-r1"


def test_tiny_max_length_is_refused() -> None:
    with pytest.raises(ValueError):
        object_name("a", max_length=5)
