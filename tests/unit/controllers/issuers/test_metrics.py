"""The issuer Ready series: one per condition status, exactly one of them 1 (no cluster)."""

from __future__ import annotations

from certctl_operator.api import ConditionStatus
from certctl_operator.controllers.issuance import CLUSTER_ISSUER, Key
from certctl_operator.controllers.issuers.metrics import export_ready, remove_series
from certctl_operator.metrics import issuer_ready_status

KEY = Key(CLUSTER_ISSUER, "", "metrics-test-ca")


def series() -> dict[str, float]:
    found: dict[str, float] = {}
    for metric in issuer_ready_status.collect():
        for sample in metric.samples:
            if sample.labels.get("name") == KEY.name and sample.name.endswith("status"):
                found[sample.labels["condition"]] = sample.value
    return found


def test_the_current_ready_status_is_the_only_one_set() -> None:
    export_ready(KEY, ConditionStatus.FALSE)
    assert series() == {"True": 0.0, "False": 1.0, "Unknown": 0.0}
    export_ready(KEY, ConditionStatus.TRUE)
    assert series() == {"True": 1.0, "False": 0.0, "Unknown": 0.0}


def test_a_deleted_issuer_leaves_no_series() -> None:
    export_ready(KEY, ConditionStatus.TRUE)
    remove_series(KEY)
    assert series() == {}
    remove_series(KEY)  # a second removal is harmless
