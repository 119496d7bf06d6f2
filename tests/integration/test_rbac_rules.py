"""No permission of the chart is unused: take any one away and the operator fails.

For each rule of the chart's roles (one resource of a rule at a time, or
with ``CERTCTL_RBAC_EVERY_VERB=1`` one verb at a time), the chart's RBAC
objects are installed with that rule removed, under a release of their own,
and the operator runs on that release's ServiceAccount token with the
chart's environment (leader election included) through every flow of
:mod:`tests.support.flows`. The removal counts as needed when the operator
logs a permission error or the flows fail. A first run with nothing removed
shows the flows pass with no permission error at all, so any error after a
removal is that removal's doing.

The releases use the chart's ``watchNamespaces`` form (RoleBindings in one
watched namespace and the operator's own), so operators whose removal is
about namespaced objects run side by side without acting on each other's
objects. ClusterIssuers are seen by every operator, so the removals of the
cluster-scoped rules run one at a time afterwards, with a ClusterIssuer flow
of their own. This module starts its own control plane.

Rules the flows cannot show to be needed are listed in :data:`KEPT` with the
reason they are kept (``docs/install.md`` has the same table).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.flows import EVERY_FLOW_SETTINGS, Flows, every_flow
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.controlplane import ControlPlane, apply_crds
from certctl_operator.dev.helm import Helm
from certctl_operator.dev.operator_process import OperatorProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "certctl-operator"
PERMISSION_ERROR = re.compile(r"\b403\b|[Ff]orbidden|Not enough permissions")
FLOW_TIMEOUT = 20.0
WORKERS = 3
EVERY_VERB = os.environ.get("CERTCTL_RBAC_EVERY_VERB") == "1"
CLUSTER_ROLES = ("-cluster", "-cluster-events")
"""Roles (by suffix) whose removals run one at a time: every operator sees ClusterIssuers."""

_SOLVER_PODS = (
    "HTTP-01 solver Pods and Services of acme issuers with http01.pod (the flows here have no ACME "
    "CA; tests/integration/test_acme_http01_pod.py runs them on the chart's RBAC, and without each rule)"
)
# (apiGroup, resource, verb) -> why it is kept though no flow here can show it.
KEPT = {
    ("", "secrets", "update"): (
        "replacing an issuer's OCSP responder certificate (before its 30 days run out, or after "
        "the CA key pair changed)"
    ),
    **{("", "pods", verb): _SOLVER_PODS for verb in ("create", "get", "list", "delete")},
    **{("", "services", verb): _SOLVER_PODS for verb in ("create", "list", "delete")},
}


@dataclass(frozen=True)
class Removal:
    """Take ``verbs`` on ``resource`` away from the chart role whose name ends in ``role``."""

    role: str
    group: str
    resource: str
    verbs: tuple[str, ...]

    @property
    def label(self) -> str:
        group = f".{self.group}" if self.group else ""
        return f"role <release>-certctl-operator{self.role}: {self.resource}{group} [{' '.join(self.verbs)}]"


@dataclass
class Outcome:
    removal: Removal | None
    needed: bool
    evidence: str
    seconds: float


class Plane:
    def __init__(self, plane: ControlPlane, helm: Helm, home: Path, kube: Any) -> None:
        self.plane, self.helm, self.home, self.kube = plane, helm, home, kube

    def kubectl(self, *args: str, input: str | None = None) -> None:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr

    def render(self, release: str, namespace: str, watched: str) -> list[dict[str, Any]]:
        rendered = self.helm.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            "crds.enabled=false",
            "--set",
            f"watchNamespaces={{{watched}}}",
            home=self.home,
        ).stdout
        return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, helm: Helm) -> Iterator[Plane]:
    with ControlPlane(tmp_path_factory.mktemp("rbac-rules")) as control_plane:
        apply_crds(control_plane.kubeconfig, ROOT / "crds")
        with control_plane.api_client() as kube:
            yield Plane(control_plane, helm, tmp_path_factory.mktemp("helm-home"), kube)


def chart_removals(plane: Plane) -> list[Removal]:
    """Every rule of the chart, split by resource (and by verb with EVERY_VERB)."""
    objects = plane.render("probe", "probe-system", "probe-apps")
    removals = []
    for role in (obj for obj in objects if obj["kind"] in ("ClusterRole", "Role")):
        suffix = role["metadata"]["name"].removeprefix("probe-certctl-operator")
        for rule in role["rules"]:
            (group,) = rule["apiGroups"]
            for resource in rule["resources"]:
                if EVERY_VERB:
                    removals += [Removal(suffix, group, resource, (verb,)) for verb in rule["verbs"]]
                else:
                    removals.append(Removal(suffix, group, resource, tuple(rule["verbs"])))
    return removals


def without(objects: list[dict[str, Any]], removal: Removal | None, prefix: str) -> list[dict[str, Any]]:
    """The chart's RBAC objects (and ServiceAccount) with ``removal`` applied."""
    kept = []
    for obj in objects:
        if obj["kind"] not in ("ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
            continue
        name = obj["metadata"]["name"]
        if removal is not None and obj["kind"] in ("ClusterRole", "Role") and name == prefix + removal.role:
            rules = []
            for rule in obj["rules"]:
                if rule["apiGroups"] != [removal.group] or removal.resource not in rule["resources"]:
                    rules.append(rule)
                    continue
                others = [r for r in rule["resources"] if r != removal.resource]
                if others:
                    rules.append({**rule, "resources": others})
                verbs = [v for v in rule["verbs"] if v not in removal.verbs]
                if verbs:
                    rules.append({**rule, "resources": [removal.resource], "verbs": verbs})
            obj = {**obj, "rules": rules}
        kept.append(obj)
    return kept


def environment(deployment: dict[str, Any], namespace: str, pod: str) -> dict[str, str]:
    """The chart's container environment, as the kubelet would resolve it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    downward = {"metadata.namespace": namespace, "metadata.name": pod}
    env = {}
    for variable in container["env"]:
        if "valueFrom" in variable:
            env[variable["name"]] = downward[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[variable["name"]] = variable["value"]
    return env


def run_variant(plane: Plane, index: int, removal: Removal | None, workdir: Path) -> Outcome:
    """Install the chart's RBAC less ``removal``, run the operator on it and the flows against it."""
    cluster_only = removal is not None and removal.role in CLUSTER_ROLES
    namespaced_only = removal is not None and not cluster_only
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:5]
    release, system, watched = f"r{index}-{suffix}", f"rbac-{index}-{suffix}-system", f"rbac-{index}-{suffix}"
    for name in (system, watched):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        plane.kubectl("apply", "-f", "-", input=json.dumps(namespace))
    objects = plane.render(release, system, watched)
    prefix = f"{release}-certctl-operator"
    rbac = without(objects, removal, prefix)
    plane.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(obj) for obj in rbac))
    kubeconfig = plane.plane.service_account_kubeconfig(system, prefix, workdir / f"kubeconfig-{index}")
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment"]
    env = environment(deployment, system, f"{prefix}-pod")
    # The chart's settings, with the fast timings of the tests for what the flows wait on.
    env = {k: v for k, v in env.items() if not k.startswith(("CERTCTL_NOTIFICATION_", "CERTCTL_ISSUANCE_"))}
    env |= EVERY_FLOW_SETTINGS
    operator = OperatorProcess(kubeconfig, workdir / f"operator-{index}.log", env=env)
    failure: list[str] = []
    with HTTPReceiver(default=ScriptedResponse(status=200)) as receiver:
        flows = Flows(plane.kube, watched, operator.base_url, operator_namespace=system, timeout=FLOW_TIMEOUT)

        def drive() -> None:
            try:
                if cluster_only:
                    flows.cluster_issued()
                else:
                    every_flow(
                        flows,
                        receiver.url_for("/hook"),
                        lambda: [request.body for request in receiver.requests],
                        f"http://127.0.0.1:{free_port()}/closed",
                        cluster=not namespaced_only,
                    )
            except Exception as error:
                failure.append("".join(traceback.format_exception_only(error)).strip())

        try:
            operator.start(timeout=60, ready=False)
            flow = threading.Thread(target=drive, name=f"flows-{index}", daemon=True)
            flow.start()
            while True:
                found = PERMISSION_ERROR.search(operator.logs())
                if found or not flow.is_alive() or not operator.running():
                    break
                time.sleep(0.1)  # polling interval; the flows have their own deadlines
            # Deleted while the operator runs (it removes their finalizers), so later
            # operators do not find ClusterIssuers whose CA Secret they cannot see.
            flows.delete_cluster_issuers(timeout=5)
        finally:
            operator.stop(timeout=10)
    logs = operator.logs()
    found = PERMISSION_ERROR.search(logs)
    seconds = time.monotonic() - started
    if found:
        line = next(line for line in logs.splitlines() if PERMISSION_ERROR.search(line))
        return Outcome(removal, True, line[:300], seconds)
    if failure:
        return Outcome(removal, True, f"flows failed: {failure[0][:300]}", seconds)
    return Outcome(removal, False, "every flow passed without a permission error", seconds)


def test_every_rule_of_the_chart_is_needed(plane: Plane, tmp_path: Path) -> None:
    baseline = run_variant(plane, 0, None, tmp_path)
    assert not baseline.needed, f"with the chart's RBAC unchanged: {baseline.evidence}"
    print(f"\nbaseline (nothing removed): {baseline.seconds:.1f}s, {baseline.evidence}")

    removals = list(enumerate(chart_removals(plane), 1))
    assert len(removals) >= 20
    namespaced = [(i, r) for i, r in removals if r.role not in CLUSTER_ROLES]
    cluster_scoped = [(i, r) for i, r in removals if r.role in CLUSTER_ROLES]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(lambda item: run_variant(plane, item[0], item[1], tmp_path), namespaced))
    outcomes += [run_variant(plane, index, removal, tmp_path) for index, removal in cluster_scoped]
    unused = []
    for outcome in outcomes:
        removal = outcome.removal
        assert removal is not None
        kept = [
            KEPT[(removal.group, removal.resource, verb)]
            for verb in removal.verbs
            if (removal.group, removal.resource, verb) in KEPT
        ]
        note = f" (kept: {kept[0]})" if kept and len(kept) == len(removal.verbs) else ""
        print(f"{removal.label:<90} {outcome.seconds:5.1f}s  {outcome.evidence}{note}")
        if not outcome.needed and not note:
            unused.append(removal.label)
    assert not unused, "rules nothing needs:\n" + "\n".join(unused)
