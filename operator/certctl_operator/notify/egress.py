"""Which network addresses notifications may be sent to: the egress policy, pure.

A NotificationChannel is written by whoever may create objects in a
namespace, yet its deliveries leave from the operator's Pod. Without a
guard a channel could make the operator POST to a cloud metadata service
(and return what it says in an error), or probe the cluster's internal
network. The policy decides per IP address:

* never reachable: the unspecified address (0.0.0.0/8, ::), multicast and
  reserved ranges (224.0.0.0/4, 240.0.0.0/4, ff00::/8);
* reachable only when named deliberately in the allow-list: cloud metadata
  services (169.254.169.254, 169.254.170.2, fd00:ec2::254, 100.100.100.200,
  192.0.0.192) by an entry for that single address, other link-local
  addresses (169.254.0.0/16, fe80::/10) by an entry inside a link-local
  range; a broad entry (``100.64.0.0/10`` for carrier-grade NAT, or
  ``0.0.0.0/0``) never opens them by accident;
* reachable only when an allow-list CIDR contains them: loopback
  (127.0.0.0/8, ::1), private ranges (10.0.0.0/8, 172.16.0.0/12,
  192.168.0.0/16), carrier-grade NAT (100.64.0.0/10) and unique local
  IPv6 (fc00::/7);
* everything else (the public internet) is reachable.

IPv4 addresses wrapped in IPv6 (IPv4-mapped ``::ffff:a.b.c.d`` and the NAT64
prefix ``64:ff9b::/96``) are judged as the IPv4 address they carry, so
``::ffff:169.254.169.254`` is a metadata address too.

The policy is applied twice: to the channel's host when the channel is
checked, and to every address a host name resolves to at the moment of
connecting (:mod:`certctl_operator.notify.egress_transport`), so a name
that later resolves to a refused address (DNS rebinding) is refused as well.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_LIST_SETTING = "CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS"
"""The environment variable of the allow-list, named in refusals so people know what to change."""


class AddressKind(StrEnum):
    """What kind of destination an address is, as far as the policy cares."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


NEVER_REACHABLE = frozenset({AddressKind.UNSPECIFIED, AddressKind.MULTICAST, AddressKind.RESERVED})
"""Kinds no allow-list opens."""

LINK_LOCAL_RANGES: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("169.254.0.0/16"),
    ipaddress.IPv6Network("fe80::/10"),
)

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

_RANGES: tuple[tuple[AddressKind, tuple[IPNetwork, ...]], ...] = tuple(
    (kind, tuple(ipaddress.ip_network(text) for text in texts))
    for kind, texts in (
        (AddressKind.UNSPECIFIED, ("0.0.0.0/8", "::/128")),
        (AddressKind.LOOPBACK, ("127.0.0.0/8", "::1/128")),
        (AddressKind.LINK_LOCAL, tuple(str(network) for network in LINK_LOCAL_RANGES)),
        (
            AddressKind.PRIVATE,
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
        ),
        (AddressKind.MULTICAST, ("224.0.0.0/4", "ff00::/8")),
        # 240/4 holds the broadcast address; ::/96 is the deprecated IPv4-compatible form.
        (AddressKind.RESERVED, ("240.0.0.0/4", "::/96")),
    )
)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address carries; others unchanged."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def classify(address: IPAddress) -> AddressKind:
    """The kind of ``address`` (judged as the IPv4 address it carries, if any)."""
    address = unwrap(address)
    if address in METADATA_ADDRESSES:
        return AddressKind.METADATA
    for kind, networks in _RANGES:
        if any(address in network for network in networks if network.version == address.version):
            return kind
    return AddressKind.PUBLIC


def parse_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is a literal one (brackets and a zone allowed), else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; ValueError names the first bad one."""
    networks: list[IPNetwork] = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError:
            raise ValueError(f"{text!r} is not a CIDR such as 10.0.0.0/8 or fd00::/8") from None
    return tuple(networks)


def _opens(network: IPNetwork, address: IPAddress, kind: AddressKind) -> bool:
    """Whether allow-list entry ``network`` opens ``address`` of ``kind``.

    Metadata services and link-local addresses must be named on purpose: an
    entry written for something else (a private range, ``0.0.0.0/0``) that
    happens to contain them does not open them.
    """
    if address not in network:
        return False
    if kind is AddressKind.METADATA:
        return network.num_addresses == 1
    if kind is AddressKind.LINK_LOCAL:
        return any(
            network.subnet_of(local)  # type: ignore[arg-type]
            for local in LINK_LOCAL_RANGES
            if local.version == network.version
        )
    return True


@dataclass(frozen=True)
class EgressPolicy:
    """The egress rules with an allow-list for loopback and private ranges."""

    allowed: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        return self.refusal(address) is None

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached (``"<address>, a <kind> address ..."``), or None when it may."""
        kind = classify(address)
        if kind is AddressKind.PUBLIC:
            return None
        if kind in NEVER_REACHABLE:
            return f"{address}, a {kind.value} address, which notifications never reach"
        carried = unwrap(address)
        if any(
            _opens(network, carried, kind) for network in self.allowed if network.version == carried.version
        ):
            return None
        if kind is AddressKind.METADATA:
            return (
                f"{address}, a {kind.value} address, which notifications reach only when the egress "
                f"allow-list ({ALLOW_LIST_SETTING}) names exactly this address"
            )
        if kind is AddressKind.LINK_LOCAL:
            return (
                f"{address}, a {kind.value} address, which notifications reach only through an egress "
                f"allow-list ({ALLOW_LIST_SETTING}) entry inside a link-local range"
            )
        return f"{address}, a {kind.value} address outside the egress allow-list ({ALLOW_LIST_SETTING})"

    def host_refusal(self, host: str) -> str | None:
        """Why the literal IP ``host`` is refused; None when allowed or a name (checked on connect)."""
        address = parse_address(host)
        return None if address is None else self.refusal(address)


EGRESS_REFUSES = "egress policy refuses"
"""How every refusal starts, in conditions and delivery errors alike."""


def literal_refusal_text(refusal: str) -> str:
    """The problem text for a literal IP destination the policy refuses."""
    return f"{EGRESS_REFUSES} {refusal}"


def resolved_refusal_text(host: str, refusal: str) -> str:
    """The problem text for a host name that resolves only to refused addresses."""
    return f"{EGRESS_REFUSES} {host}: it resolves to {refusal}"


class EgressRefused(Exception):
    """A connection the egress policy does not allow; the message names host, port and address only.

    ``problem`` is the refusal without the port, as a channel's condition shows it.
    """

    def __init__(self, problem: str, port: int) -> None:
        super().__init__(f"{problem} (connecting to port {port})")
        self.problem = problem
