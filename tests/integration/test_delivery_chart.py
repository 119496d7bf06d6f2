"""The Helm chart with a real helm: lint, schema, rendering, RBAC shape, and manifests/ drift.

Nothing here needs a cluster; tests/integration/test_delivery_cluster.py
installs the chart into a real API server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from certctl_operator.dev import render_manifests
from certctl_operator.dev.helm import Helm
from certctl_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / render_manifests.CHART
MONITORING_APIS = (
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
)
ALL_OPTIONAL = (
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "metrics.dashboard.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "podDisruptionBudget.enabled=true",
)

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def run_helm(helm: Helm, tmp_path: Path) -> Callable[..., Any]:
    def run(*args: str, check: bool = True) -> Any:
        return helm.run(*args, home=tmp_path / "helm-home", check=check)

    return run


@pytest.fixture
def render(run_helm: Callable[..., Any]) -> Render:
    """``helm template`` of the chart (release certctl-operator in certctl-system) as parsed objects."""

    def template(*args: str) -> list[dict[str, Any]]:
        result = run_helm("template", "certctl-operator", str(CHART), "--namespace", "certctl-system", *args)
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return template


def by_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def container(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(operator, dict)
    return operator


# --------------------------------------------------------------------------- lint and schema


@pytest.mark.parametrize(
    "values",
    [
        (),
        (
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "crds.keep=false",
            "--set",
            "argocd.syncWaves=false",
        ),
        ALL_OPTIONAL[4:],  # everything that needs no extra API (lint cannot pass --api-versions)
    ],
    ids=["defaults", "namespaced", "optional"],
)
def test_helm_lint_strict(run_helm: Callable[..., Any], values: tuple[str, ...]) -> None:
    result = run_helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("replicas=2", "additional properties 'replicas' not allowed"),  # a typo of replicaCount
        ("leaderElection.enabled=false,replicaCount=2", "replicaCount"),  # two would both act
        ("leaderElection.enabled=false,updateStrategy.type=RollingUpdate", "updateStrategy"),
        ("leaderElection.leaseDuration=soon", "leaseDuration"),
        ("replicaCount=-1", "replicaCount"),
        ("config.logFormat=xml", "logFormat"),
        ("config.notifications.retryBase=5 minutes", "retryBase"),
        ("config.notifications.maxAttempts=0", "maxAttempts"),
        ("config.publicBaseURL=ftp://pki.example.com", "publicBaseURL"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
    ],
)
def test_the_schema_rejects_a_bad_value(run_helm: Callable[..., Any], value: str, complaint: str) -> None:
    result = run_helm("template", "x", str(CHART), "--set", value, check=False)
    assert result.returncode != 0, f"--set {value} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert complaint in result.stderr, result.stderr


def test_monitoring_objects_need_the_prometheus_operator_api(
    render: Render, run_helm: Callable[..., Any]
) -> None:
    result = run_helm(
        "template", "x", str(CHART), "--set", "metrics.serviceMonitor.enabled=true", check=False
    )
    assert result.returncode != 0
    assert "monitoring.coreos.com/v1 ServiceMonitor API" in result.stderr
    objects = render(*ALL_OPTIONAL, *MONITORING_APIS)
    kinds = {obj["kind"] for obj in objects}
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"} <= kinds
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    (rule,) = by_kind(objects, "PrometheusRule")
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {
        "CertctlOperatorDown",
        "CertctlCertificateExpiringSoon",
        "CertctlNotificationsDeadLettered",
    } <= alerts
    source = yaml.safe_load((ROOT / "monitoring" / "prometheus-rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["spec"]["groups"]
    (dashboard,) = by_kind(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["certctl-operator.json"])
    assert shipped == json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())


# --------------------------------------------------------------------------- what the defaults render


def test_defaults_render_the_operator_and_nothing_optional(render: Render) -> None:
    objects = render()
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 6
        + ["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding"]
        + ["Role", "RoleBinding"]  # the leader-election Lease
        + ["Deployment", "Service"]
    )
    for obj in objects:
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "certctl-system", obj["kind"]


def test_crds_are_the_generated_ones_kept_on_uninstall(render: Render) -> None:
    crds = by_kind(render(), "CustomResourceDefinition")
    generated = {
        path.name: yaml.safe_load(text) for path, text in render_manifests.chart_crd_copy(ROOT).items()
    }
    assert {f"{crd['metadata']['name']}.yaml" for crd in crds} == set(generated)
    for crd in crds:
        annotations = crd["metadata"].pop("annotations")
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert annotations["argocd.argoproj.io/sync-wave"] == "-2"
        assert crd == generated[f"{crd['metadata']['name']}.yaml"], "the template changed more than metadata"
    assert not by_kind(render("--set", "crds.enabled=false"), "CustomResourceDefinition")
    for crd in by_kind(
        render("--set", "crds.keep=false", "--set", "argocd.syncWaves=false"), "CustomResourceDefinition"
    ):
        assert "annotations" not in crd["metadata"]


def test_deployment_runs_the_operator_restricted_with_probes(render: Render) -> None:
    objects = render()
    (deployment,) = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    operator = container(objects)
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "100%"},
    }
    assert operator["image"] == "ghcr.io/certctl/certctl-operator:0.1.0"
    assert operator["args"] == ["run"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = operator["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert operator["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert operator["resources"]["limits"]["memory"]
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()


def environment(operator: dict[str, Any], namespace: str, pod: str = "certctl-operator-0") -> dict[str, str]:
    downward = {"metadata.namespace": namespace, "metadata.name": pod}
    env: dict[str, str] = {}
    for variable in operator["env"]:
        if "valueFrom" in variable:
            env[variable["name"]] = downward[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[variable["name"]] = variable["value"]
    return env


def test_rendered_environment_is_valid_settings(render: Render) -> None:
    env = environment(container(render()), "certctl-system")
    assert env["POD_NAME"] == "certctl-operator-0"  # the replica's identity in the Lease
    defaults = Settings.from_env(env)
    assert defaults == Settings(operator_namespace="certctl-system", log_format="json", leader_election=True)

    custom = render(
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "config.publicBaseURL=http://pki.example.com",
        "--set",
        "config.notifications.retryBase=30s",
        "--set",
        "config.notifications.retryCap=2h",
        "--set",
        "config.notifications.maxAttempts=8",
        "--set",
        "config.notifications.sentRetention=3d",
        "--set",
        "config.logFormat=text",
        "--set",
        "extraEnv[0].name=CERTCTL_LOG_LEVEL",
        "--set",
        "extraEnv[0].value=DEBUG",
    )
    env = environment(container(custom), "ops")
    settings = Settings.from_env(env)
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.operator_namespace == "ops"
    assert settings.public_base_url == "http://pki.example.com"
    assert settings.notification_retry_base.total_seconds() == 30
    assert settings.notification_retry_cap.total_seconds() == 7200
    assert settings.notification_max_attempts == 8
    assert settings.notification_sent_retention.days == 3
    assert settings.log_format == "text"


# --------------------------------------------------------------------------- RBAC shape


def rules(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        rule for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role") for rule in role["rules"]
    ]


def test_rbac_has_no_wildcards_and_leases_only_by_name(render: Render) -> None:
    objects = render()
    for rule in rules(objects):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not rule.get("nonResourceURLs"), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    for role in by_kind(objects, "ClusterRole"):
        assert all("leases" not in rule["resources"] for rule in role["rules"]), role["metadata"]["name"]
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["name"] == "certctl-operator-leader-election"
    assert role["metadata"]["namespace"] == "certctl-system"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["certctl-operator"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    (binding,) = by_kind(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "certctl-operator-leader-election",
    }
    # The Lease the operator is told to use is the one the Role names.
    assert environment(container(objects), "certctl-system")["CERTCTL_LEADER_ELECTION_LEASE_NAME"] == (
        "certctl-operator"
    )


def test_without_leader_election_one_replica_recreated_and_no_lease(render: Render) -> None:
    objects = render("--set", "leaderElection.enabled=false")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not by_kind(objects, "Role")
    assert environment(container(objects), "certctl-system")["CERTCTL_LEADER_ELECTION"] == "false"
    assert all("leases" not in rule["resources"] for rule in rules(objects))


def test_replicas_above_one_with_leader_election(render: Render) -> None:
    objects = render("--set", "replicaCount=3", "--set", "leaderElection.leaseDuration=30s")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = environment(container(objects), "certctl-system")
    assert Settings.from_env(env).leader_election_lease_duration.total_seconds() == 30
    # An explicit strategy wins over the default.
    custom = render("--set", "updateStrategy.type=Recreate")
    (deployment,) = by_kind(custom, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_cluster_wide_and_namespaced_bindings(render: Render) -> None:
    cluster_wide = render()
    assert {b["roleRef"]["name"] for b in by_kind(cluster_wide, "ClusterRoleBinding")} == {
        "certctl-operator",
        "certctl-operator-cluster",
    }
    # The only RoleBinding is the leader-election Lease's.
    assert [b["roleRef"]["kind"] for b in by_kind(cluster_wide, "RoleBinding")] == ["Role"]

    namespaced = render("--set", "watchNamespaces={team-a,team-b,certctl-system}")
    (cluster_binding,) = by_kind(namespaced, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == "certctl-operator-cluster"
    bindings = [b for b in by_kind(namespaced, "RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
    # Each watched namespace once, and the operator's own for ClusterIssuer CA Secrets.
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["certctl-system", "team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "certctl-operator",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "certctl-operator", "namespace": "certctl-system"}
        ]


# --------------------------------------------------------------------------- manifests/ drift


def test_manifests_and_the_crd_copy_are_current(helm: Helm) -> None:
    diffs = render_manifests.drift(ROOT, render_manifests.expected_files(ROOT, helm))
    assert not diffs, (
        "manifests/ or the chart's CRD copy is stale; run python -m certctl_operator.dev.render_manifests\n"
        + "".join(diffs)
    )
