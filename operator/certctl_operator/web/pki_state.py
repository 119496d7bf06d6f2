"""What the CRL and OCSP endpoints answer from: per-issuer PKI state kept in memory.

Nothing here is the source of truth. The revocation list lives in each
issuer's status (the journal) and its revocation-list ConfigMaps (the
archive), the issued serials in ConfigMaps too, the signed CRL in a ConfigMap,
the OCSP signing key pair in a Secret (see
:mod:`certctl_operator.kube.revocation_store`); this module only keeps copies
so that an HTTP request never waits on the API server. The copies are filled
by the handlers (after their own writes) and from watch events, and rebuilt
after a restart.

Versions only move forward: a journal or CRL with a lower CRL number than the
one already known is ignored, so a late watch event never hides a revocation
that this process has just recorded. A journal from a head whose archive
generation is not the one of the archive in memory (entries moved that the
copy here has not read yet) is added to the journal known, never replaces it,
until the archive is read again: an entry leaves memory only once the archive
copy holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from certctl_operator.api import IssuerReference, IssuerStatus, RevokedCertificate
from certctl_operator.context import OperatorContext
from certctl_operator.pki import CertificateStatus, OCSPResponder, RevokedEntry, SigningAuthority
from certctl_operator.policy.revocation import (
    ArchivedEntry,
    IssuerKey,
    ListEntry,
    normalize_serial,
    serial_int,
    union_of,
)

COLD_HOLD = 2.0
"""Seconds before an HTTP request may read the same issuer's state from the API server again."""
COLD_BUDGET = 20
"""Reads from the API server that HTTP requests may cause per second, all issuers together."""


@dataclass(frozen=True)
class PublishedCRL:
    """A signed CRL as served over HTTP."""

    der: bytes
    number: int
    this_update: datetime
    next_update: datetime | None
    ca_fingerprint: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.der).hexdigest()[:32] + '"'


@dataclass
class IssuerPKI:
    """One issuer's signing material and revocation list, as last seen."""

    key: IssuerKey
    uid: str | None = None
    """The issuer object's uid, once read: log records about the issuer name it."""
    authority: SigningAuthority | None = None
    authority_version: str | None = None
    responder: OCSPResponder | None = None
    ocsp_enabled: bool = True
    ocsp_validity: timedelta = timedelta(hours=1)
    crl: PublishedCRL | None = None
    journal: dict[str, RevokedCertificate] = field(default_factory=dict)
    """The journal of the head last seen (plus entries kept until the archive copy holds them)."""
    list_number: int = -1
    """CRL number of the head the journal was taken from (-1: none seen yet)."""
    journal_generation: int = -1
    """Archive generation of the head the journal was taken from."""
    archive: dict[str, ArchivedEntry] = field(default_factory=dict)
    archive_generation: int | None = None
    """Generation of the head the archive was read at; None: not read yet."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while this process starts or publishes the issuer's CRL, so its CRLs go out in order."""

    @property
    def published_number(self) -> int | None:
        return self.crl.number if self.crl is not None else None

    def archive_current(self, generation: int | None) -> bool:
        """Whether the archive copy is at least as new as a head of archive ``generation``."""
        return self.archive_generation is not None and self.archive_generation >= (generation or 0)

    def set_archive(self, entries: dict[str, ArchivedEntry], generation: int) -> None:
        """The archive as read at (or moved to by this process at) ``generation``."""
        if self.archive_generation is not None and generation < self.archive_generation:
            return
        self.archive, self.archive_generation = entries, generation

    def add_archived(self, entries: list[RevokedCertificate], generation: int) -> None:
        """This process moved ``entries`` to the archive, reaching ``generation``."""
        if self.archive_generation is None or self.archive_generation != generation - 1:
            return  # not in step: the next look reads the archive again
        for entry in entries:
            self.archive.setdefault(entry.serial_number, ArchivedEntry.of(entry))
        self.archive_generation = generation

    def listed(self) -> list[ListEntry]:
        """Every entry known: archive and journal."""
        return union_of(self.archive.values(), self.journal.values())

    def revoked_entry(self, serial: int) -> ListEntry | None:
        text = normalize_serial(serial)
        found: ListEntry | None = self.journal.get(text)
        return found if found is not None else self.archive.get(text)


def _key_of(serial: str) -> str:
    try:
        return normalize_serial(serial)
    except ValueError:
        return serial


@dataclass(frozen=True, slots=True)
class _Issued:
    issuer: IssuerKey
    serial: int
    not_after: datetime | None


class IssuedIndex:
    """Serial numbers each issuer issued, from ManagedCertificate statuses and the issued-serials store.

    A serial counts as issued while it is some ManagedCertificate's current
    serial, and afterwards (it was renewed away, or its ManagedCertificate was
    deleted) until its notAfter: the old certificate may still be in use
    while the new one rolls out. Serials listed in a certificate's
    ``revokedSerialNumbers`` never count. Every serial the operator issues is
    also recorded in the issuer's issued-serials ConfigMaps before its Secret
    is written; :meth:`load` takes those in after a restart, so serials
    replaced before it still count until their notAfter.
    """

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], _Issued] = {}
        self._serials: dict[IssuerKey, dict[int, datetime | None]] = {}
        self._issuer_keys: dict[IssuerKey, IssuerKey] = {}
        self._excluded: dict[IssuerKey, set[int]] = {}
        self.loaded: set[IssuerKey] = set()
        """Issuers whose issued-serials store was read."""

    def load(self, issuer: IssuerKey, serials: Mapping[str, datetime]) -> None:
        """Take in the issuer's issued-serials store (serials already known keep their notAfter)."""
        known = self._serials.setdefault(issuer, {})
        for text, not_after in serials.items():
            known.setdefault(serial_int(text), not_after)
        self.loaded.add(issuer)

    def add(self, issuer: IssuerKey, serial: str, not_after: datetime) -> None:
        """A serial this process just recorded as issued."""
        self._serials.setdefault(issuer, {}).setdefault(serial_int(serial), not_after)

    def update(self, body: Mapping[str, Any]) -> tuple[str, str] | None:
        """Take in a ManagedCertificate's latest state; returns its (namespace, name)."""
        metadata = body.get("metadata") or {}
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if not namespace or not name:
            return None
        status = body.get("status") or {}
        spec = body.get("spec") or {}
        ref_body = status.get("issuerRef") or spec.get("issuerRef")
        serial_text = status.get("serialNumber")
        try:
            ref = IssuerReference.model_validate(ref_body) if ref_body else None
            serial = serial_int(serial_text) if serial_text else None
        except ValueError:
            ref, serial = None, None
        if ref is None or serial is None:
            self._retire((namespace, name))
            return namespace, name
        issuer = IssuerKey.of(ref, namespace)
        # One key object per issuer, not one per certificate: ten thousand certificates of one CA.
        issuer = self._issuer_keys.setdefault(issuer, issuer)
        for text in status.get("revokedSerialNumbers") or []:
            try:
                self._excluded.setdefault(issuer, set()).add(serial_int(text))
            except ValueError:
                continue
        not_after = _timestamp(status.get("notAfter"))
        previous = self._current.get((namespace, name))
        if previous is not None and (previous.issuer, previous.serial) != (issuer, serial):
            self._retire((namespace, name))
        self._current[(namespace, name)] = _Issued(issuer, serial, not_after)
        self._serials.setdefault(issuer, {})[serial] = not_after
        return namespace, name

    def forget(self, namespace: str, name: str) -> None:
        """The ManagedCertificate is gone; its last serial stays known until its notAfter."""
        self._retire((namespace, name))

    def _retire(self, cert: tuple[str, str]) -> None:
        # The serial stays in _serials with its notAfter; is_issued drops it once expired.
        self._current.pop(cert, None)

    def is_issued(self, issuer: IssuerKey, serial: int, now: datetime) -> bool:
        if serial in self._excluded.get(issuer, ()):
            return False
        serials = self._serials.get(issuer, {})
        if serial not in serials:
            return False
        not_after = serials[serial]
        if not_after is not None and now > not_after:
            current = any(i.issuer == issuer and i.serial == serial for i in self._current.values())
            if not current:
                del serials[serial]
                return False
        return True

    def count(self, issuer: IssuerKey) -> int:
        return len(self._serials.get(issuer, {}))


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def revoked_entry(item: ListEntry) -> RevokedEntry:
    """A list entry as the CRL and OCSP code takes it."""
    return RevokedEntry(serial_int(item.serial_number), item.revoked_at, str(item.reason), item.not_after)


class PKIRegistry:
    """Every issuer's in-memory PKI state, the issued-serial index, and revocation wake-ups."""

    def __init__(self) -> None:
        self.issuers: dict[IssuerKey, IssuerPKI] = {}
        self.index = IssuedIndex()
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._cold: dict[tuple[str, IssuerKey], float] = {}
        self._window_start = 0.0
        self._window_count = 0
        self.loading: dict[IssuerKey, asyncio.Task[None]] = {}
        """Loads of an issuer's signing state under way, started by OCSP requests."""

    def issuer(self, key: IssuerKey) -> IssuerPKI:
        state = self.issuers.get(key)
        if state is None:
            state = self.issuers[key] = IssuerPKI(key)
        return state

    def forget_issuer(self, key: IssuerKey) -> None:
        self.issuers.pop(key, None)

    def update_revoked(self, key: IssuerKey, status: IssuerStatus) -> bool:
        """Take in an issuer's journal unless a newer one is known; True when taken.

        It replaces the journal known only when the archive copy is at the
        head's generation; otherwise it is added (see the module notes).
        """
        number = status.crl_number if status.crl_number is not None else -1
        generation = status.revocation_archive_generation or 0
        state = self.issuer(key)
        if number < state.list_number or (
            number == state.list_number and generation < state.journal_generation
        ):
            return False
        # Keyed like the look-ups: a hand-written serial ("ABC", "0x0abc") still matches.
        journal = {_key_of(e.serial_number): e for e in status.revoked_certificates}
        if state.archive_generation == generation:
            state.journal = journal
        else:
            state.journal = {**state.journal, **journal}
        state.list_number, state.journal_generation = number, generation
        return True

    def set_crl(self, key: IssuerKey, crl: PublishedCRL) -> bool:
        """Serve ``crl`` unless a CRL with a higher number is already served; True when taken."""
        state = self.issuer(key)
        if state.crl is not None and crl.number < state.crl.number:
            return False
        state.crl = crl
        return True

    def cold_lookup(self, what: str, key: IssuerKey, now: float) -> bool:
        """Whether an HTTP request may read ``what`` of ``key`` from the API server now.

        Each (what, issuer) at most once per :data:`COLD_HOLD` seconds, and all
        together at most :data:`COLD_BUDGET` per second: the endpoints are
        unauthenticated and anyone picks the issuer names in their URLs.
        """
        last = self._cold.get((what, key))
        if last is not None and now - last < COLD_HOLD:
            return False
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        if self._window_count >= COLD_BUDGET:
            return False
        self._window_count += 1
        if len(self._cold) > 10000:
            self._cold.clear()
        self._cold[(what, key)] = now
        return True

    def certificate_status(self, key: IssuerKey, serial: int, now: datetime) -> CertificateStatus:
        """What OCSP says about ``serial`` of issuer ``key``: revoked, good (issued here) or unknown."""
        state = self.issuers.get(key)
        if state is not None:
            entry = state.revoked_entry(serial)
            if entry is not None:
                return CertificateStatus.from_entry(revoked_entry(entry))
        if self.index.is_issued(key, serial, now):
            return CertificateStatus.good()
        return CertificateStatus.unknown()

    # ----------------------------------------------------------------- wake-ups

    @contextmanager
    def waiting_for(self, namespace: str, certificate: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``namespace/certificate`` or any issuer changes."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault((namespace, certificate), set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop((namespace, certificate), None)

    def wake(self, namespace: str, certificate: str) -> None:
        for event in self._waiters.get((namespace, certificate), ()):
            event.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()


def registry_of(context: OperatorContext) -> PKIRegistry:
    """The registry of this operator process (created on first use)."""
    if context.pki_registry is None:
        context.pki_registry = PKIRegistry()
    return context.pki_registry


def hex_serial(serial: int) -> str:
    """A serial for messages: lowercase hex in whole octets."""
    return normalize_serial(serial)


__all__ = [
    "IssuedIndex",
    "IssuerPKI",
    "PKIRegistry",
    "PublishedCRL",
    "hex_serial",
    "registry_of",
    "revoked_entry",
]
