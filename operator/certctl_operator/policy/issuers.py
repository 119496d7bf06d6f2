"""Whether an Issuer or ClusterIssuer can sign, decided from its spec and its CA Secret.

Pure: the caller reads the Secret and passes it in with ``now``. The same
function serves the issuer's own status and every certificate that is about
to be signed, so both always agree on why an issuer cannot sign.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from certctl_operator.api.common import ConditionStatus, ConditionType, IssuerKind, set_condition
from certctl_operator.api.issuer import IssuerSpec, IssuerStatus
from certctl_operator.pki import AuthorityError, SigningAuthority, load_signing_authority, serial_to_hex
from certctl_operator.policy.clock import format_rfc3339, require_aware

REASON_SELF_SIGNED = "SelfSigned"
REASON_ACME_SERVER = "ACMEServerConfigured"
REASON_KEY_PAIR_VERIFIED = "KeyPairVerified"
REASON_SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a reason, not a password)
REASON_INVALID_CERTIFICATE = "InvalidCertificate"
REASON_INVALID_KEY = "InvalidKey"
REASON_INVALID_SPEC = "InvalidSpec"

SECRET_TYPE_TLS = "kubernetes.io/tls"  # noqa: S105 (a Secret type, not a password)
_PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


@dataclass(frozen=True)
class SecretSnapshot:
    """What the operator read of one Secret, with ``data`` already base64-decoded."""

    namespace: str
    name: str
    type: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, bytes] = field(default_factory=dict)
    resource_version: str | None = None
    uid: str | None = None

    def text(self, key: str) -> str | None:
        """``data[key]`` as UTF-8 text (a PEM), or None when missing, empty or not text."""
        value = self.data.get(key)
        if not value:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class IssuerCheck:
    """The verdict on one issuer: can it sign now, and if not, why."""

    ready: bool
    reason: str
    message: str
    authority: SigningAuthority | None = None

    @property
    def ca_serial_number(self) -> str | None:
        """Serial of the CA certificate in use, lowercase hexadecimal."""
        if self.authority is None:
            return None
        return serial_to_hex(self.authority.certificate.serial_number).lower()


def ca_secret_namespace(kind: IssuerKind, issuer_namespace: str | None, operator_namespace: str) -> str:
    """Where the CA Secret of an issuer lives: its own namespace, or the operator's for a ClusterIssuer."""
    if kind is IssuerKind.CLUSTER_ISSUER or not issuer_namespace:
        return operator_namespace
    return issuer_namespace


def private_key_blocks(pem: bytes) -> int:
    """How many PEM blocks labelled ``... PRIVATE KEY`` ``pem`` holds (EC PARAMETERS do not count)."""
    return len(_PRIVATE_KEY_BLOCK.findall(pem))


def evaluate_issuer(spec: IssuerSpec, ca_secret: SecretSnapshot | None, now: datetime) -> IssuerCheck:
    """Decide whether an issuer with ``spec`` can sign at ``now``.

    ``ca_secret`` is the Secret named by ``spec.ca.secretName`` (None when it
    does not exist); it is ignored for a selfSigned issuer. A CA issuer is
    ready only when the Secret holds a CA certificate (basicConstraints
    CA:TRUE, keyCertSign when keyUsage is present) that is valid at ``now``
    and the private key that belongs to it.
    """
    require_aware(now)
    if spec.acme is not None:
        # The CA is checked when it is asked for a certificate; an unreachable one fails that order.
        message = f"Orders certificates from ACME server {spec.acme.server}"
        return IssuerCheck(True, REASON_ACME_SERVER, message)
    if spec.ca is None:
        return IssuerCheck(True, REASON_SELF_SIGNED, "Signs every certificate with the certificate's own key")
    if ca_secret is None:
        return IssuerCheck(False, REASON_SECRET_NOT_FOUND, f"CA Secret {spec.ca.secret_name} does not exist")
    where = f"CA Secret {ca_secret.namespace}/{ca_secret.name}"
    certificate_pem = ca_secret.data.get("tls.crt")
    if not certificate_pem:
        return IssuerCheck(False, REASON_INVALID_CERTIFICATE, f"{where} has no tls.crt")
    key_pem = ca_secret.data.get("tls.key")
    if not key_pem:
        return IssuerCheck(False, REASON_INVALID_KEY, f"{where} has no tls.key")
    keys = private_key_blocks(key_pem)
    if keys > 1:
        # Which one signs would be a guess; a mismatch with tls.crt could go unnoticed.
        return IssuerCheck(
            False, REASON_INVALID_KEY, f"{where}: tls.key holds {keys} private keys; it must hold exactly one"
        )
    try:
        authority = load_signing_authority(
            certificate_pem, key_pem, now, ca_certificate_pem=ca_secret.data.get("ca.crt")
        )
    except AuthorityError as error:
        return IssuerCheck(False, error.reason, f"{where}: {error.message}")
    subject = authority.subject.rfc4514_string() or "(empty subject)"
    return IssuerCheck(
        True,
        REASON_KEY_PAIR_VERIFIED,
        f"Signing with CA {subject} from {where}, valid until {format_rfc3339(authority.not_after)}",
        authority,
    )


def issuer_status_unreadable(
    body: Mapping[str, Any], error: ValidationError, *, now: datetime
) -> tuple[IssuerStatus, IssuerStatus, str]:
    """(current, wanted, message) for an Issuer or ClusterIssuer whose spec the models refuse.

    Such an object was stored under an older, looser CRD. Ready becomes
    False/InvalidSpec with one ``path: reason`` per problem (no input values);
    the CA fields are cleared, since nothing signs for it. A status the models
    cannot read either is replaced whole.
    """
    require_aware(now)
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in detail["loc"])
        reason = str(detail["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {reason}" if where else reason)
    message = "invalid spec: " + "; ".join(parts)
    try:
        current = IssuerStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        current = IssuerStatus()
    generation = (body.get("metadata") or {}).get("generation")
    wanted = current.model_copy(deep=True)
    wanted.observed_generation = generation
    wanted.ca_serial_number = None
    wanted.ca_not_after = None
    wanted.conditions = set_condition(
        wanted.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        REASON_INVALID_SPEC,
        message,
        now=now,
        observed_generation=generation,
    )
    return current, wanted, message


__all__ = [
    "REASON_ACME_SERVER",
    "REASON_INVALID_CERTIFICATE",
    "REASON_INVALID_KEY",
    "REASON_INVALID_SPEC",
    "REASON_KEY_PAIR_VERIFIED",
    "REASON_SECRET_NOT_FOUND",
    "REASON_SELF_SIGNED",
    "SECRET_TYPE_TLS",
    "IssuerCheck",
    "SecretSnapshot",
    "ca_secret_namespace",
    "evaluate_issuer",
    "issuer_status_unreadable",
    "private_key_blocks",
]
