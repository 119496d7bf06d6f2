"""The commands that ask the operator to do something: ``renew``, ``revoke`` and ``requeue``.

Each one is a plain API write the operator reacts to, so it works the same
from ``kubectl``, GitOps or this plugin:

* renew: a new value in the annotation ``certctl.io/renew`` of the ManagedCertificate;
* requeue: a new value in the annotation ``certctl.io/requeue`` of the NotificationEvent;
* revoke: a new Revocation object (immutable), optionally waited for.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from certctl_operator.api import (
    API_GROUP_VERSION,
    REFUSED_REASONS,
    LocalObjectReference,
    ManagedCertificate,
    NotificationEvent,
    Revocation,
    RevocationReason,
    RevocationSpec,
)
from certctl_operator.api.metadata_keys import (
    ANNOTATION_RENEW,
    ANNOTATION_REQUEUE,
    LABEL_PHASE,
    LABEL_PHASE_DEAD,
)
from certctl_operator.cli.errors import CliError, ExitCode, UsageError
from certctl_operator.cli.kube import Body, Cluster, Connect, list_command, object_ref
from certctl_operator.cli.output import format_span, make_console, plural
from certctl_operator.cli.summary import notification_phase
from certctl_operator.durations import parse_duration

FINAL_PHASES = ("Revoked", "Failed")


def request_value() -> str:
    """A fresh annotation value: the current time to the microsecond, which also says when."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _name(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _scope(args: argparse.Namespace, cluster: Cluster) -> str | None:
    return None if getattr(args, "all_namespaces", False) else (args.namespace or cluster.namespace)


def _where(namespace: str | None) -> str:
    return "in any namespace" if namespace is None else f"in namespace {namespace}"


# --------------------------------------------------------------------------- renew


def run_renew(args: argparse.Namespace, connect: Connect) -> int:
    chosen = sum(bool(x) for x in (args.certificates, args.all, args.selector))
    if chosen != 1:
        raise UsageError(
            "name the certificates to renew, or pass --all, or -l SELECTOR (exactly one of them)"
        )
    if args.all_namespaces and args.certificates:
        raise UsageError("-A works with --all or -l; named certificates are looked up in one namespace (-n)")
    cluster = connect()
    namespace = _scope(args, cluster)
    if args.certificates:
        assert namespace is not None
        targets = [(namespace, name) for name in args.certificates]
        for target_namespace, name in targets:
            cluster.get(ManagedCertificate, name, target_namespace)  # a clear "not found" before any write
    else:
        found = cluster.list(ManagedCertificate, namespace, label_selector=args.selector)
        targets = [_name(body) for body in found]
        if not targets:
            selector = f" matching {args.selector}" if args.selector else ""
            raise CliError(
                f"no ManagedCertificates{selector} {_where(namespace)}; nothing was renewed. "
                f"List them with {list_command(ManagedCertificate, namespace)}"
            )
    console = make_console()
    value = request_value()
    for target_namespace, name in targets:
        cluster.patch_annotations(ManagedCertificate, name, target_namespace, {ANNOTATION_RENEW: value})
        console.print(f"renewal requested: {object_ref(ManagedCertificate, target_namespace, name)}")
    console.print(
        f"{plural(len(targets), 'certificate')} will be issued again; follow with "
        f"{list_command(ManagedCertificate, namespace)} -w"
    )
    return ExitCode.OK


# --------------------------------------------------------------------------- requeue


def run_requeue(args: argparse.Namespace, connect: Connect) -> int:
    if bool(args.events) == bool(args.all_dead):
        raise UsageError("name the NotificationEvents to requeue, or pass --all-dead (one of the two)")
    if args.all_namespaces and args.events:
        raise UsageError("-A works with --all-dead; named events are looked up in one namespace (-n)")
    cluster = connect()
    namespace = _scope(args, cluster)
    if args.events:
        assert namespace is not None
        targets = [cluster.get(NotificationEvent, name, namespace) for name in args.events]
    else:
        targets = cluster.list(
            NotificationEvent, namespace, label_selector=f"{LABEL_PHASE}={LABEL_PHASE_DEAD}"
        )
    console = make_console()
    if not targets:
        console.print(f"no dead-lettered NotificationEvents {_where(namespace)}; nothing to requeue")
        return ExitCode.OK
    value = request_value()
    for body in targets:
        event_namespace, name = _name(body)
        status = body.get("status") or {}
        cluster.patch_annotations(NotificationEvent, name, event_namespace, {ANNOTATION_REQUEUE: value})
        was = notification_phase(body)
        retries = status.get("retryCount")
        details = [f"was {was}"]
        if isinstance(retries, int):
            details.append(f"{plural(retries, 'failed attempt')}")
        if status.get("lastError"):
            details.append(f"last error: {status['lastError']}")
        console.print(
            f"requeued {object_ref(NotificationEvent, event_namespace, name)} ({'; '.join(details)})"
        )
    console.print(
        f"{plural(len(targets), 'notification')} will be delivered again; follow with "
        f"{list_command(NotificationEvent, namespace)} -w"
    )
    return ExitCode.OK


# --------------------------------------------------------------------------- revoke


def parse_reason(text: str) -> RevocationReason:
    """An RFC 5280 reason by name, case-insensitively; UsageError saying why for refused ones."""
    for refused, rule in REFUSED_REASONS.items():
        if text.lower() == refused.lower():
            raise UsageError(rule.message)
    for reason in RevocationReason:
        if text.lower() == reason.value.lower():
            return reason
    raise UsageError(f"unknown revocation reason {text!r}; use one of {', '.join(RevocationReason)}")


def revocation_body(
    certificate: str, reason: RevocationReason, *, reissue: bool, comment: str | None, name: str | None
) -> Body:
    """The Revocation to create, checked against the API model first."""
    try:
        spec = RevocationSpec(
            certificate_ref=LocalObjectReference(name=certificate),
            reason=reason,
            reissue=reissue,
            comment=comment,
        )
    except ValidationError as error:
        problems = "; ".join(str(item["msg"]) for item in error.errors())
        raise UsageError(f"the Revocation would be refused: {problems}") from None
    metadata: dict[str, Any] = (
        {"name": name} if name else {"generateName": f"{certificate[:40]}-{reason.value.lower()}-"}
    )
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": Revocation.KIND,
        "metadata": metadata,
        "spec": spec.dump(),
    }


def _describe(body: Body) -> str:
    """``Pending``, or ``Failed (CertificateNotIssued: ...)`` with the Ready condition's words."""
    status = body.get("status") or {}
    phase = str(status.get("phase") or "not picked up by the operator yet")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            words = ": ".join(
                str(part) for part in (condition.get("reason"), condition.get("message")) if part
            )
            return f"{phase} ({words})" if words else phase
    return phase


def wait_for_revocation(
    cluster: Cluster,
    namespace: str,
    name: str,
    created: Body,
    timeout: float,
    on_change: Callable[[Body], None],
) -> tuple[Body, bool]:
    """Follow one Revocation until it is Revoked or Failed; (last version, finished)."""
    deadline = time.monotonic() + timeout
    body = created
    on_change(body)
    while (body.get("status") or {}).get("phase") not in FINAL_PHASES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return body, False
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        for update in cluster.watch_object(Revocation, name, namespace, version, remaining):
            body = update
            on_change(body)
            if (body.get("status") or {}).get("phase") in FINAL_PHASES or time.monotonic() >= deadline:
                break
        else:
            # The watch ended without news (server timeout, or too old to resume): read afresh.
            body = cluster.get(Revocation, name, namespace)
            on_change(body)
    return body, True


class _Progress:
    """One progress line: a spinner on a terminal, a line per change otherwise (both on stderr)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.console = make_console(sys.stderr)
        self.started = time.monotonic()
        self.last: str | None = None
        self._status: Any = None

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            self._status = self.console.status(f"waiting for {self.ref}")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)

    def update(self, body: Body) -> None:
        state = _describe(body)
        elapsed = format_span(timedelta(seconds=int(time.monotonic() - self.started)))
        line = f"{self.ref}: {state} [{elapsed}]"
        if self._status is not None:
            self._status.update(line)
        elif state != self.last:
            self.console.print(line)
        self.last = state


def run_revoke(args: argparse.Namespace, connect: Connect) -> int:
    reason = parse_reason(args.reason)
    try:
        timeout = parse_duration(args.timeout).total_seconds()
    except ValueError as error:
        raise UsageError(f"--timeout {args.timeout!r}: {error}") from None
    # Built (and so checked against the API model) before the cluster is touched.
    body = revocation_body(
        args.certificate, reason, reissue=args.reissue, comment=args.comment, name=args.name
    )
    cluster = connect()
    namespace = args.namespace or cluster.namespace
    certificate = cluster.get(ManagedCertificate, args.certificate, namespace)
    cert_ref = object_ref(ManagedCertificate, namespace, args.certificate)
    status = certificate.get("status") or {}
    serial = status.get("serialNumber")
    if not serial:
        raise CliError(
            f"{cert_ref} has no issued certificate yet (status.serialNumber is empty), so there is nothing "
            f"to revoke; see kubectl describe mcert -n {namespace} {args.certificate}"
        )
    if status.get("revoked") is True:
        raise CliError(
            f"{cert_ref}: its current certificate (serial {serial}) is already revoked; "
            f"see kubectl get revocations.certctl.io -n {namespace}"
        )
    created = cluster.create(Revocation, namespace, body)
    name = str(created["metadata"]["name"])
    ref = object_ref(Revocation, namespace, name)
    console = make_console()
    console.print(
        f"created {ref}: revoke serial {serial} of {cert_ref} (reason {reason.value}, "
        f"reissue {'yes' if args.reissue else 'no'})"
    )
    if not args.wait:
        console.print(f"follow it with kubectl get revocations.certctl.io -n {namespace} {name} -w")
        return ExitCode.OK

    with _Progress(ref) as progress:
        final, finished = wait_for_revocation(cluster, namespace, name, created, timeout, progress.update)
    final_status = final.get("status") or {}
    if not finished:
        raise CliError(
            f"timed out after {args.timeout} waiting for {ref} (now {_describe(final)}). The request "
            f"stands and the operator will get to it: follow it with kubectl get revocations.certctl.io "
            f"-n {namespace} {name} -w; is the operator running? kubectl certctl check",
            ExitCode.TIMEOUT,
        )
    if final_status.get("phase") == "Failed":
        raise CliError(f"{ref} failed: {_describe(final)}")
    issuer = final_status.get("issuerRef") or {}
    line = f"serial {final_status.get('serialNumber') or serial} revoked"
    if final_status.get("revokedAt"):
        line += f" at {final_status['revokedAt']}"
    if issuer.get("name"):
        number = final_status.get("crlNumber")
        crl = f"CRL #{number}" if number is not None else "the CRL"
        line += f", listed on {crl} of {issuer.get('kind', 'Issuer')} {issuer['name']}"
    console.print(f"{ref}: {line}")
    if args.reissue:
        console.print(
            f"{cert_ref} gets a new certificate; kubectl certctl inspect {args.certificate} -n {namespace}"
        )
    return ExitCode.OK


# --------------------------------------------------------------------------- parsers


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
    all_namespaces: argparse.ArgumentParser,
) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    renew = commands.add_parser(
        "renew",
        parents=[*common, all_namespaces],
        help="ask the operator to issue certificates again now",
        description=(
            f"Request an immediate re-issuance by setting the annotation {ANNOTATION_RENEW} of each "
            "ManagedCertificate to a new value. Name the certificates, or pick them with --all or -l."
        ),
        epilog=(
            "examples:\n"
            "  kubectl certctl renew web -n team-a\n"
            "  kubectl certctl renew --all -n team-a\n"
            "  kubectl certctl renew -A -l app.kubernetes.io/part-of=shop"
        ),
        formatter_class=raw,
    )
    renew.add_argument("certificates", nargs="*", metavar="CERTIFICATE", help="ManagedCertificate names")
    renew.add_argument("--all", action="store_true", help="every ManagedCertificate in scope")
    renew.add_argument("-l", "--selector", help="only ManagedCertificates with these labels (k=v,k2=v2)")
    renew.set_defaults(func=run_renew)

    revoke = commands.add_parser(
        "revoke",
        parents=common,
        help="revoke a certificate (creates a Revocation) and wait for it",
        description=(
            "Create a Revocation for the current certificate of a ManagedCertificate and, unless "
            "--no-wait, follow it until the operator has put it on the issuer's CRL (or failed)."
        ),
        epilog=(
            "reasons (RFC 5280): " + ", ".join(RevocationReason) + "\n"
            "exit status: 0 revoked (or created, with --no-wait), 1 failed, 4 timed out waiting\n\n"
            "examples:\n"
            "  kubectl certctl revoke web -n team-a --reason keyCompromise --comment 'key leaked'\n"
            "  kubectl certctl revoke web -n team-a --reason superseded --no-reissue --no-wait"
        ),
        formatter_class=raw,
    )
    revoke.add_argument("certificate", help="name of the ManagedCertificate")
    revoke.add_argument("--reason", required=True, help="RFC 5280 reason, for example keyCompromise")
    revoke.add_argument(
        "--reissue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="issue a new certificate once revoked (default: yes)",
    )
    revoke.add_argument("--comment", help="free text kept with the Revocation for the audit trail")
    revoke.add_argument("--name", help="name of the Revocation (default: generated from the certificate)")
    revoke.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until the revocation is done (default: yes)",
    )
    revoke.add_argument("--timeout", default="2m", help="how long to wait, e.g. 90s, 5m (default 2m)")
    revoke.set_defaults(func=run_revoke)

    requeue = commands.add_parser(
        "requeue",
        parents=[*common, all_namespaces],
        help="deliver dead-lettered notifications again",
        description=(
            f"Ask for NotificationEvents to be delivered again from scratch by setting the annotation "
            f"{ANNOTATION_REQUEUE} to a new value; the operator resets their retry state. Name the "
            f"events, or pass --all-dead for every event labelled {LABEL_PHASE}={LABEL_PHASE_DEAD}."
        ),
        epilog=(
            "examples:\n"
            "  kubectl certctl requeue web-expiring-30d -n team-a\n"
            "  kubectl certctl requeue --all-dead -A"
        ),
        formatter_class=raw,
    )
    requeue.add_argument("events", nargs="*", metavar="NOTIFICATIONEVENT", help="NotificationEvent names")
    requeue.add_argument(
        "--all-dead", action="store_true", help="every dead-lettered NotificationEvent in scope"
    )
    requeue.set_defaults(func=run_requeue)
