"""What the issuance reconciler does with one ManagedCertificate right now.

Everything here is pure: the caller reads the ManagedCertificate, its Secret
and its issuer, passes them in with ``now``, performs the :class:`Decision`
and writes the status these functions build. The Kopf glue lives in
``certctl_operator.handlers.certificates``.

The idempotency protocol
------------------------
The Secret is written before the status, and it carries what the status will
say: ``certctl.io/revision`` and ``certctl.io/serial-number`` annotations.
An operator killed between the two writes leaves a Secret one revision ahead
of the status. The next reconcile *adopts* such a Secret (status revision
``R``, Secret revision ``R + 1``, content matching the spec and the issuer)
instead of issuing again, so no revision is ever issued twice and the Secret
and the status end up agreeing. A new issuance always takes the revision
after the highest one seen in the status or in the certificate's own Secret,
so a revision number is never reused either.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError

from certctl_operator import API_GROUP
from certctl_operator.api.certificate import (
    CertificateEventType,
    ManagedCertificate,
    ManagedCertificateSpec,
    ManagedCertificateStatus,
    PrivateKeyAlgorithm,
    PrivateKeyEncoding,
    RotationPolicy,
    X509Subject,
)
from certctl_operator.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    IssuerKind,
    IssuerReference,
    find_condition,
    set_condition,
)
from certctl_operator.api.issuer import IssuerSpec
from certctl_operator.durations import format_duration, parse_duration
from certctl_operator.pki import (
    DEFAULT_BACKDATE,
    CertificateRequest,
    InvalidKeyError,
    InvalidRequestError,
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PKIError,
    PrivateKey,
    SigningAuthority,
    certificate_matches_request,
    fingerprint_sha256,
    key_matches_spec,
    load_certificates,
    load_private_key,
    serial_to_hex,
    validate_request,
)
from certctl_operator.pki.encoding import is_self_signed
from certctl_operator.pki.inspect import summarize_certificate
from certctl_operator.policy.clock import format_rfc3339, require_aware
from certctl_operator.policy.issuers import SECRET_TYPE_TLS, IssuerCheck, SecretSnapshot
from certctl_operator.policy.renewal import issuance_backoff, object_name, renewal_time

# --------------------------------------------------------------------------- names

ANNOTATION_RENEW = f"{API_GROUP}/renew"
"""On a ManagedCertificate: any new value requests a new certificate."""

ANNOTATION_CERTIFICATE_NAME = f"{API_GROUP}/certificate-name"
ANNOTATION_ISSUER_NAME = f"{API_GROUP}/issuer-name"
ANNOTATION_ISSUER_KIND = f"{API_GROUP}/issuer-kind"
ANNOTATION_SERIAL_NUMBER = f"{API_GROUP}/serial-number"
ANNOTATION_REVISION = f"{API_GROUP}/revision"
ANNOTATION_REQUEST_HASH = f"{API_GROUP}/request-hash"
ANNOTATION_RENEW_REQUEST = f"{API_GROUP}/renew-request"
LABEL_MANAGED_BY_CERTIFICATE = f"{API_GROUP}/managed-by-certificate"
ANNOTATION_ALLOW_TAKEOVER = f"{API_GROUP}/allow-takeover-by"
"""On a Secret the operator did not write: the ManagedCertificate allowed to replace its contents."""

OUR_ANNOTATIONS = (
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_SERIAL_NUMBER,
    ANNOTATION_REVISION,
    ANNOTATION_REQUEST_HASH,
    ANNOTATION_RENEW_REQUEST,
)

CLUSTER_SEGMENT = "_cluster"
"""Stands for the namespace in the CRL and OCSP URLs of a ClusterIssuer."""

RENEW_TOKEN_LIMIT = 256


class Reason(StrEnum):
    """Condition and Event reasons of a ManagedCertificate."""

    ISSUED = "Issued"
    RENEWED = "Renewed"
    UP_TO_DATE = "UpToDate"
    ISSUER_NOT_FOUND = "IssuerNotFound"
    ISSUER_NOT_READY = "IssuerNotReady"
    ISSUANCE_FAILED = "IssuanceFailed"
    SECRET_CONFLICT = "SecretConflict"  # noqa: S105 (a reason, not a password)
    INVALID_SPEC = "InvalidSpec"
    NAME_CONSTRAINTS = "NameConstraintViolation"
    REVOKED = "Revoked"
    # Why an issuance is needed (the Issuing condition's reason).
    DOES_NOT_EXIST = "DoesNotExist"
    SECRET_MISMATCH = "SecretMismatch"  # noqa: S105 (a reason, not a password)
    SPEC_CHANGED = "SpecChanged"
    ISSUER_CHANGED = "IssuerChanged"
    RENEWING = "Renewing"
    EXPIRED = "Expired"
    MANUALLY_TRIGGERED = "ManuallyTriggered"


ISSUER_FAILURES = frozenset({Reason.ISSUER_NOT_FOUND, Reason.ISSUER_NOT_READY})


def renew_token(value: str | None) -> str | None:
    """How a ``certctl.io/renew`` value is recorded: as is, or its SHA-256 when very long."""
    if value is None:
        return None
    if len(value) <= RENEW_TOKEN_LIMIT:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def managed_by_label_value(certificate_name: str) -> str:
    """The ``managed-by-certificate`` label value: the name, or a hashed form when over 63 characters."""
    return object_name(certificate_name, max_length=63)


# --------------------------------------------------------------------------- issuers


@dataclass(frozen=True)
class IssuerView:
    """The issuer a certificate names, as the reconciler found it."""

    ref: IssuerReference
    spec: IssuerSpec | None
    check: IssuerCheck

    @property
    def found(self) -> bool:
        return self.spec is not None

    @property
    def authority(self) -> SigningAuthority | None:
        return self.check.authority if self.check.ready else None


def issuer_url_segment(kind: IssuerKind, namespace: str) -> str:
    return CLUSTER_SEGMENT if kind is IssuerKind.CLUSTER_ISSUER else namespace


def crl_url(base_url: str, kind: IssuerKind, namespace: str, issuer_name: str) -> str:
    """``<base>/crl/<namespace or _cluster>/<issuer>.crl``."""
    return f"{base_url.rstrip('/')}/crl/{issuer_url_segment(kind, namespace)}/{issuer_name}.crl"


def ocsp_url(base_url: str, kind: IssuerKind, namespace: str, issuer_name: str) -> str:
    """``<base>/ocsp/<namespace or _cluster>/<issuer>``."""
    return f"{base_url.rstrip('/')}/ocsp/{issuer_url_segment(kind, namespace)}/{issuer_name}"


# --------------------------------------------------------------------------- requests


def key_spec_for(spec: ManagedCertificateSpec) -> KeySpec:
    return KeySpec(KeyAlgorithm(spec.key.algorithm.value), spec.key.effective_size)


def key_encoding_for(spec: ManagedCertificateSpec) -> KeyEncoding:
    """The encoding tls.key is written in and compared against: the spec's, else the algorithm's own.

    An unset encoding is PKCS1 for RSA and ECDSA, which is what the schema used to fill
    in, so certificates issued before the default moved are not reissued for it.
    """
    return KeyEncoding(spec.key.effective_encoding.value)


def build_request(
    spec: ManagedCertificateSpec,
    namespace: str,
    issuer: IssuerView | None = None,
    default_base_url: str | None = None,
) -> CertificateRequest:
    """The certificate ``spec`` asks for; CRL and OCSP URLs when a CA issuer has a public base URL."""
    subject = spec.subject or X509Subject()
    crl: str | None = None
    ocsp: str | None = None
    if issuer is not None and issuer.spec is not None and issuer.spec.ca is not None:
        base = issuer.spec.public_base_url or default_base_url
        if base:
            crl = crl_url(base, issuer.ref.kind, namespace, issuer.ref.name)
            if issuer.spec.ocsp_settings.enabled:
                ocsp = ocsp_url(base, issuer.ref.kind, namespace, issuer.ref.name)
    return CertificateRequest(
        common_name=spec.common_name,
        dns_names=spec.dns_names or (),
        ip_addresses=spec.ip_addresses or (),
        uris=spec.uris or (),
        email_addresses=spec.email_addresses or (),
        organizations=subject.organizations or (),
        organizational_units=subject.organizational_units or (),
        countries=subject.countries or (),
        localities=subject.localities or (),
        provinces=subject.provinces or (),
        duration=spec.duration_delta,
        usages=[str(usage) for usage in spec.effective_usages],
        is_ca=spec.is_ca,
        crl_distribution_url=crl,
        ocsp_url=ocsp,
    )


def spec_problems(spec: ManagedCertificateSpec, namespace: str, minimum_duration: timedelta) -> list[str]:
    """Why ``spec`` can never be issued, whatever the issuer; empty when it can."""
    problems: list[str] = []
    if spec.duration_delta < minimum_duration:
        problems.append(
            f"duration {spec.duration} is shorter than the minimum certificate duration "
            f"{format_duration(minimum_duration)}"
        )
    key = spec.key
    if key.algorithm is PrivateKeyAlgorithm.ED25519 and key.effective_encoding is PrivateKeyEncoding.PKCS1:
        # The model refuses this already; kept for specs built without validation.
        problems.append(
            "Ed25519 private keys have no PKCS1 encoding: leave privateKey.encoding unset or set it to PKCS8"
        )
    try:
        validate_request(build_request(spec, namespace))
    except InvalidRequestError as error:
        problems.append(error.message)
    return problems


def spec_error_message(error: ValidationError) -> str:
    """A ManagedCertificate the models refuse, one ``path: reason`` per problem (no input values).

    Such an object was stored before the CRD refused it (an older, looser
    schema); the message tells its owner what to change.
    """
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in detail["loc"])
        reason = str(detail["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {reason}" if where else reason)
    return "invalid spec: " + "; ".join(parts)


def status_unreadable(
    body: Mapping[str, Any], message: str, *, now: datetime
) -> tuple[ManagedCertificateStatus, ManagedCertificateStatus]:
    """(current, wanted) status of a ManagedCertificate whose spec the models refuse.

    Ready and Issuing become False/InvalidSpec with ``message``; the rest of the
    status is kept. A status the models cannot read either is replaced whole.
    """
    try:
        current = ManagedCertificateStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        current = ManagedCertificateStatus()
    generation = (body.get("metadata") or {}).get("generation")
    wanted = current.model_copy(deep=True)
    wanted.next_attempt_time = None
    wanted.observed_generation = generation
    wanted.conditions = _conditions(
        wanted.conditions,
        now=now,
        generation=generation,
        ready=(ConditionStatus.FALSE, Reason.INVALID_SPEC, message),
        issuing=(ConditionStatus.FALSE, Reason.INVALID_SPEC, "Not issued until the spec is corrected"),
    )
    return current, wanted


def request_hash(
    request: CertificateRequest, key_spec: KeySpec, encoding: KeyEncoding, issuer_ref: IssuerReference
) -> str:
    """A digest of everything a certificate was issued for; order of list entries does not matter."""
    canonical = {
        "commonName": request.common_name,
        "dnsNames": sorted(name.lower() for name in request.dns_names),
        "ipAddresses": sorted(request.ip_addresses),
        "uris": sorted(request.uris),
        "emailAddresses": sorted(email.lower() for email in request.email_addresses),
        "organizations": sorted(request.organizations),
        "organizationalUnits": sorted(request.organizational_units),
        "countries": sorted(country.upper() for country in request.countries),
        "localities": sorted(request.localities),
        "provinces": sorted(request.provinces),
        "durationSeconds": request.duration.total_seconds(),
        "usages": sorted(request.usages),
        "isCA": request.is_ca,
        "crl": request.crl_distribution_url,
        "ocsp": request.ocsp_url,
        "key": [key_spec.algorithm.value, key_spec.size, encoding.value],
        "issuer": [issuer_ref.kind.value, issuer_ref.name],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def pem_key_encoding(pem: bytes) -> KeyEncoding | None:
    """PKCS8 for a ``PRIVATE KEY`` block, PKCS1 for ``RSA PRIVATE KEY`` / ``EC PRIVATE KEY``."""
    if b"-----BEGIN PRIVATE KEY-----" in pem:
        return KeyEncoding.PKCS8
    if b"-----BEGIN RSA PRIVATE KEY-----" in pem or b"-----BEGIN EC PRIVATE KEY-----" in pem:
        return KeyEncoding.PKCS1
    return None


def chain_for(
    leaf: x509.Certificate, authority: SigningAuthority | None
) -> tuple[tuple[x509.Certificate, ...], x509.Certificate]:
    """What ``tls.crt`` (leaf, then intermediates; no self-signed root) and ``ca.crt`` hold."""
    if authority is None:
        return (leaf,), leaf
    chain = (authority.certificate, *authority.chain)
    return (leaf, *(c for c in chain if not is_self_signed(c))), chain[-1]


# --------------------------------------------------------------------------- the Secret


class Mismatch(StrEnum):
    """What kind of difference makes a Secret unfit; named like the Issuing reasons."""

    SECRET = Reason.SECRET_MISMATCH.value
    SPEC = Reason.SPEC_CHANGED.value
    ISSUER = Reason.ISSUER_CHANGED.value


@dataclass(frozen=True)
class SecretExamination:
    """What a certificate's Secret holds and why it no longer fits, if it does not."""

    exists: bool
    owner: str | None = None
    revision: int | None = None
    serial: str | None = None
    fingerprint: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    key: PrivateKey | None = None
    renew_request: str | None = None
    problems: tuple[tuple[Mismatch, str], ...] = ()
    taken_over: bool = False
    """A Secret certctl did not write, handed over with ``certctl.io/allow-takeover-by``."""

    @property
    def fits(self) -> bool:
        """The Secret exists and holds a certificate and key that fit the spec and the issuer."""
        return self.exists and not self.problems and self.serial is not None


def _revision(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


_ISSUER_PROBLEM_PREFIXES = ("CRL distribution URLs", "OCSP URLs")
# An ACME CA takes only the names and the key from the CSR and decides the rest itself.
_ACME_CA_DECIDES = ("commonName", "usages", "CRL distribution URLs", "OCSP URLs")


def examine_secret(
    secret: SecretSnapshot | None,
    *,
    certificate_name: str,
    spec: ManagedCertificateSpec,
    request: CertificateRequest,
    issuer: IssuerView | None,
) -> SecretExamination:
    """Read a certificate's Secret and list every way it differs from what ``spec`` and the issuer want.

    When the issuer cannot sign right now, the Secret is not compared with its
    CA: a broken issuer never makes a valid certificate look stale.
    """
    if secret is None:
        return SecretExamination(exists=False)
    annotations = secret.annotations
    owner = annotations.get(ANNOTATION_CERTIFICATE_NAME)
    revision = _revision(annotations.get(ANNOTATION_REVISION))
    renew_request = annotations.get(ANNOTATION_RENEW_REQUEST)
    # Another tool's Secret (cert-manager's, say) lacks certctl's annotations and URLs; only
    # its content decides whether it can be adopted as it is (see decide()).
    taken_over = owner is None and annotations.get(ANNOTATION_ALLOW_TAKEOVER) == certificate_name
    # Its CRL and OCSP URLs are that tool's (or none) until certctl first renews it (revision 2),
    # also once certctl's annotations are added: they alone never make it issue again.
    foreign_urls = (
        owner in (None, certificate_name)
        and annotations.get(ANNOTATION_ALLOW_TAKEOVER) == certificate_name
        and revision in (None, 1)
    )
    problems: list[tuple[Mismatch, str]] = []
    if secret.type != SECRET_TYPE_TLS:
        problems.append((Mismatch.SECRET, f"the Secret is of type {secret.type}, not {SECRET_TYPE_TLS}"))
    if owner is not None and owner != certificate_name:
        problems.append((Mismatch.SECRET, f"the Secret was written for ManagedCertificate {owner}"))

    key: PrivateKey | None = None
    key_pem = secret.data.get("tls.key")
    if not key_pem:
        problems.append((Mismatch.SECRET, "the Secret has no tls.key"))
    else:
        try:
            key = load_private_key(key_pem, "tls.key")
        except InvalidKeyError as error:
            problems.append((Mismatch.SECRET, error.message))
        else:
            wanted_encoding = key_encoding_for(spec)
            encoding = pem_key_encoding(key_pem)
            if encoding is not wanted_encoding:
                problems.append(
                    (Mismatch.SPEC, f"tls.key is encoded as {encoding}, the spec wants {wanted_encoding}")
                )

    def unreadable(problem: str) -> SecretExamination:
        problems.append((Mismatch.SECRET, problem))
        return SecretExamination(
            exists=True,
            owner=owner,
            revision=revision,
            key=key,
            renew_request=renew_request,
            problems=tuple(problems),
        )

    crt_pem = secret.data.get("tls.crt")
    if not crt_pem:
        return unreadable("the Secret has no tls.crt")
    try:
        certificates = load_certificates(crt_pem, "tls.crt")
        summary = summarize_certificate(certificates[0])
    except PKIError as error:
        return unreadable(error.message)
    leaf = certificates[0]
    serial = summary.serial_hex.lower()

    key_spec = key_spec_for(spec)
    acme = issuer is not None and issuer.spec is not None and issuer.spec.acme is not None
    for problem in certificate_matches_request(summary, request, key, key_spec=key_spec):
        if acme and problem.startswith(_ACME_CA_DECIDES):
            continue
        if foreign_urls and problem.startswith(_ISSUER_PROBLEM_PREFIXES):
            continue  # the next renewal adds certctl's CRL and OCSP URLs
        if problem == "the private key does not belong to the certificate":
            problems.append((Mismatch.SECRET, "tls.key does not belong to the certificate in tls.crt"))
        elif problem.startswith(_ISSUER_PROBLEM_PREFIXES):
            problems.append((Mismatch.ISSUER, problem))
        else:
            problems.append((Mismatch.SPEC, problem))
    # A taken-over Secret has no certctl annotations yet: nothing to compare them with.
    if not taken_over and annotations.get(ANNOTATION_SERIAL_NUMBER, "").lower() != serial:
        problems.append((Mismatch.SECRET, "the serial-number annotation does not name the certificate"))
    issued_by = (annotations.get(ANNOTATION_ISSUER_KIND), annotations.get(ANNOTATION_ISSUER_NAME))
    if not taken_over and issued_by != (spec.issuer_ref.kind.value, spec.issuer_ref.name):
        problems.append((Mismatch.SPEC, "the certificate was issued by another issuer than issuerRef names"))
    elif not taken_over and annotations.get(ANNOTATION_REQUEST_HASH) != request_hash(
        request, key_spec, key_encoding_for(spec), spec.issuer_ref
    ):
        problems.append((Mismatch.SPEC, "the certificate was issued for a different spec"))

    # An ACME CA signs with keys the operator never sees: nothing to compare the chain with.
    if issuer is not None and issuer.check.ready and (issuer.spec is None or issuer.spec.acme is None):
        problems.extend(_chain_problems(leaf, certificates, secret.data.get("ca.crt"), issuer.authority))
    return SecretExamination(
        exists=True,
        owner=owner,
        revision=revision,
        serial=serial,
        fingerprint=summary.fingerprint_sha256.lower(),
        not_before=summary.not_before,
        not_after=summary.not_after,
        key=key,
        renew_request=renew_request,
        problems=tuple(problems),
        taken_over=taken_over,
    )


def _chain_problems(
    leaf: x509.Certificate,
    certificates: Sequence[x509.Certificate],
    ca_pem: bytes | None,
    authority: SigningAuthority | None,
) -> list[tuple[Mismatch, str]]:
    """Whether the issuer, as it is now, signed ``leaf``, and tls.crt and ca.crt show its chain."""
    signer = leaf if authority is None else authority.certificate
    try:
        leaf.verify_directly_issued_by(signer)
    except (ValueError, TypeError, InvalidSignature):
        if authority is None:
            return [(Mismatch.ISSUER, "the certificate is not self-signed, but the issuer is selfSigned")]
        subject = authority.subject.rfc4514_string()
        return [(Mismatch.ISSUER, f"the certificate was not signed by the issuer's current CA {subject}")]
    problems: list[tuple[Mismatch, str]] = []
    want_crt, want_ca = chain_for(leaf, authority)
    if [fingerprint_sha256(c) for c in certificates] != [fingerprint_sha256(c) for c in want_crt]:
        problems.append((Mismatch.ISSUER, "tls.crt does not hold the issuer's current chain"))
    try:
        held = [fingerprint_sha256(c) for c in load_certificates(ca_pem)] if ca_pem else []
    except PKIError:
        held = []
    if held != [fingerprint_sha256(want_ca)]:
        problems.append((Mismatch.SECRET, "ca.crt does not hold the issuing CA"))
    return problems


def desired_labels(cert: ManagedCertificate) -> dict[str, str]:
    template = cert.spec.secret_template
    labels = dict(template.labels or {}) if template else {}
    labels[LABEL_MANAGED_BY_CERTIFICATE] = managed_by_label_value(cert.metadata.name or "")
    return labels


def desired_annotations(
    cert: ManagedCertificate, *, revision: int, serial: str, hash_: str, renew_request: str | None
) -> dict[str, str]:
    template = cert.spec.secret_template
    annotations = dict(template.annotations or {}) if template else {}
    annotations.update(
        {
            ANNOTATION_CERTIFICATE_NAME: cert.metadata.name or "",
            ANNOTATION_ISSUER_NAME: cert.spec.issuer_ref.name,
            ANNOTATION_ISSUER_KIND: cert.spec.issuer_ref.kind.value,
            ANNOTATION_SERIAL_NUMBER: serial,
            ANNOTATION_REVISION: str(revision),
            ANNOTATION_REQUEST_HASH: hash_,
        }
    )
    if renew_request is not None:
        annotations[ANNOTATION_RENEW_REQUEST] = renew_request
    return annotations


def metadata_differs(
    secret: SecretSnapshot, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> bool:
    """Whether ``secret`` lacks or alters any of the wanted labels and annotations."""
    return any(secret.labels.get(k) != v for k, v in labels.items()) or any(
        secret.annotations.get(k) != v for k, v in annotations.items()
    )


# --------------------------------------------------------------------------- ownership


def secret_written_for(secret: SecretSnapshot, certificate_name: str) -> bool:
    """Whether the operator wrote ``secret`` for ``certificate_name``, however it was edited since.

    The certificate-name annotation says so; without it, the managed-by label does.
    """
    owner = secret.annotations.get(ANNOTATION_CERTIFICATE_NAME)
    if owner is not None:
        return owner == certificate_name
    return secret.labels.get(LABEL_MANAGED_BY_CERTIFICATE) == managed_by_label_value(certificate_name)


def other_owner(secret: SecretSnapshot | None, certificate_name: str) -> str | None:
    """The other ManagedCertificate the operator wrote ``secret`` for, if any.

    Whether that certificate still names the Secret decides who may write it
    (see :func:`secret_conflict`); the caller looks it up.
    """
    if secret is None:
        return None
    owner = secret.annotations.get(ANNOTATION_CERTIFICATE_NAME)
    return owner if owner is not None and owner != certificate_name else None


def secret_conflict(
    secret: SecretSnapshot | None, *, certificate_name: str, owner_claims_it: bool
) -> str | None:
    """Why ``certificate_name`` must not write ``secret``, or None when it may.

    It may write a Secret that does not exist (created, never overwritten: of
    several certificates racing for one name exactly one creates it), a Secret
    written for it (even if edited since: it is repaired), one written for
    another certificate that no longer names it (``owner_claims_it`` False:
    deleted, or moved to another secretName), and one whose owner allowed it
    with ``certctl.io/allow-takeover-by: <certificate name>``. Any other Secret
    is not the operator's to replace.
    """
    if secret is None:
        return None
    name = secret.name
    if secret.type != SECRET_TYPE_TLS:
        return (
            f"Secret {name} is of type {secret.type}, which cannot change to {SECRET_TYPE_TLS}: "
            "delete it or choose another secretName"
        )
    if secret_written_for(secret, certificate_name):
        return None
    owner = secret.annotations.get(ANNOTATION_CERTIFICATE_NAME)
    if owner is not None:
        if owner_claims_it:
            return f"Secret {name} belongs to ManagedCertificate {owner}"
        return None
    allowed = secret.annotations.get(ANNOTATION_ALLOW_TAKEOVER)
    if allowed == certificate_name:
        return None
    if allowed:
        return (
            f"Secret {name} was not written by certctl-operator and its annotation "
            f"{ANNOTATION_ALLOW_TAKEOVER} allows ManagedCertificate {allowed}, not {certificate_name}"
        )
    return (
        f"Secret {name} was not written by certctl-operator and is left untouched: annotate it with "
        f"{ANNOTATION_ALLOW_TAKEOVER}={certificate_name} to let this ManagedCertificate replace its "
        "contents, or choose another secretName"
    )


# --------------------------------------------------------------------------- timing


def certificate_renewal_time(
    spec: ManagedCertificateSpec, not_before: datetime, not_after: datetime
) -> datetime:
    """When a certificate valid ``not_before``..``not_after`` is renewed under ``spec``.

    The lifetime is counted from the issuance, not from the backdated
    notBefore, so a short certificate is not renewed the moment it is issued.
    A certificate valid for exactly ``spec.duration`` was not backdated: one
    cert-manager issued (adopted through ``certctl.io/allow-takeover-by``)
    starts at its signing time, and counting its lifetime from notBefore
    renews it when cert-manager would have.
    """
    backdated = not_after - not_before != spec.duration_delta
    issued_at = min(not_before + DEFAULT_BACKDATE, not_after) if backdated else not_before
    if spec.renew_before is not None:
        return renewal_time(issued_at, not_after, renew_before=spec.renew_before_delta)
    if spec.renew_before_percentage is not None:
        return renewal_time(issued_at, not_after, renew_before_percentage=spec.renew_before_percentage)
    return renewal_time(issued_at, not_after)


def current_serial_revoked(status: ManagedCertificateStatus) -> bool:
    """Whether the revocation side marked the current certificate revoked."""
    if status.revoked:
        return True
    serial = (status.serial_number or "").lower()
    return bool(serial) and serial in {s.lower() for s in status.revoked_serial_numbers or ()}


def _revoked_serials(status: ManagedCertificateStatus) -> set[str]:
    return {s.lower() for s in status.revoked_serial_numbers or ()}


def pending_renew_request(cert: ManagedCertificate) -> str | None:
    """The ``certctl.io/renew`` value not answered yet, if any."""
    token = renew_token(cert.metadata.annotations.get(ANNOTATION_RENEW))
    if token is None or token == cert.status.last_renew_request:
        return None
    return token


# --------------------------------------------------------------------------- decisions


class Action(StrEnum):
    NONE = "None"
    """The Secret is current and nothing is due."""
    ADOPT = "Adopt"
    """The Secret holds the next revision, written before a crash: record it in the status."""
    ISSUE = "Issue"
    """Issue revision ``Decision.revision`` now."""
    WAIT = "Wait"
    """An issuance is needed but the back-off after a failure has not passed."""
    INVALID = "Invalid"
    """The spec can never be issued; reported, not retried."""
    REVOKED = "Revoked"
    """The current certificate is revoked and no reissue was requested."""
    CONFLICT = "Conflict"
    """An issuance is due but the Secret is not this certificate's to write (``Decision.conflict``)."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    message: str = ""
    revision: int | None = None
    new_key: bool = True
    renew_request: str | None = None
    not_before: datetime | None = None
    """For WAIT: when the next attempt is due."""
    conflict: str | None = None
    """For CONFLICT, and for WAIT while it lasts: why the Secret must not be written."""


def decide(
    cert: ManagedCertificate,
    exam: SecretExamination,
    *,
    problems: Sequence[str],
    issuer_ready: bool,
    now: datetime,
    conflict: str | None = None,
) -> Decision:
    """The one thing to do now.

    ``problems`` are :func:`spec_problems`; ``conflict`` is :func:`secret_conflict`.
    """
    require_aware(now)
    status = cert.status
    name = cert.metadata.name or ""
    if problems:
        return Decision(Action.INVALID, Reason.INVALID_SPEC, "; ".join(problems))

    revoked = current_serial_revoked(status)
    renew = pending_renew_request(cert)
    handled = renew if renew is not None else status.last_renew_request
    if revoked and renew is None:
        return Decision(Action.REVOKED, Reason.REVOKED)

    current = status.revision or 0
    own_revision = exam.revision if exam.owner == name else None
    if exam.taken_over and exam.fits and exam.not_before is not None and exam.not_after is not None:
        # Adoption of a handed-over Secret: its key and certificate are kept until renewal is
        # due, as revision 1; the next reconcile finds it in sync and adds certctl's annotations.
        due = now >= certificate_renewal_time(cert.spec, exam.not_before, exam.not_after)
        if current == 0 and not due and renew is None:
            return Decision(Action.ADOPT, revision=1, renew_request=handled)
        if current >= 1 and exam.serial == (status.serial_number or "").lower():
            own_revision = current
    if (
        exam.fits
        and own_revision is not None
        and exam.serial != (status.serial_number or "").lower()
        and exam.serial not in _revoked_serials(status)
        and (own_revision == current + 1 or (current == 0 and own_revision >= 1))
    ):
        return Decision(Action.ADOPT, revision=own_revision, renew_request=exam.renew_request or handled)

    in_sync = (
        exam.fits
        and own_revision == current
        and exam.serial == (status.serial_number or "").lower()
        and (status.fingerprint_sha256 is None or exam.fingerprint == status.fingerprint_sha256.lower())
    )
    if in_sync:
        assert exam.not_before is not None and exam.not_after is not None
        if renew is not None:
            trigger, message = Reason.MANUALLY_TRIGGERED, f"renewal requested with {ANNOTATION_RENEW}={renew}"
        elif now >= exam.not_after:
            trigger, message = Reason.EXPIRED, f"the certificate expired at {format_rfc3339(exam.not_after)}"
        elif now >= certificate_renewal_time(cert.spec, exam.not_before, exam.not_after):
            trigger, message = Reason.RENEWING, "the renewal time has come"
        else:
            return Decision(Action.NONE)
    elif not exam.exists:
        trigger, message = Reason.DOES_NOT_EXIST, f"Secret {cert.spec.secret_name} does not exist"
    elif exam.problems:
        kinds = {kind for kind, _ in exam.problems}
        # Named after the most telling difference: an edited Secret, then the spec, then the issuer.
        trigger = Reason(next(kind for kind in Mismatch if kind in kinds).value)
        message = "; ".join(text for _, text in exam.problems)
    else:
        trigger = Reason.SECRET_MISMATCH
        message = (
            f"the Secret holds revision {exam.revision} (serial {exam.serial}), the status records revision "
            f"{status.revision} (serial {status.serial_number})"
        )

    waiting = backoff_until(cert, issuer_ready=issuer_ready, secret_free=conflict is None, now=now)
    if waiting is not None:
        return Decision(Action.WAIT, trigger, message, not_before=waiting, conflict=conflict)
    if conflict is not None:
        return Decision(Action.CONFLICT, trigger, message, renew_request=handled, conflict=conflict)
    key_spec = key_spec_for(cert.spec)
    reusable = exam.key is not None and key_matches_spec(exam.key, key_spec)
    new_key = revoked or cert.spec.key.rotation_policy is RotationPolicy.ALWAYS or not reusable
    return Decision(
        Action.ISSUE,
        trigger,
        message,
        revision=max(current, own_revision or 0) + 1,
        new_key=new_key,
        renew_request=handled,
    )


def backoff_until(
    cert: ManagedCertificate, *, issuer_ready: bool, now: datetime, secret_free: bool = True
) -> datetime | None:
    """When the next issuance may start after failures; None when it may start now.

    The back-off is skipped when the spec changed since the failure, when a
    new ``certctl.io/renew`` value came after it (what ``kubectl certctl renew``
    promises), when the failure was the issuer's and the issuer can sign again,
    and when the failure was a Secret conflict and the Secret is free now.
    """
    status = cert.status
    if not status.failed_issuance_attempts or status.next_attempt_time is None:
        return None
    if now >= status.next_attempt_time:
        return None
    if cert.metadata.generation is not None and status.observed_generation != cert.metadata.generation:
        return None
    renew = pending_renew_request(cert)
    if renew is not None and renew != status.failed_renew_request:
        return None
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is not None and ready.reason in ISSUER_FAILURES and issuer_ready:
        return None
    if ready is not None and ready.reason == Reason.SECRET_CONFLICT and secret_free:
        return None
    return status.next_attempt_time


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class CertificateFacts:
    """The certificate that is now in the Secret."""

    revision: int
    serial: str
    fingerprint: str
    not_before: datetime
    not_after: datetime


def _conditions(
    conditions: Sequence[Condition],
    *,
    now: datetime,
    generation: int | None,
    ready: tuple[ConditionStatus, str, str],
    issuing: tuple[ConditionStatus, str, str],
) -> list[Condition]:
    updated = set_condition(conditions, ConditionType.READY, *ready, now=now, observed_generation=generation)
    return set_condition(updated, ConditionType.ISSUING, *issuing, now=now, observed_generation=generation)


def _ready_message(facts: CertificateFacts) -> str:
    return (
        f"Certificate revision {facts.revision} (serial {facts.serial}) is valid until "
        f"{format_rfc3339(facts.not_after)}"
    )


def status_after_issuance(
    cert: ManagedCertificate, facts: CertificateFacts, *, renew_request: str | None, now: datetime
) -> ManagedCertificateStatus:
    """The status once ``facts`` are in the Secret (issued now, or adopted)."""
    spec = cert.spec
    status = cert.status.model_copy(deep=True)
    status.secret_name = spec.secret_name
    status.issuer_ref = spec.issuer_ref.model_copy()
    status.revision = facts.revision
    status.serial_number = facts.serial
    status.fingerprint_sha256 = facts.fingerprint
    status.not_before = facts.not_before
    status.not_after = facts.not_after
    status.renewal_time = certificate_renewal_time(spec, facts.not_before, facts.not_after)
    status.last_failure_time = None
    status.failed_issuance_attempts = None
    status.next_attempt_time = None
    status.notified_expiry_thresholds = None
    status.last_renew_request = renew_request
    status.failed_renew_request = None
    if status.revoked is not None:
        status.revoked = False
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.TRUE, Reason.ISSUED, _ready_message(facts)),
        issuing=(ConditionStatus.FALSE, Reason.UP_TO_DATE, "The Secret holds the current certificate"),
    )
    return status


def status_in_sync(
    cert: ManagedCertificate, exam: SecretExamination, *, now: datetime
) -> ManagedCertificateStatus:
    """The status of a certificate whose Secret is current and that needs nothing now."""
    assert exam.serial and exam.fingerprint and exam.not_before and exam.not_after
    facts = CertificateFacts(
        revision=cert.status.revision or 0,
        serial=exam.serial,
        fingerprint=exam.fingerprint,
        not_before=exam.not_before,
        not_after=exam.not_after,
    )
    status = status_after_issuance(cert, facts, renew_request=cert.status.last_renew_request, now=now)
    status.revoked = cert.status.revoked
    status.notified_expiry_thresholds = cert.status.notified_expiry_thresholds
    return status


def status_after_failure(
    cert: ManagedCertificate,
    *,
    reason: str,
    message: str,
    trigger: str,
    trigger_message: str,
    now: datetime,
    retry_base: timedelta,
    retry_cap: timedelta,
) -> ManagedCertificateStatus:
    """The status after a failed issuance: counted, timed, and the next attempt scheduled.

    The ``certctl.io/renew`` value pending during the attempt is recorded: only
    a newer one skips the back-off.
    """
    status = cert.status.model_copy(deep=True)
    status.failed_renew_request = pending_renew_request(cert)
    attempts = (status.failed_issuance_attempts or 0) + 1
    next_attempt = now.replace(microsecond=0) + issuance_backoff(attempts, retry_base, retry_cap)
    status.failed_issuance_attempts = attempts
    status.last_failure_time = now
    status.next_attempt_time = next_attempt
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.FALSE, reason, message),
        issuing=(
            ConditionStatus.TRUE,
            trigger,
            f"{trigger_message}; attempt {attempts} failed, next attempt at {format_rfc3339(next_attempt)}",
        ),
    )
    return status


def status_conflict_waiting(
    cert: ManagedCertificate, conflict: str, *, now: datetime
) -> ManagedCertificateStatus:
    """A certificate waiting out its back-off after a Secret conflict: Ready says the conflict as it is now.

    The Secret may have changed hands meanwhile (another certificate took it
    over); the message follows without counting an attempt.
    """
    status = cert.status.model_copy(deep=True)
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is None or ready.reason != Reason.SECRET_CONFLICT or ready.message == conflict:
        return status
    status.conditions = set_condition(
        status.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        Reason.SECRET_CONFLICT,
        conflict,
        now=now,
        observed_generation=ready.observed_generation,
    )
    return status


def status_invalid(cert: ManagedCertificate, message: str, *, now: datetime) -> ManagedCertificateStatus:
    """The status of a spec that can never be issued: reported once, never retried."""
    status = cert.status.model_copy(deep=True)
    status.next_attempt_time = None
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.FALSE, Reason.INVALID_SPEC, message),
        issuing=(ConditionStatus.FALSE, Reason.INVALID_SPEC, "Not issued until the spec is corrected"),
    )
    return status


def status_revoked(cert: ManagedCertificate, *, now: datetime) -> ManagedCertificateStatus:
    """The status of a certificate that stays revoked until a reissue is requested.

    A Ready condition the revocation already set to False/Revoked is kept as it is.
    """
    status = cert.status.model_copy(deep=True)
    status.next_attempt_time = None
    status.observed_generation = cert.metadata.generation
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is None or (ready.status, ready.reason) != (ConditionStatus.FALSE, Reason.REVOKED):
        status.conditions = set_condition(
            status.conditions,
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.REVOKED,
            f"The current certificate (serial {status.serial_number}) is revoked",
            now=now,
            observed_generation=cert.metadata.generation,
        )
    status.conditions = set_condition(
        status.conditions,
        ConditionType.ISSUING,
        ConditionStatus.FALSE,
        Reason.REVOKED,
        f"Not reissued automatically while revoked: set the annotation {ANNOTATION_RENEW} to a new value "
        "to issue a new certificate with a new key",
        now=now,
        observed_generation=cert.metadata.generation,
    )
    return status


def ready_condition(status: ManagedCertificateStatus) -> Condition | None:
    return find_condition(status.conditions, ConditionType.READY)


def ready_transition(before: ManagedCertificateStatus, after: ManagedCertificateStatus) -> bool:
    """Whether the Ready condition changed its status or reason (what deserves an Event)."""
    old, new = ready_condition(before), ready_condition(after)
    if new is None:
        return False
    return old is None or (old.status, old.reason) != (new.status, new.reason)


# --------------------------------------------------------------------------- notices


def subscribed_channels(cert: ManagedCertificate, event: CertificateEventType) -> tuple[str, ...]:
    """Channels that want ``event`` for this certificate (none without spec.notifications)."""
    settings = cert.spec.notifications
    if settings is None or event not in settings.events:
        return ()
    return tuple(settings.channels)


def _armed_thresholds(cert: ManagedCertificate) -> list[tuple[str, timedelta]]:
    status = cert.status
    settings = cert.spec.notifications
    if (
        settings is None
        or CertificateEventType.EXPIRING not in settings.events
        or status.not_before is None
        or status.not_after is None
        or not status.revision
    ):
        return []
    issued_at = min(status.not_before + DEFAULT_BACKDATE, status.not_after)
    lifetime = status.not_after - issued_at
    notified = set(status.notified_expiry_thresholds or ())
    armed = []
    for text in settings.expiry_thresholds:
        threshold = parse_duration(text)
        # A certificate born inside a threshold (a lifetime shorter than it) is not announced for it.
        if text not in notified and (threshold < lifetime or threshold == timedelta(0)):
            armed.append((text, threshold))
    return armed


@dataclass(frozen=True)
class ExpiryNotice:
    """The expiry threshold to announce now, and every threshold it answers for."""

    threshold: timedelta
    threshold_text: str
    crossed: tuple[str, ...]


def expiry_notice_due(cert: ManagedCertificate, now: datetime) -> ExpiryNotice | None:
    """The expiry notice due now: the most urgent of the thresholds crossed and not yet announced."""
    not_after = cert.status.not_after
    if not_after is None:
        return None
    crossed = [(text, t) for text, t in _armed_thresholds(cert) if now >= not_after - t]
    if not crossed:
        return None
    text, threshold = min(crossed, key=lambda item: item[1])
    return ExpiryNotice(threshold, text, tuple(sorted(t for t, _ in crossed)))


def next_expiry_notice_time(cert: ManagedCertificate, now: datetime) -> datetime | None:
    not_after = cert.status.not_after
    if not_after is None:
        return None
    times = [not_after - t for _, t in _armed_thresholds(cert) if now < not_after - t]
    return min(times) if times else None


def with_notified(status: ManagedCertificateStatus, thresholds: Sequence[str]) -> ManagedCertificateStatus:
    updated = status.model_copy(deep=True)
    known = list(updated.notified_expiry_thresholds or ())
    updated.notified_expiry_thresholds = known + [t for t in thresholds if t not in known]
    return updated


def next_action_time(cert: ManagedCertificate, now: datetime) -> datetime | None:
    """When this certificate next needs the reconciler, judged from its status alone."""
    status = cert.status
    ready = ready_condition(status)
    if (
        ready is not None
        and ready.reason == Reason.INVALID_SPEC
        and status.observed_generation == cert.metadata.generation
    ):
        return None
    revoked = current_serial_revoked(status)
    candidates: list[datetime] = []
    if status.failed_issuance_attempts and status.next_attempt_time is not None:
        candidates.append(status.next_attempt_time)
    if not revoked:
        if status.renewal_time is not None:
            candidates.append(status.renewal_time)
        if status.not_after is not None:
            candidates.append(status.not_after)
    notice = next_expiry_notice_time(cert, now)
    if notice is not None:
        candidates.append(notice)
    future = [when for when in candidates if when > now]
    return min(future) if future else None


def serial_hex(serial: int) -> str:
    """Serial numbers as the status and annotations write them: lowercase hex."""
    return serial_to_hex(serial).lower()


def _dns_within(name: str, base: str) -> bool:
    """RFC 5280 4.2.1.10: a DNS name is within ``base`` when it is ``base`` or ends in ``.base``."""
    name, base = name.lower().rstrip("."), base.lower().rstrip(".")
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _email_within(address: str, base: str) -> bool:
    """RFC 5280: a mailbox, a host (all mailboxes on it) or ``.domain`` (every host below it)."""
    address, base = address.lower(), base.lower()
    if "@" in base:
        return address == base
    host = address.rpartition("@")[2]
    return host.endswith(base) if base.startswith(".") else host == base


def _within(kind: str, value: str, subtree: x509.GeneralName) -> bool | None:
    """Whether ``value`` (a SAN of ``kind``) is in ``subtree``; None when the subtree is of another form."""
    if kind == "DNS" and isinstance(subtree, x509.DNSName):
        return _dns_within(value, subtree.value)
    if kind == "IP" and isinstance(subtree, x509.IPAddress):
        network = subtree.value
        address = ipaddress.ip_address(value)
        return isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network) and address in network
    if kind == "email" and isinstance(subtree, x509.RFC822Name):
        return _email_within(value, subtree.value)
    return None


def name_constraint_violations(
    request: CertificateRequest, authorities: Sequence[x509.Certificate]
) -> list[str]:
    """The request's names that a nameConstraints extension of ``authorities`` forbids.

    A CA (or one of its issuers) that carries nameConstraints limits what it
    may sign; a certificate outside them is rejected by every client that
    checks, so it is refused here instead of being issued broken. Subtrees of
    a name form constrain only names of that form (RFC 5280 4.2.1.10).
    """
    names = [
        *(("DNS", name) for name in request.dns_names),
        *(("IP", str(address)) for address in request.ip_addresses),
        *(("email", address) for address in request.email_addresses),
    ]
    problems: list[str] = []
    for authority in authorities:
        try:
            constraints = authority.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        who = authority.subject.rfc4514_string() or "(empty subject)"
        for kind, value in names:
            excluded = [_within(kind, value, subtree) for subtree in constraints.excluded_subtrees or ()]
            if any(excluded):
                problems.append(f"{kind} name {value} is excluded by the name constraints of CA {who}")
                continue
            permitted = [_within(kind, value, subtree) for subtree in constraints.permitted_subtrees or ()]
            applicable = [inside for inside in permitted if inside is not None]
            if applicable and not any(applicable):
                allowed = ", ".join(
                    str(subtree.value)
                    for subtree in constraints.permitted_subtrees or ()
                    if _within(kind, value, subtree) is not None
                )
                problems.append(
                    f"{kind} name {value} is outside the names CA {who} may sign for (permitted: {allowed})"
                )
    return problems


__all__ = [
    "ANNOTATION_ALLOW_TAKEOVER",
    "ANNOTATION_CERTIFICATE_NAME",
    "ANNOTATION_ISSUER_KIND",
    "ANNOTATION_ISSUER_NAME",
    "ANNOTATION_RENEW",
    "ANNOTATION_RENEW_REQUEST",
    "ANNOTATION_REQUEST_HASH",
    "ANNOTATION_REVISION",
    "ANNOTATION_SERIAL_NUMBER",
    "LABEL_MANAGED_BY_CERTIFICATE",
    "Action",
    "CertificateFacts",
    "Decision",
    "ExpiryNotice",
    "IssuerView",
    "Mismatch",
    "Reason",
    "SecretExamination",
    "backoff_until",
    "build_request",
    "certificate_renewal_time",
    "chain_for",
    "crl_url",
    "current_serial_revoked",
    "decide",
    "desired_annotations",
    "desired_labels",
    "examine_secret",
    "expiry_notice_due",
    "key_encoding_for",
    "key_spec_for",
    "managed_by_label_value",
    "metadata_differs",
    "name_constraint_violations",
    "next_action_time",
    "next_expiry_notice_time",
    "ocsp_url",
    "other_owner",
    "pending_renew_request",
    "renew_token",
    "request_hash",
    "secret_conflict",
    "secret_written_for",
    "spec_error_message",
    "spec_problems",
    "status_after_failure",
    "status_after_issuance",
    "status_conflict_waiting",
    "status_in_sync",
    "status_invalid",
    "status_revoked",
    "status_unreadable",
    "subscribed_channels",
    "with_notified",
]
