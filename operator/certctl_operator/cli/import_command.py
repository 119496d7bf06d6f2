"""``kubectl certctl import cert-manager``: write certctl objects for cert-manager's.

Reads cert-manager Issuers, ClusterIssuers and Certificates, converts them with
:mod:`certctl_operator.cli.importing` and creates the certctl objects. Each
Certificate's Secret gets the annotation that lets the new ManagedCertificate
take it over, so the operator adopts the certificate already in it instead of
issuing a new one. A CA ClusterIssuer's Secret is copied from cert-manager's
cluster resource namespace into the operator's, where certctl reads it.
Existing certctl objects and Secrets are never replaced.
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
from certctl_operator.api.metadata_keys import ANNOTATION_IMPORTED_FROM
from certctl_operator.cli.crl import default_operator_namespace
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


def _imported_from(body: Mapping[str, Any]) -> str | None:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_IMPORTED_FROM)
    return str(value) if value is not None else None


class Importer:
    """The writes of one import, and what was found in the way of them."""

    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.dry_run: bool = args.dry_run
        self.cluster_resource_namespace: str = args.cluster_resource_namespace
        self.operator_namespace: str = args.operator_namespace
        self.not_imported: list[tuple[str, str]] = []
        """(cert-manager object, why): certctl objects found in the way."""
        self.to_do: list[tuple[str, str]] = []
        """(cert-manager object, what the user still has to do)."""

    @property
    def _dry_run(self) -> dict[str, Any]:
        return {"dry_run": "All"} if self.dry_run else {}

    def _read_certctl(self, body: Mapping[str, Any]) -> Body:
        meta = body["metadata"]
        plural_name = _PLURALS[str(body["kind"])]
        if "namespace" in meta:
            found = self.cluster.custom.get_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                meta["namespace"],
                plural_name,
                meta["name"],
                _request_timeout=REQUEST_TIMEOUT,
            )
        else:
            found = self.cluster.custom.get_cluster_custom_object(
                API_GROUP, API_VERSION, plural_name, meta["name"], _request_timeout=REQUEST_TIMEOUT
            )
        return dict(found)

    def may_write(self, source: str, body: Mapping[str, Any]) -> bool:
        """Whether the certctl object is absent or an earlier import of ``source`` wrote it."""
        try:
            existing = self._read_certctl(body)
        except ApiException as error:
            if error.status == 404:
                return True
            raise self.cluster.api_error(f"read {body['kind']} {body['metadata']['name']}", error) from None
        return bool(_imported_from(existing) == source)

    def create(self, source: str, body: Mapping[str, Any]) -> tuple[str, bool]:
        """Create one certctl object: (what happened, whether it is the import of ``source``).

        An object of that name that exists already is never replaced. When an
        earlier import wrote it from the same cert-manager object, the import
        goes on (the Secret is handed over again, which changes nothing, or
        for the first time after an interrupted run); otherwise it is someone
        else's and the cert-manager object counts as not imported.
        """
        kind = str(body["kind"])
        meta = body["metadata"]
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        try:
            if "namespace" in meta:
                self.cluster.custom.create_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    meta["namespace"],
                    _PLURALS[kind],
                    dict(body),
                    _request_timeout=REQUEST_TIMEOUT,
                    **self._dry_run,
                )
            else:
                self.cluster.custom.create_cluster_custom_object(
                    API_GROUP,
                    API_VERSION,
                    _PLURALS[kind],
                    dict(body),
                    _request_timeout=REQUEST_TIMEOUT,
                    **self._dry_run,
                )
        except ApiException as error:
            if error.status != 409:
                raise self.cluster.api_error(f"create {kind} {where}", error) from None
        else:
            return ("would create" if self.dry_run else "created"), True
        try:
            existing = self._read_certctl(body)
        except ApiException as error:
            raise self.cluster.api_error(f"read {kind} {where}", error) from None
        origin = _imported_from(existing)
        if origin == source:
            return "already imported, left alone", True
        written_by = (
            f"imported from {origin}"
            if origin
            else f"not written by an import: no {ANNOTATION_IMPORTED_FROM} annotation"
        )
        found = f"certctl {kind} {where} exists already ({written_by}) and was left as it is"
        if kind == "ManagedCertificate":
            handed = "the Secret was not handed over to it: delete or rename it and import again"
            self.not_imported.append((source, f"{found}; {handed}"))
        else:
            # An issuer made by hand before the import (the manual migration does that) may well be
            # the right one; the ManagedCertificates that name it sign with it, so it needs a look.
            self.to_do.append(
                (source, f"{found}; the imported ManagedCertificates that name it sign with it: check it")
            )
        return "exists, left alone", False

    def allow_takeover(self, namespace: str, name: str, annotations: dict[str, str]) -> str:
        try:
            self.cluster.core.patch_namespaced_secret(
                name,
                namespace,
                {"metadata": {"annotations": annotations}},
                _request_timeout=REQUEST_TIMEOUT,
                **self._dry_run,
            )
        except ApiException as error:
            if error.status == 404:
                return "no Secret yet: the operator issues one"
            raise self.cluster.api_error(f"annotate Secret {namespace}/{name}", error) from None
        return "would allow takeover" if self.dry_run else "takeover allowed"

    def _read_secret(self, namespace: str, name: str) -> Any:
        try:
            return self.cluster.core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return None
            raise self.cluster.api_error(f"read Secret {namespace}/{name}", error) from None

    def copy_cluster_ca_secret(self, source: str, name: str) -> str:
        """Copy a CA ClusterIssuer's Secret from cert-manager's namespace into the operator's.

        An existing Secret in the operator's namespace is never replaced; one
        that holds another CA is reported, since certificates that CA did not
        sign are issued again instead of adopted.
        """
        origin, target = self.cluster_resource_namespace, self.operator_namespace
        original = self._read_secret(origin, name)
        present = self._read_secret(target, name) if target != origin else original
        if present is not None:
            if original is not None and (present.data or {}) != (original.data or {}):
                self.to_do.append(
                    (
                        source,
                        f"Secret {target}/{name} exists and differs from {origin}/{name}: it was left as "
                        "it is and the certctl ClusterIssuer signs with it; certificates its CA did not "
                        "sign are issued again instead of adopted",
                    )
                )
                return f"{name}: differs in {target}, left alone"
            return f"{name}: already in {target}"
        if original is None:
            self.to_do.append(
                (
                    source,
                    f"Secret {name} is neither in {origin} (cert-manager's cluster resource namespace; "
                    f"see --cluster-resource-namespace) nor in {target}: put the CA's tls.crt and tls.key "
                    f"into Secret {target}/{name}, where the certctl ClusterIssuer reads them",
                )
            )
            return f"{name}: not found in {origin}"
        copy = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": target,
                "annotations": {ANNOTATION_IMPORTED_FROM: f"Secret {origin}/{name}"},
            },
            "type": original.type,
            "data": dict(original.data or {}),
        }
        try:
            self.cluster.core.create_namespaced_secret(
                target, copy, _request_timeout=REQUEST_TIMEOUT, **self._dry_run
            )
        except ApiException as error:
            raise self.cluster.api_error(f"create Secret {target}/{name}", error) from None
        verb = "would copy" if self.dry_run else "copied"
        return f"{name}: {verb} from {origin} to {target}"


def _takeover_command(conversion: Conversion) -> str:
    assert conversion.secret_takeover is not None
    namespace, name, annotations = conversion.secret_takeover
    pairs = " ".join(f"{key}={value}" for key, value in annotations.items())
    return f"kubectl annotate secret {name} -n {namespace} {pairs}"


def _print_problems(
    conversions: list[Conversion],
    not_imported: list[tuple[str, str]],
    to_do: list[tuple[str, str]],
    file: Any,
) -> None:
    console = make_console(file)
    refused = [(c.source, c.refused) for c in conversions if c.refused] + not_imported
    unmapped = [entry for c in conversions for entry in c.unmapped]
    for title, rows in (("not imported", refused), ("still to do", to_do)):
        if rows:
            table = Table(title=title, title_justify="left", box=None)
            for column in ("OBJECT", "WHY"):
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            console.print(table)
    if unmapped:
        table = Table(title="fields with no certctl equivalent (left out)", title_justify="left", box=None)
        for column in ("OBJECT", "FIELD", "WHY"):
            table.add_column(column)
        for entry in unmapped:
            table.add_row(entry.source, entry.field, entry.reason)
        console.print(table)


def _print_yaml(args: argparse.Namespace, conversions: list[Conversion]) -> int:
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
    secrets = sorted({c.cluster_ca_secret for c in conversions if c.objects and c.cluster_ca_secret})
    if secrets:
        errors.print(
            f"# a certctl ClusterIssuer reads its CA Secret from the operator's namespace "
            f"{args.operator_namespace}, cert-manager from {args.cluster_resource_namespace}; copy "
            "these there (the import without -o yaml does it):",
            markup=False,
            highlight=False,
        )
        for name in secrets:
            errors.print(
                f"Secret {args.cluster_resource_namespace}/{name} -> {args.operator_namespace}/{name}",
                markup=False,
                highlight=False,
            )
    _print_problems(conversions, [], [], sys.stderr)
    refused = any(conversion.refused for conversion in conversions)
    return int(ExitCode.CONDITION if refused else ExitCode.OK)


def run_import(args: argparse.Namespace, connect: Connect) -> int:
    cluster = connect()
    namespace = None if args.all_namespaces else (args.namespace or cluster.namespace)
    conversions = [convert(body) for body in read_cert_manager_objects(cluster, namespace)]
    if args.output == "yaml":
        return _print_yaml(args, conversions)

    importer = Importer(cluster, args)
    console = make_console(sys.stdout)
    table = Table(box=None)
    for column in ("FROM", "TO", "RESULT", "SECRET"):
        table.add_column(column)
    written = 0
    for conversion in conversions:
        for body in conversion.objects:
            secret = ""
            # The CA Secret goes first, so that the new ClusterIssuer is Ready from its first check.
            if conversion.cluster_ca_secret is not None and importer.may_write(conversion.source, body):
                secret = importer.copy_cluster_ca_secret(conversion.source, conversion.cluster_ca_secret)
            outcome, imported = importer.create(conversion.source, body)
            written += outcome in {"created", "would create"}
            if imported and conversion.secret_takeover is not None:
                secret_namespace, secret_name, annotations = conversion.secret_takeover
                state = importer.allow_takeover(secret_namespace, secret_name, annotations)
                secret = f"{secret_name}: {state}"
            target = f"{body['kind']} {body['metadata']['name']}"
            table.add_row(conversion.source, target, outcome, secret)
    console.print(table)
    verb = "would write" if args.dry_run else "wrote"
    console.print(
        f"{verb} {plural(written, 'object')} from {plural(len(conversions), 'cert-manager object')}"
        + (" (server-side dry run: nothing was changed)" if args.dry_run else "")
    )
    _print_problems(conversions, importer.not_imported, importer.to_do, sys.stdout)
    problems = any(c.refused for c in conversions) or importer.not_imported or importer.to_do
    return int(ExitCode.CONDITION if problems else ExitCode.OK)


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
            "without issuing again. A CA ClusterIssuer's Secret is copied from cert-manager's cluster "
            "resource namespace into the operator's namespace, where certctl reads it. Fields with no "
            "equivalent are listed. Existing certctl objects and Secrets are never replaced: one written "
            "by an earlier import of the same object is left alone, any other is reported and its "
            "cert-manager object not imported. With -n, only the ClusterIssuers that the namespace's "
            "Certificates use are read."
        ),
        epilog=(
            "exit status: 0 everything imported, 1 error, 3 some objects could not be imported "
            "or something is left to do (listed)\n\n"
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
    cert_manager.add_argument(
        "--cluster-resource-namespace",
        default="cert-manager",
        metavar="NAMESPACE",
        help="where cert-manager keeps its ClusterIssuers' Secrets (default %(default)s)",
    )
    cert_manager.add_argument(
        "--operator-namespace",
        default=default_operator_namespace(),
        metavar="NAMESPACE",
        help=(
            "where certctl's ClusterIssuers read their Secrets "
            "(default $CERTCTL_OPERATOR_NAMESPACE or certctl-system)"
        ),
    )
    cert_manager.set_defaults(func=run_import)
