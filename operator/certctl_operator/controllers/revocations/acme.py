"""Revoking a certificate from an acme issuer: the ACME CA's revokeCert, with the reason code.

The ACME CA publishes its own CRL and OCSP answers; the operator's part is to
ask it (signed with the issuer's account key, RFC 8555 section 7.6) and to
record the outcome like any other revocation: the Revocation's status, the
ManagedCertificate marked revoked (and reissued when asked), the audit line.
"""

from __future__ import annotations

from typing import Any

from certctl_operator.api.certificate import ManagedCertificate
from certctl_operator.api.issuer import IssuerSpec, RevokedCertificate
from certctl_operator.api.revocation import Revocation
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.acme.revoking import revoke_acme
from certctl_operator.controllers.revocations.announce import audit_line, post_revoked
from certctl_operator.controllers.revocations.steps import follow_up, set_failed, set_pending, settle
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.secrets import read_secret
from certctl_operator.pki import PKIError, load_certificates
from certctl_operator.pki.encoding import certificate_to_pem
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.revocation import IssuerKey, normalize_serial
from certctl_operator.status.revocations import acme_notified_reason, revoked_at_acme_message, revoked_status

ALREADY_REVOKED = "urn:ietf:params:acme:error:alreadyRevoked"


async def certificate_pem(api: Any, namespace: str, certificate_name: str, serial: str) -> bytes | None:
    """The certificate with ``serial`` from the ManagedCertificate's Secret, if it is still there."""
    body = await get_object(api, ManagedCertificate.PLURAL, namespace=namespace, name=certificate_name)
    if body is None:
        return None
    secret = await read_secret(api, namespace=namespace, name=body["spec"]["secretName"])
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
    pem = await certificate_pem(api, namespace, certificate_name, serial)
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

    entry = RevokedCertificate(serial_number=serial, revoked_at=utc_now(), reason=reason, not_after=not_after)
    await follow_up(context, body, revocation, key, entry, None, logger)
    message = revoked_at_acme_message(serial, reason, key)
    after = revoked_status(
        revocation,
        body.get("metadata") or {},
        entry,
        key,
        # The ACME CA numbers its own CRLs: the status keeps what it had (nothing).
        crl_number=revocation.status.crl_number,
        issuer_notified=True,
        issuer_notified_reason=acme_notified_reason(key, reason, already_revoked=problem is not None),
        message=message,
        now=utc_now(),
    )

    async def announce() -> None:
        await post_revoked(api, body, revocation, message)
        audit_line(revocation, after, key, outcome="revoked", listed_now=problem is None)

    await settle(api, revocation, after, announce)
    logger.info("serial %s revoked at the ACME CA of issuer %s", serial, key.label)
    return True
