"""docs/observability.md lists every metric the operator exports, with its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from certctl_operator import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(certctl_[a-z_]+)` \| (\w+) \|([^|]*)\|[^|]+\|$", re.MULTILINE)


def exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric name with its type and label names."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = (str(value._type), tuple(value._labelnames))
        elif isinstance(value, metrics.ScrapedGauges):
            for family in value.describe():
                found[family.name] = ("gauge", value.label_names(family.name))
    return found


def test_every_metric_has_a_row_with_its_type_and_labels() -> None:
    rows = {name: (kind, labels) for name, kind, labels in ROW.findall(DOC.read_text())}
    assert set(rows) == set(exported()), "docs/observability.md and metrics.py list different metrics"
    for name, (metric_type, label_names) in exported().items():
        kind, labels = rows[name]
        assert kind == metric_type, name
        for label in label_names:
            if label not in metrics.CERTIFICATE_LABELS:
                assert f"`{label}`" in labels, f"{name}: label {label} not documented"
        if set(metrics.CERTIFICATE_LABELS) <= set(label_names):
            assert "certificate" in labels, name
