"""NotificationChannel (where messages go) and NotificationEvent (one message to deliver)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from certctl_operator.api.common import (
    AGE_COLUMN,
    HTTP_URL_PATTERN,
    READY_COLUMN,
    ApiModel,
    CelRule,
    Duration,
    EmailAddress,
    LocalObjectReference,
    PrinterColumn,
    Resource,
    SecretKeySelector,
    StatusBase,
    StrictInt,
    StringMap,
    Timestamp,
    UniqueList,
    cel_exactly_one,
    cel_rules,
    exactly_one_error,
)

# --------------------------------------------------------------------------- channels


def _cel_string(text: str) -> str:
    """``text`` as a CEL string literal (single-quoted, backslashes and quotes escaped)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _base64(value: str) -> str:
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except binascii.Error:
        raise ValueError("must be base64-encoded (standard alphabet, padded)") from None
    return value


HEADER_NAME_PATTERN = r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"
"""An HTTP field name is an RFC 9110 token: no spaces, colons or other separators."""

HEADER_VALUE_FORBIDDEN = r"[\x00-\x08\x0a-\x1f\x7f]"
"""Control characters (CR, LF, NUL, ...; a tab is allowed): they would end or corrupt the header."""

_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
_HEADER_VALUE_FORBIDDEN = re.compile(HEADER_VALUE_FORBIDDEN)

HEADER_NAME_RULE = CelRule(
    rule=f"self.all(name, name.matches({_cel_string(HEADER_NAME_PATTERN)}))",
    message=(
        "header names must be HTTP tokens: letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons"
    ),
)
HEADER_VALUE_RULE = CelRule(
    rule=f"self.all(name, !self[name].matches({_cel_string(HEADER_VALUE_FORBIDDEN)}))",
    message="header values must not contain CR, LF, NUL or other control characters (a tab is allowed)",
)


def header_problems(headers: Mapping[str, str]) -> list[str]:
    """What is wrong with HTTP ``headers``: names by name, values never quoted (they may be secrets)."""
    problems: list[str] = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            problems.append(f"header name {name!r} is invalid: {HEADER_NAME_RULE.message}")
        elif _HEADER_VALUE_FORBIDDEN.search(value):
            problems.append(f"header {name!r} is invalid: {HEADER_VALUE_RULE.message}")
    return problems


def _valid_headers(headers: dict[str, str]) -> dict[str, str]:
    problems = header_problems(headers)
    if problems:
        raise ValueError(problems[0])
    return headers


Headers = Annotated[
    dict[str, Annotated[str, Field(max_length=4096)]],
    Field(max_length=32, json_schema_extra=cel_rules(HEADER_NAME_RULE, HEADER_VALUE_RULE)),
    AfterValidator(_valid_headers),
]

_WEBHOOK_URL_RULES = cel_exactly_one(("url", "urlSecretRef"), "webhook URL")


class WebhookChannel(ApiModel):
    """An HTTP POST of a JSON document to a URL."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_WEBHOOK_URL_RULES))

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description="The http(s) URL to post to, when it holds no secret. Exclusive with urlSecretRef.",
    )
    url_secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="A Secret key holding the URL, for URLs that embed a token. Exclusive with url.",
    )
    signing_secret_ref: SecretKeySelector | None = Field(
        default=None,
        description=(
            "A Secret key holding an HMAC-SHA256 key; each delivery then carries the headers "
            "X-Certctl-Timestamp (Unix seconds) and X-Certctl-Signature: sha256=<hex HMAC of "
            "the timestamp, a dot and the raw body>."
        ),
    )
    headers: Headers | None = Field(
        default=None,
        description=(
            "Extra HTTP headers sent with each delivery; credentials belong in Secrets, not here. "
            "Names are HTTP tokens (no spaces or colons); values hold no CR, LF, NUL or other "
            "control characters."
        ),
    )
    timeout: Duration = Field(default="10s", description="How long one delivery may take before it fails.")
    ca_bundle: Annotated[str, AfterValidator(_base64)] | None = Field(
        default=None,
        max_length=65536,
        description="Base64-encoded PEM CA certificates trusted for an https URL instead of the system ones.",
        json_schema_extra={"format": "byte"},
    )

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        error = exactly_one_error({"url": self.url, "urlSecretRef": self.url_secret_ref}, _WEBHOOK_URL_RULES)
        if error:
            raise ValueError(error)
        return self


class EmailSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class EmailChannel(ApiModel):
    """Mail sent through an SMTP server."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9._:\[\]-]+$",
        description="Host name or IP address of the SMTP server.",
    )
    port: StrictInt = Field(default=587, ge=1, le=65535, description="TCP port of the SMTP server.")
    security: EmailSecurity = Field(
        default=EmailSecurity.STARTTLS,
        description=(
            "none (plain SMTP), starttls (upgrade after connecting, usually port 587) or tls "
            "(implicit TLS, usually port 465). Avoid none with credentials."
        ),
    )
    credentials_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="A kubernetes.io/basic-auth Secret (keys username and password) to log in with.",
    )
    from_: EmailAddress = Field(alias="from", description="Sender address.")
    to: UniqueList[EmailAddress] = Field(
        min_length=1,
        max_length=50,
        description="Recipient addresses.",
    )
    timeout: Duration = Field(default="30s", description="How long one delivery may take before it fails.")
    ca_bundle: Annotated[str, AfterValidator(_base64)] | None = Field(
        default=None,
        max_length=65536,
        description=(
            "Base64-encoded PEM CA certificates trusted for the server's TLS certificate (starttls, tls) "
            "instead of the system ones."
        ),
        json_schema_extra={"format": "byte"},
    )


class SlackChannel(ApiModel):
    """A Slack incoming webhook."""

    webhook_url_secret_ref: SecretKeySelector = Field(
        alias="webhookURLSecretRef", description="A Secret key holding the incoming webhook URL."
    )
    timeout: Duration = Field(default="10s", description="How long one delivery may take before it fails.")


class TeamsChannel(ApiModel):
    """A Microsoft Teams incoming webhook (workflow URL)."""

    webhook_url_secret_ref: SecretKeySelector = Field(
        alias="webhookURLSecretRef", description="A Secret key holding the incoming webhook URL."
    )
    timeout: Duration = Field(default="10s", description="How long one delivery may take before it fails.")


class PagerDutyChannel(ApiModel):
    """PagerDuty Events API v2."""

    routing_key_secret_ref: SecretKeySelector = Field(
        description="A Secret key holding the integration's routing key."
    )
    url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue",
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description=(
            "The Events API v2 endpoint; use https://events.eu.pagerduty.com/v2/enqueue "
            "for the EU service region."
        ),
    )
    timeout: Duration = Field(default="10s", description="How long one delivery may take before it fails.")


class ChannelType(StrEnum):
    """Which kind of channel a NotificationChannel is."""

    WEBHOOK = "Webhook"
    EMAIL = "Email"
    SLACK = "Slack"
    TEAMS = "Teams"
    PAGERDUTY = "PagerDuty"


_CHANNEL_FIELDS = {
    "webhook": ChannelType.WEBHOOK,
    "email": ChannelType.EMAIL,
    "slack": ChannelType.SLACK,
    "teams": ChannelType.TEAMS,
    "pagerduty": ChannelType.PAGERDUTY,
}
_CHANNEL_TYPE_RULES = cel_exactly_one(tuple(_CHANNEL_FIELDS), "channel type")


class NotificationChannelSpec(ApiModel):
    """Desired state of a NotificationChannel: exactly one of webhook, email, slack, teams or pagerduty."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_CHANNEL_TYPE_RULES))

    webhook: WebhookChannel | None = Field(default=None, description="Deliver to an HTTP endpoint.")
    email: EmailChannel | None = Field(default=None, description="Deliver by email over SMTP.")
    slack: SlackChannel | None = Field(default=None, description="Deliver to a Slack incoming webhook.")
    teams: TeamsChannel | None = Field(default=None, description="Deliver to a Microsoft Teams webhook.")
    pagerduty: PagerDutyChannel | None = Field(
        default=None, description="Deliver to PagerDuty Events API v2."
    )

    def _configured(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _CHANNEL_FIELDS}

    @model_validator(mode="after")
    def _exactly_one_type(self) -> Self:
        error = exactly_one_error(self._configured(), _CHANNEL_TYPE_RULES)
        if error:
            raise ValueError(error)
        return self

    @property
    def type(self) -> ChannelType:
        """The channel's kind."""
        return next(_CHANNEL_FIELDS[name] for name, value in self._configured().items() if value is not None)


class NotificationChannelStatus(StatusBase):
    """Observed state of a NotificationChannel."""

    type: ChannelType | None = Field(default=None, description="Which kind of channel this is.")


class NotificationChannel(Resource[NotificationChannelSpec, NotificationChannelStatus]):
    """A destination for notifications; credentials stay in Secrets."""

    KIND: ClassVar[str] = "NotificationChannel"
    PLURAL: ClassVar[str] = "notificationchannels"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("nchannel",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Type", "string", ".status.type", "Webhook, Email, Slack, Teams or PagerDuty."),
        READY_COLUMN,
        AGE_COLUMN,
    )

    status: NotificationChannelStatus = Field(default_factory=NotificationChannelStatus)


# --------------------------------------------------------------------------- events


class NotificationEventType(StrEnum):
    """What a notification is about; Test checks a channel."""

    ISSUED = "Issued"
    RENEWED = "Renewed"
    RENEWAL_FAILED = "RenewalFailed"
    EXPIRING = "Expiring"
    REVOKED = "Revoked"
    TEST = "Test"


class Severity(StrEnum):
    """How urgent a notification is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class NotificationEventSpec(ApiModel):
    """One message for one channel."""

    type: NotificationEventType = Field(
        description="What happened: Issued, Renewed, RenewalFailed, Expiring, Revoked, or Test."
    )
    channel_ref: LocalObjectReference = Field(
        description="The NotificationChannel, in this namespace, to use."
    )
    certificate_ref: LocalObjectReference | None = Field(
        default=None, description="The ManagedCertificate the message is about, if any."
    )
    severity: Severity = Field(default=Severity.INFO, description="info, warning or critical.")
    subject: str | None = Field(default=None, max_length=998, description="One-line summary (email subject).")
    message: str | None = Field(default=None, max_length=16384, description="The message body, plain text.")
    details: StringMap | None = Field(
        default=None, description="Structured facts (serial number, expiry, threshold, ...) for the payload."
    )


class DeliveryPhase(StrEnum):
    """Where a notification's delivery stands."""

    PENDING = "Pending"
    SENT = "Sent"
    FAILED = "Failed"
    DEAD = "Dead"


class AttemptResult(StrEnum):
    """Outcome of one delivery attempt."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class DeliveryErrorKind(StrEnum):
    """Why a delivery attempt failed."""

    TIMEOUT = "Timeout"
    CONNECTION_ERROR = "ConnectionError"
    SERVER_ERROR = "ServerError"
    RATE_LIMITED = "RateLimited"
    CLIENT_ERROR = "ClientError"
    TLS_ERROR = "TLSError"
    INVALID_CONFIGURATION = "InvalidConfiguration"
    UNEXPECTED_ERROR = "UnexpectedError"


class DeliveryAttempt(ApiModel):
    """One delivery attempt."""

    time: Timestamp = Field(description="When the attempt started.")
    result: AttemptResult = Field(
        description="Succeeded, Failed, or Skipped (closed without sending: the channel does not exist)."
    )
    number: StrictInt | None = Field(
        default=None, ge=1, description="Which attempt this was since the event was created or requeued."
    )
    error: str | None = Field(default=None, max_length=1024, description="Why the attempt failed.")
    error_kind: DeliveryErrorKind | None = Field(
        default=None,
        description=(
            "Timeout, ConnectionError, ServerError, RateLimited, ClientError, TLSError, "
            "InvalidConfiguration or UnexpectedError."
        ),
    )
    detail: str | None = Field(
        default=None, max_length=1024, description="What the receiver answered to a successful attempt."
    )
    duration_seconds: float | None = Field(default=None, ge=0, description="How long the attempt took.")


MAX_ATTEMPT_HISTORY = 10
"""How many delivery attempts status.attempts keeps."""


class NotificationEventStatus(StatusBase):
    """Delivery and retry state of a NotificationEvent; the operator resumes from it after a restart."""

    phase: DeliveryPhase | None = Field(
        default=None,
        description="Pending (not tried yet), Sent, Failed (a retry is due) or Dead (retries exhausted).",
    )
    retry_count: StrictInt | None = Field(
        default=None, ge=0, description="Failed attempts so far; a successful delivery leaves it as it was."
    )
    next_retry_at: Timestamp | None = Field(default=None, description="When the next attempt is due.")
    last_error: str | None = Field(
        default=None, max_length=4096, description="Error of the last failed attempt."
    )
    last_error_kind: DeliveryErrorKind | None = Field(
        default=None,
        description=(
            "Kind of the last error: Timeout, ConnectionError, ServerError and RateLimited are transient; "
            "ClientError, TLSError and InvalidConfiguration usually need the channel fixed. "
            "Every kind counts against the retry budget."
        ),
    )
    last_attempt_at: Timestamp | None = Field(default=None, description="When the last attempt was made.")
    sent_at: Timestamp | None = Field(
        default=None, description="When the message was delivered (or closed because its channel is gone)."
    )
    dead_at: Timestamp | None = Field(default=None, description="When the retries were exhausted.")
    requeue_count: StrictInt | None = Field(
        default=None, ge=0, description="How many times the event was requeued."
    )
    last_handled_requeue: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "The value of the certctl.io/requeue annotation last acted on; setting the annotation to "
            "any other value requeues the event once."
        ),
    )
    attempts: list[DeliveryAttempt] = Field(
        default_factory=list,
        max_length=MAX_ATTEMPT_HISTORY,
        description=f"The last {MAX_ATTEMPT_HISTORY} delivery attempts, oldest first.",
    )

    def add_attempt(self, attempt: DeliveryAttempt) -> None:
        """Append ``attempt``, dropping the oldest beyond the history limit."""
        self.attempts = [*self.attempts, attempt][-MAX_ATTEMPT_HISTORY:]


class NotificationEvent(Resource[NotificationEventSpec, NotificationEventStatus]):
    """One notification to deliver through one channel, with its retry state."""

    KIND: ClassVar[str] = "NotificationEvent"
    PLURAL: ClassVar[str] = "notificationevents"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("nevent",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Type", "string", ".spec.type", "What the message is about."),
        PrinterColumn("Channel", "string", ".spec.channelRef.name", "NotificationChannel used."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Sent, Failed or Dead."),
        PrinterColumn("Retries", "integer", ".status.retryCount", "Failed attempts so far."),
        PrinterColumn("Next Retry", "date", ".status.nextRetryAt", "When the next attempt is due."),
        PrinterColumn("Last Error", "string", ".status.lastError", "Error of the last failed attempt."),
        PrinterColumn(
            "Certificate", "string", ".spec.certificateRef.name", "Certificate concerned.", priority=1
        ),
        AGE_COLUMN,
    )

    status: NotificationEventStatus = Field(default_factory=NotificationEventStatus)
