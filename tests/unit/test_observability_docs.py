"""docs/observability.md lists every metric the operator exports, with its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from certctl_operator import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(certctl_[a-z_]+)` \| (\w+) \|([^|]*)\|[^|]+\|$", re.MULTILINE)


def exported() -> dict[str, MetricWrapperBase]:
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = value
    return found


def test_every_metric_has_a_row_with_its_type_and_labels() -> None:
    rows = {name: (kind, labels) for name, kind, labels in ROW.findall(DOC.read_text())}
    assert set(rows) == set(exported()), "docs/observability.md and metrics.py list different metrics"
    for name, metric in exported().items():
        kind, labels = rows[name]
        assert kind == metric._type, name
        for label in metric._labelnames:
            if label not in metrics.CERTIFICATE_LABELS:
                assert f"`{label}`" in labels, f"{name}: label {label} not documented"
        if set(metrics.CERTIFICATE_LABELS) <= set(metric._labelnames):
            assert "certificate" in labels, name
