"""A Revocation of a certificate from an acme issuer: the CA's revokeCert, with the reason code.

The ACME CA publishes its own CRL and OCSP answers; the operator's part is to
ask it (signed with the issuer's account key, RFC 8555 section 7.6) and to
record the outcome like any other revocation: the Revocation's status, the
ManagedCertificate marked revoked (and reissued when asked), the audit line.
"""

from __future__ import annotations

from typing import Any

import kopf

from certctl_operator.api import ConditionStatus, ConditionType, set_condition
from certctl_operator.api.issuer import IssuerSpec, RevokedCertificate
from certctl_operator.api.revocation import Revocation, RevocationPhase
from certctl_operator.context import OperatorContext
from certctl_operator.handlers.acme import revoke_acme
from certctl_operator.handlers.pki_publishing import utcnow
from certctl_operator.handlers.revocations import (
    as_body,
    audit_line,
    follow_up,
    set_failed,
    set_pending,
    settle,
)
from certctl_operator.kube.revocation_store import get_certificate
from certctl_operator.kube.secrets import read_secret
from certctl_operator.pki import PKIError, load_certificates
from certctl_operator.pki.encoding import certificate_to_pem
from certctl_operator.policy.revocation import IssuerKey, normalize_serial, requested_by

ALREADY_REVOKED = "urn:ietf:params:acme:error:alreadyRevoked"


async def _certificate_pem(api: Any, namespace: str, certificate_name: str, serial: str) -> bytes | None:
    """The certificate with ``serial`` from the ManagedCertificate's Secret, if it is still there."""
    body = await get_certificate(api, namespace, certificate_name)
    if body is None:
        return None
    secret = await read_secret(api, namespace, body["spec"]["secretName"])
    if secret is None or not secret.data.get("tls.crt"):
        return None
    try:
        leaf = load_certificates(secret.data["tls.crt"], "tls.crt")[0]
    except PKIError:
        return None
    if normalize_serial(format(leaf.serial_number, "x")) != normalize_serial(serial):
        return None
    return certificate_to_pem(leaf).encode("ascii")


async def revoke_at_acme_ca(
    context: OperatorContext,
    body: Any,
    revocation: Revocation,
    key: IssuerKey,
    spec: IssuerSpec,
    serial: str,
    not_after: Any,
    logger: Any,
) -> bool:
    """Revoke ``serial`` at the ACME CA; True once settled (Revoked or Failed), False to look again."""
    api = context.api
    namespace = revocation.metadata.namespace or ""
    certificate_name = revocation.spec.certificate_ref.name
    pem = await _certificate_pem(api, namespace, certificate_name, serial)
    if pem is None:
        await set_failed(
            api,
            body,
            revocation,
            "CertificateUnavailable",
            f"serial {serial} is no longer in the Secret of ManagedCertificate {certificate_name}; the ACME "
            "CA needs the certificate itself to revoke it",
        )
        return True
    reason = revocation.spec.reason
    problem = await revoke_acme(
        api, context.settings.operator_namespace, spec, key.kind, key.namespace or namespace, pem, reason.code
    )
    if problem is not None and problem.type != ALREADY_REVOKED:
        await set_pending(api, body, revocation, problem.reason, problem.message)
        return False

    entry = RevokedCertificate(serial_number=serial, revoked_at=utcnow(), reason=reason, not_after=not_after)
    await follow_up(context, body, revocation, key, entry, None, logger)
    requester, source = requested_by(body.get("metadata") or {})
    after = revocation.status.model_copy(deep=True)
    after.phase = RevocationPhase.REVOKED
    after.serial_number = serial
    after.issuer_ref = key.reference
    after.revoked_at = entry.revoked_at
    after.not_after = not_after
    after.issuer_notified = True
    after.issuer_notified_reason = (
        f"the ACME CA of issuer {key.label} accepted revokeCert with reason code {reason.code}"
        if problem is None
        else f"the ACME CA of issuer {key.label} had already revoked it"
    )
    after.requested_by, after.requested_by_source = requester, source
    after.observed_generation = revocation.metadata.generation
    message = f"serial {serial} is revoked ({reason.value}) by the ACME CA of issuer {key.label}"
    after.conditions = set_condition(
        after.conditions,
        ConditionType.READY,
        ConditionStatus.TRUE,
        "Revoked",
        message,
        now=utcnow(),
        observed_generation=revocation.metadata.generation,
    )

    def announce() -> None:
        kopf.info(as_body(body), reason="Revoked", message=message)
        audit_line(revocation, after, key, outcome="revoked", listed_now=problem is None)

    await settle(api, revocation, after, announce)
    logger.info("serial %s revoked at the ACME CA of issuer %s", serial, key.label)
    return True
