"""The Helm chart against a real API server, and the operator under exactly the RBAC it grants.

This module runs its own control plane (a fresh etcd + kube-apiserver), so
the chart installs the CRDs itself and owns every object it creates. There
is no kubelet: the Deployment's Pod never runs. Instead the operator runs
as a local process authenticated with a real token of the chart's
ServiceAccount (TokenRequest API), which proves that the chart's RBAC is
enough for it to start, watch everything and reconcile.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.flows import EVERY_FLOW_SETTINGS, Flows, every_flow
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.controlplane import ControlPlane
from certctl_operator.dev.helm import Helm
from certctl_operator.dev.operator_process import OperatorProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "certctl-operator"
RELEASE = "certctl-operator"
NAMESPACE = "certctl-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:certctl-operator"
APPS = "apps"


class Cluster:
    """A dedicated control plane with admin kubectl and helm."""

    def __init__(self, plane: ControlPlane, helm: Helm, home: Path) -> None:
        self.plane = plane
        self.helm_binary = helm
        self.home = home

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "kubectl",
            f"--kubeconfig={kubeconfig or self.plane.kubeconfig}",
            f"--cache-dir={self.plane.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.helm_binary.run(*args, home=self.home, kubeconfig=self.plane.kubeconfig, check=check)

    def template(self, *args: str, namespace: str = NAMESPACE, release: str = RELEASE) -> str:
        return self.helm("template", release, str(CHART), "--namespace", namespace, *args).stdout

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.kubectl("apply", "-f", "-", input=json.dumps(body))

    def can_i(self, verb: str, resource: str, namespace: str | None = None, subresource: str = "") -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={SERVICE_ACCOUNT}"]
        if namespace:
            args += ["--namespace", namespace]
        if subresource:
            args.append(f"--subresource={subresource}")
        result = self.kubectl(*args, check=False)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"can-i {verb} {resource}: {result.stdout}{result.stderr}"
        return answer == "yes"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, helm: Helm) -> Iterator[Cluster]:
    with ControlPlane(tmp_path_factory.mktemp("delivery-cluster")) as plane:
        yield Cluster(plane, helm, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> str:
    """The chart installed for real with default values, into certctl-system."""
    result = cluster.helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace")
    assert "STATUS: deployed" in result.stdout
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=certctl",
    )
    return RELEASE


# --------------------------------------------------------------------------- accepted by the API server

MONITORING_CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_template_output_is_accepted_by_the_api_server(cluster: Cluster) -> None:
    """``helm template | kubectl apply --dry-run=server`` for the defaults and for every optional object."""
    for name in (NAMESPACE, "team-a", "team-b"):
        cluster.ensure_namespace(name)
    # Minimal stand-ins for the prometheus-operator CRDs, so its objects can be checked too.
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        crd = MONITORING_CRDS.format(kind=kind, plural=plural, singular=kind.lower())
        cluster.kubectl("apply", "-f", "-", input=crd)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com"
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/prometheusrules.monitoring.coreos.com"
    )

    variants = {
        "defaults": (),
        "namespaced": ("--set", "watchNamespaces={team-a,team-b}"),
        "everything": (
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set-string",
            "networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.monitoring=true",
            "--set",
            "podDisruptionBudget.enabled=true",
            # Capabilities from the live API server's discovery, as helm install has them.
            "--validate",
        ),
    }
    for variant, args in variants.items():
        rendered = cluster.template(*args)
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        assert result.returncode == 0, f"{variant}: {result.stderr}"
        created = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
        documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
        assert len(created) == len(documents), f"{variant}: {result.stdout}"
        if variant == "everything":
            kinds = {doc["kind"] for doc in documents}
            assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget"} <= kinds


def test_the_pod_meets_the_restricted_pod_security_standard(cluster: Cluster) -> None:
    """The API server's PodSecurity admission accepts the operator Pod where "restricted" is enforced."""
    namespace = "psa-restricted"
    cluster.ensure_namespace(
        namespace,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    (deployment,) = [
        doc
        for doc in yaml.safe_load_all(cluster.template(namespace=namespace))
        if doc and doc["kind"] == "Deployment"
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "certctl-operator-pss", "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    }
    accepted = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert accepted.returncode == 0, accepted.stderr

    # The same check refuses a Pod that keeps its capabilities: it is really enforced.
    pod["spec"]["containers"][0]["securityContext"].pop("capabilities")
    refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


# --------------------------------------------------------------------------- installed for real


def test_the_release_is_deployed_with_every_object(cluster: Cluster, release: str) -> None:
    status = json.loads(cluster.helm("status", release, "--namespace", NAMESPACE, "--output", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert "kubectl -n certctl-system rollout status deployment/certctl-operator" in status["info"]["notes"]
    manifest = cluster.helm("get", "manifest", release, "--namespace", NAMESPACE).stdout
    documents = [doc for doc in yaml.safe_load_all(manifest) if doc]
    found = cluster.kubectl("get", "-f", "-", "-o", "name", input=manifest).stdout.split()
    assert len(found) == len(documents) == 15, found
    crds = cluster.kubectl(
        "get", "crd", "-l", "app.kubernetes.io/part-of=certctl", "-o", "name"
    ).stdout.split()
    assert len(crds) == 6


# Everything the operator's ServiceAccount may do, as `kubectl auth can-i --list` shows it:
# what the operator uses (see the comments in the chart's rbac.yaml) and nothing else.
OPERATOR_KINDS = ("issuers", "clusterissuers", "managedcertificates", "revocations", "notificationchannels")
EXPECTED_RULES: dict[str, set[str]] = {
    **{f"{plural}.certctl.io": {"get", "list", "watch", "patch"} for plural in OPERATOR_KINDS},
    "notificationevents.certctl.io": {"get", "list", "watch", "patch", "create", "delete"},
    **{f"{plural}.certctl.io/status": {"patch"} for plural in (*OPERATOR_KINDS, "notificationevents")},
    "secrets": {"get", "list", "watch", "create", "update", "patch", "delete"},
    "configmaps": {"get", "create", "update"},
    "events": {"create"},
    # ACME HTTP-01 solver Pods and their Services.
    "pods": {"create", "get", "list", "delete"},
    "services": {"create", "list", "delete"},
    "customresourcedefinitions.apiextensions.k8s.io": {"list", "watch"},
}
# Only in the operator's namespace: its leader-election Lease, by name except for create.
LEASE_RULES: dict[str, set[str]] = {
    "leases.coordination.k8s.io": {"create"},
    "leases.coordination.k8s.io/certctl-operator": {"get", "update"},
}
# What every authenticated user may do (system:basic-user), not granted by the chart.
BASELINE_RULES: dict[str, set[str]] = {
    "selfsubjectreviews.authentication.k8s.io": {"create"},
    "selfsubjectaccessreviews.authorization.k8s.io": {"create"},
    "selfsubjectrulesreviews.authorization.k8s.io": {"create"},
}

# (verb, resource, subresource, namespace or None for cluster scope) checked one by one.
ALLOWED = [
    ("patch", "managedcertificates.certctl.io", "status", APPS),
    ("watch", "notificationevents.certctl.io", "", NAMESPACE),
    ("delete", "notificationevents.certctl.io", "", APPS),
    ("patch", "clusterissuers.certctl.io", "status", None),
    ("update", "secrets", "", NAMESPACE),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", "", None),
    ("get", "leases.coordination.k8s.io/certctl-operator", "", NAMESPACE),
    ("update", "leases.coordination.k8s.io/certctl-operator", "", NAMESPACE),
    ("create", "leases.coordination.k8s.io", "", NAMESPACE),
]
DENIED = [
    ("create", "managedcertificates.certctl.io", "", APPS),
    ("delete", "managedcertificates.certctl.io", "", APPS),
    ("update", "issuers.certctl.io", "", APPS),
    ("create", "issuers.certctl.io", "", APPS),
    ("delete", "clusterissuers.certctl.io", "", None),
    ("create", "revocations.certctl.io", "", APPS),
    ("update", "managedcertificates.certctl.io", "status", APPS),
    ("delete", "configmaps", "", APPS),
    ("list", "configmaps", "", APPS),  # CRL ConfigMaps are read by name, never listed or watched
    ("update", "pods", "", APPS),  # solver Pods are created and deleted, never changed
    ("watch", "services", "", APPS),
    ("create", "pods", "exec", APPS),
    ("create", "events.events.k8s.io", "", APPS),  # core/v1 Events only
    ("create", "deployments.apps", "", NAMESPACE),
    ("get", "leases.coordination.k8s.io", "", NAMESPACE),  # only the one by name
    ("update", "leases.coordination.k8s.io/someone-else", "", NAMESPACE),
    ("delete", "leases.coordination.k8s.io/certctl-operator", "", NAMESPACE),
    ("create", "leases.coordination.k8s.io", "", APPS),
    ("get", "leases.coordination.k8s.io/certctl-operator", "", APPS),
    ("list", "namespaces", "", None),  # Kopf lists namespaces only when it watches some of them
    ("get", "customresourcedefinitions.apiextensions.k8s.io", "", None),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", "", None),
    ("delete", "namespaces", "", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", "", None),
    ("create", "serviceaccounts", "token", NAMESPACE),
    ("impersonate", "users", "", None),
    ("*", "*", "", None),
]


# How a refused request shows in the operator's log: Kopf's and the clients' words for it, and
# the status code as the clients print it. A bare "403" would also match ports and byte counts.
RBAC_COMPLAINTS = re.compile(
    r"Not enough permissions|Forbidden|forbidden|status=403\b|'code': 403\b|\"code\": 403\b|\(403\)"
)


def assert_no_rbac_complaint(logs: str, operator: OperatorProcess) -> None:
    complaint = RBAC_COMPLAINTS.search(logs)
    if complaint is not None:
        pytest.fail(f"the operator hit RBAC ({complaint.group()!r}):\n{operator.log_tail(60)}")


CAN_I_ROW = re.compile(
    r"^(?P<resource>\S*)\s+\[(?P<urls>[^]]*)\]\s+\[(?P<names>[^]]*)\]\s+\[(?P<verbs>[^]]*)\]\s*$"
)


def granted_rules(cluster: Cluster, namespace: str) -> dict[str, set[str]]:
    """``kubectl auth can-i --list`` for the chart's ServiceAccount, as resource[/name] -> verbs."""
    listing = cluster.kubectl("auth", "can-i", "--list", f"--as={SERVICE_ACCOUNT}", "--namespace", namespace)
    rules: dict[str, set[str]] = {}
    for line in listing.stdout.splitlines()[1:]:
        row = CAN_I_ROW.match(line)
        assert row is not None, line
        if not row["resource"]:
            continue  # non-resource URLs every authenticated user may GET (discovery, /healthz)
        names = row["names"].split() or [""]
        for name in names:
            key = f"{row['resource']}/{name}" if name else row["resource"]
            rules.setdefault(key, set()).update(row["verbs"].split())
    return rules


def test_the_service_account_may_do_exactly_what_the_operator_needs(cluster: Cluster, release: str) -> None:
    cluster.ensure_namespace(APPS)
    for namespace, expected in ((APPS, EXPECTED_RULES), (NAMESPACE, EXPECTED_RULES | LEASE_RULES)):
        rules = granted_rules(cluster, namespace)
        assert not [r for r, verbs in rules.items() if "*" in r or "*" in verbs], f"wildcards: {rules}"
        assert rules == {**expected, **BASELINE_RULES}, namespace

    wrong = [f"cannot {v} {r}/{s} in {n}" for v, r, s, n in ALLOWED if not cluster.can_i(v, r, n, s)]
    wrong += [f"can {v} {r}/{s} in {n}" for v, r, s, n in DENIED if cluster.can_i(v, r, n, s)]
    assert not wrong, "\n".join(wrong)


def test_the_operator_runs_and_reconciles_with_only_the_charts_token(
    cluster: Cluster, release: str, tmp_path: Path
) -> None:
    plane = cluster.plane
    kubeconfig = plane.service_account_kubeconfig(NAMESPACE, "certctl-operator", tmp_path / "sa-kubeconfig")
    # The kubeconfig holds a token and nothing else that could authenticate.
    config = yaml.safe_load(kubeconfig.read_text())
    (user,) = config["users"]
    assert set(user["user"]) == {"token"}
    denied = cluster.kubectl("get", "deployments", "-n", NAMESPACE, kubeconfig=kubeconfig, check=False)
    assert "forbidden" in denied.stderr.lower()

    cluster.ensure_namespace(APPS)
    # As the chart runs it: leader election on its Lease, the Pod's name as identity.
    env = {
        "CERTCTL_OPERATOR_NAMESPACE": NAMESPACE,
        "CERTCTL_LEADER_ELECTION": "true",
        "CERTCTL_LEADER_ELECTION_LEASE_NAME": RELEASE,
        "POD_NAME": "certctl-operator-5d7f9-x2x4q",
        **EVERY_FLOW_SETTINGS,
    }
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", env=env)
    with HTTPReceiver(default=ScriptedResponse(status=200)) as receiver:
        try:
            operator.start(timeout=90)
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hook-signing", "namespace": APPS},
                "data": {"key": base64.b64encode(b"signing-key-for-the-rbac-test").decode()},
            }
            channel = {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "NotificationChannel",
                "metadata": {"name": "hook", "namespace": APPS},
                "spec": {
                    "webhook": {
                        "url": receiver.url_for("/certctl"),
                        "timeout": "5s",
                        "signingSecretRef": {"name": "hook-signing", "key": "key"},
                    }
                },
            }
            event = {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "NotificationEvent",
                "metadata": {"name": "hello", "namespace": APPS},
                "spec": {
                    "type": "Test",
                    "channelRef": {"name": "hook"},
                    "subject": "delivered under the chart's RBAC",
                    "message": "The operator ran with the chart's ServiceAccount token only.",
                },
            }
            issuer = {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "ClusterIssuer",
                "metadata": {"name": "rbac-selfsigned"},
                "spec": {"selfSigned": {}},
            }
            certificate = {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "ManagedCertificate",
                "metadata": {"name": "web", "namespace": APPS},
                "spec": {
                    "secretName": "web-tls",
                    "dnsNames": ["web.apps.svc"],
                    "duration": "24h",
                    "privateKey": {"algorithm": "ECDSA", "size": 256},
                    "issuerRef": {"kind": "ClusterIssuer", "name": "rbac-selfsigned"},
                },
            }
            for body in (secret, channel, event, issuer, certificate):
                cluster.kubectl("apply", "-f", "-", input=json.dumps(body))

            # The channel is checked (a status patch) and the event delivered: the
            # operator read the signing Secret, called the receiver and wrote status.
            cluster.kubectl(
                "wait",
                "-n",
                APPS,
                "notificationchannel.certctl.io/hook",
                "--for=condition=Ready",
                "--timeout=60s",
            )
            cluster.kubectl(
                "wait",
                "-n",
                APPS,
                "notificationevent.certctl.io/hello",
                "--for=jsonpath={.status.phase}=Sent",
                "--timeout=60s",
            )
            (request,) = receiver.wait_for_requests(1, seconds=10)
            assert b"delivered under the chart's RBAC" in request.body

            # A cluster-scoped issuer and a certificate issued into a Secret.
            cluster.kubectl(
                "wait", "clusterissuer.certctl.io/rbac-selfsigned", "--for=condition=Ready", "--timeout=60s"
            )
            cluster.kubectl(
                "wait",
                "-n",
                APPS,
                "managedcertificate.certctl.io/web",
                "--for=condition=Ready",
                "--timeout=60s",
            )
            tls = json.loads(cluster.kubectl("get", "secret", "web-tls", "-n", APPS, "-o", "json").stdout)
            assert tls["type"] == "kubernetes.io/tls"
            assert tls["data"]["tls.crt"] and tls["data"]["tls.key"]

            # Every other flow: renewal, revocation (CRL ConfigMap, OCSP), a notification announced
            # by a certificate, dead-letter (label), retention (delete), deletion with the Secret.
            with plane.api_client() as admin:
                every_flow(
                    Flows(admin, APPS, operator.base_url, operator_namespace=NAMESPACE),
                    receiver.url_for("/flows"),
                    lambda: [request.body for request in receiver.requests],
                    f"http://127.0.0.1:{free_port()}/closed",
                )
            lease = json.loads(cluster.kubectl("get", "lease", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
            assert lease["spec"]["holderIdentity"] == env["POD_NAME"]
        finally:
            stopped = operator.stop()
        assert stopped == 0
        lease = json.loads(cluster.kubectl("get", "lease", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
        assert not lease["spec"].get("holderIdentity"), "released on SIGTERM"
    logs = operator.logs()
    assert_no_rbac_complaint(logs, operator)


def test_a_namespaced_install_works_with_roles_in_the_watched_namespaces(
    cluster: Cluster, release: str, tmp_path: Path
) -> None:
    """watchNamespaces: RoleBindings only where the operator works, and the operator is content with them."""
    system, watched, other = "certctl-ns-system", "team-ns", "not-watched"
    for name in (system, watched, other):
        cluster.ensure_namespace(name)
    rendered = cluster.template(
        "--set",
        f"watchNamespaces={{{watched}}}",
        "--set",
        "crds.enabled=false",
        namespace=system,
        release="team",
    )
    cluster.kubectl("apply", "-f", "-", input=rendered)
    account = f"system:serviceaccount:{system}:team-certctl-operator"
    for verb, resource, namespace, expected in [
        ("list", "secrets", watched, "yes"),
        ("list", "secrets", system, "yes"),
        ("list", "secrets", other, "no"),
        ("watch", "managedcertificates.certctl.io", watched, "yes"),
        ("watch", "managedcertificates.certctl.io", other, "no"),
    ]:
        answer = cluster.kubectl(
            "auth", "can-i", verb, resource, f"--as={account}", "-n", namespace, check=False
        ).stdout.strip()
        assert answer == expected, f"{verb} {resource} in {namespace}: {answer}"
    assert (
        cluster.kubectl(
            "auth", "can-i", "watch", "clusterissuers.certctl.io", f"--as={account}"
        ).stdout.strip()
        == "yes"
    )

    kubeconfig = cluster.plane.service_account_kubeconfig(
        system, "team-certctl-operator", tmp_path / "kubeconfig"
    )
    env = {"CERTCTL_OPERATOR_NAMESPACE": system, "CERTCTL_NAMESPACES": watched}
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", env=env)
    try:
        operator.start(timeout=90)
        channel = {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "NotificationChannel",
            "metadata": {"name": "hook", "namespace": watched},
            "spec": {"webhook": {"url": "http://127.0.0.1:9/certctl"}},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(channel))
        cluster.kubectl(
            "wait",
            "-n",
            watched,
            "notificationchannel.certctl.io/hook",
            "--for=condition=Ready",
            "--timeout=60s",
        )
    finally:
        operator.stop()
    logs = operator.logs()
    assert_no_rbac_complaint(logs, operator)


def test_uninstall_keeps_the_crds(cluster: Cluster, release: str) -> None:
    """Last in this module: uninstalling removes the operator but never the CRDs (and so the data)."""
    cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", "--timeout", "60s")
    crds = cluster.kubectl(
        "get", "crd", "-l", "app.kubernetes.io/part-of=certctl", "-o", "name"
    ).stdout.split()
    assert len(crds) == 6
    gone = cluster.kubectl("get", "deployment", "certctl-operator", "-n", NAMESPACE, check=False)
    assert "NotFound" in gone.stderr
    gone = cluster.kubectl("get", "clusterrole", "certctl-operator", check=False)
    assert "NotFound" in gone.stderr
