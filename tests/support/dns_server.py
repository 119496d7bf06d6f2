"""A small authoritative DNS server on loopback taking RFC 2136 UPDATEs signed with TSIG.

It serves one zone: SOA queries name it (the way an updater finds the zone),
UPDATEs for another zone are answered NOTAUTH. It answers A queries for every
name with 127.0.0.1 (so HTTP-01 validations
reach the operator), TXT queries from what UPDATEs added, and nothing else.
Pebble, given it as ``-dnsserver``, finds the DNS-01 TXT records there. UDP and
TCP, as real servers do; ``refuse_updates`` makes it answer UPDATEs REFUSED.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

LOOPBACK = "127.0.0.1"


@dataclass
class Zone:
    """The records and the switches of a running server; shared with its threads under ``lock``."""

    keyring: dict[dns.name.Name, dns.tsig.Key]
    origin: dns.name.Name
    txt: dict[str, set[str]] = field(default_factory=dict)
    refuse_updates: bool = False
    hide_txt: bool = False
    """Answer TXT queries as if no record existed (a validation that must fail)."""
    updates_applied: int = 0
    updates_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def txt_values(self, name: str) -> set[str]:
        with self.lock:
            return set(self.txt.get(name.lower().rstrip(".") + ".", set()))

    def answer(self, wire: bytes) -> bytes | None:
        try:
            request = dns.message.from_wire(wire, keyring=self.keyring)
        except (dns.tsig.BadSignature, dns.tsig.PeerError, dns.message.UnknownTSIGKey):
            # Not answered in kind: a bad signature is simply refused.
            try:
                unsigned = dns.message.from_wire(wire, ignore_trailing=True, keyring=False)
            except dns.exception.DNSException:
                return None
            response = dns.message.make_response(unsigned)
            response.set_rcode(dns.rcode.NOTAUTH)
            with self.lock:
                self.updates_refused += 1
            return response.to_wire()
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA
        if request.opcode() == dns.opcode.UPDATE:
            self._update(request, response)
        else:
            self._query(request, response)
        return response.to_wire()

    def _update(self, request: dns.message.Message, response: dns.message.Message) -> None:
        with self.changed:
            if self.refuse_updates or not request.had_tsig:
                self.updates_refused += 1
                response.set_rcode(dns.rcode.REFUSED)
                return
            if request.zone[0].name != self.origin:  # RFC 2136 section 3.1.1: not our zone
                self.updates_refused += 1
                response.set_rcode(dns.rcode.NOTAUTH)
                return
            assert isinstance(request, dns.update.UpdateMessage)
            for rrset in request.update:
                name = rrset.name.to_text().lower()
                if rrset.rdtype != dns.rdatatype.TXT:
                    continue
                values = self.txt.setdefault(name, set())
                # dnspython keeps the RFC 2136 class of a deletion (NONE or ANY) in ``deleting``.
                if rrset.deleting is None:
                    values.update(b"".join(r.strings).decode() for r in rrset)
                elif rrset.deleting == dns.rdataclass.NONE:
                    values.difference_update(b"".join(r.strings).decode() for r in rrset)
                else:  # ANY: the whole RRset goes
                    values.clear()
            self.updates_applied += 1
            self.changed.notify_all()

    def _query(self, request: dns.message.Message, response: dns.message.Message) -> None:
        for question in request.question:
            name = question.name.to_text().lower()
            if question.rdtype == dns.rdatatype.SOA:
                soa = dns.rrset.from_text(
                    self.origin, 60, "IN", "SOA", f"ns.{self.origin} hostmaster.{self.origin} 1 60 60 60 60"
                )
                (response.answer if question.name == self.origin else response.authority).append(soa)
            elif question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", LOOPBACK))
            elif question.rdtype == dns.rdatatype.TXT:
                with self.lock:
                    values = [] if self.hide_txt else sorted(self.txt.get(name, ()))
                if values:
                    records = [f'"{value}"' for value in values]
                    response.answer.append(dns.rrset.from_text_list(question.name, 0, "IN", "TXT", records))


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data, sock = self.request
        answer = self.server.zone.answer(data)
        if answer is not None:
            sock.sendto(answer, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(10.0)
        try:
            while True:
                header = _read_exactly(conn, 2)
                if header is None:
                    return
                wire = _read_exactly(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                answer = self.server.zone.answer(wire)
                if answer is None:
                    return
                conn.sendall(struct.pack("!H", len(answer)) + answer)
        except OSError:
            return


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], zone: Zone) -> None:
        super().__init__(address, _UDPHandler)
        self.zone = zone


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], zone: Zone) -> None:
        super().__init__(address, _TCPHandler)
        self.zone = zone


@dataclass
class DNSServer:
    zone: Zone
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@contextmanager
def running_dns_server(tsig_keys: dict[str, str], origin: str = "acme.test.") -> Iterator[DNSServer]:
    """A server for zone ``origin`` on one loopback port (UDP and TCP), trusting ``tsig_keys``
    (name -> base64 secret) for updates."""
    zone = Zone(keyring=dns.tsigkeyring.from_text(tsig_keys), origin=dns.name.from_text(origin))
    tcp = _TCPServer((LOOPBACK, 0), zone)
    port = tcp.server_address[1]
    udp = _UDPServer((LOOPBACK, port), zone)
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        for server in (tcp, udp)
    ]
    for thread in threads:
        thread.start()
    try:
        yield DNSServer(zone, port)
    finally:
        for server in (tcp, udp):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)
