"""What a ManagedCertificate asks for: the request, its key, and whether it can be issued at all.

Turns a spec (and the issuer it names) into the :class:`CertificateRequest` the
PKI signs, with the CRL and OCSP URLs of a CA issuer; says why a spec can
never be issued (too short, a key encoding that does not exist, names a CA's
nameConstraints forbid); and digests a request so a Secret records what it
was issued for.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from pydantic import ValidationError

from certctl_operator.api.certificate import (
    ManagedCertificateSpec,
    PrivateKeyAlgorithm,
    PrivateKeyEncoding,
    X509Subject,
)
from certctl_operator.api.common import IssuerKind, IssuerReference
from certctl_operator.api.issuer import IssuerSpec
from certctl_operator.durations import format_duration
from certctl_operator.pki import (
    CertificateRequest,
    InvalidRequestError,
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    SigningAuthority,
    validate_request,
)
from certctl_operator.policy.issuance.names import CLUSTER_SEGMENT
from certctl_operator.policy.issuers import IssuerCheck

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


# --------------------------------------------------------------------------- name constraints


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
