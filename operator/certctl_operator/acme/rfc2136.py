"""DNS-01 records published by RFC 2136 dynamic updates, signed with TSIG (RFC 8945).

Blocking (dnspython over TCP): the caller runs it in a thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl_operator.acme.flow import ACMEProblem

if TYPE_CHECKING:
    import dns.name

DNS_PORT = 53
TIMEOUT_SECONDS = 10.0
RECORD_TTL = 60

TSIG_ALGORITHMS = {
    "HMACMD5": "hmac-md5.sig-alg.reg.int.",
    "HMACSHA1": "hmac-sha1.",
    "HMACSHA224": "hmac-sha224.",
    "HMACSHA256": "hmac-sha256.",
    "HMACSHA384": "hmac-sha384.",
    "HMACSHA512": "hmac-sha512.",
}


def split_nameserver(nameserver: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port)."""
    if nameserver.startswith("["):
        host, _, rest = nameserver[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DNS_PORT
    if nameserver.count(":") == 1:
        host, _, port = nameserver.partition(":")
        return host, int(port)
    return nameserver, DNS_PORT


def find_zone(name: dns.name.Name, host: str, port: int) -> dns.name.Name:
    """The zone holding ``name``, from the SOA the authoritative server names for it."""
    import dns.message
    import dns.query
    import dns.rdatatype

    response = dns.query.tcp(
        dns.message.make_query(name, dns.rdatatype.SOA), host, port=port, timeout=TIMEOUT_SECONDS
    )
    for section in (response.answer, response.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.SOA:
                return rrset.name
    return name.parent()


def update_txt(
    nameserver: str,
    record_name: str,
    value: str,
    *,
    add: bool,
    tsig_key_name: str | None,
    tsig_algorithm: str,
    tsig_secret: bytes | None,
) -> None:
    """Add (or delete) one TXT value of ``record_name`` at ``nameserver``; ACMEProblem when refused."""
    # dnspython is imported by the first update: only DNS-01 solvers use it.
    import dns.exception
    import dns.name
    import dns.query
    import dns.rcode
    import dns.tsigkeyring
    import dns.update

    host, port = split_nameserver(nameserver)
    name = dns.name.from_text(record_name)
    try:
        zone = find_zone(name, host, port)
        keyring = None
        keyname = None
        if tsig_key_name:
            keyname = dns.name.from_text(tsig_key_name)
            keyring = dns.tsigkeyring.from_text({tsig_key_name: (tsig_secret or b"").decode("ascii").strip()})
        update = dns.update.Update(
            zone, keyring=keyring, keyname=keyname, keyalgorithm=TSIG_ALGORITHMS[tsig_algorithm]
        )
        if add:
            update.add(name, RECORD_TTL, "TXT", f'"{value}"')
        else:
            update.delete(name, "TXT", f'"{value}"')
        response = dns.query.tcp(update, host, port=port, timeout=TIMEOUT_SECONDS)
    except (dns.exception.DNSException, OSError, ValueError) as error:
        # dnspython's messages name the server and the failure, never the TSIG secret.
        raise ACMEProblem("dnsUpdate", f"RFC 2136 update of {record_name} failed: {error}") from None
    if response.rcode() != dns.rcode.NOERROR:
        raise ACMEProblem(
            "dnsUpdate",
            f"RFC 2136 update of {record_name} in zone {zone} refused: {dns.rcode.to_text(response.rcode())}",
        )
