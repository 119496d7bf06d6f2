"""A certificate's Secret: what it holds, how it differs from what is wanted, and whose it is.

:func:`examine_secret` parses tls.crt, tls.key and ca.crt and lists every way
they differ from the spec and the issuer (each difference classed as an
edited Secret, a changed spec or a changed issuer); the ownership rules say
which ManagedCertificate may write a Secret; and the wanted labels and
annotations are built here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from certctl_operator.api.certificate import ManagedCertificate, ManagedCertificateSpec
from certctl_operator.api.metadata_keys import (
    ANNOTATION_ALLOW_TAKEOVER,
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_RENEW_REQUEST,
    ANNOTATION_REQUEST_HASH,
    ANNOTATION_REVISION,
    ANNOTATION_SERIAL_NUMBER,
    LABEL_MANAGED_BY_CERTIFICATE,
)
from certctl_operator.pki import (
    CertificateRequest,
    InvalidKeyError,
    KeyEncoding,
    PKIError,
    PrivateKey,
    SigningAuthority,
    certificate_matches_request,
    fingerprint_sha256,
    load_certificates,
    load_private_key,
)
from certctl_operator.pki.encoding import is_self_signed
from certctl_operator.pki.inspect import summarize_certificate
from certctl_operator.policy.issuance.names import (
    Reason,
    managed_by_label_value,
)
from certctl_operator.policy.issuance.spec import IssuerView, key_encoding_for, key_spec_for, request_hash
from certctl_operator.policy.issuers import SECRET_TYPE_TLS, SecretSnapshot

# --------------------------------------------------------------------------- contents


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


# --------------------------------------------------------------------------- examination


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
            # The certificate's own key, not a CA's: see full_rsa_check.
            key = load_private_key(key_pem, "tls.key", full_rsa_check=False)
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
