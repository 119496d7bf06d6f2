"""``kubectl certctl import cert-manager``: write certctl objects for cert-manager's.

Reads cert-manager Issuers, ClusterIssuers and Certificates, converts them with
:mod:`certctl_operator.cli.importing` and creates the certctl objects. Each
Certificate's Secret gets the annotation that lets the new ManagedCertificate
take it over, so the operator adopts the certificate already in it instead of
issuing a new one. Existing certctl objects are left alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from rich.table import Table

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.cli.errors import CliError, ExitCode
from certctl_operator.cli.importing import (
    CERT_MANAGER_GROUP,
    CERT_MANAGER_VERSION,
    Conversion,
    convert,
)
from certctl_operator.cli.kube import REQUEST_TIMEOUT, Body, Cluster, Connect
from certctl_operator.cli.output import make_console, plural

_PLURALS = {
    "Issuer": "issuers",
    "ClusterIssuer": "clusterissuers",
    "ManagedCertificate": "managedcertificates",
}


def _list_cert_manager(cluster: Cluster, plural_name: str, namespace: str | None) -> list[Body]:
    what = f"list {plural_name}.{CERT_MANAGER_GROUP}" + (f" in {namespace}" if namespace else "")
    try:
        if namespace is None:
            result = cluster.custom.list_cluster_custom_object(
                CERT_MANAGER_GROUP, CERT_MANAGER_VERSION, plural_name, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            result = cluster.custom.list_namespaced_custom_object(
                CERT_MANAGER_GROUP,
                CERT_MANAGER_VERSION,
                namespace,
                plural_name,
                _request_timeout=REQUEST_TIMEOUT,
            )
    except ApiException as error:
        if error.status == 404:
            raise CliError(
                f"cannot {what}: the API server does not know cert-manager's resources "
                f"({plural_name}.{CERT_MANAGER_GROUP}/{CERT_MANAGER_VERSION}); is cert-manager installed?"
            ) from None
        raise cluster.api_error(what, error) from None
    items = [dict(item) for item in result.get("items") or []]
    kind = {"issuers": "Issuer", "clusterissuers": "ClusterIssuer", "certificates": "Certificate"}[
        plural_name
    ]
    for item in items:
        item.setdefault("kind", kind)  # list items carry no kind
    return sorted(items, key=lambda item: (item["metadata"].get("namespace", ""), item["metadata"]["name"]))


def read_cert_manager_objects(cluster: Cluster, namespace: str | None) -> list[Body]:
    """Issuers and ClusterIssuers first, then Certificates, in name order.

    With one namespace, only the ClusterIssuers its Certificates use are read.
    """
    certificates = _list_cert_manager(cluster, "certificates", namespace)
    issuers = _list_cert_manager(cluster, "issuers", namespace)
    cluster_issuers = _list_cert_manager(cluster, "clusterissuers", None)
    if namespace is not None:
        used = {
            (certificate.get("spec") or {}).get("issuerRef", {}).get("name")
            for certificate in certificates
            if (certificate.get("spec") or {}).get("issuerRef", {}).get("kind") == "ClusterIssuer"
        }
        cluster_issuers = [item for item in cluster_issuers if item["metadata"]["name"] in used]
    return [*cluster_issuers, *issuers, *certificates]


def _create(cluster: Cluster, body: Mapping[str, Any], dry_run: bool) -> str:
    """Create one certctl object; returns what happened ("created", "exists")."""
    kind = str(body["kind"])
    meta = body["metadata"]
    extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    what = f"create {kind} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta['name']}"
    try:
        if "namespace" in meta:
            cluster.custom.create_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                meta["namespace"],
                _PLURALS[kind],
                dict(body),
                _request_timeout=REQUEST_TIMEOUT,
                **extra,
            )
        else:
            cluster.custom.create_cluster_custom_object(
                API_GROUP, API_VERSION, _PLURALS[kind], dict(body), _request_timeout=REQUEST_TIMEOUT, **extra
            )
    except ApiException as error:
        if error.status == 409:
            return "exists, left alone"
        raise cluster.api_error(what, error) from None
    return "would create" if dry_run else "created"


def _annotate_secret(
    cluster: Cluster, namespace: str, name: str, annotations: dict[str, str], dry_run: bool
) -> str:
    extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    try:
        cluster.core.patch_namespaced_secret(
            name,
            namespace,
            {"metadata": {"annotations": annotations}},
            _request_timeout=REQUEST_TIMEOUT,
            **extra,
        )
    except ApiException as error:
        if error.status == 404:
            return "no Secret yet: the operator issues one"
        raise cluster.api_error(f"annotate Secret {namespace}/{name}", error) from None
    return "would allow takeover" if dry_run else "takeover allowed"


def _takeover_command(conversion: Conversion) -> str:
    assert conversion.secret_takeover is not None
    namespace, name, annotations = conversion.secret_takeover
    pairs = " ".join(f"{key}={value}" for key, value in annotations.items())
    return f"kubectl annotate secret {name} -n {namespace} {pairs}"


def _print_unmapped(conversions: list[Conversion], file: Any) -> None:
    console = make_console(file)
    refused = [c for c in conversions if c.refused]
    unmapped = [entry for c in conversions for entry in c.unmapped]
    if refused:
        table = Table(title="not imported", title_justify="left", box=None)
        for column in ("OBJECT", "WHY"):
            table.add_column(column)
        for conversion in refused:
            table.add_row(conversion.source, conversion.refused)
        console.print(table)
    if unmapped:
        table = Table(title="fields with no certctl equivalent (left out)", title_justify="left", box=None)
        for column in ("OBJECT", "FIELD", "WHY"):
            table.add_column(column)
        for entry in unmapped:
            table.add_row(entry.source, entry.field, entry.reason)
        console.print(table)


def run_import(args: argparse.Namespace, connect: Connect) -> int:
    cluster = connect()
    namespace = None if args.all_namespaces else (args.namespace or cluster.namespace)
    conversions = [convert(body) for body in read_cert_manager_objects(cluster, namespace)]
    refused = any(conversion.refused for conversion in conversions)

    if args.output == "yaml":
        documents = [obj for conversion in conversions for obj in conversion.objects]
        sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False) if documents else "")
        errors = make_console(sys.stderr)
        takeovers = [c for c in conversions if c.secret_takeover]
        if takeovers:
            errors.print(
                "# let each ManagedCertificate take its Secret over (the operator keeps the certificate):"
            )
            for conversion in takeovers:
                errors.print(_takeover_command(conversion), markup=False, highlight=False)
        _print_unmapped(conversions, sys.stderr)
        return int(ExitCode.CONDITION if refused else ExitCode.OK)

    console = make_console(sys.stdout)
    table = Table(box=None)
    for column in ("FROM", "TO", "RESULT", "SECRET"):
        table.add_column(column)
    written = 0
    for conversion in conversions:
        for body in conversion.objects:
            outcome = _create(cluster, body, args.dry_run)
            written += outcome in {"created", "would create"}
            secret = ""
            if conversion.secret_takeover is not None:
                secret_namespace, secret_name, annotations = conversion.secret_takeover
                state = _annotate_secret(cluster, secret_namespace, secret_name, annotations, args.dry_run)
                secret = f"{secret_name}: {state}"
            target = f"{body['kind']} {body['metadata']['name']}"
            table.add_row(conversion.source, target, outcome, secret)
    console.print(table)
    verb = "would write" if args.dry_run else "wrote"
    console.print(
        f"{verb} {plural(written, 'object')} from {plural(len(conversions), 'cert-manager object')}"
        + (" (server-side dry run: nothing was changed)" if args.dry_run else "")
    )
    _print_unmapped(conversions, sys.stdout)
    return int(ExitCode.CONDITION if refused else ExitCode.OK)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
    all_namespaces: argparse.ArgumentParser,
) -> None:
    command = commands.add_parser(
        "import",
        help="write certctl objects for cert-manager's (adopting their Secrets)",
        description="Import objects of another certificate manager.",
    )
    sources = command.add_subparsers(dest="source", metavar="SOURCE", required=True)
    cert_manager = sources.add_parser(
        "cert-manager",
        parents=[*common, all_namespaces],
        help="cert-manager Certificates, Issuers and ClusterIssuers",
        description=(
            "Read cert-manager's Certificates, Issuers and ClusterIssuers and create the equivalent "
            "ManagedCertificates, Issuers and ClusterIssuers of certctl.io. Each Certificate's Secret is "
            "annotated certctl.io/allow-takeover-by so the operator adopts the key and certificate in it "
            "without issuing again. Fields with no equivalent are listed. Existing certctl objects are "
            "left alone. With -n, only the ClusterIssuers that the namespace's Certificates use are read."
        ),
        epilog=(
            "exit status: 0 everything imported, 1 error, 3 some objects could not be imported\n\n"
            "examples:\n"
            "  kubectl certctl import cert-manager -n shop --dry-run\n"
            "  kubectl certctl import cert-manager -A\n"
            "  kubectl certctl import cert-manager -A -o yaml > certctl-objects.yaml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cert_manager.add_argument(
        "--dry-run",
        action="store_true",
        help="ask the API server to admit every write without making it (server-side dry run)",
    )
    cert_manager.add_argument(
        "-o",
        "--output",
        choices=("table", "yaml"),
        default="table",
        help="yaml: print the objects (for committing to Git) and write nothing",
    )
    cert_manager.set_defaults(func=run_import)
