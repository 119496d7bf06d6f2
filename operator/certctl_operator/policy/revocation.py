"""Revocation decisions: which serial a Revocation means, and how the revocation list changes.

Nothing here talks to Kubernetes or reads the clock; callers pass ``now``.

The durable revocation list of an issuer is its status: ``revokedCertificates``
together with ``crlNumber``, ``crlThisUpdate`` and ``crlNextUpdate``. Those
four fields describe the issuer's current CRL completely, so the signed CRL is
only a rendering of them. Every change of the list (a revocation, entries
leaving after expiry) and every refresh yields the next CRL number; the
operator writes the new fields in one resourceVersion-guarded update, so the
list is either changed completely or not at all, and a serial is listed at
most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from certctl_operator.policy.backoff import backoff_delay
from certctl_operator.policy.clock import require_aware

CLUSTER_SEGMENT = "_cluster"
"""Path segment that stands for a ClusterIssuer where an Issuer has its namespace."""

REQUESTED_BY_ANNOTATION = "certctl.io/requested-by"
"""Annotation a person or pipeline may set on a Revocation to say who asked for it."""

MAX_LISTED_SERIALS = 4000
"""The most entries an issuer's revocation list takes.

The schema allows 10,000, but the whole issuer must stay under the API
server's object size limit (about 1.5 MiB): each entry costs some 170 bytes
in the status and about as much again in metadata.managedFields, where the
API server tracks every entry of a map-type list. 4,000 entries make about
1.3 MiB; beyond that a revocation waits (``RevocationListFull``) instead of
failing on the API server."""

PENDING_RETRY_BASE = timedelta(seconds=2)
PENDING_RETRY_CAP = timedelta(minutes=5)


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
        if not text or any(c not in "0123456789abcdef" for c in text):
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
    stated = str(annotations.get(REQUESTED_BY_ANNOTATION, "")).strip()
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
class Resolution:
    """What to do with a Revocation: wait (Pending), give up (Failed), or revoke ``serial``."""

    outcome: Outcome
    reason: str
    message: str
    serial: str | None = None
    not_after: datetime | None = None
    issuer: IssuerKey | None = None

    @classmethod
    def pending(cls, reason: str, message: str) -> Resolution:
        return cls(Outcome.PENDING, reason, message)

    @classmethod
    def failed(cls, reason: str, message: str) -> Resolution:
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
class IssuerView:
    """What the decision needs to know about the issuer of the certificate."""

    key: IssuerKey
    type: IssuerType | None
    """None when the issuer object does not exist."""
    ca_problem: str | None = None
    """Why the CA key pair cannot be used, for a CA issuer; None when it can."""
    revoked: Sequence[RevokedCertificate] = ()


def resolve_target(
    *,
    certificate_name: str,
    certificate_exists: bool,
    secret_name: str | None,
    current: CurrentCertificate | None,
    issuer: IssuerView | None,
    revoked_serials: Iterable[str],
    created_at: datetime | None,
) -> Resolution:
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
        return Resolution.pending(
            "CertificateNotFound",
            f"ManagedCertificate {certificate_name} does not exist (yet); waiting for it",
        )
    if issuer is not None and issuer.type is IssuerType.SELF_SIGNED:
        return Resolution.failed(
            "SelfSignedNotRevocable",
            f"ManagedCertificate {certificate_name} is issued by the selfSigned issuer {issuer.key.label}: "
            "each such certificate signs itself, so no CRL or OCSP responder exists that could list it. "
            "Replace the certificate instead (delete its Secret or move it to a ca issuer).",
        )
    if current is None:
        where = f"Secret {secret_name}" if secret_name else "its Secret"
        return Resolution.pending(
            "CertificateNotIssued",
            f"ManagedCertificate {certificate_name} has no certificate in {where} yet; waiting for issuance",
        )
    if current.self_signed:
        return Resolution.failed(
            "SelfSignedNotRevocable",
            f"the certificate in Secret {secret_name} (serial {current.serial}) is self-signed: no CRL or "
            "OCSP responder exists that could list it",
        )
    if issuer is None or issuer.type is None:
        label = issuer.key.label if issuer is not None else "of the certificate"
        return Resolution.pending(
            "IssuerNotFound", f"the issuer {label} does not exist (yet); waiting for it"
        )
    if issuer.ca_problem is not None:
        return Resolution.pending(
            "IssuerNotReady",
            f"the CA of issuer {issuer.key.label} cannot sign a CRL: {issuer.ca_problem}",
        )

    earlier = _earlier_target(issuer.revoked, revoked_serials, created_at)
    if earlier is not None:
        return Resolution(
            Outcome.TARGET,
            "AlreadyRevoked",
            f"serial {earlier.serial_number} of {certificate_name} was already revoked after this "
            "Revocation was created",
            serial=earlier.serial_number,
            not_after=earlier.not_after,
            issuer=issuer.key,
        )
    if not current.issued_by_issuer_ca:
        return Resolution.failed(
            "IssuerMismatch",
            f"the certificate in Secret {secret_name} (serial {current.serial}) was not signed by the "
            f"current CA of issuer {issuer.key.label}, so that issuer's CRL cannot revoke it",
        )
    return Resolution(
        Outcome.TARGET,
        "Resolved",
        f"revoking serial {current.serial} of {certificate_name}",
        serial=current.serial,
        not_after=current.not_after,
        issuer=issuer.key,
    )


def _earlier_target(
    listed: Sequence[RevokedCertificate], revoked_serials: Iterable[str], created_at: datetime | None
) -> RevokedCertificate | None:
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


@dataclass(frozen=True)
class CRLState:
    """The issuer's next CRL: what its status fields become in one guarded write."""

    number: int
    this_update: datetime
    next_update: datetime
    entries: tuple[RevokedCertificate, ...]
    added: RevokedCertificate | None = None
    dropped: tuple[str, ...] = field(default=())

    def status_fields(self) -> dict[str, Any]:
        """The camelCase status fields that describe this CRL."""
        probe = IssuerStatus(
            crl_number=self.number,
            crl_this_update=self.this_update,
            crl_next_update=self.next_update,
            revoked_certificates=list(self.entries),
        ).dump()
        return {
            "crlNumber": probe["crlNumber"],
            "crlThisUpdate": probe["crlThisUpdate"],
            "crlNextUpdate": probe["crlNextUpdate"],
            "revokedCertificates": probe["revokedCertificates"],
        }


class RevocationListFull(Exception):
    """The issuer's list already holds as many unexpired entries as it can."""


def find_entry(status: IssuerStatus, serial: str) -> RevokedCertificate | None:
    """The list entry of ``serial``, if listed."""
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

    Entries whose certificate expired more than ``grace`` ago leave the list
    (pass the CRL refresh interval, so each entry is still on one regular CRL
    issued after the certificate expired). ``add`` joins the list with the new
    CRL number as the number that first lists it; a serial already listed is
    never listed twice (its first entry is kept unchanged). ``floor`` is the
    highest CRL number already published, should the status have fallen
    behind it (an issuer deleted and created again under the same name): the
    new number is above both.
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
        if len(kept) >= MAX_LISTED_SERIALS:
            raise RevocationListFull(
                f"the revocation list already holds {len(kept)} unexpired certificates, its maximum"
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
    )


def crl_refresh_due(
    status: IssuerStatus, now: datetime, refresh_interval: timedelta, grace: timedelta
) -> bool:
    """Whether the issuer needs a new CRL now, with no revocation to add.

    True when none was signed yet, when ``refresh_interval`` has passed since
    the last one, when the last one is at or past its nextUpdate, or when an
    entry is due to leave the list.
    """
    require_aware(now)
    if status.crl_number is None or status.crl_this_update is None or status.crl_next_update is None:
        return True
    if now >= status.crl_this_update + refresh_interval or now >= status.crl_next_update:
        return True
    return len(_still_listed(status.revoked_certificates, now, grace)) != len(status.revoked_certificates)


def new_crl_due(
    status: IssuerStatus,
    now: datetime,
    refresh_interval: timedelta,
    *,
    published: tuple[int, str] | None,
    ca_fingerprint: str,
) -> bool:
    """Whether the issuer's timer must start the next CRL.

    ``published`` is (number, CA fingerprint) of the CRL served now, if any.
    Besides :func:`crl_refresh_due`: a served CRL numbered above the status
    (the status restarted, as with an issuer created again under an old
    name), or one signed by a CA key that has since been replaced.
    """
    if crl_refresh_due(status, now, refresh_interval, refresh_interval):
        return True
    if published is None:
        return False
    number, fingerprint = published
    return number > (status.crl_number or 0) or fingerprint != ca_fingerprint


# --------------------------------------------------------------------------- after revoking


def issuer_notification(issuer_type: IssuerType) -> tuple[bool, str]:
    """Whether the issuing CA was told about the revocation, and why (not).

    The built-in CA and self-signed issuers have no CA service to tell: the
    issuer's own status is the revocation list, so there is nothing to notify.
    """
    if issuer_type is IssuerType.CA:
        return False, (
            "the issuer's CA is run by this operator: its revocation list in the issuer's status is the "
            "authority, so there is no external CA to notify"
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
