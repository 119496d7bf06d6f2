"""The shipped egress defaults refuse loopback, private, link-local and metadata addresses.

The test suite's operators allow loopback only (their receivers listen on
127.0.0.1); nothing broader may slip into those settings.
"""

from __future__ import annotations

import ipaddress

import pytest

from certctl_operator.dev.operator_process import FAST_SETTINGS
from certctl_operator.settings import Settings

REFUSED_BY_DEFAULT = [
    "127.0.0.1",
    "::1",
    "10.0.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.10.20",
    "fd00:ec2::254",
    "100.100.100.200",
    "fe80::1",
    "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("address", REFUSED_BY_DEFAULT)
def test_the_default_settings_refuse_internal_destinations(address: str) -> None:
    policy = Settings.from_env({}).egress_policy()
    assert not policy.permits(ipaddress.ip_address(address))


def test_the_default_settings_reach_public_addresses() -> None:
    policy = Settings.from_env({}).egress_policy()
    assert policy.permits(ipaddress.ip_address("8.8.8.8"))


def test_the_test_operators_allow_loopback_and_nothing_else_internal() -> None:
    assert FAST_SETTINGS["CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS"] == "127.0.0.0/8"
    policy = Settings.from_env(dict(FAST_SETTINGS)).egress_policy()
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    for address in REFUSED_BY_DEFAULT:
        if not ipaddress.ip_address(address).is_loopback:
            assert not policy.permits(ipaddress.ip_address(address)), address


def test_allowing_link_local_or_private_ranges_does_not_open_metadata_services() -> None:
    env = {"CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "169.254.0.0/16,fd00:ec2::/64,100.64.0.0/10"}
    policy = Settings.from_env(env).egress_policy()
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
        assert not policy.permits(ipaddress.ip_address(address)), address
    assert policy.permits(ipaddress.ip_address("169.254.10.20")), "a link-local entry opens link-local"


def test_a_metadata_service_opens_only_when_named_exactly() -> None:
    env = {"CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "169.254.169.254/32"}
    policy = Settings.from_env(env).egress_policy()
    assert policy.permits(ipaddress.ip_address("169.254.169.254"))
    assert not policy.permits(ipaddress.ip_address("169.254.170.2"))
