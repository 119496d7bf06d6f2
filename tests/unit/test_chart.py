"""The Helm chart's files, checked without helm: CRD copy, values, schema, settings, monitoring.

Rendering, linting and installing the chart are in tests/integration/test_delivery_*.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from certctl_operator.dev import render_manifests
from certctl_operator.durations import DURATION_PATTERN, parse_duration
from certctl_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / render_manifests.CHART
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def test_the_charts_crd_copy_equals_crds() -> None:
    expected = render_manifests.chart_crd_copy(ROOT)
    assert len(expected) == 6
    actual = {
        path.relative_to(ROOT): path.read_text() for path in (ROOT / render_manifests.CHART_CRDS).glob("*")
    }
    assert actual == expected, (
        "helm/certctl-operator/files/crds/ differs from crds/; "
        "run python -m certctl_operator.dev.render_manifests"
    )


def test_no_crd_carries_what_the_api_server_drops() -> None:
    # An empty `properties: {}` is not stored, so kubectl apply, Argo CD and Flux
    # would report the CRD as changed on every sync.
    for path, text in render_manifests.chart_crd_copy(ROOT).items():
        assert "properties: {}" not in text, path


# --------------------------------------------------------------------------- values and schema


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}" if path else name)


def value_paths(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from value_paths(value, f"{path}.{key}" if path else key)
    else:
        yield path


def test_every_default_value_is_described_by_the_schema() -> None:
    nodes = dict(schema_nodes(SCHEMA))
    for path in value_paths(VALUES):
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        # Free-form maps (labels, annotations, Kubernetes objects) stop the walk.
        if path not in nodes and nodes.get(parent, {}).get("additionalProperties") is not False:
            continue
        assert path in nodes, f"values.yaml has {path}, values.schema.json does not"


def test_every_schema_object_with_properties_refuses_unknown_keys() -> None:
    for path, node in schema_nodes(SCHEMA):
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or '(root)'} accepts unknown keys"
        assert path == "" or "description" in node or node.get("type") == "array", (
            f"{path} has no description"
        )


def test_schema_durations_use_the_operators_grammar() -> None:
    durations = [
        node for _, node in schema_nodes(SCHEMA) if "Go-style duration" in node.get("description", "")
    ]
    assert len(durations) >= 9
    assert all(node["pattern"] == DURATION_PATTERN for node in durations)


def test_more_replicas_and_rolling_updates_only_with_leader_election() -> None:
    assert "maximum" not in SCHEMA["properties"]["replicaCount"]
    assert VALUES["replicaCount"] == 1
    assert VALUES["leaderElection"]["enabled"] is True
    # Empty: the template picks RollingUpdate with leader election, Recreate without.
    assert VALUES["updateStrategy"] == {}
    # Without leader election the schema caps replicas at 1 and insists on Recreate.
    assert SCHEMA["if"] == {
        "properties": {
            "leaderElection": {"properties": {"enabled": {"const": False}}, "required": ["enabled"]}
        },
        "required": ["leaderElection"],
    }
    then = SCHEMA["then"]["properties"]
    assert then["replicaCount"]["maximum"] == 1
    assert then["updateStrategy"]["properties"]["type"] == {"const": "Recreate"}


# --------------------------------------------------------------------------- RBAC

RBAC = (CHART / "templates" / "rbac.yaml").read_text()
LEASE = '{{ include "certctl-operator.leaseName" . | quote }}'

# Every rule of the chart's roles: (role, apiGroup, resource, resourceNames, verbs).
# docs/install.md lists the flow that needs each one; tests/integration/test_rbac_rules.py
# removes them one at a time and shows the operator failing without it.
NAMESPACED_KINDS = (
    "issuers",
    "managedcertificates",
    "revocations",
    "notificationchannels",
    "notificationevents",
)
EXPECTED_RULES = (
    {("operator", "certctl.io", kind, (), ("get", "list", "watch", "patch")) for kind in NAMESPACED_KINDS}
    | {("operator", "certctl.io", f"{kind}/status", (), ("patch",)) for kind in NAMESPACED_KINDS}
    | {
        ("operator", "certctl.io", "notificationevents", (), ("create", "delete")),
        ("operator", "", "secrets", (), ("get", "list", "watch", "create", "update", "patch", "delete")),
        ("operator", "", "configmaps", (), ("get", "create", "update")),
        ("operator", "", "events", (), ("create",)),
        # ACME HTTP-01 solver Pods and their Services.
        ("operator", "", "pods", (), ("create", "get", "list", "delete")),
        ("operator", "", "services", (), ("create", "list", "delete")),
        ("operator-cluster", "certctl.io", "clusterissuers", (), ("get", "list", "watch", "patch")),
        ("operator-cluster", "certctl.io", "clusterissuers/status", (), ("patch",)),
        ("operator-cluster", "apiextensions.k8s.io", "customresourcedefinitions", (), ("list", "watch")),
        # With watchNamespaces only: Kopf checks which of the listed namespaces exist.
        ("operator-cluster", "", "namespaces", (), ("list", "watch")),
        # With watchNamespaces only: Events about ClusterIssuers go to "default".
        ("operator-cluster-events", "", "events", (), ("create",)),
        ("operator-leader-election", "coordination.k8s.io", "leases", ("<lease>",), ("get", "update")),
        ("operator-leader-election", "coordination.k8s.io", "leases", (), ("create",)),
    }
)


def template_rules() -> set[tuple[str, str, str, tuple[str, ...], tuple[str, ...]]]:
    """The rules written in templates/rbac.yaml, read without helm."""
    found = set()
    for part in RBAC.split("\n---\n"):
        kind = re.search(r"^kind: (ClusterRole|Role)$", part, re.MULTILINE)
        if kind is None:
            continue
        name = re.search(r"^  name: \{\{ \$fullname \}\}(\S*)$", part, re.MULTILINE)
        assert name is not None, part
        body = part[part.index("\nrules:\n") :].replace(LEASE, '"<lease>"')
        lines = [line for line in body.splitlines() if not line.strip().startswith("{{")]
        for rule in yaml.safe_load("\n".join(lines))["rules"]:
            assert "*" not in str(rule), rule
            (group,) = rule["apiGroups"]
            for resource in rule["resources"]:
                names = tuple(rule.get("resourceNames", ()))
                found.add((f"operator{name.group(1)}", group, resource, names, tuple(rule["verbs"])))
    return found


def test_the_roles_grant_exactly_the_expected_rules() -> None:
    assert template_rules() == EXPECTED_RULES


def test_only_the_leader_election_role_touches_leases_and_only_its_own_by_name() -> None:
    leases = [rule for rule in EXPECTED_RULES if rule[2] == "leases"]
    assert {rule[0] for rule in leases} == {"operator-leader-election"}
    # Reading and writing name the Lease; only create (which cannot) is unnamed.
    assert {rule[4] for rule in leases if not rule[3]} == {("create",)}
    assert "{{- if .Values.leaderElection.enabled }}" in RBAC


# --------------------------------------------------------------------------- values -> settings

# values path -> Settings field (the chart sets each through CERTCTL_<FIELD>).
SETTINGS_OF_VALUES = {
    "config.logLevel": "log_level",
    "config.httpPort": "http_port",
    "config.notifications.retryBase": "notification_retry_base",
    "config.notifications.retryCap": "notification_retry_cap",
    "config.notifications.maxAttempts": "notification_max_attempts",
    "config.notifications.retryInterval": "notification_retry_interval",
    "config.notifications.sentRetention": "notification_sent_retention",
    "config.issuance.retryBase": "issuance_retry_base",
    "config.issuance.retryCap": "issuance_retry_cap",
    "config.issuance.renewalCheckInterval": "renewal_check_interval",
    "config.issuance.minimumCertificateDuration": "minimum_certificate_duration",
    "config.issuance.issuerCheckInterval": "issuer_check_interval",
    "config.reconcileWorkers": "reconcile_workers",
    "config.crlRefreshCheckInterval": "crl_refresh_check_interval",
    "config.kubeClient.qps": "client_qps",
    "config.kubeClient.burst": "client_burst",
    "config.acmeSolver.serviceType": "acme_solver_service_type",
    "leaderElection.leaseDuration": "leader_election_lease_duration",
    "leaderElection.renewDeadline": "leader_election_renew_deadline",
    "leaderElection.retryPeriod": "leader_election_retry_period",
}


def value_at(path: str) -> Any:
    node: Any = VALUES
    for key in path.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize(("path", "field"), sorted(SETTINGS_OF_VALUES.items()))
def test_chart_defaults_are_the_operators_defaults(path: str, field: str) -> None:
    value = value_at(path)
    default = Settings.model_fields[field].default
    if isinstance(default, timedelta):
        value = parse_duration(value)
    assert value == default, f"{path}={value!r} but Settings.{field} defaults to {default!r}"


def test_the_charts_solver_defaults_are_the_operators() -> None:
    solver = VALUES["config"]["acmeSolver"]
    settings = Settings()
    assert solver["resources"] == settings.acme_solver_resources
    assert solver["nodeSelector"] == settings.acme_solver_node_selector
    assert tuple(solver["tolerations"]) == settings.acme_solver_tolerations


def test_the_chart_logs_json_and_elects_a_leader_by_default() -> None:
    # The deliberate differences: in a cluster, logs are read by machines, and
    # replicas (during an update, or for high availability) must not act together;
    # `certctl-operator run` from a laptop needs neither.
    assert VALUES["config"]["logFormat"] == "json"
    assert Settings.model_fields["log_format"].default == "text"
    assert VALUES["leaderElection"]["enabled"] is True
    assert Settings.model_fields["leader_election"].default is False


def test_every_variable_the_deployment_sets_is_a_setting() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    names = set(re.findall(r"name: (CERTCTL_[A-Z_]+)", template))
    fields = {name.removeprefix("CERTCTL_").lower() for name in names}
    assert fields <= set(Settings.model_fields), fields - set(Settings.model_fields)
    # Every setting is reachable from values (a new setting needs a value, a schema entry
    # and a line in the Deployment), except the bind address, which is 0.0.0.0 in a Pod.
    assert fields == set(Settings.model_fields) - {"http_host"}
    assert (
        set(SETTINGS_OF_VALUES.values())
        | {"namespaces", "operator_namespace", "log_format"}
        | {"public_base_url", "leader_election"}
        # A list in values, joined with commas; empty (the default) sets nothing.
        | {"notification_egress_allowed_cidrs"}
        # The Lease is named after the release, like every object of the chart.
        | {"leader_election_lease_name"}
        # The operator's image unless set; the rest as JSON (dicts and lists in values).
        | {"acme_solver_image", "acme_solver_resources", "acme_solver_node_selector"}
        | {"acme_solver_tolerations"}
        == fields
    )


# --------------------------------------------------------------------------- monitoring


def test_the_chart_ships_the_alerts_and_dashboard_of_monitoring() -> None:
    # Their content is checked (metrics exported, promtool tests, runbook) in test_monitoring.py.
    for copy, source in render_manifests.CHART_MONITORING.items():
        assert (ROOT / copy).read_text() == (ROOT / source).read_text(), (
            f"{copy} differs from {source}; run python -m certctl_operator.dev.render_manifests"
        )
    rules = yaml.safe_load((CHART / "files/prometheus-rules.yaml").read_text())
    assert rules["spec"]["groups"], "the chart's PrometheusRule template reads spec.groups"
    dashboard = json.loads((CHART / "files/dashboards/certctl-operator.json").read_text())
    assert dashboard["uid"] == "certctl-operator"
