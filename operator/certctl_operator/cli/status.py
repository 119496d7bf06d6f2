"""``kubectl certctl status``: the dashboard summary in a terminal."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text

from certctl_operator.api import ClusterIssuer, Issuer, ManagedCertificate, NotificationEvent
from certctl_operator.cli.errors import CliError, ExitCode, UsageError
from certctl_operator.cli.kube import Body, Cluster, Connect, ForbiddenError
from certctl_operator.cli.output import format_time, make_console, print_json, relative, styled
from certctl_operator.cli.summary import (
    CertificateState,
    Summary,
    parse_fail_on,
    summarize,
    tripped,
)

_STATE_STYLES = {
    CertificateState.READY: "green",
    CertificateState.ISSUING: "cyan",
    CertificateState.FAILING: "red",
    CertificateState.EXPIRING: "yellow",
    CertificateState.EXPIRED: "red",
    CertificateState.REVOKED: "magenta",
}
_PHASE_STYLES = {"Dead": "red", "Failed": "yellow"}


def _cluster_issuers(cluster: Cluster, summary_notes: list[str]) -> list[Body]:
    try:
        return cluster.list(ClusterIssuer, None)
    except ForbiddenError:
        summary_notes.append("ClusterIssuers not checked: this context may not list them")
        return []


def collect(cluster: Cluster, namespace: str | None, now: datetime) -> Summary:
    """Read the objects in scope (``namespace`` None: every namespace) and summarize them."""
    notes: list[str] = []
    certificates = cluster.list(ManagedCertificate, namespace)
    issuers = cluster.list(Issuer, namespace) + _cluster_issuers(cluster, notes)
    events = cluster.list(NotificationEvent, namespace)
    summary = summarize(certificates, issuers, events, now)
    summary.notes.extend(notes)
    return summary


def _render(summary: Summary, scope: str, namespace: str | None, now: datetime) -> None:
    console = make_console()
    console.print(Text.assemble(("certctl status", "bold"), f": {scope}"))

    table = Table(title=f"Certificates ({summary.certificates_total})", title_justify="left")
    table.add_column("State")
    table.add_column("Count", justify="right")
    for state, count in summary.certificates.items():
        style = _STATE_STYLES[state] if count else "dim"
        table.add_row(styled(state, style), styled(count, style))
    console.print(table)

    if summary.certificate_problems:
        problems = Table(title="Certificates that need attention", title_justify="left")
        if namespace is None:
            problems.add_column("Namespace")
        problems.add_column("Name")
        problems.add_column("State")
        problems.add_column("Expires")
        problems.add_column("Detail", overflow="fold")
        for row in summary.certificate_problems:
            cells = [
                styled(row.name),
                styled(row.state, _STATE_STYLES[row.state]),
                styled(relative(row.not_after, now)),
                styled(row.detail),
            ]
            problems.add_row(*([styled(row.namespace)] if namespace is None else []), *cells)
        console.print(problems)

    not_ready = len(summary.issuers_not_ready)
    console.print(
        Text.assemble(
            ("Issuers", "bold"),
            f": {summary.issuers_total}, ",
            (f"not ready: {not_ready}", "red" if not_ready else "green"),
        )
    )
    if summary.issuers_not_ready:
        issuers = Table(show_header=True)
        issuers.add_column("Kind")
        issuers.add_column("Namespace")
        issuers.add_column("Name")
        issuers.add_column("Detail", overflow="fold")
        for issuer in summary.issuers_not_ready:
            issuers.add_row(
                *(styled(cell) for cell in (issuer.kind, issuer.namespace or "-", issuer.name, issuer.detail))
            )
        console.print(issuers)

    phases = Table(title=f"Notifications ({sum(summary.notifications.values())})", title_justify="left")
    phases.add_column("Phase")
    phases.add_column("Count", justify="right")
    for phase, count in summary.notifications.items():
        style = _PHASE_STYLES.get(phase, "") if count else ""
        label = "Dead (dead letters)" if phase == "Dead" else phase
        phases.add_row(styled(label, style), styled(count, style))
    console.print(phases)

    if summary.dead_letters:
        letters = Table(title="Dead letters", title_justify="left")
        if namespace is None:
            letters.add_column("Namespace")
        letters.add_column("Name")
        letters.add_column("Channel")
        letters.add_column("Retries", justify="right")
        letters.add_column("Last error", overflow="fold")
        for letter in summary.dead_letters:
            letter_cells = [
                letter.name,
                letter.channel,
                "-" if letter.retry_count is None else str(letter.retry_count),
                letter.last_error or "-",
            ]
            letters.add_row(
                *(
                    styled(cell)
                    for cell in [*([letter.namespace] if namespace is None else []), *letter_cells]
                )
            )
        console.print(letters)
        where = "-A" if namespace is None else f"-n {namespace}"
        console.print(f"Fix the channel, then requeue them: kubectl certctl requeue --all-dead {where}")

    for note in summary.notes:
        console.print(Text.assemble(("note", "yellow"), f": {note}"))
    console.print(styled(f"as of {format_time(now)}", "dim"))


def run(args: argparse.Namespace, connect: Connect) -> int:
    try:
        fail_on = parse_fail_on(args.fail_on) if args.fail_on else []
    except ValueError as error:
        raise UsageError(str(error)) from None
    cluster = connect()
    namespace = None if args.all_namespaces else (args.namespace or cluster.namespace)
    now = datetime.now(UTC)
    summary = collect(cluster, namespace, now)
    scope = "all namespaces" if namespace is None else f"namespace {namespace}"
    if cluster.context:
        scope += f" (context {cluster.context})"
    if args.output == "json":
        document = {"namespace": namespace, "context": cluster.context, "time": now.isoformat()}
        document.update(summary.as_dict())
        print_json(document)
    else:
        _render(summary, scope, namespace, now)
    problems = tripped(summary, fail_on)
    if problems:
        raise CliError("--fail-on: " + "; ".join(problems), ExitCode.CONDITION)
    return ExitCode.OK


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
    all_namespaces: argparse.ArgumentParser,
) -> None:
    parser = commands.add_parser(
        "status",
        parents=[*common, all_namespaces],
        help="certificates by state, issuers not ready, notifications by phase",
        description=(
            "Summarize certctl in a namespace (or every namespace with -A): certificates by state "
            "(ready, issuing, failing, expiring within 30 days, expired, revoked), issuers that are not "
            "Ready (ClusterIssuers included), and notifications by phase, dead letters first."
        ),
        epilog=(
            "examples:\n"
            "  kubectl certctl status -n team-a\n"
            "  kubectl certctl status -A -o json\n"
            "  kubectl certctl status -A --fail-on dead,failing   # exit 3 when any are found"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
    parser.add_argument(
        "--fail-on",
        metavar="LIST",
        help=(
            "exit with status 3 when any of these counts is above zero (comma-separated): "
            "failing, expired, expiring, revoked, issuing, issuers, dead, failed"
        ),
    )
    parser.set_defaults(func=run)
