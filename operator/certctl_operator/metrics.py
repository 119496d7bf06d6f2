"""Every Prometheus metric the operator exports, in one place.

Names follow certctl (``certctl_certificate_total``...) and, for per-object
gauges, cert-manager's with a ``certctl_`` prefix, so existing alerts carry
over. Label values are bounded: namespaces, object names, kinds, reasons and
phases, never serial numbers, error texts or anything secret. Per-object
series are removed when their object is deleted.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

# --- certificates (issuance and renewal) -------------------------------------
CERTIFICATE_LABELS = ("namespace", "name", "issuer_name", "issuer_kind")

certificate_expiration_timestamp = Gauge(
    "certctl_certificate_expiration_timestamp_seconds",
    "notAfter of the certificate currently in the Secret, as a Unix timestamp.",
    CERTIFICATE_LABELS,
)
certificate_renewal_timestamp = Gauge(
    "certctl_certificate_renewal_timestamp_seconds",
    "When the operator will renew the certificate, as a Unix timestamp.",
    CERTIFICATE_LABELS,
)
certificate_not_before_timestamp = Gauge(
    "certctl_certificate_not_before_timestamp_seconds",
    "notBefore of the certificate currently in the Secret, as a Unix timestamp.",
    CERTIFICATE_LABELS,
)
certificate_ready_status = Gauge(
    "certctl_certificate_ready_status",
    "1 for the certificate's current Ready condition status (True, False, Unknown), else 0.",
    (*CERTIFICATE_LABELS, "condition"),
)
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
