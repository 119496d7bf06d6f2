"""``kubectl certctl inspect <certificate>``: what is in the Secret, and is it revoked?"""

from __future__ import annotations

import argparse
import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from rich.table import Table
from rich.text import Text

from certctl_operator.api import ManagedCertificate
from certctl_operator.api.metadata_keys import (
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_REVISION,
    ANNOTATION_SERIAL_NUMBER,
)
from certctl_operator.cli.errors import CliError, ExitCode
from certctl_operator.cli.kube import Connect
from certctl_operator.cli.output import format_time, make_console, print_json, relative, styled
from certctl_operator.cli.revocation_check import (
    RevocationReport,
    Verdict,
    check_revocation,
    find_issuer,
    not_checked,
)
from certctl_operator.pki.encoding import load_certificates
from certctl_operator.pki.errors import PKIError
from certctl_operator.pki.inspect import CertificateSummary, summarize_certificate
from certctl_operator.pki.keys import load_private_key, public_key_sha256

ANNOTATIONS = (
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_SERIAL_NUMBER,
    ANNOTATION_REVISION,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_KIND,
)

_VERDICT_STYLES = {
    Verdict.GOOD: "green",
    Verdict.REVOKED: "bold red",
    Verdict.UNKNOWN: "yellow",
    Verdict.ERROR: "red",
    Verdict.NOT_CHECKED: "dim",
}


def _secret_bytes(data: dict[str, str], key: str) -> bytes | None:
    value = data.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _key_matches(key_pem: bytes | None, summary: CertificateSummary) -> str:
    if key_pem is None:
        return "no tls.key in the Secret"
    try:
        key = load_private_key(key_pem, "tls.key")
    except PKIError as error:
        return f"unreadable: {error.message}"
    return (
        "yes"
        if public_key_sha256(key) == summary.public_key_sha256
        else "NO: tls.key belongs to another certificate"
    )


def _key_text(summary: CertificateSummary) -> str:
    if summary.key_algorithm == "ECDSA" and summary.key_size:
        return f"ECDSA P-{summary.key_size}"
    return f"{summary.key_algorithm} {summary.key_size}" if summary.key_size else summary.key_algorithm


def _sans(summary: CertificateSummary) -> list[str]:
    return [
        *(f"DNS:{name}" for name in summary.dns_names),
        *(f"IP:{address}" for address in summary.ip_addresses),
        *(f"URI:{uri}" for uri in summary.uris),
        *(f"email:{email}" for email in summary.email_addresses),
    ]


def _ready(body: dict[str, Any]) -> str:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            reason = condition.get("reason") or ""
            message = condition.get("message") or ""
            return f"{condition.get('status')} ({reason}{': ' + message if message else ''})"
    return "unknown (not reconciled yet)"


def run(args: argparse.Namespace, connect: Connect) -> int:
    cluster = connect()
    namespace = args.namespace or cluster.namespace
    name = args.certificate
    body = cluster.get(ManagedCertificate, name, namespace)
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    secret_name = str(status.get("secretName") or spec.get("secretName") or "")
    ref = f"ManagedCertificate {namespace}/{name}"
    secret = cluster.get_core(
        "Secret",
        secret_name,
        namespace,
        missing=f"{ref} has not been issued yet; see kubectl describe mcert -n {namespace} {name}",
    )
    data: dict[str, str] = dict(secret.data or {})
    crt = _secret_bytes(data, "tls.crt")
    if crt is None:
        raise CliError(
            f"Secret {namespace}/{secret_name} has no readable tls.crt; {ref} has not been issued yet, "
            f"see kubectl describe mcert -n {namespace} {name}"
        )
    try:
        certificates = load_certificates(crt, f"tls.crt of Secret {namespace}/{secret_name}")
        ca_pem = _secret_bytes(data, "ca.crt")
        ca_certificates = load_certificates(ca_pem, "ca.crt") if ca_pem else []
        summary = summarize_certificate(certificates[0])
    except PKIError as error:
        raise CliError(f"{error.message}; the Secret does not hold a usable certificate") from None
    leaf = certificates[0]
    issuer: x509.Certificate | None = find_issuer(leaf, [*certificates[1:], *ca_certificates])
    now = datetime.now(UTC)
    if args.no_revocation_check:
        report = not_checked("not checked: --no-revocation-check")
    else:
        report = check_revocation(
            leaf,
            issuer,
            crl_urls=summary.crl_distribution_urls,
            ocsp_urls=summary.ocsp_urls,
            now=now,
        )
    annotations = dict((secret.metadata.annotations if secret.metadata else None) or {})
    key_match = _key_matches(_secret_bytes(data, "tls.key"), summary)

    if args.output == "json":
        print_json(
            {
                "certificate": {"namespace": namespace, "name": name, "ready": _ready(body)},
                "secret": {
                    "name": secret_name,
                    "annotations": {key: annotations[key] for key in ANNOTATIONS if key in annotations},
                    "keyMatchesCertificate": key_match == "yes",
                    "chainLength": len(certificates),
                },
                "x509": summary.as_dict() | {"serial": summary.serial_hex.lower()},
                "issuerCertificateFound": issuer is not None,
                "revocation": report.as_dict(),
            }
        )
        return ExitCode.OK
    _render(ref, body, secret_name, annotations, summary, key_match, len(certificates), issuer, report, now)
    return ExitCode.OK


def _render(
    ref: str,
    body: dict[str, Any],
    secret_name: str,
    annotations: dict[str, str],
    summary: CertificateSummary,
    key_match: str,
    chain_length: int,
    issuer: x509.Certificate | None,
    report: RevocationReport,
    now: datetime,
) -> None:
    console = make_console()
    table = Table(title=f"{ref} (Secret {secret_name})", title_justify="left", show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    expiry_style = (
        "red" if summary.not_after <= now else ("yellow" if (summary.not_after - now).days < 30 else "")
    )
    rows: list[tuple[str, Text]] = [
        ("Ready", styled(_ready(body))),
        ("Subject", styled(summary.subject or "-")),
        ("SANs", styled(", ".join(_sans(summary)) or "-")),
        ("Not before", styled(format_time(summary.not_before))),
        (
            "Not after",
            styled(f"{format_time(summary.not_after)} ({relative(summary.not_after, now)})", expiry_style),
        ),
        ("Key", styled(_key_text(summary))),
        ("Key matches tls.key", styled(key_match, "" if key_match == "yes" else "red")),
        (
            "Issuer",
            styled(
                summary.issuer + ("" if issuer is not None else " (issuer certificate not in the Secret)")
            ),
        ),
        ("Serial", styled(summary.serial_hex.lower())),
        ("SHA-256 fingerprint", styled(summary.fingerprint_sha256.lower())),
        ("Usages", styled(", ".join(summary.usages) or "-")),
        ("CA", styled("yes" if summary.is_ca else "no")),
        ("Chain in tls.crt", styled(f"{chain_length} certificate{'s' if chain_length != 1 else ''}")),
        ("CRL distribution points", styled(", ".join(summary.crl_distribution_urls) or "-")),
        ("OCSP responders", styled(", ".join(summary.ocsp_urls) or "-")),
    ]
    rows += [(key, styled(annotations[key])) for key in ANNOTATIONS if key in annotations]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)

    style = _VERDICT_STYLES[report.verdict]
    console.print(Text.assemble(("Revocation", "bold"), ": ", (str(report.verdict), style)))
    if report.note:
        console.print(f"  {report.note}")
    if report.results:
        sources = Table(show_header=True)
        sources.add_column("Source")
        sources.add_column("URL", overflow="fold")
        sources.add_column("Status")
        sources.add_column("Detail", overflow="fold")
        for result in report.results:
            sources.add_row(
                styled(result.source),
                styled(result.url),
                styled(result.verdict, _VERDICT_STYLES[result.verdict]),
                styled(result.detail),
            )
        console.print(sources)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "inspect",
        parents=common,
        help="decode a certificate's Secret and check whether it is revoked",
        description=(
            "Decode the Secret of a ManagedCertificate (subject, SANs, validity, key, issuer, serial, "
            "fingerprint) and ask the CRL distribution points and OCSP responders named in the "
            "certificate whether it is revoked. Nothing else is fetched."
        ),
        epilog=(
            "examples:\n"
            "  kubectl certctl inspect web -n team-a\n"
            "  kubectl certctl inspect web -n team-a --no-revocation-check -o json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("certificate", help="name of the ManagedCertificate")
    parser.add_argument(
        "--no-revocation-check",
        action="store_true",
        help="do not contact the certificate's CRL and OCSP URLs",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
    parser.set_defaults(func=run)
