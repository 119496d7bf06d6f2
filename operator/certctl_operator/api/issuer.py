"""Issuer and ClusterIssuer: who signs certificates, and how revocation is published."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import ConfigDict, Field, model_validator

from certctl_operator.api.common import (
    AGE_COLUMN,
    HTTP_URL_PATTERN,
    READY_COLUMN,
    ApiModel,
    CelRule,
    EmailAddress,
    ObjectName,
    PositiveDuration,
    PrinterColumn,
    Resource,
    SecretKey,
    StatusBase,
    StrictBool,
    StrictInt,
    Timestamp,
    cel_duration_seconds,
    cel_exactly_one,
    cel_rules,
    exactly_one_error,
)
from certctl_operator.api.revocation import RevocationReason
from certctl_operator.durations import duration_seconds, parse_duration


class IssuerType(StrEnum):
    """Which kind of signer an issuer is."""

    SELF_SIGNED = "SelfSigned"
    CA = "CA"
    ACME = "ACME"


class SelfSignedIssuer(ApiModel):
    """Each certificate is signed with its own private key. Has no settings; write ``selfSigned: {}``."""


class CAIssuer(ApiModel):
    """Certificates are signed by a CA whose certificate and key are in a Secret."""

    secret_name: ObjectName = Field(
        description=(
            "Name of a kubernetes.io/tls Secret holding the CA certificate (tls.crt) and its private key "
            "(tls.key). An Issuer reads it from its own namespace, a ClusterIssuer from the operator's "
            "namespace."
        )
    )


class ACMESecretKeySelector(ApiModel):
    """One key of a Secret; the key has a default."""

    name: ObjectName = Field(
        description=(
            "Name of the Secret. An Issuer reads it from its own namespace, a ClusterIssuer from the "
            "operator's namespace."
        )
    )
    key: SecretKey | None = Field(
        default=None, description="Key in the Secret's data; the field naming the Secret gives the default."
    )


class ACMEExternalAccountBinding(ApiModel):
    """External Account Binding (RFC 8555 section 7.3.4): ties the ACME account to an account at the CA."""

    key_id: str = Field(
        alias="keyID", min_length=1, max_length=1024, description="Key identifier given by the CA."
    )
    key_secret_ref: ACMESecretKeySelector = Field(
        description=(
            "Secret key holding the HMAC key given by the CA, base64url-encoded as the CA hands it out "
            "(key defaults to secret)."
        )
    )


class ServiceType(StrEnum):
    """How the solver's Service is exposed."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=r"^[-._/a-zA-Z0-9]+$")]
Quantity = Annotated[
    str,
    Field(max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"),
]
# Map keys stay unconstrained (a CRD schema cannot pattern them); the API server checks them in the Pod.
ResourceList = Annotated[dict[str, Quantity], Field(max_length=16)]


class Toleration(ApiModel):
    """A toleration of the solver Pod, as in a Pod spec."""

    key: LabelKey | None = Field(default=None, description="Taint key; empty with Exists matches every key.")
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Exists or Equal.")
    value: str | None = Field(default=None, max_length=63, description="Taint value for Equal.")
    effect: TaintEffect | None = Field(default=None, description="Taint effect; empty matches every effect.")
    toleration_seconds: StrictInt | None = Field(
        default=None,
        description="How long a NoExecute taint is tolerated.",
        json_schema_extra={"format": "int64"},
    )


class ACMESolverResources(ApiModel):
    """Compute resources of the solver container."""

    requests: ResourceList | None = Field(default=None, description="Requested resources, e.g. cpu: 10m.")
    limits: ResourceList | None = Field(default=None, description="Resource limits, e.g. memory: 64Mi.")


class ACMEHTTP01SolverPod(ApiModel):
    """Answer each HTTP-01 challenge from a short-lived Pod and a Service in the certificate's namespace.

    Each field left out takes the operator's default (its acmeSolver settings)."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=r"^[^\t\n\f\r ]+$",
        description=(
            "Image of the solver container; it runs certctl-operator acme-solver, so it is the "
            "operator's image (the default)."
        ),
    )
    resources: ACMESolverResources | None = Field(
        default=None, description="Compute resources of the solver container."
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=64, description="Node labels the solver Pod must be scheduled onto."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints the solver Pod tolerates."
    )
    service_type: ServiceType | None = Field(
        default=None, description="Type of the solver's Service: ClusterIP, NodePort or LoadBalancer."
    )


class ACMEHTTP01Solver(ApiModel):
    """HTTP-01: the CA asks http://<name>/.well-known/acme-challenge/<token> for the key authorization.

    Without pod, the operator answers on its own HTTP port; the name must reach that port, for
    example through an Ingress or a Service in front of the operator, or directly on a single node.
    With pod, each challenge is answered by a short-lived Pod behind a Service of port 80 in the
    certificate's namespace; routing the name's port 80 to that Service (an Ingress or Gateway
    route, or a LoadBalancer Service) is up to you."""

    pod: ACMEHTTP01SolverPod | None = Field(
        default=None,
        description=(
            "Answer from a solver Pod and Service per challenge instead of the operator's own port; "
            "pod: {} takes the operator's defaults."
        ),
    )


class TSIGAlgorithm(StrEnum):
    """The HMAC that signs RFC 2136 updates (RFC 8945)."""

    HMACMD5 = "HMACMD5"
    HMACSHA1 = "HMACSHA1"
    HMACSHA224 = "HMACSHA224"
    HMACSHA256 = "HMACSHA256"
    HMACSHA384 = "HMACSHA384"
    HMACSHA512 = "HMACSHA512"


class ACMERFC2136Provider(ApiModel):
    """DNS-01 through RFC 2136 dynamic updates, signed with TSIG."""

    nameserver: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^(\[[0-9a-fA-F:.]+\]|[^\t\n\f\r :\[\]]+)(:[0-9]{1,5})?$",
        description="Authoritative DNS server taking the updates, host or host:port (port 53 when omitted).",
    )
    tsig_key_name: str | None = Field(
        default=None, max_length=255, description="Name of the TSIG key; updates are unsigned without it."
    )
    tsig_algorithm: TSIGAlgorithm = Field(
        default=TSIGAlgorithm.HMACSHA256, description="TSIG algorithm the updates are signed with."
    )
    tsig_secret_secret_ref: ACMESecretKeySelector | None = Field(
        default=None,
        description="Secret key holding the base64-encoded TSIG secret (key defaults to secret).",
    )


class ACMEDNS01Solver(ApiModel):
    """DNS-01: the operator publishes the TXT record _acme-challenge.<name>."""

    rfc2136: ACMERFC2136Provider = Field(description="Publish the record by RFC 2136 dynamic update.")


class ACMESolverSelector(ApiModel):
    """Which names a solver is used for; a solver without a selector takes every name."""

    dns_names: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, max_length=100, description="Exact names (a wildcard name as written)."
    )
    dns_zones: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None,
        max_length=100,
        description="Zones: the solver takes each name equal to or below one of them.",
    )


_SOLVER_TYPE_RULES = cel_exactly_one(("http01", "dns01"), "solver type")


class ACMESolver(ApiModel):
    """One way of answering challenges: exactly one of http01 or dns01."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_SOLVER_TYPE_RULES))

    selector: ACMESolverSelector | None = Field(
        default=None,
        description=(
            "Names this solver is for. The most specific match wins: dnsNames before dnsZones (the "
            "longest zone first) before solvers without a selector; on a tie, the first in the list."
        ),
    )
    http01: ACMEHTTP01Solver | None = Field(default=None, description="Answer HTTP-01 challenges.")
    dns01: ACMEDNS01Solver | None = Field(default=None, description="Answer DNS-01 challenges.")

    @model_validator(mode="after")
    def _exactly_one_type(self) -> Self:
        error = exactly_one_error({"http01": self.http01, "dns01": self.dns01}, _SOLVER_TYPE_RULES)
        if error:
            raise ValueError(error)
        return self


class ACMEIssuer(ApiModel):
    """Certificates are ordered from an ACME CA (RFC 8555) such as Let's Encrypt or step-ca."""

    server: str = Field(
        max_length=1024,
        pattern=r"^https://[^\t\n\f\r /?#]+([/?#][^\t\n\f\r ]*)?$",
        description="The https URL of the CA's ACME directory.",
    )
    email: EmailAddress | None = Field(
        default=None, description="Contact address registered with the ACME account."
    )
    ca_bundle: str | None = Field(
        default=None,
        max_length=1048576,
        json_schema_extra={"format": "byte"},
        description=(
            "Base64-encoded PEM certificates trusted for the directory's TLS connection instead of "
            "the system's roots (a private CA)."
        ),
    )
    private_key_secret_ref: ACMESecretKeySelector = Field(
        description=(
            "Secret holding the ACME account's private key (key defaults to tls.key). The operator "
            "creates the Secret with a new P-256 key when it is missing."
        )
    )
    external_account_binding: ACMEExternalAccountBinding | None = Field(
        default=None, description="External Account Binding, when the CA requires one."
    )
    solvers: list[ACMESolver] = Field(
        min_length=1, max_length=32, description="How challenges are answered; see selector."
    )


_CRL_REFRESH_SHORTER = CelRule(
    rule=(
        "!has(self.validity) || !has(self.refreshInterval) || "
        f"{cel_duration_seconds('self.refreshInterval')} < {cel_duration_seconds('self.validity')}"
    ),
    message=(
        "crl.refreshInterval must be shorter than crl.validity, or the CRL would expire before it is renewed"
    ),
    field_path=".refreshInterval",
)


DEFAULT_CRL_VALIDITY = timedelta(hours=24)
DEFAULT_CRL_REFRESH_INTERVAL = timedelta(hours=1)


class CRLSettings(ApiModel):
    """How the issuer's certificate revocation list (CRL) is produced."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_CRL_REFRESH_SHORTER))

    # Neither field has a schema default: a fixed default for one would refuse a valid
    # value of the other (validity 30m against a 1h refresh interval). The default of
    # each one follows the other instead, see validity_delta and refresh_interval_delta.
    validity: PositiveDuration | None = Field(
        default=None,
        description=(
            "How long each CRL is valid (the gap between thisUpdate and nextUpdate), 1s to 36500d. "
            "When unset, 24h, or twice refreshInterval when that is longer than 12h."
        ),
    )
    refresh_interval: PositiveDuration | None = Field(
        default=None,
        description=(
            "How often a new CRL is signed, even when nothing was revoked; shorter than validity. "
            "When unset, 1h, or half of validity when that is shorter than 2h."
        ),
    )

    @model_validator(mode="after")
    def _refresh_shorter(self) -> Self:
        # Float seconds, exactly as the CEL rule compares them.
        if (
            self.validity is not None
            and self.refresh_interval is not None
            and duration_seconds(self.refresh_interval) >= duration_seconds(self.validity)
        ):
            raise ValueError(_CRL_REFRESH_SHORTER.message)
        return self

    @property
    def validity_delta(self) -> timedelta:
        """The CRL validity in force."""
        if self.validity is not None:
            return parse_duration(self.validity)
        if self.refresh_interval is not None:
            return max(DEFAULT_CRL_VALIDITY, 2 * parse_duration(self.refresh_interval))
        return DEFAULT_CRL_VALIDITY

    @property
    def refresh_interval_delta(self) -> timedelta:
        """The CRL refresh interval in force; always shorter than the validity in force."""
        if self.refresh_interval is not None:
            return parse_duration(self.refresh_interval)
        if self.validity is not None:
            return min(DEFAULT_CRL_REFRESH_INTERVAL, parse_duration(self.validity) / 2)
        return DEFAULT_CRL_REFRESH_INTERVAL


class OCSPSettings(ApiModel):
    """How the issuer answers OCSP requests."""

    enabled: StrictBool = Field(
        default=True, description="Whether the OCSP responder answers for this issuer."
    )
    response_validity: PositiveDuration = Field(
        default="1h",
        description=(
            "How long each signed OCSP response is valid (from its thisUpdate to its nextUpdate), "
            "1s to 36500d."
        ),
    )


_ISSUER_TYPE_RULES = cel_exactly_one(("selfSigned", "ca", "acme"), "issuer type")


class IssuerSpec(ApiModel):
    """Desired state of an Issuer or ClusterIssuer: exactly one of selfSigned, ca or acme."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_ISSUER_TYPE_RULES))

    self_signed: SelfSignedIssuer | None = Field(
        default=None,
        description="Sign each certificate with its own key. Such certificates cannot be put on a CRL.",
    )
    ca: CAIssuer | None = Field(
        default=None,
        description="Sign certificates with the CA certificate and key from a Secret.",
    )
    acme: ACMEIssuer | None = Field(
        default=None,
        description=(
            "Order certificates from an ACME CA. The CA publishes its own CRLs and OCSP; crl, ocsp and "
            "publicBaseURL do not apply."
        ),
    )
    crl: CRLSettings | None = Field(
        default=None,
        description=(
            "Settings of the CRL published for a ca issuer; defaults apply when omitted. "
            "A selfSigned issuer has no CA key to sign a CRL with and ignores this."
        ),
    )
    ocsp: OCSPSettings | None = Field(
        default=None,
        description="Settings of the OCSP responder for a ca issuer; defaults apply when omitted.",
    )
    public_base_url: str | None = Field(
        default=None,
        alias="publicBaseURL",
        max_length=512,
        pattern=HTTP_URL_PATTERN,
        description=(
            "Public http(s) URL at which the operator's PKI endpoints are reachable, for example "
            "http://pki.example.com. When set, issued certificates carry a CRL distribution point and "
            "an OCSP responder URL under it."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_type(self) -> Self:
        error = exactly_one_error(
            {"selfSigned": self.self_signed, "ca": self.ca, "acme": self.acme}, _ISSUER_TYPE_RULES
        )
        if error:
            raise ValueError(error)
        return self

    @property
    def type(self) -> IssuerType:
        """SelfSigned, CA or ACME."""
        if self.acme is not None:
            return IssuerType.ACME
        return IssuerType.CA if self.ca is not None else IssuerType.SELF_SIGNED

    @property
    def crl_settings(self) -> CRLSettings:
        """The CRL settings in force (defaults when none are given)."""
        return self.crl if self.crl is not None else CRLSettings()

    @property
    def ocsp_settings(self) -> OCSPSettings:
        """The OCSP settings in force (defaults when none are given)."""
        return self.ocsp if self.ocsp is not None else OCSPSettings()


class RevokedCertificate(ApiModel):
    """One entry of the issuer's revocation list."""

    serial_number: str = Field(
        max_length=128,
        description="Serial number of the revoked certificate, lowercase hexadecimal without separators.",
    )
    revoked_at: Timestamp = Field(description="When the certificate was revoked.")
    reason: RevocationReason = Field(description="RFC 5280 reason code name given for the revocation.")
    not_after: Timestamp | None = Field(
        default=None,
        description="Expiry of the revoked certificate; the entry may leave the CRL after this time.",
    )
    crl_number: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Number of the first CRL that lists the certificate.",
        json_schema_extra={"format": "int64"},
    )


class IssuerStatus(StatusBase):
    """Observed state of an Issuer or ClusterIssuer."""

    type: IssuerType | None = Field(default=None, description="Which kind of signer this issuer is.")
    ca_serial_number: str | None = Field(
        default=None,
        max_length=128,
        description="Serial number of the CA certificate in use (lowercase hexadecimal), for a ca issuer.",
    )
    ca_not_after: Timestamp | None = Field(default=None, description="Expiry of the CA certificate in use.")
    crl_number: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Number of the most recently signed CRL; grows by one with each CRL.",
        json_schema_extra={"format": "int64"},
    )
    crl_this_update: Timestamp | None = Field(default=None, description="thisUpdate of the current CRL.")
    crl_next_update: Timestamp | None = Field(default=None, description="nextUpdate of the current CRL.")
    revoked_certificates: list[RevokedCertificate] = Field(
        default_factory=list,
        max_length=10000,
        description=(
            "The newest revocations of this issuer (the journal): each one joins here in the same "
            "write that takes its CRL number, and the operator soon moves it to the issuer's "
            "revocation-list ConfigMaps (<issuer>-revoked-00 to -15). The CRL and OCSP answers are "
            "built from both. One entry per serial number."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["serialNumber"]},
    )
    revocation_archive_generation: StrictInt | None = Field(
        default=None,
        ge=0,
        description=(
            "Grows by one each time revocations move from revokedCertificates to the revocation-list "
            "ConfigMaps, in the same write that removes them here."
        ),
        json_schema_extra={"format": "int64"},
    )


_ISSUER_COLUMNS = (
    READY_COLUMN,
    PrinterColumn("Type", "string", ".status.type", "SelfSigned, CA or ACME."),
    PrinterColumn(
        "CA Secret", "string", ".spec.ca.secretName", "Secret holding the CA key pair.", priority=1
    ),
    PrinterColumn("CRL Number", "integer", ".status.crlNumber", "Number of the current CRL.", priority=1),
    AGE_COLUMN,
)


class Issuer(Resource[IssuerSpec, IssuerStatus]):
    """An issuer of certificates for ManagedCertificates in its own namespace."""

    KIND: ClassVar[str] = "Issuer"
    PLURAL: ClassVar[str] = "issuers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ctlissuer",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = _ISSUER_COLUMNS

    status: IssuerStatus = Field(default_factory=IssuerStatus)


class ClusterIssuer(Resource[IssuerSpec, IssuerStatus]):
    """An issuer of certificates for ManagedCertificates in every namespace."""

    KIND: ClassVar[str] = "ClusterIssuer"
    PLURAL: ClassVar[str] = "clusterissuers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ctlcissuer", "ctlclusterissuer")
    NAMESPACED: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = _ISSUER_COLUMNS

    status: IssuerStatus = Field(default_factory=IssuerStatus)


__all__ = [
    "ACMEDNS01Solver",
    "ACMEExternalAccountBinding",
    "ACMEHTTP01Solver",
    "ACMEHTTP01SolverPod",
    "ACMEIssuer",
    "ACMERFC2136Provider",
    "ACMESecretKeySelector",
    "ACMESolver",
    "ACMESolverResources",
    "ACMESolverSelector",
    "CAIssuer",
    "CRLSettings",
    "ClusterIssuer",
    "Issuer",
    "IssuerSpec",
    "IssuerStatus",
    "IssuerType",
    "OCSPSettings",
    "RevokedCertificate",
    "SelfSignedIssuer",
    "ServiceType",
    "TSIGAlgorithm",
    "TaintEffect",
    "Toleration",
    "TolerationOperator",
]
