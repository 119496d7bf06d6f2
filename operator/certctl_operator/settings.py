"""One typed settings object, read from ``CERTCTL_*`` environment variables.

The Helm chart's values map onto these variables one to one, so the chart,
``certctl-operator run`` and the tests configure the operator the same way.
Durations take Go-style strings (``90s``, ``2m``, ``1h``, ``7d``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from certctl_operator import __version__
from certctl_operator.durations import parse_duration
from certctl_operator.notify.egress import EgressPolicy, IPNetwork, parse_networks
from certctl_operator.policy.leadership import LeadershipError, LeaseTimings

ENV_PREFIX = "CERTCTL_"
DEFAULT_IMAGE = f"ghcr.io/certctl/certctl-operator:{__version__}"


def _default_solver_resources() -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}


NAMESPACE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A namespace's name (DNS-1123 label); each watched namespace is listed and watched by name."""


class Settings(BaseModel):
    """Everything the operator can be told at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: tuple[Annotated[str, StringConstraints(pattern=NAMESPACE_NAME_PATTERN)], ...] = Field(
        default=(), description="Namespaces to watch, by name (not by pattern); empty means every namespace."
    )
    operator_namespace: str = Field(
        default="certctl-system",
        description="Where the operator runs; ClusterIssuer CA Secrets are read from here.",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_host: str = Field(default="0.0.0.0", description="Bind address of the metrics/health/PKI server.")  # noqa: S104
    http_port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = Field(
        default=None, description="Default public URL of the PKI endpoints when an issuer sets none."
    )

    # Notification delivery (certctl's contract: waits of 1, 2, 4, 8 minutes, 5 attempts).
    notification_retry_base: timedelta = timedelta(minutes=1)
    notification_retry_cap: timedelta = timedelta(hours=1)
    notification_max_attempts: int = Field(default=5, ge=1)
    notification_retry_interval: timedelta = Field(
        default=timedelta(seconds=30),
        description=(
            "Re-check period of channels that are not Ready, the window over which retries overdue "
            "after a restart are spread, and the longest wait after an API error."
        ),
    )
    notification_sent_retention: timedelta = timedelta(days=7)
    notification_egress_allowed_cidrs: tuple[IPNetwork, ...] = Field(
        default=(),
        description=(
            "CIDRs of loopback and private addresses (RFC 1918, CGNAT, unique local IPv6) that "
            "notifications may reach; comma-separated. A cloud metadata address is reachable only "
            "through an entry for exactly that address, other link-local addresses only through an "
            "entry inside 169.254.0.0/16 or fe80::/10; public addresses always are."
        ),
    )

    # Issuance.
    issuance_retry_base: timedelta = timedelta(minutes=1)
    issuance_retry_cap: timedelta = timedelta(hours=1)
    renewal_check_interval: timedelta = Field(
        default=timedelta(minutes=1), description="Granularity of the renewal timer."
    )
    minimum_certificate_duration: timedelta = Field(
        default=timedelta(hours=1), description="Shortest certificate lifetime the operator will issue."
    )
    issuer_check_interval: timedelta = Field(
        default=timedelta(minutes=1),
        description="How often a CA issuer's Secret is checked again (Secrets the operator does not write).",
    )
    reconcile_workers: int = Field(
        default=8, ge=1, le=64, description="Certificates and issuers reconciled at the same time."
    )
    crl_refresh_check_interval: timedelta = timedelta(minutes=1)

    # ACME HTTP-01 solver Pods: what an issuer's http01.pod leaves out.
    acme_solver_image: str = Field(
        default=DEFAULT_IMAGE,
        min_length=1,
        description="Image of HTTP-01 solver Pods: the operator's own (the chart sets the one it runs).",
    )
    acme_solver_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Type of the Service in front of each HTTP-01 solver Pod."
    )
    acme_solver_resources: dict[str, dict[str, str]] = Field(
        default_factory=_default_solver_resources,
        description="Compute resources of the solver container (JSON: requests and limits).",
    )
    acme_solver_node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of solver Pods (JSON object)."
    )
    acme_solver_tolerations: tuple[dict[str, Any], ...] = Field(
        default=(), description="Tolerations of solver Pods (JSON list, as in a Pod spec)."
    )

    # Kubernetes client limits.
    client_qps: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Requests per second the operator's client sends to the API server at most; 0: no "
            "client-side limit, the API server's priority and fairness paces the operator."
        ),
    )
    client_burst: int = Field(
        default=100, ge=1, description="Requests sent at once above client_qps before the limit applies."
    )

    # Leader election: replicas share a Lease in operator_namespace and only its holder acts.
    leader_election: bool = Field(
        default=False,
        description="Act only while holding the Lease (the chart turns this on); off: act at once, alone.",
    )
    leader_election_lease_name: str = Field(
        default="certctl-operator",
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of the Lease in operator_namespace.",
    )
    leader_election_lease_duration: timedelta = Field(
        default=timedelta(seconds=15),
        description="How long a standby waits after the last renewal it saw before taking over.",
    )
    leader_election_renew_deadline: timedelta = Field(
        default=timedelta(seconds=10),
        description="How long the leader keeps trying to renew before it stops acting and exits.",
    )
    leader_election_retry_period: timedelta = Field(
        default=timedelta(seconds=2), description="How often the leader renews and standbys look."
    )

    @field_validator(
        "notification_retry_base",
        "notification_retry_cap",
        "notification_retry_interval",
        "notification_sent_retention",
        "issuance_retry_base",
        "issuance_retry_cap",
        "renewal_check_interval",
        "minimum_certificate_duration",
        "issuer_check_interval",
        "crl_refresh_check_interval",
        "leader_election_lease_duration",
        "leader_election_renew_deadline",
        "leader_election_retry_period",
        mode="before",
    )
    @classmethod
    def _parse_duration(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator(
        "acme_solver_resources", "acme_solver_node_selector", "acme_solver_tolerations", mode="before"
    )
    @classmethod
    def _parse_json(cls, value: object) -> object:
        # The environment carries these as JSON (the chart writes them with toJson).
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not JSON: {error}") from None
        return value

    @field_validator("notification_egress_allowed_cidrs", mode="before")
    @classmethod
    def _parse_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_networks(value.split(","))
        return value

    def egress_policy(self) -> EgressPolicy:
        """Where notifications may connect to."""
        return EgressPolicy(allowed=self.notification_egress_allowed_cidrs)

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_leader_election_timings(self) -> Settings:
        # The same rules as the election itself; checked here so a bad value fails at start-up.
        try:
            self.lease_timings()
        except LeadershipError as error:
            raise ValueError(f"leader_election timings: {error}") from error
        return self

    def lease_timings(self) -> LeaseTimings:
        return LeaseTimings(
            lease_duration=self.leader_election_lease_duration,
            renew_deadline=self.leader_election_renew_deadline,
            retry_period=self.leader_election_retry_period,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``CERTCTL_<FIELD>`` variables; ``overrides`` win (command-line flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
