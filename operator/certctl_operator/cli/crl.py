"""``kubectl certctl crl <issuer>``: the issuer's current certificate revocation list."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.table import Table
from rich.text import Text

from certctl_operator.api import ClusterIssuer, Issuer
from certctl_operator.cli.errors import CliError, ExitCode, UsageError
from certctl_operator.cli.kube import Cluster, Connect, object_ref
from certctl_operator.cli.output import format_time, make_console, print_json, relative, styled
from certctl_operator.pki.crl import CRLInfo, crl_der_to_pem, crl_pem_to_der, read_crl
from certctl_operator.pki.errors import PKIError

CRL_KEY = "ca.crl"
DEFAULT_OPERATOR_NAMESPACE = "certctl-system"


def configmap_name(issuer: str) -> str:
    """The ConfigMap the operator publishes an issuer's CRL in."""
    return f"{issuer}-crl"


def default_operator_namespace() -> str:
    return os.environ.get("CERTCTL_OPERATOR_NAMESPACE") or DEFAULT_OPERATOR_NAMESPACE


def _from_configmap(args: argparse.Namespace, cluster: Cluster) -> tuple[bytes, str]:
    resource = ClusterIssuer if args.cluster else Issuer
    issuer_namespace = None if args.cluster else (args.namespace or cluster.namespace)
    issuer = cluster.get(resource, args.issuer, issuer_namespace)
    ref = object_ref(resource, issuer_namespace, args.issuer)
    if (issuer.get("spec") or {}).get("selfSigned") is not None:
        raise CliError(f"{ref} is selfSigned: it has no CA key to sign a CRL with, so it publishes none")
    namespace = args.operator_namespace if args.cluster else issuer_namespace
    assert namespace is not None
    name = configmap_name(args.issuer)
    configmap = cluster.get_core(
        "ConfigMap",
        name,
        namespace,
        missing=(
            f"{ref} has not published a CRL yet. Is it Ready? kubectl get {resource.SHORT_NAMES[0]}"
            + ("" if args.cluster else f" -n {namespace}")
            + f" {args.issuer}"
            + (
                f" (ClusterIssuer CRLs are in the operator namespace {namespace}; "
                "set it with --operator-namespace)"
                if args.cluster
                else ""
            )
        ),
    )
    text = (configmap.data or {}).get(CRL_KEY)
    if not text:
        raise CliError(
            f"ConfigMap {namespace}/{name} has no {CRL_KEY} key; the operator writes the CRL there "
            "unless it is too large for a ConfigMap: then fetch it with --url"
        )
    return text.encode("ascii", errors="replace"), f"ConfigMap {namespace}/{name}"


def _from_url(url: str) -> tuple[bytes, str]:
    if not url.lower().startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http(s) URL, not {url!r}")
    try:
        response = httpx.get(url, timeout=10.0)
    except httpx.HTTPError as error:
        raise CliError(f"cannot fetch {url}: {error}") from None
    if response.status_code != 200:
        raise CliError(f"cannot fetch {url}: HTTP {response.status_code}")
    return response.content, url


def _document(info: CRLInfo, source: str, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        "issuer": info.issuer,
        "crlNumber": info.crl_number,
        "thisUpdate": info.this_update.isoformat(),
        "nextUpdate": info.next_update.isoformat() if info.next_update else None,
        "stale": info.next_update is not None and info.next_update < now,
        "entries": [
            {
                "serialNumber": entry.serial_hex.lower(),
                "revokedAt": entry.revoked_at.isoformat(),
                "reason": entry.reason.name,
            }
            for entry in info.entries
        ],
    }


def run(args: argparse.Namespace, connect: Connect) -> int:
    if args.url:
        data, source = _from_url(args.url)
    elif not args.issuer:
        raise UsageError("name the issuer (kubectl certctl crl ISSUER [--cluster]) or pass --url URL")
    else:
        data, source = _from_configmap(args, connect())
    try:
        info = read_crl(data)
        der = crl_pem_to_der(data) if data.lstrip().startswith(b"-----BEGIN") else data
    except (PKIError, ValueError) as error:
        raise CliError(f"{source} does not hold a readable CRL: {error}") from None
    now = datetime.now(UTC)
    if args.output == "pem":
        make_console().file.write(crl_der_to_pem(der))
        return ExitCode.OK
    if args.output == "json":
        print_json(_document(info, source, now))
        return ExitCode.OK

    console = make_console()
    stale = info.next_update is not None and info.next_update < now
    next_update = f"{format_time(info.next_update)} ({relative(info.next_update, now)})"
    console.print(Text.assemble(("CRL", "bold"), f" from {source}"))
    console.print(f"  Issuer:       {info.issuer}")
    console.print(f"  CRL number:   {info.crl_number if info.crl_number is not None else '-'}")
    console.print(f"  This update:  {format_time(info.this_update)} ({relative(info.this_update, now)})")
    console.print(
        Text.assemble("  Next update:  ", (f"{next_update} STALE: relying parties reject this CRL", "red"))
        if stale
        else f"  Next update:  {next_update}"
    )
    console.print(f"  Revoked:      {len(info.entries)}")
    if info.entries:
        table = Table()
        table.add_column("Serial")
        table.add_column("Revoked at")
        table.add_column("Reason")
        for entry in info.entries:
            table.add_row(entry.serial_hex.lower(), format_time(entry.revoked_at), styled(entry.reason.name))
        console.print(table)
    return ExitCode.OK


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "crl",
        parents=common,
        help="print an issuer's current CRL",
        description=(
            f"Print the current CRL of an Issuer (or, with --cluster, a ClusterIssuer), read from the "
            f"ConfigMap <issuer>-crl (key {CRL_KEY}) that the operator keeps in the issuer's namespace, "
            "or in the operator namespace for ClusterIssuers. With --url, fetch it over HTTP instead, "
            "for example from the CRL distribution point in a certificate."
        ),
        epilog=(
            "examples:\n"
            "  kubectl certctl crl demo-ca -n certctl-demo\n"
            "  kubectl certctl crl corp-ca --cluster -o pem > corp-ca.crl.pem\n"
            "  kubectl certctl crl --url http://pki.example.com/crl/team-a/demo-ca.crl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "issuer", nargs="?", help="name of the Issuer or ClusterIssuer (not needed with --url)"
    )
    parser.add_argument("--cluster", action="store_true", help="the issuer is a ClusterIssuer")
    parser.add_argument(
        "--operator-namespace",
        default=default_operator_namespace(),
        help="where ClusterIssuer CRLs are kept (default $CERTCTL_OPERATOR_NAMESPACE or certctl-system)",
    )
    parser.add_argument("--url", help="fetch the CRL (DER or PEM) from this URL instead")
    parser.add_argument(
        "-o", "--output", choices=["table", "json", "pem"], default="table", help="output format"
    )
    parser.set_defaults(func=run)
