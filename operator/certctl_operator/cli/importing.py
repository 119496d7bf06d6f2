"""cert-manager objects to certctl objects, for ``kubectl certctl import cert-manager``.

Pure: one cert-manager ``Certificate``, ``Issuer`` or ``ClusterIssuer`` (a
dict as the API server returns it) goes in, the certctl objects that do the
same job come out, with every field that has no certctl equivalent listed
and the reason why. Nothing is dropped silently. The mapping follows
docs/migrating-from-cert-manager.md.

A Certificate's Secret is not copied: the ManagedCertificate takes it over
where it is. The conversion names the annotation the Secret needs for that
(``certctl.io/allow-takeover-by``), and the operator then adopts the
certificate already in it instead of issuing a new one while it matches the
spec and is not due for renewal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from certctl_operator.api import API_GROUP_VERSION, IssuerSpec, ManagedCertificateSpec
from certctl_operator.api.metadata_keys import (
    ANNOTATION_ALLOW_TAKEOVER,
    ANNOTATION_IMPORTED_FROM,
)

CERT_MANAGER_GROUP = "cert-manager.io"
CERT_MANAGER_VERSION = "v1"
CERT_MANAGER_KINDS = ("Issuer", "ClusterIssuer", "Certificate")
"""The kinds read, issuers first: a ManagedCertificate names an issuer that should exist."""


Body = dict[str, Any]

# Fields copied as they are: same name, same meaning, same spelling of values.
_CERTIFICATE_SAME = (
    "secretName",
    "commonName",
    "dnsNames",
    "ipAddresses",
    "uris",
    "emailAddresses",
    "duration",
    "renewBefore",
    "renewBeforePercentage",
    "usages",
    "isCA",
)
_SUBJECT_SAME = ("organizations", "organizationalUnits", "countries", "localities", "provinces")
_PRIVATE_KEY_SAME = ("algorithm", "size", "encoding", "rotationPolicy")

# Why a field has no certctl equivalent; the keys are paths below ``spec``.
_CERTIFICATE_UNMAPPED = {
    "revisionHistoryLimit": "certctl keeps no CertificateRequest objects, so there is no history to limit",
    "keystores": "JKS and PKCS#12 keystores are not written; the Secret has tls.crt, tls.key and ca.crt",
    "additionalOutputFormats": "only tls.crt, tls.key and ca.crt are written",
    "literalSubject": "not supported; use commonName and subject",
    "nameConstraints": "certctl does not put name constraints into certificates",
    "otherNames": "otherName SANs are not supported",
    "encodeUsagesInRequest": "certctl has no CSR step to encode usages into",
    "subject.streetAddresses": "subject street address is not supported",
    "subject.postalCodes": "subject postal code is not supported",
    "subject.serialNumber": "subject serial number is not supported",
}
_ISSUER_CA_UNMAPPED = {
    "crlDistributionPoints": (
        "certctl serves the CRL itself and writes its URL; set publicBaseURL on the certctl issuer"
    ),
    "ocspServers": "certctl runs the OCSP responder itself and writes its URL; set publicBaseURL",
    "issuingCertificateURLs": "certctl writes no authority information access (CA issuers) URL",
}
_ACME_UNMAPPED = {
    "skipTLSVerify": "TLS to the ACME server is always verified; give caBundle for a private CA",
    "preferredChain": "the CA's default chain is used",
    "disableAccountKeyGeneration": "certctl creates the account key when the Secret is missing",
    "enableDurationFeature": "the CA decides the lifetime of ACME certificates",
    "profile": "ACME profiles are not supported",
}


@dataclass(frozen=True)
class Unmapped:
    """One field of a cert-manager object that the certctl objects do not carry."""

    source: str
    """``Kind namespace/name`` (or ``Kind name``) of the cert-manager object."""
    field: str
    """Path of the field, such as ``spec.keystores.pkcs12``."""
    reason: str


@dataclass
class Conversion:
    """What one cert-manager object becomes."""

    source: str
    objects: list[Body] = field(default_factory=list)
    """certctl objects to create; empty when the object cannot be imported."""
    unmapped: list[Unmapped] = field(default_factory=list)
    refused: str | None = None
    """Why nothing can be imported from this object (None when it can)."""
    secret_takeover: tuple[str, str, dict[str, str]] | None = None
    """(namespace, Secret name, annotations) that let the ManagedCertificate take the Secret over."""
    cluster_ca_secret: str | None = None
    """For a CA ClusterIssuer: the Secret it signs with. cert-manager reads it from its cluster
    resource namespace, certctl from the operator's namespace, so it has to be copied there."""

    def skip(self, path: str, reason: str) -> None:
        self.unmapped.append(Unmapped(self.source, path, reason))


def source_name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace")
    where = f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
    return f"{body.get('kind')} {where}"


def _metadata(body: Mapping[str, Any], source: str) -> Body:
    meta = body.get("metadata") or {}
    result: Body = {"name": meta["name"], "annotations": {ANNOTATION_IMPORTED_FROM: source}}
    if meta.get("namespace"):
        result["namespace"] = meta["namespace"]
    if meta.get("labels"):
        result["labels"] = dict(meta["labels"])
    return result


def _validation_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"the certctl spec would be invalid: {where}: {first.get('msg')}".replace(": :", ":")


def _unknown(conversion: Conversion, prefix: str, value: Mapping[str, Any], known: set[str]) -> None:
    for key in sorted(set(value) - known):
        conversion.skip(f"{prefix}.{key}", "no certctl equivalent (unknown to this importer)")


# --------------------------------------------------------------------------- Certificate


def convert_certificate(body: Mapping[str, Any]) -> Conversion:
    """A cert-manager Certificate as a certctl ManagedCertificate that adopts its Secret."""
    source = source_name(body)
    conversion = Conversion(source)
    spec: Mapping[str, Any] = body.get("spec") or {}
    result: Body = {key: spec[key] for key in _CERTIFICATE_SAME if key in spec}

    subject = spec.get("subject") or {}
    mapped_subject = {key: subject[key] for key in _SUBJECT_SAME if subject.get(key)}
    if mapped_subject:
        result["subject"] = mapped_subject
    for key in sorted(subject):
        if key not in _SUBJECT_SAME:
            reason = _CERTIFICATE_UNMAPPED.get(f"subject.{key}") or "no certctl equivalent"
            conversion.skip(f"spec.subject.{key}", reason)

    private_key = dict(spec.get("privateKey") or {})
    if str(private_key.get("algorithm", "")).upper() == "ED25519":
        private_key["algorithm"] = "Ed25519"
        if private_key.get("encoding") == "PKCS1":
            # cert-manager ignores PKCS1 for Ed25519 keys (always PKCS#8); certctl refuses it.
            del private_key["encoding"]
        private_key.pop("size", None)
    mapped_key = {key: private_key[key] for key in _PRIVATE_KEY_SAME if key in private_key}
    if mapped_key:
        result["privateKey"] = mapped_key
    _unknown(conversion, "spec.privateKey", private_key, set(_PRIVATE_KEY_SAME))

    issuer_ref = spec.get("issuerRef") or {}
    group = issuer_ref.get("group") or CERT_MANAGER_GROUP
    if group != CERT_MANAGER_GROUP:
        conversion.refused = (
            f"its issuer is an external issuer ({issuer_ref.get('kind', 'Issuer')}.{group}), "
            "which certctl cannot sign with"
        )
    result["issuerRef"] = {"name": issuer_ref.get("name"), "kind": issuer_ref.get("kind") or "Issuer"}
    if "group" in issuer_ref and group == CERT_MANAGER_GROUP:
        conversion.skip("spec.issuerRef.group", "always certctl.io: the certctl issuer of the same name")

    template = spec.get("secretTemplate") or {}
    mapped_template = {key: dict(template[key]) for key in ("labels", "annotations") if template.get(key)}
    if mapped_template:
        result["secretTemplate"] = mapped_template
    _unknown(conversion, "spec.secretTemplate", template, {"labels", "annotations"})

    for key in sorted(spec):
        if key in _CERTIFICATE_SAME or key in {"subject", "privateKey", "issuerRef", "secretTemplate"}:
            continue
        reason = _CERTIFICATE_UNMAPPED.get(key) or "no certctl equivalent (unknown to this importer)"
        conversion.skip(f"spec.{key}", reason)

    if conversion.refused is None:
        try:
            ManagedCertificateSpec.model_validate(result)
        except ValidationError as error:
            conversion.refused = _validation_problem(error)
    if conversion.refused is not None:
        return conversion

    metadata = _metadata(body, source)
    conversion.objects.append(
        {"apiVersion": API_GROUP_VERSION, "kind": "ManagedCertificate", "metadata": metadata, "spec": result}
    )
    conversion.secret_takeover = (
        str(metadata.get("namespace", "")),
        str(result["secretName"]),
        {ANNOTATION_ALLOW_TAKEOVER: str(metadata["name"])},
    )
    return conversion


# --------------------------------------------------------------------------- Issuer / ClusterIssuer


def _secret_ref(value: Mapping[str, Any]) -> Body:
    ref: Body = {"name": value.get("name")}
    if value.get("key"):
        ref["key"] = value["key"]
    return ref


def _acme_solver(conversion: Conversion, index: int, solver: Mapping[str, Any]) -> Body | None:
    path = f"spec.acme.solvers[{index}]"
    result: Body = {}
    selector = solver.get("selector") or {}
    mapped_selector = {key: list(selector[key]) for key in ("dnsNames", "dnsZones") if selector.get(key)}
    if mapped_selector:
        result["selector"] = mapped_selector
    if selector.get("matchLabels"):
        conversion.skip(f"{path}.selector.matchLabels", "solvers are chosen by DNS name and zone only")
    if "http01" in solver:
        http01 = solver.get("http01") or {}
        for key in sorted(http01):
            conversion.skip(
                f"{path}.http01.{key}",
                "the operator answers HTTP-01 on its own port; route the name to it yourself",
            )
        result["http01"] = {}
        return result
    dns01 = solver.get("dns01") or {}
    rfc2136 = dns01.get("rfc2136")
    if rfc2136 is None:
        providers = ", ".join(sorted(key for key in dns01 if key != "cnameStrategy")) or "none"
        conversion.skip(
            f"{path}.dns01",
            f"only RFC 2136 DNS-01 is supported, not {providers}; solver left out",
        )
        return None
    provider: Body = {"nameserver": rfc2136.get("nameserver")}
    for key in ("tsigKeyName", "tsigAlgorithm"):
        if rfc2136.get(key):
            provider[key] = rfc2136[key]
    if rfc2136.get("tsigSecretSecretRef"):
        provider["tsigSecretSecretRef"] = _secret_ref(rfc2136["tsigSecretSecretRef"])
    _unknown(
        conversion,
        f"{path}.dns01.rfc2136",
        rfc2136,
        {"nameserver", "tsigKeyName", "tsigAlgorithm", "tsigSecretSecretRef"},
    )
    if "cnameStrategy" in dns01:
        conversion.skip(f"{path}.dns01.cnameStrategy", "CNAMEs are not followed")
    result["dns01"] = {"rfc2136": provider}
    return result


def _acme(conversion: Conversion, acme: Mapping[str, Any]) -> Body:
    result: Body = {"server": acme.get("server")}
    if acme.get("email"):
        result["email"] = acme["email"]
    if acme.get("caBundle"):
        result["caBundle"] = acme["caBundle"]
    result["privateKeySecretRef"] = _secret_ref(acme.get("privateKeySecretRef") or {})
    binding = acme.get("externalAccountBinding")
    if binding:
        result["externalAccountBinding"] = {
            "keyID": binding.get("keyID"),
            "keySecretRef": _secret_ref(binding.get("keySecretRef") or {}),
        }
        if "keyAlgorithm" in binding:
            conversion.skip(
                "spec.acme.externalAccountBinding.keyAlgorithm", "deprecated in cert-manager; HS256 is used"
            )
    solvers = [
        solver
        for index, raw in enumerate(acme.get("solvers") or [])
        if (solver := _acme_solver(conversion, index, raw)) is not None
    ]
    result["solvers"] = solvers
    known = {"server", "email", "caBundle", "privateKeySecretRef", "externalAccountBinding", "solvers"}
    for key in sorted(set(acme) - known):
        conversion.skip(f"spec.acme.{key}", _ACME_UNMAPPED.get(key) or "no certctl equivalent")
    if not solvers:
        conversion.refused = "none of its ACME solvers is one certctl has (HTTP-01, RFC 2136 DNS-01)"
    return result


def convert_issuer(body: Mapping[str, Any]) -> Conversion:
    """A cert-manager Issuer or ClusterIssuer as the certctl issuer of the same kind and name."""
    source = source_name(body)
    conversion = Conversion(source)
    spec: Mapping[str, Any] = body.get("spec") or {}
    result: Body = {}
    if "selfSigned" in spec:
        self_signed = spec.get("selfSigned") or {}
        for key in sorted(self_signed):
            reason = _ISSUER_CA_UNMAPPED.get(key) or "no certctl equivalent"
            conversion.skip(f"spec.selfSigned.{key}", reason)
        result["selfSigned"] = {}
    elif "ca" in spec:
        ca = spec.get("ca") or {}
        result["ca"] = {"secretName": ca.get("secretName")}
        if body.get("kind") == "ClusterIssuer" and ca.get("secretName"):
            conversion.cluster_ca_secret = str(ca["secretName"])
        for key in sorted(set(ca) - {"secretName"}):
            conversion.skip(f"spec.ca.{key}", _ISSUER_CA_UNMAPPED.get(key) or "no certctl equivalent")
    elif "acme" in spec:
        if "acme" not in IssuerSpec.model_fields:
            conversion.refused = "ACME issuers cannot be imported by this version"
        else:
            result["acme"] = _acme(conversion, spec.get("acme") or {})
    else:
        kinds = ", ".join(sorted(spec)) or "none"
        conversion.refused = f"its issuer type ({kinds}) has no certctl equivalent"
    if conversion.refused is None:
        try:
            IssuerSpec.model_validate(result)
        except ValidationError as error:
            conversion.refused = _validation_problem(error)
    if conversion.refused is None:
        conversion.objects.append(
            {
                "apiVersion": API_GROUP_VERSION,
                "kind": str(body.get("kind")),
                "metadata": _metadata(body, source),
                "spec": result,
            }
        )
    return conversion


def convert(body: Mapping[str, Any]) -> Conversion:
    """Any of the three kinds."""
    kind = body.get("kind")
    if kind == "Certificate":
        return convert_certificate(body)
    if kind in {"Issuer", "ClusterIssuer"}:
        return convert_issuer(body)
    conversion = Conversion(source_name(body))
    conversion.refused = f"kind {kind} is not imported"
    return conversion


__all__ = [
    "CERT_MANAGER_GROUP",
    "CERT_MANAGER_KINDS",
    "CERT_MANAGER_VERSION",
    "Conversion",
    "Unmapped",
    "convert",
    "convert_certificate",
    "convert_issuer",
    "source_name",
]
