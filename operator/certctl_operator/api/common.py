"""Building blocks shared by every kind: the model base, constrained field types,
CEL rules, references, conditions and the whole-object base class.

Every model here is read from and written to Kubernetes in camelCase
(``model_validate`` accepts either spelling, ``dump`` writes camelCase). The
same classes generate the CRD schemas (see ``certctl_operator.crdgen``), so a
constraint declared here is enforced twice: by the API server at admission and
by pydantic inside the operator.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.durations import (
    DURATION_PATTERN,
    MAX_DURATION_SECONDS,
    MAX_DURATION_TEXT,
    DurationError,
    duration_seconds,
)

API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
CATEGORY = "certctl"

# --------------------------------------------------------------------------- CEL rules


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry.

    The message doubles as the error text of the pydantic validator that
    mirrors the rule, so the API server and the operator word a problem alike.
    """

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None
    message_expression: str | None = None

    def schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.message_expression is not None:
            entry["messageExpression"] = self.message_expression
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for a model or a field."""
    return {"x-kubernetes-validations": [rule.schema() for rule in rules]}


def cel_duration_seconds(expr: str) -> str:
    """A CEL expression giving the seconds in the duration string ``expr``.

    CEL's ``duration()`` has no day unit, so the string is split into its
    number-unit parts (the schema pattern guarantees it has only such parts)
    and each part is scaled by its unit; mirrors ``durations.parse_duration``.
    """
    return (
        f"{expr}.findAll('[0-9]+([.][0-9]+)?(ms|s|m|h|d)').map(p, p.endsWith('ms')"
        " ? double(p.substring(0, p.size() - 2)) / 1000.0"
        " : double(p.substring(0, p.size() - 1)) * (p.endsWith('s') ? 1.0"
        " : p.endsWith('m') ? 60.0 : p.endsWith('h') ? 3600.0 : 86400.0)).sum()"
    )


def cel_exactly_one(fields: Sequence[str], what: str) -> tuple[CelRule, CelRule]:
    """Two rules, at least one and at most one of ``fields``, each with its own message."""
    head = ", ".join(fields[:-1])
    present = ", ".join(f"has(self.{name})" for name in fields)
    required = CelRule(
        rule=" || ".join(f"has(self.{name})" for name in fields),
        message=f"no {what} is set: set one of {head} or {fields[-1]}",
        reason="FieldValueRequired",
    )
    exclusive = CelRule(
        rule=f"[{present}].filter(x, x).size() <= 1",
        message=f"only one {what} may be set: {head} and {fields[-1]} are mutually exclusive",
        reason="FieldValueForbidden",
    )
    return required, exclusive


def exactly_one_error(values: Mapping[str, object], rules: tuple[CelRule, CelRule]) -> str | None:
    """The message of the ``cel_exactly_one`` rule that ``values`` breaks, if any."""
    count = sum(value is not None for value in values.values())
    if count == 0:
        return rules[0].message
    if count > 1:
        return rules[1].message
    return None


# --------------------------------------------------------------------------- model base


class ApiModel(BaseModel):
    """Base of every model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    def dump(self) -> dict[str, Any]:
        """The camelCase JSON-ready dict of this model, unset (None) fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- field types


def _utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must carry a time zone (use datetime.now(UTC))")
    return value.astimezone(UTC).replace(microsecond=0)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, the way metav1.Time is written."""
    return _utc_seconds(value).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime,
    AfterValidator(_utc_seconds),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""An aware datetime in UTC with whole seconds (metav1.Time's precision), written as
``2006-01-02T15:04:05Z``; the model then holds exactly what the API server stores."""

StrictInt = Annotated[int, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""The name of a Kubernetes object (an RFC 1123 subdomain)."""

SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
"""A key in a Secret's data."""


def duration_bounds_rule(minimum: str | None) -> CelRule:
    """The CEL rule keeping a duration string within ``minimum`` (if any) and ``MAX_DURATION``."""
    seconds = cel_duration_seconds("self")
    upper = f"{seconds} <= {MAX_DURATION_SECONDS!r}"
    if minimum is None:
        return CelRule(rule=upper, message=f"must be at most {MAX_DURATION_TEXT} (100 years)")
    lower = f"{seconds} >= {duration_seconds(minimum)!r}"
    return CelRule(
        rule=f"{lower} && {upper}", message=f"must be at least {minimum} and at most {MAX_DURATION_TEXT}"
    )


def _duration_checker(rule: CelRule, minimum: str | None) -> Callable[[str], str]:
    least = duration_seconds(minimum) if minimum is not None else 0.0

    def check(value: str) -> str:
        # The same arithmetic as the CEL rule, on the same floats: both sides accept the same strings.
        try:
            seconds = duration_seconds(value)
        except DurationError:
            raise ValueError(rule.message) from None
        if seconds < least:
            raise ValueError(rule.message)
        return value

    return check


_DURATION_RULE = duration_bounds_rule(None)
_POSITIVE_DURATION_RULE = duration_bounds_rule("1s")

Duration = Annotated[
    str,
    Field(min_length=2, max_length=32, pattern=DURATION_PATTERN, json_schema_extra=cel_rules(_DURATION_RULE)),
    AfterValidator(_duration_checker(_DURATION_RULE, None)),
]
"""A duration string such as ``90d``, ``2160h``, ``45m`` or ``1h30m`` (units ms, s, m, h, d), at most
36500d (about 100 years)."""

PositiveDuration = Annotated[
    str,
    Field(
        min_length=2,
        max_length=32,
        pattern=DURATION_PATTERN,
        json_schema_extra=cel_rules(_POSITIVE_DURATION_RULE),
    ),
    AfterValidator(_duration_checker(_POSITIVE_DURATION_RULE, "1s")),
]
"""A duration of at least one second: CRLs and OCSP responses count time in whole seconds."""

# Go's regexp (the API server) treats \s as ASCII space only, pydantic's as any Unicode space;
# spelling the ASCII set out keeps both sides accepting exactly the same strings.
NON_SPACE = r"[^\t\n\f\r ]"
HTTP_URL_PATTERN = r"^https?://[^\t\n\f\r /?#]+([/?#]" + NON_SPACE + "*)?$"

EMAIL_PATTERN = r"^[^@\t\n\f\r <>]+@[^@\t\n\f\r <>]+$"
EmailAddress = Annotated[str, Field(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]

ShortText = Annotated[str, Field(max_length=1024)]
StringMap = Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=64)]

T = TypeVar("T")


def _unique(items: list[T]) -> list[T]:
    seen: list[T] = []
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate entry {item!r}: each value may appear once")
        seen.append(item)
    return items


UniqueList = Annotated[
    list[T], AfterValidator(_unique), Field(json_schema_extra={"x-kubernetes-list-type": "set"})
]
"""A list without duplicates: ``x-kubernetes-list-type: set`` at admission, a validator in the models."""

IP_RULE = CelRule(rule="isIP(self)", message="must be an IPv4 or IPv6 address without a zone")


def check_ip(value: str) -> str:
    """Mirror of CEL ``isIP``: a plain IPv4/IPv6 address, no zone, no IPv4-mapped IPv6."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(IP_RULE.message) from None
    if "%" in value or (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None):
        raise ValueError(IP_RULE.message)
    return value


# --------------------------------------------------------------------------- references


class LocalObjectReference(ApiModel):
    """A reference to another object of a known kind in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object, in this object's namespace.")


class SecretKeySelector(ApiModel):
    """One key of a Secret in the same namespace."""

    name: ObjectName = Field(description="Name of the Secret, in this object's namespace.")
    key: SecretKey = Field(description="Key in the Secret's data that holds the value.")


class IssuerKind(StrEnum):
    """The kind of an issuer."""

    ISSUER = "Issuer"
    CLUSTER_ISSUER = "ClusterIssuer"


class IssuerReference(ApiModel):
    """A reference to an Issuer in the same namespace or to a ClusterIssuer."""

    name: ObjectName = Field(description="Name of the Issuer or ClusterIssuer.")
    kind: IssuerKind = Field(
        default=IssuerKind.ISSUER,
        description="Issuer (in the same namespace) or ClusterIssuer.",
    )


# --------------------------------------------------------------------------- conditions


class ConditionStatus(StrEnum):
    """Status of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """Condition types the operator sets."""

    READY = "Ready"
    ISSUING = "Issuing"


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(ApiModel):
    """One aspect of the object's current state, shaped like metav1.Condition."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of the condition in CamelCase, for example Ready or Issuing.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: StrictInt | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the object when the condition was set.",
    )
    last_transition_time: Timestamp = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="Programmatic identifier of the condition's last transition, in CamelCase.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details of the transition; may be empty.",
    )


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of ``type_`` in ``conditions``, or None."""
    return next((condition for condition in conditions if condition.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with the condition of ``type_`` set; others are kept in place.

    ``lastTransitionTime`` stays as it was when the status does not change, and
    becomes ``now`` when it does or when the condition is new.
    """
    previous = find_condition(conditions, type_)
    transition = now if previous is None or previous.status != status else previous.last_transition_time
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if condition.type == type_ else condition for condition in conditions]


def condition_is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """Whether the condition of ``type_`` exists with status True."""
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE


class StatusBase(ApiModel):
    """Status fields every kind has."""

    observed_generation: StrictInt | None = Field(
        default=None,
        ge=0,
        description="metadata.generation the operator last acted on.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        description="Current state of the object; Ready tells whether it is usable.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


# --------------------------------------------------------------------------- whole objects


class ObjectMeta(BaseModel):
    """The parts of metav1.ObjectMeta the operator reads; the rest is kept as is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def schema(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            entry["priority"] = self.priority
        return entry


READY_COLUMN = PrinterColumn(
    "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Whether the Ready condition is True."
)
AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")


SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=StatusBase)


class Resource(ApiModel, Generic[SpecT, StatusT]):
    """A whole custom object: apiVersion, kind, metadata, spec and status.

    Subclasses name their kind through the class variables, which also feed
    the CRD (names, scope, printer columns).
    """

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]
    NAMESPACED: ClassVar[bool] = True
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = ()

    api_version: str = Field(default=API_GROUP_VERSION, alias="apiVersion")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SpecT
    status: StatusT

    @model_validator(mode="after")
    def _check_type_meta(self) -> Self:
        if self.api_version != API_GROUP_VERSION:
            raise ValueError(f"apiVersion must be {API_GROUP_VERSION}, not {self.api_version!r}")
        if not self.kind:
            self.kind = self.KIND
        elif self.kind != self.KIND:
            raise ValueError(f"kind must be {self.KIND}, not {self.kind!r}")
        return self

    @classmethod
    def singular(cls) -> str:
        return cls.KIND.lower()

    @classmethod
    def crd_name(cls) -> str:
        """The CRD's metadata.name, for example ``managedcertificates.certctl.io``."""
        return f"{cls.PLURAL}.{API_GROUP}"

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse a Kubernetes object (a dict, or Kopf's Body) into this model."""
        return cls.model_validate(dict(body))

    def to_body(self) -> dict[str, Any]:
        """The whole object as a camelCase dict, ready to send to the API server."""
        return self.dump()

    def dump_status(self) -> dict[str, Any]:
        """The status as a camelCase dict without unset fields (a whole replacement)."""
        return self.status.dump()


def merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``before`` into ``after``.

    Keys that disappeared become None (deleted by the API server), nested
    objects are diffed, lists are replaced whole. Use it with two ``dump()``
    results so a field cleared in the model is also cleared on the server.
    """
    patch: dict[str, Any] = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif key not in before or old != value:
            patch[key] = value
    return patch


def status_patch(before: StatusBase, after: StatusBase) -> dict[str, Any]:
    """The merge patch of ``.status`` from ``before`` to ``after``."""
    return merge_patch(before.dump(), after.dump())
