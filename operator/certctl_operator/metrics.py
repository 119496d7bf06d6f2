"""Every Prometheus metric the operator exports, in one place.

Names follow certctl (``certctl_certificate_total``...) and, for per-object
gauges, cert-manager's with a ``certctl_`` prefix, so existing alerts carry
over. Label values are bounded: namespaces, object names, kinds, reasons and
phases, never serial numbers, error texts or anything secret. Per-object
series are removed when their object is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

# --- certificates (issuance and renewal) -------------------------------------
CERTIFICATE_LABELS = ("namespace", "name", "issuer_name", "issuer_kind")


class ScrapedGauges(Collector):
    """Gauges whose samples are read from the operator's own records when Prometheus scrapes.

    For per-object series: a prometheus_client child holds its labels, a value,
    a lock and a dozen attributes, about a kilobyte, so six series for each of
    ten thousand certificates cost some 60 MB. The controller keeps one small
    record per object anyway; reading those at scrape time costs nothing while
    nobody scrapes. ``source`` yields ``(family name, label values, value)``.
    """

    def __init__(
        self,
        families: Mapping[str, tuple[str, Sequence[str]]],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.families = dict(families)
        self.source: Callable[[], Iterable[tuple[str, Sequence[str], float]]] = tuple
        if registry is not None:
            registry.register(self)

    def label_names(self, family: str) -> tuple[str, ...]:
        return tuple(self.families[family][1])

    def _empty(self) -> dict[str, GaugeMetricFamily]:
        return {
            name: GaugeMetricFamily(name, documentation, labels=list(labels))
            for name, (documentation, labels) in self.families.items()
        }

    def describe(self) -> list[Metric]:
        return list(self._empty().values())

    def collect(self) -> list[Metric]:
        families = self._empty()
        for name, values, value in self.source():
            families[name].add_metric(list(values), value)
        return list(families.values())


CERTIFICATE_EXPIRATION_TIMESTAMP = "certctl_certificate_expiration_timestamp_seconds"
CERTIFICATE_RENEWAL_TIMESTAMP = "certctl_certificate_renewal_timestamp_seconds"
CERTIFICATE_NOT_BEFORE_TIMESTAMP = "certctl_certificate_not_before_timestamp_seconds"
CERTIFICATE_READY_STATUS = "certctl_certificate_ready_status"
certificate_series = ScrapedGauges(
    {
        CERTIFICATE_EXPIRATION_TIMESTAMP: (
            "notAfter of the certificate currently in the Secret, as a Unix timestamp.",
            CERTIFICATE_LABELS,
        ),
        CERTIFICATE_RENEWAL_TIMESTAMP: (
            "When the operator will renew the certificate, as a Unix timestamp.",
            CERTIFICATE_LABELS,
        ),
        CERTIFICATE_NOT_BEFORE_TIMESTAMP: (
            "notBefore of the certificate currently in the Secret, as a Unix timestamp.",
            CERTIFICATE_LABELS,
        ),
        CERTIFICATE_READY_STATUS: (
            "1 for the certificate's current Ready condition status (True, False, Unknown), else 0.",
            (*CERTIFICATE_LABELS, "condition"),
        ),
    }
)
"""Per-certificate series; the certificate controller sets ``source`` at start-up."""

issuer_ready_status = Gauge(
    "certctl_issuer_ready_status",
    "1 for the issuer's current Ready condition status (True, False, Unknown), else 0.",
    ("namespace", "name", "kind", "condition"),
)
certificate_total = Gauge("certctl_certificate_total", "ManagedCertificates known to the operator.")
certificate_active = Gauge("certctl_certificate_active", "Certificates Ready and within their validity.")
certificate_expiring_soon = Gauge(
    "certctl_certificate_expiring_soon", "Certificates that expire within 30 days."
)
certificate_expired = Gauge("certctl_certificate_expired", "Certificates past their notAfter.")
certificate_revoked = Gauge("certctl_certificate_revoked", "Certificates whose current serial is revoked.")
issuance_total = Counter(
    "certctl_issuance_total", "Issuance attempts by issuer kind and result.", ("issuer_kind", "result")
)
issuance_duration_seconds = Histogram(
    "certctl_issuance_duration_seconds",
    "Time to issue one certificate (key, signing, Secret write).",
    ("issuer_kind",),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
issuance_failures_total = Counter(
    "certctl_issuance_failures_total", "Failed issuance attempts by reason.", ("issuer_kind", "reason")
)
expiry_alerts_total = Counter(
    "certctl_expiry_alerts_total",
    "Expiry notifications created, by channel, threshold and result.",
    ("channel", "threshold", "result"),
)

# --- notifications -------------------------------------------------------------
notification_dead_total = Gauge(
    "certctl_notification_dead_total", "NotificationEvents currently dead-lettered (certctl's name)."
)
notification_events = Gauge(
    "certctl_notification_events", "NotificationEvents by delivery phase.", ("phase",)
)
notification_delivery_attempts_total = Counter(
    "certctl_notification_delivery_attempts_total",
    "Delivery attempts by channel type and result.",
    ("channel_type", "result"),
)
notification_delivery_duration_seconds = Histogram(
    "certctl_notification_delivery_duration_seconds",
    "Time of one delivery attempt.",
    ("channel_type",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# --- revocation, CRL, OCSP -----------------------------------------------------------
revocations_total = Counter("certctl_revocations_total", "Revocations recorded, by reason.", ("reason",))
crl_number = Gauge("certctl_crl_number", "CRL number of the issuer's current CRL.", ("issuer",))
crl_next_update_timestamp = Gauge(
    "certctl_crl_next_update_timestamp_seconds",
    "nextUpdate of the issuer's current CRL, as a Unix timestamp.",
    ("issuer",),
)
ocsp_responses_total = Counter(
    "certctl_ocsp_responses_total", "OCSP responses by status (good, revoked, unknown, error).", ("status",)
)

# --- leader election -----------------------------------------------------------------
leader = Gauge(
    "certctl_leader",
    "1 while this process runs the operator (it holds the leader-election Lease, or runs without "
    "leader election), 0 while it stands by.",
)

# --- process ---------------------------------------------------------------------------
asyncio_tasks = Gauge(
    "certctl_asyncio_tasks", "Asyncio tasks alive in the operator's event loop when /metrics is scraped."
)


def _count_asyncio_tasks() -> float:
    # /metrics is served from the operator's own event loop; anywhere else there is no loop to count.
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return float("nan")


asyncio_tasks.set_function(_count_asyncio_tasks)
