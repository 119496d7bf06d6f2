"""Reading what the operator shows the outside: its /metrics exposition and its JSON log lines.

* :class:`Scrape`: one ``/metrics`` exposition parsed with ``prometheus_client.parser``;
  samples are looked up by name and exact label set.
* :func:`scrape_until`: scrape until a predicate holds or a deadline passes
  (the last scrape is returned either way, so tests assert exact values with
  readable messages).
* :func:`json_records`: the operator's log as JSON records, with every line
  that is not JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from certctl_operator.dev.operator_process import OperatorProcess


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class Scrape:
    """One parsed Prometheus text exposition."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    @classmethod
    def of(cls, operator: OperatorProcess) -> Scrape:
        return cls(operator.metrics())

    def value(self, metric: str, /, **labels: str) -> float | None:
        """The sample ``metric`` whose labels are exactly ``labels``, or None."""
        for sample in self.samples:
            if sample.name == metric and dict(sample.labels) == labels:
                return sample.value
        return None

    def named(self, name: str) -> list[Sample]:
        return [sample for sample in self.samples if sample.name == name]

    def matching(self, **labels: str) -> list[Sample]:
        """Every sample whose labels include ``labels``."""
        return [
            sample
            for sample in self.samples
            if all(sample.labels.get(key) == value for key, value in labels.items())
        ]

    def certctl(self) -> Iterator[Sample]:
        return (sample for sample in self.samples if sample.name.startswith("certctl_"))


def scrape_until(
    operator: OperatorProcess, settled: Callable[[Scrape], bool], timeout: float = 30.0
) -> Scrape:
    """Scrape until ``settled(scrape)``, at most ``timeout`` seconds; the last scrape either way."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            scrape = Scrape.of(operator)
        except httpx.HTTPError:
            scrape = Scrape("")
        if settled(scrape) or time.monotonic() >= deadline:
            return scrape
        time.sleep(0.2)  # polling interval of a deadline-bounded wait


@dataclass(frozen=True)
class LogLines:
    records: list[dict[str, Any]]
    other: list[str]
    """Lines that are not JSON (besides the test harness's own ``--- start`` markers)."""


def json_records(text: str) -> LogLines:
    records: list[dict[str, Any]] = []
    other: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--- start #"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            other.append(line)
    return LogLines(records, other)
