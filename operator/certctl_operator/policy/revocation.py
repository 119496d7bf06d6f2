"""Revocation decisions: which serial a Revocation means, and how the revocation list changes.

Nothing here talks to Kubernetes or reads the clock; callers pass ``now``.

Where the revocation list lives
-------------------------------
An issuer's list has two parts. The *head* is the issuer's status:
``crlNumber``, ``crlThisUpdate``, ``crlNextUpdate``, ``revocationArchiveGeneration``
and ``revokedCertificates``, which holds only the newest entries (the
*journal*, at most :data:`MAX_JOURNAL_ENTRIES`). The *archive* is a fixed set
of :data:`SHARD_COUNT` ConfigMaps per issuer; an entry's shard is chosen by a
hash of its serial (:func:`shard_index`), and each shard holds its entries in
a compact text form (:func:`encode_revoked`). The list is the union of both.

Every revocation is one resourceVersion-guarded write of the head: the entry
joins the journal with the next CRL number. Entries move from the journal to
the archive later (:func:`merge_revoked` computes a shard's new content), in
an order that keeps every entry in at least one of the two places at any
moment; see :mod:`certctl_operator.kube.revocation_store` for that protocol.
Each entry carries the number of the first CRL that lists it, so the CRL of
any number is a pure function of the union (:func:`listed_on`), and signing
it again after a crash gives the same CRL.

The same shards, under another name, hold the serials an issuer issued and
their notAfter (:func:`encode_issued`): what the OCSP responder answers
"good" for, pruned once they expire.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from certctl_operator.api import (
    IssuerKind,
    IssuerReference,
    IssuerStatus,
    IssuerType,
    RequestedBySource,
    RevocationReason,
    RevokedCertificate,
)
from certctl_operator.api.metadata_keys import ANNOTATION_REQUESTED_BY
from certctl_operator.policy.backoff import backoff_delay
from certctl_operator.policy.clock import require_aware

CLUSTER_SEGMENT = "_cluster"
"""Path segment that stands for a ClusterIssuer where an Issuer has its namespace."""


MAX_JOURNAL_ENTRIES = 4000
"""The most entries the journal in an issuer's status takes.

The whole issuer must stay under the API server's object size limit (about
1.5 MiB): each entry costs some 170 bytes in the status and about as much
again in metadata.managedFields, where the API server tracks every entry of a
map-type list. 4,000 entries make about 1.3 MiB. The journal is emptied into
the archive on every look of the issuer's publisher and by a revocation that
finds it full; only when that cannot happen (the archive is full) does a
revocation wait (``RevocationListFull``) instead of failing on the API server."""

SHARD_COUNT = 16
"""ConfigMaps per issuer for its archived revocations, and as many for its issued serials."""

MAX_SHARD_BYTES = 900_000
"""The most bytes of entries one shard takes: a ConfigMap's data is limited to 1 MiB.

An archived revocation takes about 70 bytes (a 20-octet serial), an issued
serial about 52, so the 16 shards hold some 200,000 unexpired revocations and
270,000 unexpired issued serials per issuer when the hash spreads them evenly."""

REVOKED_SHARD_KEY = "revoked.v1"
ISSUED_SHARD_KEY = "issued.v1"

PENDING_RETRY_BASE = timedelta(seconds=2)
PENDING_RETRY_CAP = timedelta(minutes=5)


_HEX_DIGITS = re.compile("[0-9a-f]+")


def normalize_serial(value: str | int) -> str:
    """A serial number as lowercase hexadecimal in whole octets, without separators.

    Accepts an int or hex text in any case, with or without ``:`` separators or
    a ``0x`` prefix; ``"0A:FF"``, ``"aff"`` and ``2815`` all give ``"0aff"``.
    """
    if isinstance(value, bool):
        raise ValueError("a serial number is not a boolean")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip().lower().replace(":", "").replace(" ", "")
        text = text.removeprefix("0x")
        if not _HEX_DIGITS.fullmatch(text):
            raise ValueError(f"serial number {value!r} is not hexadecimal")
        number = int(text, 16)
    if number <= 0:
        raise ValueError("a serial number is positive")
    digits = f"{number:x}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def serial_int(value: str) -> int:
    """The integer value of a hex serial number."""
    return int(normalize_serial(value), 16)


# --------------------------------------------------------------------------- issuers


@dataclass(frozen=True)
class IssuerKey:
    """Where an issuer lives: an Issuer in a namespace, or a ClusterIssuer."""

    kind: IssuerKind
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, ref: IssuerReference, namespace: str) -> IssuerKey:
        """The issuer a reference made from ``namespace`` points to."""
        if ref.kind is IssuerKind.CLUSTER_ISSUER:
            return cls(IssuerKind.CLUSTER_ISSUER, ref.name)
        return cls(IssuerKind.ISSUER, ref.name, namespace)

    @classmethod
    def from_segment(cls, segment: str, name: str) -> IssuerKey:
        """The issuer of an URL ``/<segment>/<name>``: ``_cluster`` means a ClusterIssuer."""
        if segment == CLUSTER_SEGMENT:
            return cls(IssuerKind.CLUSTER_ISSUER, name)
        return cls(IssuerKind.ISSUER, name, segment)

    @property
    def cluster(self) -> bool:
        return self.kind is IssuerKind.CLUSTER_ISSUER

    @property
    def segment(self) -> str:
        """The namespace, or ``_cluster`` for a ClusterIssuer (as in the CRL and OCSP URLs)."""
        return CLUSTER_SEGMENT if self.namespace is None else self.namespace

    @property
    def label(self) -> str:
        """``<namespace>/<name>`` or ``_cluster/<name>``: the metric label and log spelling."""
        return f"{self.segment}/{self.name}"

    @property
    def reference(self) -> IssuerReference:
        return IssuerReference(name=self.name, kind=self.kind)

    def crl_path(self) -> str:
        return f"/crl/{self.segment}/{self.name}.crl"

    def ocsp_path(self) -> str:
        return f"/ocsp/{self.segment}/{self.name}"


# --------------------------------------------------------------------------- who asked


def requested_by(metadata: Mapping[str, Any]) -> tuple[str | None, RequestedBySource | None]:
    """Who created a Revocation, as far as its metadata tells, and where that was read.

    The ``certctl.io/requested-by`` annotation wins when set (it is what the
    requester states). Otherwise the field manager that owns the spec is used:
    a Revocation's spec cannot change after creation, so whoever owns it wrote
    it when creating the object (``kubectl-create``, ``kubectl-client-side-apply``,
    ``argocd-controller``...). Neither is an authenticated identity.
    """
    annotations = metadata.get("annotations") or {}
    stated = str(annotations.get(ANNOTATION_REQUESTED_BY, "")).strip()
    if stated:
        return stated[:512], RequestedBySource.ANNOTATION
    entries = [e for e in metadata.get("managedFields") or [] if isinstance(e, Mapping) and e.get("manager")]
    main = [e for e in entries if not e.get("subresource")]
    owners = [e for e in main if "f:spec" in (e.get("fieldsV1") or {})]
    # Earliest first: a later writer cannot own the immutable spec, but be safe about odd histories.
    for entry in sorted(owners or main, key=lambda e: str(e.get("time") or "")):
        return str(entry["manager"])[:512], RequestedBySource.FIELD_MANAGER
    return None, None


# --------------------------------------------------------------------------- what to revoke


class Outcome(StrEnum):
    PENDING = "Pending"
    FAILED = "Failed"
    TARGET = "Target"


@dataclass(frozen=True)
class RevocationTarget:
    """What to do with a Revocation: wait (Pending), give up (Failed), or revoke ``serial``."""

    outcome: Outcome
    reason: str
    message: str
    serial: str | None = None
    not_after: datetime | None = None
    issuer: IssuerKey | None = None

    @classmethod
    def pending(cls, reason: str, message: str) -> RevocationTarget:
        return cls(Outcome.PENDING, reason, message)

    @classmethod
    def failed(cls, reason: str, message: str) -> RevocationTarget:
        return cls(Outcome.FAILED, reason, message)


@dataclass(frozen=True)
class CurrentCertificate:
    """The leaf certificate found in a ManagedCertificate's Secret."""

    serial: str
    not_after: datetime
    self_signed: bool
    issued_by_issuer_ca: bool
    """Whether the issuer's current CA key signed it (False when that cannot be checked)."""


@dataclass(frozen=True)
class RevokingIssuer:
    """What the decision needs to know about the issuer of the certificate."""

    key: IssuerKey
    type: IssuerType | None
    """None when the issuer object does not exist."""
    ca_problem: str | None = None
    """Why the CA key pair cannot be used, for a CA issuer; None when it can."""
    revoked: Sequence[ListEntry] = ()


def resolve_target(
    *,
    certificate_name: str,
    certificate_exists: bool,
    secret_name: str | None,
    current: CurrentCertificate | None,
    issuer: RevokingIssuer | None,
    revoked_serials: Iterable[str],
    created_at: datetime | None,
) -> RevocationTarget:
    """Decide what a Revocation of ``certificate_name`` revokes, or why it waits or fails.

    ``revoked_serials`` are the certificate's serials already revoked (its
    status.revokedSerialNumbers). A Revocation means the certificate that was
    current when it was created: when one of those serials was revoked at or
    after ``created_at`` (another Revocation got there first and the
    certificate may have been reissued since), that serial is the target, so
    two Revocations of one certificate revoke it once and never its
    replacement. Otherwise the certificate now in the Secret is the target.
    """
    if not certificate_exists:
        return RevocationTarget.pending(
            "CertificateNotFound",
            f"ManagedCertificate {certificate_name} does not exist (yet); waiting for it",
        )
    if issuer is not None and issuer.type is IssuerType.SELF_SIGNED:
        return RevocationTarget.failed(
            "SelfSignedNotRevocable",
            f"ManagedCertificate {certificate_name} is issued by the selfSigned issuer {issuer.key.label}: "
            "each such certificate signs itself, so no CRL or OCSP responder exists that could list it. "
            "Replace the certificate instead (delete its Secret or move it to a ca issuer).",
        )
    if current is None:
        where = f"Secret {secret_name}" if secret_name else "its Secret"
        return RevocationTarget.pending(
            "CertificateNotIssued",
            f"ManagedCertificate {certificate_name} has no certificate in {where} yet; waiting for issuance",
        )
    if current.self_signed:
        return RevocationTarget.failed(
            "SelfSignedNotRevocable",
            f"the certificate in Secret {secret_name} (serial {current.serial}) is self-signed: no CRL or "
            "OCSP responder exists that could list it",
        )
    if issuer is None or issuer.type is None:
        label = issuer.key.label if issuer is not None else "of the certificate"
        return RevocationTarget.pending(
            "IssuerNotFound", f"the issuer {label} does not exist (yet); waiting for it"
        )
    if issuer.ca_problem is not None:
        return RevocationTarget.pending(
            "IssuerNotReady",
            f"the CA of issuer {issuer.key.label} cannot sign a CRL: {issuer.ca_problem}",
        )

    earlier = _earlier_target(issuer.revoked, revoked_serials, created_at)
    if earlier is not None:
        return RevocationTarget(
            Outcome.TARGET,
            "AlreadyRevoked",
            f"serial {earlier.serial_number} of {certificate_name} was already revoked after this "
            "Revocation was created",
            serial=earlier.serial_number,
            not_after=earlier.not_after,
            issuer=issuer.key,
        )
    if not current.issued_by_issuer_ca:
        return RevocationTarget.failed(
            "IssuerMismatch",
            f"the certificate in Secret {secret_name} (serial {current.serial}) was not signed by the "
            f"current CA of issuer {issuer.key.label}, so that issuer's CRL cannot revoke it",
        )
    return RevocationTarget(
        Outcome.TARGET,
        "Resolved",
        f"revoking serial {current.serial} of {certificate_name}",
        serial=current.serial,
        not_after=current.not_after,
        issuer=issuer.key,
    )


def _earlier_target(
    listed: Sequence[ListEntry], revoked_serials: Iterable[str], created_at: datetime | None
) -> ListEntry | None:
    if created_at is None:
        return None
    mine = set()
    for serial in revoked_serials:
        try:
            mine.add(normalize_serial(serial))
        except ValueError:
            continue
    candidates = [
        entry
        for entry in listed
        if entry.serial_number in mine and entry.revoked_at >= created_at.replace(microsecond=0)
    ]
    return min(candidates, key=lambda entry: entry.revoked_at) if candidates else None


# --------------------------------------------------------------------------- the list


@dataclass(frozen=True, slots=True)
class ArchivedEntry:
    """An archived entry as the operator keeps it in memory.

    The fields of :class:`RevokedCertificate` in a plain slotted object, a
    quarter of a validated model's size: 100,000 of them take some 30 MB
    instead of 120 MB.
    """

    serial_number: str
    revoked_at: datetime
    reason: RevocationReason
    not_after: datetime | None
    crl_number: int | None

    @classmethod
    def of(cls, entry: ListEntry) -> ArchivedEntry:
        if isinstance(entry, ArchivedEntry):
            return entry
        return cls(entry.serial_number, entry.revoked_at, entry.reason, entry.not_after, entry.crl_number)

    def as_revoked_certificate(self) -> RevokedCertificate:
        return RevokedCertificate(
            serial_number=self.serial_number,
            revoked_at=self.revoked_at,
            reason=self.reason,
            not_after=self.not_after,
            crl_number=self.crl_number,
        )


ListEntry = RevokedCertificate | ArchivedEntry
"""An entry of an issuer's revocation list, from the journal or from the archive."""


def as_revoked_certificate(entry: ListEntry) -> RevokedCertificate:
    return entry if isinstance(entry, RevokedCertificate) else entry.as_revoked_certificate()


@dataclass(frozen=True)
class CRLState:
    """An issuer's CRL: number, dates, journal (what the status holds) and every entry it lists.

    ``journal`` is what ``revokedCertificates`` becomes in the guarded write
    of the head; ``entries`` is what the signed CRL lists. They are the same
    until :meth:`with_archive` adds the archived entries.
    """

    number: int
    this_update: datetime
    next_update: datetime
    entries: tuple[ListEntry, ...]
    added: RevokedCertificate | None = None
    dropped: tuple[str, ...] = field(default=())
    journal: tuple[RevokedCertificate, ...] | None = None

    def status_fields(self) -> dict[str, Any]:
        """The camelCase status fields of the head that describe this CRL."""
        probe = IssuerStatus(
            crl_number=self.number,
            crl_this_update=self.this_update,
            crl_next_update=self.next_update,
            revoked_certificates=[
                as_revoked_certificate(e)
                for e in (self.journal if self.journal is not None else self.entries)
            ],
        ).dump()
        return {
            "crlNumber": probe["crlNumber"],
            "crlThisUpdate": probe["crlThisUpdate"],
            "crlNextUpdate": probe["crlNextUpdate"],
            "revokedCertificates": probe["revokedCertificates"],
        }

    def with_archive(self, archived: Iterable[ListEntry], grace: timedelta) -> CRLState:
        """This CRL listing the archived entries too (those it covers, see :func:`listed_on`)."""
        journal = self.journal
        if journal is None:
            journal = tuple(as_revoked_certificate(e) for e in self.entries)
        entries = listed_on(union_of(archived, journal), self.number, self.this_update, grace)
        return CRLState(
            number=self.number,
            this_update=self.this_update,
            next_update=self.next_update,
            entries=tuple(entries),
            added=self.added,
            dropped=self.dropped,
            journal=journal,
        )


class RevocationListFull(Exception):
    """The issuer's list already holds as many unexpired entries as it can."""


def find_entry(status: IssuerStatus, serial: str) -> RevokedCertificate | None:
    """The journal entry of ``serial``, if it is in the journal."""
    wanted = normalize_serial(serial)
    for entry in status.revoked_certificates:
        if entry.serial_number == wanted:
            return entry
    return None


def _still_listed(
    entries: Iterable[RevokedCertificate], now: datetime, grace: timedelta
) -> list[RevokedCertificate]:
    return [e for e in entries if e.not_after is None or e.not_after + grace >= now]


def next_crl(
    status: IssuerStatus,
    now: datetime,
    validity: timedelta,
    grace: timedelta,
    *,
    add: RevokedCertificate | None = None,
    floor: int | None = None,
) -> CRLState:
    """The next CRL after ``status``'s: the number grows by one, dates restart at ``now``.

    Works on the journal (the status's ``revokedCertificates``); the caller
    has checked the archive for ``add``'s serial. Entries whose certificate
    expired more than ``grace`` ago leave the journal (pass the CRL refresh
    interval, so each entry is still on one regular CRL issued after the
    certificate expired). ``add`` joins the journal with the new CRL number as
    the number that first lists it; a serial already in the journal is never
    listed twice (its first entry is kept unchanged). ``floor`` is the highest
    CRL number already published, should the status have fallen behind it (an
    issuer deleted and created again under the same name): the new number is
    above both.
    """
    require_aware(now)
    if validity <= timedelta(0):
        raise ValueError("the CRL validity must be positive")
    this_update = now.replace(microsecond=0)
    number = max(status.crl_number or 0, floor or 0) + 1
    kept = _still_listed(status.revoked_certificates, this_update, grace)
    kept_serials = {e.serial_number for e in kept}
    dropped = tuple(
        e.serial_number for e in status.revoked_certificates if e.serial_number not in kept_serials
    )
    added: RevokedCertificate | None = None
    if add is not None and add.serial_number not in kept_serials:
        if len(kept) >= MAX_JOURNAL_ENTRIES:
            raise RevocationListFull(
                f"the journal of the revocation list already holds {len(kept)} entries, its maximum"
            )
        added = add.model_copy(update={"crl_number": number})
        kept.append(added)
    return CRLState(
        number=number,
        this_update=this_update,
        next_update=this_update + validity,
        entries=tuple(kept),
        added=added,
        dropped=dropped,
        journal=tuple(kept),
    )


def union_of(archived: Iterable[ListEntry], journal: Iterable[ListEntry]) -> list[ListEntry]:
    """The whole list: archive and journal, each serial once (an entry is never changed once listed)."""
    merged: dict[str, ListEntry] = {e.serial_number: e for e in archived}
    for entry in journal:
        merged.setdefault(entry.serial_number, entry)
    return list(merged.values())


def listed_on(
    entries: Iterable[ListEntry], number: int, this_update: datetime, grace: timedelta
) -> list[ListEntry]:
    """The entries the CRL ``number`` issued at ``this_update`` lists.

    Those first listed at or before ``number`` (entries without a number came
    from before numbers were kept: every CRL lists them) whose certificate
    had not expired more than ``grace`` before ``this_update``.
    """
    return [
        e
        for e in entries
        if (e.crl_number is None or e.crl_number <= number)
        and (e.not_after is None or e.not_after + grace >= this_update)
    ]


def entry_leaving(
    entries: Iterable[ListEntry], this_update: datetime, now: datetime, grace: timedelta
) -> bool:
    """Whether an entry on the CRL issued at ``this_update`` has to leave it by ``now``."""
    return any(e.not_after is not None and this_update <= e.not_after + grace < now for e in entries)


def crl_refresh_due(
    status: IssuerStatus,
    now: datetime,
    refresh_interval: timedelta,
    grace: timedelta,
    archived: Iterable[ListEntry] = (),
) -> bool:
    """Whether the issuer needs a new CRL now, with no revocation to add.

    True when none was signed yet, when ``refresh_interval`` has passed since
    the last one, when the last one is at or past its nextUpdate, or when an
    entry (of the journal or ``archived``) is due to leave the list.
    """
    require_aware(now)
    if status.crl_number is None or status.crl_this_update is None or status.crl_next_update is None:
        return True
    if now >= status.crl_this_update + refresh_interval or now >= status.crl_next_update:
        return True
    if len(_still_listed(status.revoked_certificates, now, grace)) != len(status.revoked_certificates):
        return True
    return entry_leaving(archived, status.crl_this_update, now, grace)


def new_crl_due(
    status: IssuerStatus,
    now: datetime,
    refresh_interval: timedelta,
    *,
    published: tuple[int, str] | None,
    ca_fingerprint: str,
    archived: Iterable[ListEntry] = (),
) -> bool:
    """Whether the issuer's timer must start the next CRL.

    ``published`` is (number, CA fingerprint) of the CRL served now, if any.
    Besides :func:`crl_refresh_due`: a served CRL numbered above the status
    (the status restarted, as with an issuer created again under an old
    name), or one signed by a CA key that has since been replaced.
    """
    if crl_refresh_due(status, now, refresh_interval, refresh_interval, archived):
        return True
    if published is None:
        return False
    number, fingerprint = published
    return number > (status.crl_number or 0) or fingerprint != ca_fingerprint


# --------------------------------------------------------------------------- the archive


def shard_index(serial: str | int, count: int = SHARD_COUNT) -> int:
    """Which of ``count`` shards holds ``serial``: a hash of its octets, so shards fill evenly."""
    digest = hashlib.sha256(bytes.fromhex(normalize_serial(serial))).digest()
    return int.from_bytes(digest[:4], "big") % count


_REASONS_BY_CODE = {reason.code: reason for reason in RevocationReason}


def _epoch(value: datetime | None) -> str:
    return "-" if value is None else str(int(value.timestamp()))


def _from_epoch(text: str) -> datetime | None:
    return None if text == "-" else datetime.fromtimestamp(int(text), UTC)


def encode_revoked(entries: Iterable[ListEntry]) -> str:
    """Archived entries as text, one line each, sorted by serial.

    ``serial,revokedAt,reasonCode,notAfter,crlNumber``: hex serial, Unix
    seconds, the RFC 5280 reason code, ``-`` for an absent notAfter or CRL
    number. About 70 bytes for a 20-octet serial.
    """
    lines = [
        f"{e.serial_number},{_epoch(e.revoked_at)},{e.reason.code},{_epoch(e.not_after)},"
        f"{'-' if e.crl_number is None else e.crl_number}\n"
        for e in sorted(entries, key=lambda e: (len(e.serial_number), e.serial_number))
    ]
    return "".join(lines)


def decode_revoked(text: str) -> dict[str, ArchivedEntry]:
    """Archived entries by serial; a line that does not parse raises ValueError (never skipped)."""
    entries: dict[str, ArchivedEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        try:
            serial, revoked_at, code, not_after, crl_number = line.split(",")
            revoked = _from_epoch(revoked_at)
            if revoked is None:
                raise ValueError("no revocation time")
            entry = ArchivedEntry(
                normalize_serial(serial),
                revoked,
                _REASONS_BY_CODE[int(code)],
                _from_epoch(not_after),
                None if crl_number == "-" else int(crl_number),
            )
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"line {number} of an archived revocation list is not an entry: {error}"
            ) from None
        entries[entry.serial_number] = entry
    return entries


def merge_revoked(
    archived: Mapping[str, ListEntry],
    moving: Iterable[ListEntry],
    crl_this_update: datetime | None,
    grace: timedelta,
) -> dict[str, ListEntry]:
    """A shard's next content: ``moving`` joins, entries no CRL will list again leave.

    An entry already archived is kept as it is. An entry leaves once its
    certificate expired more than ``grace`` before ``crl_this_update``, the
    thisUpdate of the issuer's current CRL: neither that CRL (should it be
    signed again) nor any later one lists it.
    """
    merged: dict[str, ListEntry] = dict(archived)
    for entry in moving:
        merged.setdefault(entry.serial_number, entry)
    if crl_this_update is None:
        return merged
    return {
        serial: e
        for serial, e in merged.items()
        if e.not_after is None or e.not_after + grace >= crl_this_update
    }


def unlisted(entries: Iterable[ListEntry], crl_this_update: datetime | None, grace: timedelta) -> list[str]:
    """Serials of ``entries`` that no CRL lists any more (see :func:`merge_revoked`): they may be deleted."""
    if crl_this_update is None:
        return []
    return [
        e.serial_number for e in entries if e.not_after is not None and e.not_after + grace < crl_this_update
    ]


def encode_issued(serials: Mapping[str, datetime]) -> str:
    """Issued serials as text, ``serial,notAfter`` (Unix seconds) a line, sorted by serial."""
    return "".join(
        f"{serial},{_epoch(not_after)}\n"
        for serial, not_after in sorted(serials.items(), key=lambda item: (len(item[0]), item[0]))
    )


def decode_issued(text: str) -> dict[str, datetime]:
    """Issued serials and their notAfter; a line that does not parse raises ValueError."""
    serials: dict[str, datetime] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        try:
            serial, not_after = line.split(",")
            expiry = _from_epoch(not_after)
            if expiry is None:
                raise ValueError("no notAfter")
            serials[normalize_serial(serial)] = expiry
        except ValueError as error:
            raise ValueError(f"line {number} of an issued-serials list is not an entry: {error}") from None
    return serials


def merge_issued(
    serials: Mapping[str, datetime], add: Mapping[str, datetime], now: datetime
) -> dict[str, datetime]:
    """An issued-serials shard's next content: ``add`` joins, expired serials leave.

    Past its notAfter a certificate is neither good nor revoked for OCSP
    (RFC 6960 leaves it to the responder), so nothing needs its serial.
    """
    require_aware(now)
    merged = {serial: expiry for serial, expiry in serials.items() if expiry >= now}
    for serial, expiry in add.items():
        if expiry >= now:
            merged[normalize_serial(serial)] = expiry
    return merged


# --------------------------------------------------------------------------- after revoking


def issuer_notification(issuer_type: IssuerType) -> tuple[bool, str]:
    """Whether the issuing CA was told about the revocation, and why (not).

    The built-in CA and self-signed issuers have no CA service to tell: the
    issuer's own revocation list is the authority, so there is nothing to notify.
    """
    if issuer_type is IssuerType.CA:
        return False, (
            "the issuer's CA is run by this operator: its revocation list (the issuer's status and its "
            "revocation-list ConfigMaps) is the authority, so there is no external CA to notify"
        )
    return False, "a selfSigned issuer has no CA to notify"


def pending_retry_delay(attempts: int) -> timedelta:
    """Wait before looking at a waiting Revocation again, after ``attempts`` looks."""
    return backoff_delay(max(attempts, 0), PENDING_RETRY_BASE, PENDING_RETRY_CAP)


def severity_of(reason: RevocationReason) -> str:
    """Notification severity of a revocation: critical for compromised keys, else warning."""
    if reason in (RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE):
        return "critical"
    return "warning"
