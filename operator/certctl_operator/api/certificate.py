"""ManagedCertificate: a certificate kept issued and renewed into a kubernetes.io/tls Secret.

Field names follow cert-manager's Certificate so its users feel at home.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from certctl_operator.api.common import (
    AGE_COLUMN,
    IP_RULE,
    NON_SPACE,
    READY_COLUMN,
    ApiModel,
    CelRule,
    Duration,
    EmailAddress,
    IssuerReference,
    ObjectName,
    PrinterColumn,
    Resource,
    StatusBase,
    StrictBool,
    StrictInt,
    StringMap,
    Timestamp,
    UniqueList,
    cel_duration_seconds,
    cel_rules,
    check_ip,
)
from certctl_operator.durations import duration_seconds, parse_duration


class PrivateKeyAlgorithm(StrEnum):
    """Private key algorithm."""

    RSA = "RSA"
    ECDSA = "ECDSA"
    ED25519 = "Ed25519"


class PrivateKeyEncoding(StrEnum):
    """How the private key is written to tls.key."""

    PKCS1 = "PKCS1"
    PKCS8 = "PKCS8"


class RotationPolicy(StrEnum):
    """Whether a renewal makes a new private key."""

    ALWAYS = "Always"
    NEVER = "Never"


class KeyUsage(StrEnum):
    """Key usages and extended key usages, spelled as cert-manager spells them."""

    SIGNING = "signing"
    DIGITAL_SIGNATURE = "digital signature"
    CONTENT_COMMITMENT = "content commitment"
    KEY_ENCIPHERMENT = "key encipherment"
    KEY_AGREEMENT = "key agreement"
    DATA_ENCIPHERMENT = "data encipherment"
    CERT_SIGN = "cert sign"
    CRL_SIGN = "crl sign"
    ENCIPHER_ONLY = "encipher only"
    DECIPHER_ONLY = "decipher only"
    ANY = "any"
    SERVER_AUTH = "server auth"
    CLIENT_AUTH = "client auth"
    CODE_SIGNING = "code signing"
    EMAIL_PROTECTION = "email protection"
    SMIME = "s/mime"
    IPSEC_END_SYSTEM = "ipsec end system"
    IPSEC_TUNNEL = "ipsec tunnel"
    IPSEC_USER = "ipsec user"
    TIMESTAMPING = "timestamping"
    OCSP_SIGNING = "ocsp signing"
    MICROSOFT_SGC = "microsoft sgc"
    NETSCAPE_SGC = "netscape sgc"


DEFAULT_USAGES = (KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT)


class CertificateEventType(StrEnum):
    """Certificate events a ManagedCertificate can announce."""

    ISSUED = "Issued"
    RENEWED = "Renewed"
    RENEWAL_FAILED = "RenewalFailed"
    EXPIRING = "Expiring"
    REVOKED = "Revoked"


KEY_SIZES: dict[PrivateKeyAlgorithm, tuple[int, ...]] = {
    PrivateKeyAlgorithm.RSA: (2048, 3072, 4096),
    PrivateKeyAlgorithm.ECDSA: (256, 384, 521),
    PrivateKeyAlgorithm.ED25519: (),
}
"""Key sizes accepted per algorithm; the first is the default. Ed25519 takes no size."""


def _size_rule(algorithm: PrivateKeyAlgorithm) -> CelRule:
    sizes = KEY_SIZES[algorithm]
    if not sizes:
        return CelRule(
            rule=f"self.algorithm != '{algorithm}' || !has(self.size)",
            message=f"size must not be set for {algorithm}: its key size is fixed",
            field_path=".size",
            reason="FieldValueForbidden",
        )
    listed = ", ".join(str(size) for size in sizes[:-1]) + f" or {sizes[-1]}"
    return CelRule(
        rule=f"self.algorithm != '{algorithm}' || !has(self.size) || self.size in {list(sizes)}",
        message=f"size for {algorithm} keys must be {listed}",
        field_path=".size",
    )


_SIZE_RULES = {algorithm: _size_rule(algorithm) for algorithm in PrivateKeyAlgorithm}

_ED25519_ENCODING = CelRule(
    rule=(
        f"self.algorithm != '{PrivateKeyAlgorithm.ED25519}' || !has(self.encoding) "
        "|| self.encoding == 'PKCS8'"
    ),
    message=(
        "Ed25519 private keys have no PKCS1 encoding, they are always PKCS#8: "
        "leave privateKey.encoding unset or set it to PKCS8"
    ),
    field_path=".encoding",
)


class PrivateKeySpec(ApiModel):
    """The private key of the certificate."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_SIZE_RULES.values(), _ED25519_ENCODING))

    algorithm: PrivateKeyAlgorithm = Field(
        default=PrivateKeyAlgorithm.RSA,
        description="Key algorithm: RSA, ECDSA or Ed25519.",
    )
    size: StrictInt | None = Field(
        default=None,
        description=(
            "Key size in bits: 2048 (default), 3072 or 4096 for RSA; 256 (default, P-256), 384 or 521 for "
            "ECDSA; not set for Ed25519."
        ),
    )
    # No schema default: the natural encoding depends on the algorithm, and a fixed
    # PKCS1 default would be refused for every Ed25519 key that leaves it out.
    encoding: PrivateKeyEncoding | None = Field(
        default=None,
        description=(
            "Encoding of tls.key: PKCS1 (RSA keys as PKCS#1, ECDSA keys as SEC 1) or PKCS8. "
            "When unset, PKCS1 for RSA and ECDSA keys. Ed25519 keys are always PKCS#8: leave it unset "
            "or set PKCS8."
        ),
    )
    rotation_policy: RotationPolicy = Field(
        default=RotationPolicy.ALWAYS,
        description="Always makes a new private key at every issuance; Never keeps the key in the Secret.",
    )

    @model_validator(mode="after")
    def _valid_size(self) -> Self:
        sizes = KEY_SIZES[self.algorithm]
        if self.size is not None and self.size not in sizes:
            raise ValueError(_SIZE_RULES[self.algorithm].message)
        if self.algorithm is PrivateKeyAlgorithm.ED25519 and self.encoding is PrivateKeyEncoding.PKCS1:
            raise ValueError(_ED25519_ENCODING.message)
        return self

    @property
    def effective_encoding(self) -> PrivateKeyEncoding:
        """The encoding in force: the given one, else PKCS8 for Ed25519 and PKCS1 for RSA and ECDSA."""
        if self.encoding is not None:
            return self.encoding
        if self.algorithm is PrivateKeyAlgorithm.ED25519:
            return PrivateKeyEncoding.PKCS8
        return PrivateKeyEncoding.PKCS1

    @property
    def effective_size(self) -> int | None:
        """The key size in force: the given one or the algorithm's default; None for Ed25519."""
        sizes = KEY_SIZES[self.algorithm]
        return self.size if self.size is not None else (sizes[0] if sizes else None)


Name64 = Annotated[str, Field(min_length=1, max_length=64)]
Names = Annotated[list[Name64], Field(max_length=10)]
CountryCode = Annotated[str, Field(max_length=2, pattern=r"^[A-Za-z]{2}$")]


class X509Subject(ApiModel):
    """Distinguished name attributes added to the certificate's subject, beside the common name."""

    organizations: Names | None = Field(default=None, description="Organization (O) values.")
    organizational_units: Names | None = Field(default=None, description="Organizational unit (OU) values.")
    countries: Annotated[list[CountryCode], Field(max_length=10)] | None = Field(
        default=None, description="Country (C) values, two-letter ISO 3166 codes."
    )
    localities: Names | None = Field(default=None, description="Locality (L) values.")
    provinces: Names | None = Field(default=None, description="State or province (ST) values.")


class SecretTemplate(ApiModel):
    """Labels and annotations copied onto the certificate's Secret."""

    labels: StringMap | None = Field(default=None, description="Labels to add to the Secret.")
    annotations: StringMap | None = Field(default=None, description="Annotations to add to the Secret.")


DEFAULT_EXPIRY_THRESHOLDS = ("30d", "14d", "7d", "0d")


class NotificationSettings(ApiModel):
    """Who hears about this certificate, and about what."""

    channels: UniqueList[ObjectName] = Field(
        min_length=1,
        max_length=16,
        description="Names of NotificationChannels, in this namespace, that receive the events.",
    )
    expiry_thresholds: UniqueList[Duration] = Field(
        default=list(DEFAULT_EXPIRY_THRESHOLDS),
        max_length=10,
        description=(
            "An Expiring event is sent once per certificate when its remaining lifetime drops below each "
            "threshold; 0d announces the expiry itself."
        ),
    )
    events: UniqueList[CertificateEventType] = Field(
        default=list(CertificateEventType),
        max_length=len(CertificateEventType),
        description="Which events are sent: Issued, Renewed, RenewalFailed, Expiring, Revoked. Default all.",
    )


_RENEW_EXCLUSIVE = CelRule(
    rule="!(has(self.renewBefore) && has(self.renewBeforePercentage))",
    message="renewBefore and renewBeforePercentage are mutually exclusive: set at most one",
    field_path=".renewBeforePercentage",
    reason="FieldValueForbidden",
)
_RENEW_SHORTER = CelRule(
    rule=(
        "!has(self.renewBefore) || !has(self.duration) || "
        f"{cel_duration_seconds('self.renewBefore')} < {cel_duration_seconds('self.duration')}"
    ),
    message="renewBefore must be shorter than duration",
    message_expression=(
        "'renewBefore (' + self.renewBefore + ') must be shorter than duration (' + self.duration + ')'"
    ),
    field_path=".renewBefore",
)
_IDENTITY_FIELDS = ("commonName", "dnsNames", "ipAddresses", "uris", "emailAddresses")
_NEEDS_IDENTITY = CelRule(
    rule="has(self.commonName) || "
    + " || ".join(f"(has(self.{name}) && self.{name}.size() > 0)" for name in _IDENTITY_FIELDS[1:]),
    message="at least one of commonName, dnsNames, ipAddresses, uris or emailAddresses must be set",
    reason="FieldValueRequired",
)

DNSName = Annotated[
    str,
    Field(
        max_length=253,
        pattern=r"^(\*\.)?[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?)*$",
    ),
]
IPAddress = Annotated[
    str,
    Field(min_length=2, max_length=45, json_schema_extra=cel_rules(IP_RULE)),
    AfterValidator(check_ip),
]
URI = Annotated[str, Field(max_length=2048, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:" + NON_SPACE + "+$")]


class ManagedCertificateSpec(ApiModel):
    """Desired state of a ManagedCertificate."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_NEEDS_IDENTITY, _RENEW_EXCLUSIVE, _RENEW_SHORTER))

    secret_name: ObjectName = Field(
        description="Name of the kubernetes.io/tls Secret, in this namespace, that receives the certificate."
    )
    common_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Subject common name. Prefer dnsNames; clients ignore the common name.",
    )
    dns_names: list[DNSName] | None = Field(
        default=None,
        max_length=100,
        description="DNS subject alternative names; *.example.com for wildcards.",
    )
    ip_addresses: list[IPAddress] | None = Field(
        default=None, max_length=50, description="IP address subject alternative names (IPv4 or IPv6)."
    )
    uris: list[URI] | None = Field(
        default=None,
        max_length=50,
        description="URI subject alternative names, for example spiffe://cluster/ns/app.",
    )
    email_addresses: list[EmailAddress] | None = Field(
        default=None, max_length=50, description="Email address subject alternative names."
    )
    subject: X509Subject | None = Field(default=None, description="Further subject attributes.")
    duration: Duration = Field(
        default="90d",
        description="Requested lifetime of the certificate, for example 90d, 2160h or 45m; at most 36500d.",
    )
    renew_before: Duration | None = Field(
        default=None,
        description=(
            "Renew when this much lifetime is left; shorter than duration. Exclusive with "
            "renewBeforePercentage. When neither is set, renewal starts with one third of the lifetime left."
        ),
    )
    renew_before_percentage: StrictInt | None = Field(
        default=None,
        ge=1,
        le=99,
        description=(
            "Renew when this percentage (1 to 99) of the lifetime is left. Exclusive with renewBefore."
        ),
    )
    private_key: PrivateKeySpec | None = Field(
        default=None,
        description=(
            "Private key settings; RSA 2048, PKCS1 (PKCS8 for Ed25519), rotated at every issuance by default."
        ),
    )
    usages: UniqueList[KeyUsage] | None = Field(
        default=None,
        max_length=len(KeyUsage),
        description="Key usages and extended key usages. Default: digital signature and key encipherment.",
    )
    is_ca: StrictBool = Field(
        default=False,
        alias="isCA",
        description="Issue a CA certificate (basic constraints CA:TRUE, cert sign and crl sign usages).",
    )
    issuer_ref: IssuerReference = Field(description="The Issuer or ClusterIssuer that signs the certificate.")
    secret_template: SecretTemplate | None = Field(
        default=None, description="Labels and annotations for the Secret."
    )
    notifications: NotificationSettings | None = Field(
        default=None, description="Where to announce issuance, renewal, failures, expiry and revocation."
    )
    delete_secret_on_deletion: StrictBool = Field(
        default=False,
        description=(
            "Delete the Secret when the ManagedCertificate is deleted. By default the Secret outlives it."
        ),
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if not any((self.common_name, self.dns_names, self.ip_addresses, self.uris, self.email_addresses)):
            raise ValueError(_NEEDS_IDENTITY.message)
        if self.renew_before is not None and self.renew_before_percentage is not None:
            raise ValueError(_RENEW_EXCLUSIVE.message)
        # Compared as the CEL rule compares them (float seconds), not as rounded timedeltas.
        if self.renew_before is not None and duration_seconds(self.renew_before) >= duration_seconds(
            self.duration
        ):
            raise ValueError(
                f"renewBefore ({self.renew_before}) must be shorter than duration ({self.duration})"
            )
        return self

    @property
    def duration_delta(self) -> timedelta:
        """The requested lifetime."""
        return parse_duration(self.duration)

    @property
    def renew_before_delta(self) -> timedelta:
        """renewBefore as a timedelta; zero when unset."""
        return parse_duration(self.renew_before) if self.renew_before is not None else timedelta(0)

    @property
    def key(self) -> PrivateKeySpec:
        """The private key settings in force (defaults when none are given)."""
        return self.private_key if self.private_key is not None else PrivateKeySpec()

    @property
    def effective_usages(self) -> tuple[KeyUsage, ...]:
        """The usages in force: the given ones or the default pair."""
        return tuple(self.usages) if self.usages else DEFAULT_USAGES

    def renewal_lead(self, lifetime: timedelta) -> timedelta:
        """How long before notAfter renewal starts, for a certificate of ``lifetime``.

        renewBefore when set, else renewBeforePercentage of the lifetime, else one third of it.
        """
        if self.renew_before is not None:
            return self.renew_before_delta
        if self.renew_before_percentage is not None:
            return lifetime * self.renew_before_percentage / 100
        return lifetime / 3


ACMEURL = Annotated[str, Field(max_length=1024)]


class ACMEAuthorizationStatus(ApiModel):
    """One authorization of an ACME order and the challenge the operator answers for it."""

    identifier: str = Field(max_length=253, description="The name (or IP address) being authorized.")
    url: ACMEURL = Field(description="The authorization's URL at the CA.")
    state: str = Field(
        max_length=32, description="The authorization's status at the CA: pending, valid, invalid, ..."
    )
    challenge_type: str | None = Field(
        default=None, max_length=32, description="The challenge answered: http-01 or dns-01."
    )
    challenge_url: ACMEURL | None = Field(default=None, description="The challenge's URL at the CA.")
    token: str | None = Field(
        default=None,
        max_length=256,
        description="The challenge token (public; the key authorization is recomputed from the account key).",
    )


class ACMEOrderStatus(ApiModel):
    """The ACME order in progress, kept so that a restarted operator resumes it instead of starting over."""

    url: ACMEURL = Field(description="The order's URL at the CA.")
    account_url: ACMEURL | None = Field(default=None, alias="accountURL", description="The ACME account.")
    finalize_url: ACMEURL | None = Field(default=None, alias="finalizeURL", description="Where the CSR goes.")
    state: str = Field(
        max_length=32,
        description="The order's status at the CA: pending, ready, processing, valid or invalid.",
    )
    identifiers: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=100, description="The names the order is for."
    )
    authorizations: list[ACMEAuthorizationStatus] = Field(
        default_factory=list, max_length=100, description="The order's authorizations."
    )
    problem: str | None = Field(
        default=None,
        max_length=1024,
        description="The ACME problem document type (urn:ietf:params:acme:error:...) that ended the order.",
    )


class ManagedCertificateStatus(StatusBase):
    """Observed state of a ManagedCertificate."""

    secret_name: str | None = Field(
        default=None, max_length=253, description="The Secret that holds the current certificate."
    )
    issuer_ref: IssuerReference | None = Field(
        default=None, description="The issuer that signed the current certificate."
    )
    not_before: Timestamp | None = Field(
        default=None, description="Start of the current certificate's validity."
    )
    not_after: Timestamp | None = Field(default=None, description="Expiry of the current certificate.")
    renewal_time: Timestamp | None = Field(
        default=None, description="When the operator will renew the certificate."
    )
    serial_number: str | None = Field(
        default=None,
        max_length=128,
        description="Serial number of the current certificate, lowercase hexadecimal without separators.",
    )
    fingerprint_sha256: str | None = Field(
        default=None,
        alias="fingerprintSHA256",
        max_length=64,
        description="SHA-256 fingerprint of the current certificate's DER encoding, lowercase hexadecimal.",
    )
    revision: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Counts issuances: 1 for the first certificate, then one more per renewal.",
    )
    last_failure_time: Timestamp | None = Field(default=None, description="When issuance last failed.")
    failed_issuance_attempts: StrictInt | None = Field(
        default=None, ge=0, description="Failed issuance attempts in a row; reset by a successful issuance."
    )
    next_attempt_time: Timestamp | None = Field(
        default=None, description="When issuance will be tried again after a failure (exponential back-off)."
    )
    revoked: StrictBool | None = Field(
        default=None, description="Whether the current certificate is revoked."
    )
    revoked_serial_numbers: UniqueList[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None,
        max_length=1000,
        description="Serial numbers of this certificate's earlier certificates that were revoked.",
    )
    notified_expiry_thresholds: UniqueList[Duration] | None = Field(
        default=None,
        max_length=10,
        description="Expiry thresholds already announced for the current certificate; cleared on issuance.",
    )
    last_renew_request: str | None = Field(
        default=None,
        max_length=320,
        description=(
            "Value of the certctl.io/renew annotation that the current certificate answered (values longer "
            "than 256 characters are recorded as their SHA-256). Setting the annotation to any other value "
            "requests a new certificate."
        ),
    )
    failed_renew_request: str | None = Field(
        default=None,
        max_length=320,
        description=(
            "Value of the certctl.io/renew annotation (recorded like lastRenewRequest) pending when issuance "
            "last failed; another value starts an attempt at once instead of waiting for nextAttemptTime."
        ),
    )
    acme_order: ACMEOrderStatus | None = Field(
        default=None,
        description="The ACME order in progress or last finished, for a certificate from an acme issuer.",
    )


class ManagedCertificate(Resource[ManagedCertificateSpec, ManagedCertificateStatus]):
    """A certificate the operator keeps issued and renewed in a kubernetes.io/tls Secret."""

    KIND: ClassVar[str] = "ManagedCertificate"
    PLURAL: ClassVar[str] = "managedcertificates"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("mcert", "mcerts")
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        READY_COLUMN,
        PrinterColumn("Secret", "string", ".spec.secretName", "Secret that receives the certificate."),
        PrinterColumn("Issuer", "string", ".spec.issuerRef.name", "Issuer or ClusterIssuer that signs it."),
        PrinterColumn("Expires", "date", ".status.notAfter", "Expiry of the current certificate."),
        PrinterColumn("Renewal", "date", ".status.renewalTime", "When it will be renewed.", priority=1),
        PrinterColumn("Serial", "string", ".status.serialNumber", "Current serial number.", priority=1),
        AGE_COLUMN,
    )

    status: ManagedCertificateStatus = Field(default_factory=ManagedCertificateStatus)
