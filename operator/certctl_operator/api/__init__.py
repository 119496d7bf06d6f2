"""The certctl.io/v1alpha1 API: pydantic models of every kind.

These models are the single source of truth: ``certctl_operator.crdgen``
generates the CRDs in ``crds/`` from them, and the operator parses objects
with them::

    cert = ManagedCertificate.from_body(body)          # whole object, camelCase
    cert.status.conditions = set_condition(cert.status.conditions, "Ready", ConditionStatus.TRUE,
                                           "Issued", "certificate is up to date", now=now)
    patch = cert.dump_status()                         # camelCase, unset fields left out
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certctl_operator.api.certificate import (
    DEFAULT_EXPIRY_THRESHOLDS,
    DEFAULT_USAGES,
    KEY_SIZES,
    CertificateEventType,
    KeyUsage,
    ManagedCertificate,
    ManagedCertificateSpec,
    ManagedCertificateStatus,
    NotificationSettings,
    PrivateKeyAlgorithm,
    PrivateKeyEncoding,
    PrivateKeySpec,
    RotationPolicy,
    SecretTemplate,
    X509Subject,
)
from certctl_operator.api.common import (
    API_GROUP_VERSION,
    CATEGORY,
    ApiModel,
    CelRule,
    Condition,
    ConditionStatus,
    ConditionType,
    IssuerKind,
    IssuerReference,
    LocalObjectReference,
    ObjectMeta,
    PrinterColumn,
    Resource,
    SecretKeySelector,
    StatusBase,
    condition_is_true,
    find_condition,
    format_timestamp,
    merge_patch,
    set_condition,
    status_patch,
)
from certctl_operator.api.issuer import (
    CAIssuer,
    ClusterIssuer,
    CRLSettings,
    Issuer,
    IssuerSpec,
    IssuerStatus,
    IssuerType,
    OCSPSettings,
    RevokedCertificate,
    SelfSignedIssuer,
)
from certctl_operator.api.notification import (
    MAX_ATTEMPT_HISTORY,
    AttemptResult,
    ChannelType,
    DeliveryAttempt,
    DeliveryErrorKind,
    DeliveryPhase,
    EmailChannel,
    EmailSecurity,
    NotificationChannel,
    NotificationChannelSpec,
    NotificationChannelStatus,
    NotificationEvent,
    NotificationEventSpec,
    NotificationEventStatus,
    NotificationEventType,
    PagerDutyChannel,
    Severity,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
)
from certctl_operator.api.revocation import (
    REFUSED_REASONS,
    RequestedBySource,
    Revocation,
    RevocationPhase,
    RevocationReason,
    RevocationSpec,
    RevocationStatus,
)

AnyResource = (
    Issuer | ClusterIssuer | ManagedCertificate | Revocation | NotificationChannel | NotificationEvent
)

RESOURCES: tuple[type[AnyResource], ...] = (
    Issuer,
    ClusterIssuer,
    ManagedCertificate,
    Revocation,
    NotificationChannel,
    NotificationEvent,
)
"""Every kind of the API, in the order the CRDs are listed."""


def resource_class(kind: str) -> type[AnyResource]:
    """The model class of ``kind``; KeyError for a kind this API does not have."""
    for resource in RESOURCES:
        if kind == resource.KIND:
            return resource
    raise KeyError(f"certctl.io has no kind {kind!r}")


def parse_object(body: Mapping[str, Any]) -> AnyResource:
    """Parse any certctl.io object by its ``kind``."""
    return resource_class(str(body.get("kind", ""))).from_body(body)


__all__ = [
    "API_GROUP_VERSION",
    "CATEGORY",
    "DEFAULT_EXPIRY_THRESHOLDS",
    "DEFAULT_USAGES",
    "KEY_SIZES",
    "MAX_ATTEMPT_HISTORY",
    "REFUSED_REASONS",
    "RESOURCES",
    "AnyResource",
    "ApiModel",
    "AttemptResult",
    "CAIssuer",
    "CRLSettings",
    "CelRule",
    "CertificateEventType",
    "ChannelType",
    "ClusterIssuer",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "DeliveryAttempt",
    "DeliveryErrorKind",
    "DeliveryPhase",
    "EmailChannel",
    "EmailSecurity",
    "Issuer",
    "IssuerKind",
    "IssuerReference",
    "IssuerSpec",
    "IssuerStatus",
    "IssuerType",
    "KeyUsage",
    "LocalObjectReference",
    "ManagedCertificate",
    "ManagedCertificateSpec",
    "ManagedCertificateStatus",
    "NotificationChannel",
    "NotificationChannelSpec",
    "NotificationChannelStatus",
    "NotificationEvent",
    "NotificationEventSpec",
    "NotificationEventStatus",
    "NotificationEventType",
    "NotificationSettings",
    "OCSPSettings",
    "ObjectMeta",
    "PagerDutyChannel",
    "PrinterColumn",
    "PrivateKeyAlgorithm",
    "PrivateKeyEncoding",
    "PrivateKeySpec",
    "RequestedBySource",
    "Resource",
    "Revocation",
    "RevocationPhase",
    "RevocationReason",
    "RevocationSpec",
    "RevocationStatus",
    "RevokedCertificate",
    "RotationPolicy",
    "SecretKeySelector",
    "SecretTemplate",
    "SelfSignedIssuer",
    "Severity",
    "SlackChannel",
    "StatusBase",
    "TeamsChannel",
    "WebhookChannel",
    "X509Subject",
    "condition_is_true",
    "find_condition",
    "format_timestamp",
    "merge_patch",
    "parse_object",
    "resource_class",
    "set_condition",
    "status_patch",
]
