"""The alert rules and the Grafana dashboard only speak of metrics the operator exports, and the rules work.

``promtool`` (Debian package ``prometheus``) checks the rule groups and runs
unit tests of every alert against synthetic series: each alert fires for the
situation it describes, after its ``for`` duration, and not for the near
misses next to it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from certctl_operator import metrics

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "monitoring" / "prometheus-rules.yaml"
DASHBOARD_FILE = ROOT / "monitoring" / "grafana-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

REQUIRED_ALERTS = {
    "CertctlCertificateExpiringSoon",
    "CertctlCertificateNotReady",
    "CertctlIssuerNotReady",
    "CertctlNotificationsDeadLettered",
    "CertctlCRLPastNextUpdate",
    "CertctlOperatorDown",
    "CertctlNoLeader",
}

# --------------------------------------------------------------------------- what the operator exports

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_series() -> dict[str, set[str]]:
    """Every sample name the operator's metrics produce, with the label names each one carries."""
    series: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, metrics.ScrapedGauges):
            for family in collector.describe():
                series[family.name] = set(collector.label_names(family.name))
            continue
        if not isinstance(collector, MetricWrapperBase):
            continue
        labels = set(collector._labelnames)
        for family in collector.describe():
            for suffix in _SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                series[family.name + suffix] = labels | extra
    return series


EXPORTED = exported_series()

# --------------------------------------------------------------------------- reading PromQL

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\s*\(|[\w:])")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and label names left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def label_names(expr: str) -> set[str]:
    """Label names used in matchers and in by/without/on/ignoring clauses."""
    text = _STRING.sub('""', expr)
    used: set[str] = set()
    for _, matchers in _SELECTOR.findall(text):
        used.update(m.group(1) for m in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in _GROUPING.findall(text):
        used.update(name.strip() for name in grouping.split(",") if name.strip())
    return used


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le, channel_type) (rate(a_bucket{x="1",y=~"$v"}[$__rate_interval])) > 2 * b '
        "and on (namespace, name) (time() - c_total offset 5m > 3600) unless absent_over_time(d[2m]) "
        'or histogram_quantile(0.9, e) or label_replace(f, "dst", "$1", "src", "(.*)")'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c_total", "d", "e", "f"}
    assert label_names(expr) == {"le", "channel_type", "x", "y", "namespace", "name"}


def _check_expression(expr: str, where: str) -> set[str]:
    names = metric_names(expr)
    assert names, f"{where}: {expr!r} selects no metric"
    unknown = names - EXPORTED.keys()
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by the operator (metrics.py)"
    allowed = set().union(*(EXPORTED[name] for name in names))
    stray = label_names(expr) - allowed
    assert not stray, f"{where}: labels {sorted(stray)} are on none of {sorted(names)}"
    return names


# --------------------------------------------------------------------------- alert rules


def rule_document() -> dict[str, Any]:
    document = yaml.safe_load(RULES_FILE.read_text())
    assert isinstance(document, dict)
    return document


def alerts() -> Iterator[dict[str, Any]]:
    for group in rule_document()["spec"]["groups"]:
        yield from group["rules"]


def test_rules_are_a_prometheus_rule_object() -> None:
    document = rule_document()
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["metadata"]["name"]
    names = [group["name"] for group in document["spec"]["groups"]]
    assert len(names) == len(set(names))


def test_every_required_alert_is_there_once() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", list(alerts()), ids=lambda rule: rule["alert"])
def test_alert_is_complete_and_uses_exported_metrics(rule: dict[str, Any]) -> None:
    _check_expression(rule["expr"], rule["alert"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "docs/runbook.md"
    assert anchor == rule["alert"].lower()


def test_every_alert_has_a_runbook_entry() -> None:
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    assert set(headings) >= {rule["alert"] for rule in alerts()}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool is not installed; apt-get install -y --no-install-recommends prometheus "
            "(Debian/Ubuntu) provides it"
        )
    return path


def _write_groups(directory: Path) -> Path:
    path = directory / "certctl-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_document()["spec"]["groups"]}, sort_keys=False))
    return path


def test_promtool_accepts_the_rule_groups(tmp_path: Path) -> None:
    promtool = _promtool()
    result = subprocess.run(
        [promtool, "check", "rules", str(_write_groups(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(alerts()))} rules found" in result.stdout


CERT = 'namespace="shop",name="web",issuer_name="corp-ca",issuer_kind="ClusterIssuer"'
CERT_LABELS = "namespace: shop, name: web, issuer_name: corp-ca, issuer_kind: ClusterIssuer"
DB = 'namespace="shop",name="db",issuer_name="ca",issuer_kind="Issuer"'
API = 'namespace="shop",name="api",issuer_name="ca",issuer_kind="Issuer"'
OK = 'namespace="shop",name="ok",issuer_name="ca",issuer_kind="Issuer"'
EXPIRY = "certctl_certificate_expiration_timestamp_seconds"
RENEWAL = "certctl_certificate_renewal_timestamp_seconds"
READY = "certctl_certificate_ready_status"
ISSUER_READY = "certctl_issuer_ready_status"

# Each scenario: input series (1m steps, starting at Unix time 0) and, per
# evaluation time, the alerts expected to fire (an empty list: none).
ALERT_TESTS = textwrap.dedent(
    f"""
    rule_files: [certctl-rules.yaml]
    evaluation_interval: 1m
    tests:
      # web: renewal was due at t=0 and the certificate expires 10 days in: fires once
      # the renewal is an hour overdue plus 10m. db: expires just as soon but renews at
      # 5 days (renewBefore 5d), not yet due. api: overdue but 60 days left.
      - interval: 1m
        input_series:
          - series: '{EXPIRY}{{{CERT}}}'
            values: '864000+0x90'
          - series: '{RENEWAL}{{{CERT}}}'
            values: '0+0x90'
          - series: '{EXPIRY}{{{DB}}}'
            values: '864000+0x90'
          - series: '{RENEWAL}{{{DB}}}'
            values: '432000+0x90'
          - series: '{EXPIRY}{{{API}}}'
            values: '5184000+0x90'
          - series: '{RENEWAL}{{{API}}}'
            values: '0+0x90'
        alert_rule_test:
          - eval_time: 65m
            alertname: CertctlCertificateExpiringSoon
            exp_alerts: []
          - eval_time: 75m
            alertname: CertctlCertificateExpiringSoon
            exp_alerts:
              - exp_labels: {{severity: warning, {CERT_LABELS}}}
                exp_annotations:
                  summary: Certificate shop/web expires soon and is not being renewed
                  description: >-
                    ManagedCertificate shop/web (issuer ClusterIssuer corp-ca) expires in 9d 22h 45m 0s,
                    and its renewal time passed more than an hour ago.
                  runbook_url: docs/runbook.md#certctlcertificateexpiringsoon

      # web has been Ready=False since t=0; ok is Ready. Fires after 15 minutes.
      - interval: 1m
        input_series:
          - series: '{READY}{{{CERT},condition="False"}}'
            values: '1+0x30'
          - series: '{READY}{{{CERT},condition="True"}}'
            values: '0+0x30'
          - series: '{READY}{{{OK},condition="True"}}'
            values: '1+0x30'
          - series: '{READY}{{{OK},condition="False"}}'
            values: '0+0x30'
        alert_rule_test:
          - eval_time: 14m
            alertname: CertctlCertificateNotReady
            exp_alerts: []
          - eval_time: 16m
            alertname: CertctlCertificateNotReady
            exp_alerts:
              - exp_labels: {{severity: warning, condition: "False", {CERT_LABELS}}}
                exp_annotations:
                  summary: Certificate shop/web has not been Ready for 15 minutes
                  description: >-
                    The Ready condition of ManagedCertificate shop/web has been False for at least
                    15 minutes (issuer ClusterIssuer corp-ca).
                  runbook_url: docs/runbook.md#certctlcertificatenotready

      # Issuer shop/ca is Ready=Unknown throughout; the ClusterIssuer is Ready.
      - interval: 1m
        input_series:
          - series: '{ISSUER_READY}{{namespace="shop",name="ca",kind="Issuer",condition="Unknown"}}'
            values: '1+0x20'
          - series: '{ISSUER_READY}{{namespace="",name="corp-ca",kind="ClusterIssuer",condition="True"}}'
            values: '1+0x20'
        alert_rule_test:
          - eval_time: 9m
            alertname: CertctlIssuerNotReady
            exp_alerts: []
          - eval_time: 11m
            alertname: CertctlIssuerNotReady
            exp_alerts:
              - exp_labels:
                  {{severity: critical, namespace: shop, name: ca, kind: Issuer, condition: Unknown}}
                exp_annotations:
                  summary: Issuer ca is not Ready
                  description: >-
                    Issuer shop/ca has had Ready=Unknown for 10 minutes: certificates that use it can be
                    neither issued nor renewed.
                  runbook_url: docs/runbook.md#certctlissuernotready

      # shop/ca's CRL says nextUpdate = 10m; corp-ca's is a day away.
      - interval: 1m
        input_series:
          - series: 'certctl_crl_next_update_timestamp_seconds{{issuer="shop/ca"}}'
            values: '600+0x30'
          - series: 'certctl_crl_next_update_timestamp_seconds{{issuer="corp-ca"}}'
            values: '86400+0x30'
        alert_rule_test:
          - eval_time: 14m
            alertname: CertctlCRLPastNextUpdate
            exp_alerts: []
          - eval_time: 16m
            alertname: CertctlCRLPastNextUpdate
            exp_alerts:
              - exp_labels: {{severity: critical, issuer: shop/ca}}
                exp_annotations:
                  summary: The CRL of issuer shop/ca is past its nextUpdate
                  description: >-
                    The current CRL of shop/ca was valid until 1970-01-01 00:10:00 +0000 UTC
                    and no newer one has been published; relying parties that check revocation may now
                    reject every certificate of this issuer.
                  runbook_url: docs/runbook.md#certctlcrlpastnextupdate

      # No dead letters for 10 minutes, then two.
      - interval: 1m
        input_series:
          - series: 'certctl_notification_dead_total'
            values: '0+0x10 2+0x20'
        alert_rule_test:
          - eval_time: 10m
            alertname: CertctlNotificationsDeadLettered
            exp_alerts: []
          - eval_time: 15m
            alertname: CertctlNotificationsDeadLettered
            exp_alerts: []
          - eval_time: 17m
            alertname: CertctlNotificationsDeadLettered
            exp_alerts:
              - exp_labels: {{severity: warning}}
                exp_annotations:
                  summary: 2 certctl notifications are dead-lettered
                  description: >-
                    2 NotificationEvents used up their delivery attempts and are in the
                    Dead phase: nobody received those certificate notices.
                  runbook_url: docs/runbook.md#certctlnotificationsdeadlettered

      # The operator is scraped for 5 minutes, then never again.
      - interval: 1m
        input_series:
          - series: 'certctl_certificate_total'
            values: '3+0x5 _x30'
        alert_rule_test:
          - eval_time: 5m
            alertname: CertctlOperatorDown
            exp_alerts: []
          - eval_time: 10m
            alertname: CertctlOperatorDown
            exp_alerts: []
          - eval_time: 15m
            alertname: CertctlOperatorDown
            exp_alerts:
              - exp_labels: {{severity: critical}}
                exp_annotations:
                  summary: certctl-operator is down or not scraped
                  description: >-
                    Prometheus has had no metrics from certctl-operator for 7 minutes. Certificates are
                    not renewed, revocations not processed and notifications not delivered while it is down.
                  runbook_url: docs/runbook.md#certctloperatordown

      # Two replicas: a leader for 5 minutes, then neither leads (both still scraped).
      - interval: 1m
        input_series:
          - series: 'certctl_leader{{instance="a"}}'
            values: '1x5 0x20'
          - series: 'certctl_leader{{instance="b"}}'
            values: '0x25'
        alert_rule_test:
          - eval_time: 5m
            alertname: CertctlNoLeader
            exp_alerts: []
          - eval_time: 7m
            alertname: CertctlNoLeader
            exp_alerts: []
          - eval_time: 8m
            alertname: CertctlNoLeader
            exp_alerts:
              - exp_labels: {{severity: critical}}
                exp_annotations:
                  summary: No certctl-operator replica is the leader
                  description: >-
                    certctl-operator replicas are running and scraped, but none has held the
                    leader-election Lease for 2 minutes: certificates are not renewed, revocations not
                    processed and notifications not delivered.
                  runbook_url: docs/runbook.md#certctlnoleader

      # A handover: the standby leads one scrape after the leader stopped. Never an alert.
      - interval: 1m
        input_series:
          - series: 'certctl_leader{{instance="a"}}'
            values: '1x5 0x20'
          - series: 'certctl_leader{{instance="b"}}'
            values: '0x6 1x19'
        alert_rule_test:
          - eval_time: 6m
            alertname: CertctlNoLeader
            exp_alerts: []
          - eval_time: 20m
            alertname: CertctlNoLeader
            exp_alerts: []
    """
)


def test_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    promtool = _promtool()
    _write_groups(tmp_path)
    tests = tmp_path / "certctl-rules.test.yaml"
    tests.write_text(ALERT_TESTS)
    covered = {
        entry["alertname"]
        for case in yaml.safe_load(ALERT_TESTS)["tests"]
        for entry in case["alert_rule_test"]
    }
    assert covered == {rule["alert"] for rule in alerts()}, "every alert needs a promtool test"
    result = subprocess.run(
        [promtool, "test", "rules", tests.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- dashboard


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(document, dict)
    return document


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def test_dashboard_is_valid_grafana_json() -> None:
    document = dashboard()
    assert document["title"] and document["uid"]
    assert isinstance(document["schemaVersion"], int)
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in document["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    variables = {variable["name"] for variable in document["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for panel in panels():
        assert panel["title"] and panel.get("description"), "every panel says what it shows"
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_query_names_an_exported_metric() -> None:
    for panel in panels():
        for target in panel["targets"]:
            _check_expression(target["expr"], f"panel {panel['title']!r}")
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert metric, variable["definition"]
            assert metric.group(1) in EXPORTED
            assert metric.group(2) in EXPORTED[metric.group(1)]


def test_dashboard_covers_what_operators_look_at() -> None:
    used: dict[str, str] = {}
    for panel in panels():
        for target in panel["targets"]:
            for name in metric_names(target["expr"]):
                used.setdefault(name, panel["title"])
    for metric in (
        "certctl_certificate_expiration_timestamp_seconds",  # expiry timeline
        "certctl_certificate_ready_status",  # not-ready certificates
        "certctl_issuer_ready_status",
        "certctl_issuance_total",  # issuance rate
        "certctl_issuance_duration_seconds_bucket",  # issuance latency
        "certctl_notification_events",  # notification phases
        "certctl_notification_dead_total",  # dead letters
        "certctl_crl_next_update_timestamp_seconds",  # CRL freshness
    ):
        assert metric in used, f"no panel shows {metric}"
