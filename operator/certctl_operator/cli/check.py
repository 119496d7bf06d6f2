"""``kubectl certctl check``: is everything in place for certctl to work?

1. The API server answers (its version endpoint).
2. Every certctl.io CRD is installed, Established, serves and stores
   v1alpha1, and its schema, printer columns, subresources and names are
   exactly what this release generates from its API models (``crdgen``), so
   a cluster still on older CRDs is caught before it refuses or prunes fields.
3. The operator is up. With ``--operator-url`` its ``/healthz`` and
   ``/readyz`` endpoints are asked (for an operator outside the cluster, or
   one reached through ``kubectl port-forward``). Without it, the Pods with
   the chart's label ``app.kubernetes.io/name=certctl-operator`` in the
   operator namespace must include a Ready one. Events are no evidence (the
   operator posts them on transitions only) and it holds no Lease, so these
   are the two signals.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import urllib3
from kubernetes.client.exceptions import ApiException
from rich.table import Table

from certctl_operator import API_VERSION, crdgen
from certctl_operator.api import RESOURCES, AnyResource
from certctl_operator.cli.crl import default_operator_namespace
from certctl_operator.cli.errors import CliError, ExitCode
from certctl_operator.cli.kube import REQUEST_TIMEOUT, Cluster, Connect, client
from certctl_operator.cli.output import make_console, print_json, styled

OPERATOR_SELECTOR = "app.kubernetes.io/name=certctl-operator"
MAX_DIFFERENCES = 5


class CheckOutcome(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: CheckOutcome
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "result": str(self.outcome), "detail": self.detail}


# --------------------------------------------------------------------------- CRD comparison


_EMPTY: tuple[object, ...] = ({}, [])


def _diff(installed: Any, expected: Any, path: str) -> Iterable[str]:
    """JSON paths where two documents differ (the API server drops empty maps and lists: equal)."""
    if isinstance(expected, Mapping) and isinstance(installed, Mapping):
        for key in expected:
            if key not in installed:
                if expected[key] not in _EMPTY:
                    yield f"{path}.{key}: missing in the cluster"
            else:
                yield from _diff(installed[key], expected[key], f"{path}.{key}")
        for key in installed:
            if key not in expected and installed[key] not in _EMPTY:
                yield f"{path}.{key}: in the cluster, not in this release"
    elif isinstance(expected, list) and isinstance(installed, list):
        if len(expected) != len(installed):
            yield f"{path}: {len(installed)} entries in the cluster, {len(expected)} in this release"
        else:
            for index, (have, want) in enumerate(zip(installed, expected, strict=True)):
                yield from _diff(have, want, f"{path}[{index}]")
    elif installed != expected:
        have, want = json.dumps(installed)[:60], json.dumps(expected)[:60]
        yield f"{path}: {have} in the cluster, {want} in this release"


def _version(crd: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("name") == name:
            return dict(version)
    return None


def crd_differences(installed: Mapping[str, Any], resource: type[AnyResource]) -> list[str]:
    """How an installed CRD differs from the one this release generates; empty when it matches."""
    expected = crdgen.crd(resource)
    problems: list[str] = []
    spec = installed.get("spec") or {}
    want_spec = expected["spec"]
    for field in ("group", "scope"):
        if spec.get(field) != want_spec[field]:
            problems.append(
                f"spec.{field}: {spec.get(field)!r} in the cluster, {want_spec[field]!r} in this release"
            )
    names = spec.get("names") or {}
    for field, value in want_spec["names"].items():
        if names.get(field) != value:
            problems.append(
                f"spec.names.{field}: {names.get(field)!r} in the cluster, {value!r} in this release"
            )
    have = _version(installed, API_VERSION)
    want = _version(expected, API_VERSION)
    assert want is not None
    if have is None:
        served = ", ".join(str(v.get("name")) for v in spec.get("versions") or []) or "none"
        return [*problems, f"version {API_VERSION} is not defined (the cluster has {served})"]
    if not have.get("served") or not have.get("storage"):
        problems.append(f"version {API_VERSION} must be served and the storage version")
    for field in ("schema", "subresources", "additionalPrinterColumns"):
        problems.extend(
            _diff(have.get(field) or {}, want.get(field) or {}, f"versions[{API_VERSION}].{field}")
        )
    return problems


def _established(crd: Mapping[str, Any]) -> bool:
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Established":
            return bool(condition.get("status") == "True")
    return False


def check_crd(cluster: Cluster, resource: type[AnyResource]) -> CheckResult:
    name = resource.crd_name()
    api = client.ApiextensionsV1Api(cluster.api_client)
    label = f"CRD {name}"
    try:
        response = api.read_custom_resource_definition(
            name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        installed = json.loads(response.data)
    except ApiException as error:
        if error.status == 404:
            return CheckResult(
                label,
                CheckOutcome.FAIL,
                "not installed: kubectl apply --server-side -f crds/ (or install the Helm chart)",
            )
        if error.status == 403:
            return CheckResult(label, CheckOutcome.WARN, "cannot read CRDs with this context (forbidden)")
        raise cluster.api_error(f"read CRD {name}", error) from None
    except urllib3.exceptions.HTTPError as error:
        raise cluster.unreachable(error) from None
    if not _established(installed):
        return CheckResult(
            label, CheckOutcome.FAIL, "installed but not Established; see kubectl describe crd " + name
        )
    problems = crd_differences(installed, resource)
    if problems:
        shown = "; ".join(problems[:MAX_DIFFERENCES])
        more = f" (and {len(problems) - MAX_DIFFERENCES} more)" if len(problems) > MAX_DIFFERENCES else ""
        return CheckResult(
            label,
            CheckOutcome.FAIL,
            f"differs from this release: {shown}{more}. Update it: kubectl apply --server-side -f crds/ "
            "(or upgrade the Helm chart)",
        )
    return CheckResult(label, CheckOutcome.OK, f"{API_VERSION} installed and current")


# --------------------------------------------------------------------------- operator


def check_operator_url(url: str) -> CheckResult:
    base = url.rstrip("/")
    label = "operator"
    try:
        health = httpx.get(f"{base}/healthz", timeout=5.0)
        ready = httpx.get(f"{base}/readyz", timeout=5.0)
    except httpx.HTTPError as error:
        return CheckResult(
            label, CheckOutcome.FAIL, f"{base} does not answer ({error.__class__.__name__}: {error})"
        )
    if health.status_code != 200:
        return CheckResult(label, CheckOutcome.FAIL, f"{base}/healthz answered HTTP {health.status_code}")
    if ready.status_code != 200:
        return CheckResult(
            label, CheckOutcome.FAIL, f"{base}/readyz answered HTTP {ready.status_code}: {ready.text.strip()}"
        )
    return CheckResult(label, CheckOutcome.OK, f"{base} is healthy and ready")


def _pod_ready(pod: Any) -> bool:
    for condition in (pod.status.conditions if pod.status else None) or []:
        if condition.type == "Ready":
            return bool(condition.status == "True")
    return False


def check_operator_pods(cluster: Cluster, namespace: str, selector: str) -> CheckResult:
    label = "operator"
    try:
        pods = cluster.core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        ).items
    except ApiException as error:
        if error.status == 403:
            return CheckResult(
                label,
                CheckOutcome.WARN,
                f"cannot list Pods in {namespace} (forbidden); pass --operator-url to ask the operator",
            )
        raise cluster.api_error(f"list Pods in {namespace}", error) from None
    except urllib3.exceptions.HTTPError as error:
        raise cluster.unreachable(error) from None
    if not pods:
        return CheckResult(
            label,
            CheckOutcome.FAIL,
            f"no Pods labelled {selector} in namespace {namespace}. Is the operator installed? If it runs "
            "elsewhere, pass --operator-namespace, or --operator-url http://HOST:8080 to ask it directly",
        )
    ready = [pod.metadata.name for pod in pods if _pod_ready(pod)]
    if not ready:
        names = ", ".join(pod.metadata.name for pod in pods)
        return CheckResult(
            label,
            CheckOutcome.FAIL,
            f"no Ready Pod among {names} in {namespace}; see kubectl logs -n {namespace} -l {selector}",
        )
    return CheckResult(label, CheckOutcome.OK, f"{len(ready)} of {len(pods)} Pods Ready in {namespace}")


# --------------------------------------------------------------------------- command


def run_checks(cluster: Cluster, args: argparse.Namespace) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        version = cluster.call("read the API server version", client.VersionApi(cluster.api_client).get_code)
    except CliError as error:
        return [CheckResult("API server", CheckOutcome.FAIL, error.message)]
    context = f", context {cluster.context}" if cluster.context else ""
    results.append(
        CheckResult("API server", CheckOutcome.OK, f"{cluster.server} ({version.git_version}{context})")
    )
    results.extend(check_crd(cluster, resource) for resource in RESOURCES)
    if args.operator_url:
        results.append(check_operator_url(args.operator_url))
    else:
        results.append(check_operator_pods(cluster, args.operator_namespace, args.operator_selector))
    return results


_STYLES = {CheckOutcome.OK: "green", CheckOutcome.WARN: "yellow", CheckOutcome.FAIL: "bold red"}


def run(args: argparse.Namespace, connect: Connect) -> int:
    results = run_checks(connect(), args)
    failed = [result for result in results if result.outcome is CheckOutcome.FAIL]
    if args.output == "json":
        print_json({"ok": not failed, "checks": [result.as_dict() for result in results]})
    else:
        console = make_console()
        table = Table(title="certctl check", title_justify="left")
        table.add_column("Check")
        table.add_column("Result")
        table.add_column("Detail", overflow="fold")
        for result in results:
            table.add_row(result.name, styled(result.outcome, _STYLES[result.outcome]), styled(result.detail))
        console.print(table)
    if failed:
        raise CliError(
            f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed: "
            + ", ".join(result.name for result in failed),
            ExitCode.CONDITION,
        )
    return ExitCode.OK


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "check",
        parents=common,
        help="check the API server, the CRDs and the operator",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=(
            "exit status: 0 when every check passes, 3 when one fails\n\n"
            "examples:\n"
            "  kubectl certctl check\n"
            "  kubectl certctl check --operator-url http://127.0.0.1:8080"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--operator-url", help="base URL of the operator's HTTP port, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument(
        "--operator-namespace",
        default=default_operator_namespace(),
        help="namespace of the operator's Pods (default $CERTCTL_OPERATOR_NAMESPACE or certctl-system)",
    )
    parser.add_argument(
        "--operator-selector",
        default=OPERATOR_SELECTOR,
        help=f"label selector of its Pods (default {OPERATOR_SELECTOR})",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
    parser.set_defaults(func=run)
