"""Per-certificate series come from one small record per certificate, read when Prometheus scrapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import ConditionStatus, ManagedCertificate
from certctl_operator.controllers.certificates.metrics import CertificateSeries, series_of
from certctl_operator.controllers.issuance import CERTIFICATE, Key
from certctl_operator.metrics import (
    CERTIFICATE_LABELS,
    CERTIFICATE_READY_STATUS,
    ScrapedGauges,
    certificate_series,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = Key(CERTIFICATE, "demo", "web")


def certificate(ready: str | None, **status: Any) -> ManagedCertificate:
    conditions = (
        [
            {
                "type": "Ready",
                "status": ready,
                "reason": "Issued",
                "message": "",
                "lastTransitionTime": "2026-06-01T00:00:00Z",
            }
        ]
        if ready
        else []
    )
    return ManagedCertificate.model_validate(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "ManagedCertificate",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "ca"}},
            "status": {"conditions": conditions, **status},
        }
    )


def test_a_ready_certificate_has_its_timestamps_and_one_ready_status_set() -> None:
    facts = series_of(
        KEY,
        certificate(
            "True",
            notBefore="2026-05-01T00:00:00Z",
            notAfter="2026-08-01T00:00:00Z",
            renewalTime="2026-07-01T00:00:00Z",
        ),
    )
    samples = {(name, tuple(values)): value for name, values, value in facts.samples()}
    labels = ("demo", "web", "ca", "Issuer")
    assert (
        samples[("certctl_certificate_expiration_timestamp_seconds", labels)]
        == datetime(2026, 8, 1, tzinfo=UTC).timestamp()
    )
    assert (
        samples[("certctl_certificate_not_before_timestamp_seconds", labels)]
        == datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    )
    assert (
        samples[("certctl_certificate_renewal_timestamp_seconds", labels)]
        == datetime(2026, 7, 1, tzinfo=UTC).timestamp()
    )
    ready = {
        values[-1]: value for (name, values), value in samples.items() if name == CERTIFICATE_READY_STATUS
    }
    assert ready == {"True": 1.0, "False": 0.0, "Unknown": 0.0}
    assert facts.active(NOW)
    assert not facts.active(datetime(2026, 8, 1, tzinfo=UTC))


def test_a_certificate_never_issued_has_no_timestamps_and_is_unknown() -> None:
    facts = series_of(KEY, certificate(None))
    names = [name for name, _, _ in facts.samples()]
    assert names == [CERTIFICATE_READY_STATUS] * len(ConditionStatus)
    ready = {values[-1]: value for _, values, value in facts.samples()}
    assert ready["Unknown"] == 1.0
    assert not facts.active(NOW)


def test_scraped_gauges_render_every_record_and_forget_what_the_source_no_longer_yields() -> None:
    registry = CollectorRegistry()
    gauges = ScrapedGauges(certificate_series.families, registry=registry)
    records = {
        KEY: CertificateSeries(
            ("demo", "web", "ca", "Issuer"), ConditionStatus.FALSE, NOW + timedelta(days=1), None, None, False
        )
    }
    gauges.source = lambda: (sample for entry in list(records.values()) for sample in entry.samples())
    text = generate_latest(registry).decode()
    assert (
        'certctl_certificate_ready_status{condition="False",issuer_kind="Issuer",issuer_name="ca",'
        'name="web",namespace="demo"} 1.0' in text
    )
    assert "certctl_certificate_expiration_timestamp_seconds{" in text
    assert "certctl_certificate_renewal_timestamp_seconds{" not in text
    records.clear()
    text = generate_latest(registry).decode()
    assert 'name="web"' not in text
    # The families stay described (HELP and TYPE) with no samples.
    assert "# TYPE certctl_certificate_ready_status gauge" in text
    assert gauges.label_names(CERTIFICATE_READY_STATUS) == (*CERTIFICATE_LABELS, "condition")
