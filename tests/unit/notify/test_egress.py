"""The egress policy: every range, wrapped IPv4, the allow-list, and connect-time checks."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpcore
import httpx
import pytest
from tests.support.receivers import HTTPReceiver, SMTPReceiver

from certctl_operator.notify.egress import (
    AddressKind,
    EgressPolicy,
    EgressRefused,
    IPAddress,
    classify,
    parse_address,
    parse_networks,
    unwrap,
)
from certctl_operator.notify.egress_transport import (
    EgressCheckingBackend,
    EgressCheckingTransport,
    Resolver,
    connect_checked,
    permitted_addresses,
    system_resolver,
)
from certctl_operator.notify.payload import Message
from certctl_operator.notify.senders import (
    EmailTarget,
    HttpClientPool,
    Notifier,
    SmtpSecurity,
    WebhookTarget,
    send_email,
)
from certctl_operator.policy.notification import ErrorKind

ip = ipaddress.ip_address

CASES = [
    # metadata services, before the ranges that contain them
    ("169.254.169.254", AddressKind.METADATA),
    ("169.254.170.2", AddressKind.METADATA),
    ("fd00:ec2::254", AddressKind.METADATA),
    ("100.100.100.200", AddressKind.METADATA),
    ("192.0.0.192", AddressKind.METADATA),
    ("::ffff:169.254.169.254", AddressKind.METADATA),
    ("64:ff9b::a9fe:a9fe", AddressKind.METADATA),  # NAT64 of 169.254.169.254
    # link-local
    ("169.254.0.1", AddressKind.LINK_LOCAL),
    ("169.254.255.254", AddressKind.LINK_LOCAL),
    ("fe80::1", AddressKind.LINK_LOCAL),
    ("febf:ffff::1", AddressKind.LINK_LOCAL),
    ("::ffff:169.254.1.1", AddressKind.LINK_LOCAL),
    # loopback
    ("127.0.0.1", AddressKind.LOOPBACK),
    ("127.255.255.254", AddressKind.LOOPBACK),
    ("::1", AddressKind.LOOPBACK),
    ("::ffff:127.0.0.1", AddressKind.LOOPBACK),
    # private, CGNAT, unique local
    ("10.0.0.1", AddressKind.PRIVATE),
    ("10.255.255.255", AddressKind.PRIVATE),
    ("172.16.0.1", AddressKind.PRIVATE),
    ("172.31.255.254", AddressKind.PRIVATE),
    ("192.168.1.1", AddressKind.PRIVATE),
    ("100.64.0.1", AddressKind.PRIVATE),
    ("100.127.255.254", AddressKind.PRIVATE),
    ("fc00::1", AddressKind.PRIVATE),
    ("fd12:3456::1", AddressKind.PRIVATE),
    ("::ffff:10.1.2.3", AddressKind.PRIVATE),
    ("64:ff9b::a01:203", AddressKind.PRIVATE),  # NAT64 of 10.1.2.3
    # never reachable: unspecified, multicast, reserved
    ("0.0.0.0", AddressKind.UNSPECIFIED),  # noqa: S104 (an address judged, not bound)
    ("0.1.2.3", AddressKind.UNSPECIFIED),
    ("::", AddressKind.UNSPECIFIED),
    ("224.0.0.1", AddressKind.MULTICAST),
    ("239.255.255.250", AddressKind.MULTICAST),
    ("ff02::1", AddressKind.MULTICAST),
    ("240.0.0.1", AddressKind.RESERVED),
    ("255.255.255.255", AddressKind.RESERVED),
    ("::7f00:1", AddressKind.RESERVED),  # deprecated IPv4-compatible ::127.0.0.1
    # public, including the edges of the ranges above
    ("8.8.8.8", AddressKind.PUBLIC),
    ("172.15.255.255", AddressKind.PUBLIC),
    ("172.32.0.0", AddressKind.PUBLIC),
    ("100.63.255.255", AddressKind.PUBLIC),
    ("100.128.0.0", AddressKind.PUBLIC),
    ("169.253.255.255", AddressKind.PUBLIC),
    ("11.0.0.0", AddressKind.PUBLIC),
    ("2606:4700::1111", AddressKind.PUBLIC),
    ("::ffff:8.8.8.8", AddressKind.PUBLIC),
]


@pytest.mark.parametrize(("text", "kind"), CASES, ids=[text for text, _ in CASES])
def test_every_range_is_classified(text: str, kind: AddressKind) -> None:
    assert classify(ip(text)) is kind


def test_wrapped_ipv4_is_unwrapped() -> None:
    assert unwrap(ip("::ffff:192.168.0.1")) == ip("192.168.0.1")
    assert unwrap(ip("64:ff9b::808:808")) == ip("8.8.8.8")
    assert unwrap(ip("2001:db8::1")) == ip("2001:db8::1")
    assert unwrap(ip("10.0.0.1")) == ip("10.0.0.1")


@pytest.mark.parametrize(
    "text", ["127.0.0.1", "::1", "10.1.2.3", "172.20.0.1", "192.168.0.10", "100.64.0.1", "fd00::1"]
)
def test_the_default_policy_refuses_loopback_and_private_ranges(text: str) -> None:
    refusal = EgressPolicy().refusal(ip(text))
    assert refusal is not None
    assert refusal.startswith(f"{text}, a ")
    assert "outside the egress allow-list (CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS)" in refusal


@pytest.mark.parametrize("text", ["8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_are_always_permitted(text: str) -> None:
    assert EgressPolicy().permits(ip(text))


def test_the_allow_list_opens_loopback_and_private_ranges_but_not_link_local_or_metadata_by_accident() -> (
    None
):
    policy = EgressPolicy(allowed=parse_networks(["127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "fc00::/7"]))
    for text in ("127.0.0.1", "::ffff:127.0.0.1", "10.9.8.7", "100.64.3.4", "fd00::1"):
        assert policy.permits(ip(text)), text
    assert not policy.permits(ip("::1")), "only what is listed"
    assert not policy.permits(ip("192.168.1.1"))
    # 100.64.0.0/10 and fc00::/7 contain metadata services, yet were written for something else.
    for text in ("100.100.100.200", "fd00:ec2::254"):
        refusal = policy.refusal(ip(text))
        assert refusal is not None and refusal.endswith("names exactly this address"), text
    for text in ("0.0.0.1", "ff02::1"):
        refusal = policy.refusal(ip(text))
        assert refusal is not None and refusal.endswith("which notifications never reach"), text


def test_link_local_and_metadata_open_only_when_named_deliberately() -> None:
    policy = EgressPolicy(allowed=parse_networks(["169.254.0.0/16", "fe80::/64", "fd00:ec2::254/128"]))
    assert policy.permits(ip("169.254.1.1")) and policy.permits(ip("fe80::1"))
    assert policy.permits(ip("fd00:ec2::254")), "a single-address entry opens that metadata service"
    refusal = policy.refusal(ip("169.254.169.254"))
    assert refusal is not None and refusal.endswith("names exactly this address"), "a range is not enough"
    assert not policy.permits(ip("::ffff:169.254.169.254"))
    exact = EgressPolicy(allowed=parse_networks(["169.254.169.254/32"]))
    assert exact.permits(ip("169.254.169.254")) and exact.permits(ip("::ffff:169.254.169.254"))
    assert not exact.permits(ip("169.254.169.253"))
    broad = EgressPolicy(allowed=parse_networks(["169.0.0.0/8"]))
    refusal = broad.refusal(ip("169.254.1.1"))
    assert refusal is not None and refusal.endswith("entry inside a link-local range"), refusal


def test_everything_allowed_still_keeps_metadata_out() -> None:
    policy = EgressPolicy(allowed=parse_networks(["0.0.0.0/0", "::/0"]))
    assert policy.permits(ip("192.168.0.1")) and policy.permits(ip("::1"))
    assert not policy.permits(ip("169.254.169.254"))
    assert not policy.permits(ip("::ffff:169.254.169.254"))


def test_literal_hosts_are_judged_and_names_left_to_connect_time() -> None:
    policy = EgressPolicy()
    assert parse_address("[fd00:ec2::254]") == ip("fd00:ec2::254")
    assert parse_address("fe80::1%eth0") == ip("fe80::1")
    assert parse_address("example.com") is None
    assert policy.host_refusal("example.com") is None
    assert policy.host_refusal("localhost") is None
    assert policy.host_refusal("8.8.8.8") is None
    assert policy.host_refusal("[::1]") == (
        "::1, a loopback address outside the egress allow-list (CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS)"
    )


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-a-cidr", "10.0.0.0/33"])
def test_parse_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a CIDR"):
        parse_networks(["127.0.0.0/8", bad])
    assert parse_networks([" 127.0.0.0/8 ", "", "::1"]) == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


# --------------------------------------------------------------------------- connect time


def fixed(*texts: str) -> Resolver:
    """A resolver answering ``texts`` (in order) for every name."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ip(text) for text in texts]

    return resolve


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Fails every connection, recording where it was asked to go: nothing ever leaves the machine."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []

    async def connect_tcp(
        self, host: str, port: int, *args: object, **kwargs: object
    ) -> httpcore.AsyncNetworkStream:
        self.targets.append((host, port))
        raise httpcore.ConnectError("refused in the test")

    async def sleep(self, seconds: float) -> None:
        return None


async def test_a_name_resolving_to_a_refused_address_is_refused_before_connecting() -> None:
    inner = RecordingBackend()
    backend = EgressCheckingBackend(EgressPolicy(), fixed("169.254.169.254"), inner)
    with pytest.raises(EgressRefused) as refused:
        await backend.connect_tcp("rebound.example", 80)
    assert str(refused.value) == (
        "egress policy refuses rebound.example: it resolves to 169.254.169.254, a cloud metadata address, "
        "which notifications reach only when the egress allow-list "
        "(CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS) names exactly this address (connecting to port 80)"
    )
    assert refused.value.problem.startswith("egress policy refuses rebound.example: it resolves to")
    assert inner.targets == []


async def test_only_permitted_addresses_are_tried_and_by_address_not_by_name() -> None:
    inner = RecordingBackend()
    resolver = fixed("10.0.0.5", "8.8.4.4", "169.254.169.254", "8.8.8.8")
    backend = EgressCheckingBackend(EgressPolicy(), resolver, inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("mixed.example", 443)
    assert inner.targets == [("8.8.4.4", 443), ("8.8.8.8", 443)]


async def test_each_connection_resolves_again() -> None:
    answers = [["8.8.8.8"], ["127.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ip(text) for text in answers.pop(0)]

    inner = RecordingBackend()
    backend = EgressCheckingBackend(EgressPolicy(), rebinding, inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebinding.example", 80)
    with pytest.raises(EgressRefused, match=r"it resolves to 127\.0\.0\.1, a loopback address"):
        await backend.connect_tcp("rebinding.example", 80)
    assert inner.targets == [("8.8.8.8", 80)]


async def test_a_literal_address_is_refused_with_its_kind() -> None:
    with pytest.raises(EgressRefused, match=r"^egress policy refuses 169\.254\.169\.254, a cloud metadata"):
        await permitted_addresses(EgressPolicy(), system_resolver, "169.254.169.254", 80)


async def test_the_system_resolver_answers_localhost_with_loopback() -> None:
    addresses = await system_resolver("localhost", 80)
    assert addresses and all(address.is_loopback for address in addresses)
    assert await system_resolver("[::1]", 80) == [ip("::1")]


async def test_an_http_client_on_the_checking_transport_refuses_loopback_unless_allowed(
    http_receiver: Callable[..., HTTPReceiver],
) -> None:
    receiver = http_receiver()
    url = f"http://localhost:{receiver.port}/hook"
    async with httpx.AsyncClient(transport=EgressCheckingTransport(EgressPolicy())) as client:
        with pytest.raises(EgressRefused, match="egress policy refuses localhost: it resolves to"):
            await client.post(url, content=b"{}")
    assert receiver.requests == []
    allowed = EgressPolicy(allowed=parse_networks(["127.0.0.0/8", "::1/128"]))
    async with httpx.AsyncClient(transport=EgressCheckingTransport(allowed)) as client:
        response = await client.post(url, content=b"{}")
    assert response.status_code == 200
    assert len(receiver.requests) == 1


async def test_connect_checked_gives_a_connected_socket_only_to_a_permitted_address(
    http_receiver: Callable[..., HTTPReceiver],
) -> None:
    receiver = http_receiver()
    with pytest.raises(EgressRefused):
        await connect_checked(EgressPolicy(), "127.0.0.1", receiver.port)
    allowed = EgressPolicy(allowed=parse_networks(["127.0.0.0/8"]))
    sock = await connect_checked(allowed, "127.0.0.1", receiver.port)
    try:
        assert sock.getpeername() == ("127.0.0.1", receiver.port)
        assert sock.type == socket.SOCK_STREAM
    finally:
        sock.close()


# --------------------------------------------------------------------------- senders


LOOPBACK = EgressPolicy(allowed=parse_networks(["127.0.0.0/8", "::1/128"]))


async def test_the_notifier_reports_a_refused_webhook_as_invalid_configuration(
    http_receiver: Callable[..., HTTPReceiver], message: Message
) -> None:
    receiver = http_receiver()
    channel = WebhookTarget(url=f"http://localhost:{receiver.port}/t0k3n-path")
    async with HttpClientPool(egress=EgressPolicy()) as pool:
        result = await Notifier(pool, egress=EgressPolicy()).deliver(channel, message)
    assert not result.ok and result.error is not None
    assert result.error.kind is ErrorKind.CONFIGURATION
    assert result.error.message.startswith("egress policy refuses localhost: it resolves to")
    assert result.error.message.endswith(f"(connecting to port {receiver.port})")
    assert result.egress_refusal is not None and "connecting" not in result.egress_refusal
    assert "t0k3n" not in result.error.message
    assert receiver.requests == []

    async with HttpClientPool(egress=LOOPBACK) as pool:
        delivered = await Notifier(pool, egress=LOOPBACK).deliver(channel, message)
    assert delivered.ok and delivered.egress_refusal is None
    assert len(receiver.requests) == 1


async def test_email_connects_only_where_the_policy_permits(
    smtp_receiver: Callable[..., SMTPReceiver], message: Message
) -> None:
    receiver = smtp_receiver()
    channel = EmailTarget(
        host="localhost",
        port=receiver.port,
        sender="certctl@example.test",
        recipients=("ops@example.test",),
        security=SmtpSecurity.NONE,
    )
    refused = await send_email(channel, message, egress=EgressPolicy())
    assert not refused.ok and refused.error is not None
    assert refused.error.kind is ErrorKind.CONFIGURATION
    assert refused.egress_refusal is not None and "a loopback address" in refused.egress_refusal
    assert receiver.messages == []
    delivered = await send_email(channel, message, egress=LOOPBACK)
    assert delivered.ok, delivered.detail
    assert len(receiver.wait_for_messages(1, seconds=10)) == 1


async def test_a_header_the_http_library_refuses_is_a_configuration_error(
    http_receiver: Callable[..., HTTPReceiver], message: Message, pool: HttpClientPool
) -> None:
    receiver = http_receiver()
    channel = WebhookTarget(url=receiver.url, headers={"X-Team": "ops\r\nX-Injected: 1"})
    result = await Notifier(pool).deliver(channel, message)
    assert not result.ok and result.error is not None
    assert result.error.kind is ErrorKind.CONFIGURATION
    assert result.error.message.startswith("invalid HTTP request header")
    assert receiver.requests == []
