import ipaddress
from datetime import timedelta

import pytest
from pydantic import ValidationError

from certctl_operator.settings import Settings


def test_defaults_follow_the_certctl_contract() -> None:
    settings = Settings.from_env({})
    assert settings.namespaces == ()
    assert settings.notification_retry_base == timedelta(minutes=1)
    assert settings.notification_retry_cap == timedelta(hours=1)
    assert settings.notification_max_attempts == 5
    assert settings.notification_sent_retention == timedelta(days=7)
    assert settings.log_format == "text"


def test_environment_variables_and_go_durations() -> None:
    settings = Settings.from_env(
        {
            "CERTCTL_NAMESPACES": "team-a, team-b,",
            "CERTCTL_NOTIFICATION_RETRY_BASE": "1s",
            "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "3",
            "CERTCTL_LOG_FORMAT": "json",
            "CERTCTL_HTTP_PORT": "9090",
            "UNRELATED": "ignored",
        }
    )
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.notification_retry_base == timedelta(seconds=1)
    assert settings.notification_max_attempts == 3
    assert settings.log_format == "json"
    assert settings.http_port == 9090


def test_flags_override_environment() -> None:
    settings = Settings.from_env({"CERTCTL_LOG_FORMAT": "json"}, log_format="text", namespaces=None)
    assert settings.log_format == "text"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CERTCTL_NOTIFICATION_RETRY_BASE", "soon"),
        ("CERTCTL_LOG_FORMAT", "xml"),
        ("CERTCTL_NOTIFICATION_MAX_ATTEMPTS", "0"),
        ("CERTCTL_HTTP_PORT", "70000"),
        # Watched namespaces are listed and watched by name: a pattern is refused, not ignored.
        ("CERTCTL_NAMESPACES", "team-a,team-*"),
    ],
)
def test_bad_values_fail_at_start_with_the_field_named(key: str, value: str) -> None:
    field = key.removeprefix("CERTCTL_").lower()
    with pytest.raises(ValidationError, match=field):
        Settings.from_env({key: value})


def test_leader_election_is_off_by_default_with_client_go_timings() -> None:
    settings = Settings.from_env({})
    assert settings.leader_election is False
    assert settings.leader_election_lease_name == "certctl-operator"
    timings = settings.lease_timings()
    assert timings.lease_duration == timedelta(seconds=15)
    assert timings.renew_deadline == timedelta(seconds=10)
    assert timings.retry_period == timedelta(seconds=2)


def test_leader_election_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CERTCTL_LEADER_ELECTION": "true",
            "CERTCTL_LEADER_ELECTION_LEASE_NAME": "team-certctl-operator",
            "CERTCTL_LEADER_ELECTION_LEASE_DURATION": "4s",
            "CERTCTL_LEADER_ELECTION_RENEW_DEADLINE": "3s",
            "CERTCTL_LEADER_ELECTION_RETRY_PERIOD": "500ms",
        }
    )
    assert settings.leader_election is True
    assert settings.leader_election_lease_name == "team-certctl-operator"
    assert settings.lease_timings().retry_period == timedelta(milliseconds=500)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"CERTCTL_LEADER_ELECTION_LEASE_DURATION": "4s"}, "shorter than the lease duration"),
        ({"CERTCTL_LEADER_ELECTION_RETRY_PERIOD": "9s"}, "longer than 1.2 x the retry period"),
        ({"CERTCTL_LEADER_ELECTION_LEASE_NAME": "Not_A_Name"}, "leader_election_lease_name"),
    ],
)
def test_unsafe_leader_election_settings_fail_at_start(values: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings.from_env(values)


def test_egress_allow_list_from_the_environment() -> None:
    assert Settings.from_env({}).notification_egress_allowed_cidrs == ()
    assert Settings.from_env({}).egress_policy().allowed == ()
    settings = Settings.from_env({"CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "127.0.0.0/8, fd00::/8,"})
    assert [str(network) for network in settings.notification_egress_allowed_cidrs] == [
        "127.0.0.0/8",
        "fd00::/8",
    ]
    policy = settings.egress_policy()
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"))
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.1/8' is not a CIDR"):
        Settings.from_env({"CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "10.0.0.1/8"})
