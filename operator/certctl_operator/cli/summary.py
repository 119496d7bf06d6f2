"""What ``kubectl certctl status`` counts, computed from plain objects and a clock.

Pure: no API calls, ``now`` passed in, so the rules are unit-tested on their own.

Every certificate is in exactly one state, the first that applies:

1. ``revoked``  - ``status.revoked`` is true (its current serial is on the CRL);
2. ``expired``  - ``status.notAfter`` has passed;
3. ``failing``  - issuance failed (``failedIssuanceAttempts`` > 0), or Ready is
   False while nothing is being issued;
4. ``issuing``  - the Issuing condition is True, or Ready is not known yet
   (a certificate the operator has not reconciled);
5. ``expiring`` - Ready, but ``notAfter`` is less than 30 days away;
6. ``ready``    - Ready and not expiring soon.

So the counts add up to the number of certificates. Notifications count by
``status.phase`` (no phase yet counts as Pending); a NotificationEvent labelled
``certctl.io/phase=dead`` counts as Dead whatever its status says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from certctl_operator.api.metadata_keys import LABEL_PHASE, LABEL_PHASE_DEAD
from certctl_operator.cli.output import format_time, parse_time

EXPIRING_WITHIN = timedelta(days=30)


class CertificateState(StrEnum):
    READY = "ready"
    ISSUING = "issuing"
    FAILING = "failing"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REVOKED = "revoked"


CERTIFICATE_STATES = tuple(CertificateState)
"""Display order: ready, issuing, failing, expiring, expired, revoked."""

NOTIFICATION_PHASES = ("Dead", "Failed", "Pending", "Sent")
"""Display order: the dead-letter count first."""

FAIL_ON_CHOICES = {
    "failing": "failing certificates",
    "expired": "expired certificates",
    "expiring": "certificates expiring within 30 days",
    "revoked": "revoked certificates",
    "issuing": "certificates being issued",
    "issuers": "issuers not ready",
    "dead": "dead-lettered notifications",
    "failed": "notifications waiting for a retry",
}
"""What ``status --fail-on`` accepts, with how each is described when it trips."""


def _status(body: Mapping[str, Any]) -> Mapping[str, Any]:
    status = body.get("status")
    return status if isinstance(status, Mapping) else {}


def _condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in _status(body).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return condition
    return None


def _describe(condition: Mapping[str, Any] | None) -> str:
    if condition is None:
        return ""
    reason = str(condition.get("reason") or "")
    message = str(condition.get("message") or "")
    return f"{reason}: {message}" if reason and message else reason or message


def _name(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(frozen=True)
class CertificateRow:
    namespace: str
    name: str
    state: CertificateState
    detail: str
    not_after: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "state": str(self.state),
            "detail": self.detail,
            "notAfter": self.not_after.isoformat() if self.not_after else None,
        }


def certificate_state(body: Mapping[str, Any], now: datetime) -> tuple[CertificateState, str]:
    """The state of one ManagedCertificate and a short explanation."""
    status = _status(body)
    not_after = parse_time(status.get("notAfter"))
    ready = _condition(body, "Ready")
    issuing = _condition(body, "Issuing")
    ready_status = ready.get("status") if ready else None
    failures = status.get("failedIssuanceAttempts")
    failures = failures if isinstance(failures, int) and not isinstance(failures, bool) else 0

    if status.get("revoked") is True:
        serial = status.get("serialNumber")
        return CertificateState.REVOKED, f"serial {serial} is revoked" if serial else "revoked"
    if not_after is not None and not_after <= now:
        return CertificateState.EXPIRED, f"expired {format_time(not_after)}"
    if failures > 0 or (ready_status == "False" and (issuing or {}).get("status") != "True"):
        detail = _describe(ready) or "issuance failed"
        if failures > 0:
            detail = f"{detail} ({failures} failed attempt{'s' if failures != 1 else ''})"
        return CertificateState.FAILING, detail
    if (issuing or {}).get("status") == "True" or ready_status not in {"True", "False"}:
        return CertificateState.ISSUING, _describe(issuing) or _describe(ready) or "not reconciled yet"
    if not_after is not None and not_after - now < EXPIRING_WITHIN:
        return CertificateState.EXPIRING, f"expires {format_time(not_after)}"
    return CertificateState.READY, ""


@dataclass(frozen=True)
class IssuerRow:
    kind: str
    namespace: str
    name: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace or None,
            "name": self.name,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DeadLetter:
    namespace: str
    name: str
    channel: str
    retry_count: int | None
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "channel": self.channel,
            "retryCount": self.retry_count,
            "lastError": self.last_error,
        }


def notification_phase(body: Mapping[str, Any]) -> str:
    """Dead, Failed, Pending or Sent; the dead-letter label wins over the status."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_PHASE) == LABEL_PHASE_DEAD:
        return "Dead"
    phase = _status(body).get("phase")
    return str(phase) if phase in NOTIFICATION_PHASES else "Pending"


@dataclass
class Summary:
    """Everything ``status`` shows."""

    certificates: dict[CertificateState, int] = field(
        default_factory=lambda: dict.fromkeys(CERTIFICATE_STATES, 0)
    )
    certificate_problems: list[CertificateRow] = field(default_factory=list)
    issuers_total: int = 0
    issuers_not_ready: list[IssuerRow] = field(default_factory=list)
    notifications: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NOTIFICATION_PHASES, 0))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def certificates_total(self) -> int:
        return sum(self.certificates.values())

    def count(self, what: str) -> int:
        """The number ``--fail-on what`` looks at."""
        if what == "issuers":
            return len(self.issuers_not_ready)
        if what in {"dead", "failed"}:
            return self.notifications[what.capitalize()]
        return self.certificates[CertificateState(what)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "certificates": {
                "total": self.certificates_total,
                **{str(state): count for state, count in self.certificates.items()},
            },
            "certificateProblems": [row.as_dict() for row in self.certificate_problems],
            "issuers": {
                "total": self.issuers_total,
                "notReady": [row.as_dict() for row in self.issuers_not_ready],
            },
            "notifications": {
                "dead": self.notifications["Dead"],
                "failed": self.notifications["Failed"],
                "pending": self.notifications["Pending"],
                "sent": self.notifications["Sent"],
                "total": sum(self.notifications.values()),
            },
            "deadLetters": [letter.as_dict() for letter in self.dead_letters],
            "notes": list(self.notes),
        }


def summarize(
    certificates: Iterable[Mapping[str, Any]],
    issuers: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    now: datetime,
) -> Summary:
    """Count certificates by state, list issuers not ready and count notifications by phase."""
    summary = Summary()
    for body in certificates:
        state, detail = certificate_state(body, now)
        summary.certificates[state] += 1
        if state is not CertificateState.READY:
            namespace, name = _name(body)
            not_after = parse_time(_status(body).get("notAfter"))
            summary.certificate_problems.append(CertificateRow(namespace, name, state, detail, not_after))
    order = {state: index for index, state in enumerate(CERTIFICATE_STATES)}
    summary.certificate_problems.sort(key=lambda row: (-order[row.state], row.namespace, row.name))

    for body in issuers:
        summary.issuers_total += 1
        ready = _condition(body, "Ready")
        if ready is None or ready.get("status") != "True":
            namespace, name = _name(body)
            detail = _describe(ready) or "not reconciled yet"
            summary.issuers_not_ready.append(IssuerRow(str(body.get("kind") or ""), namespace, name, detail))

    for body in events:
        phase = notification_phase(body)
        summary.notifications[phase] += 1
        if phase == "Dead":
            namespace, name = _name(body)
            spec = body.get("spec") or {}
            status = _status(body)
            retries = status.get("retryCount")
            summary.dead_letters.append(
                DeadLetter(
                    namespace,
                    name,
                    str((spec.get("channelRef") or {}).get("name") or ""),
                    retries if isinstance(retries, int) else None,
                    str(status.get("lastError") or ""),
                )
            )
    return summary


def parse_fail_on(text: str) -> list[str]:
    """``dead,failing`` -> ["dead", "failing"]; ValueError naming the choices for anything else."""
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in FAIL_ON_CHOICES]
    if unknown or not wanted:
        raise ValueError(
            f"--fail-on takes a comma-separated list of {', '.join(FAIL_ON_CHOICES)}; got {text!r}"
        )
    return wanted


def tripped(summary: Summary, fail_on: Iterable[str]) -> list[str]:
    """The ``fail_on`` counts above zero, described: ``dead-lettered notifications: 2``."""
    return [f"{FAIL_ON_CHOICES[what]}: {summary.count(what)}" for what in fail_on if summary.count(what) > 0]
