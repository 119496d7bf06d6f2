"""Finding what a Revocation revokes: the serial in its certificate's Secret and the issuer that signed it.

Reads the certificate, its Secret and the issuer, checks that the issuer's CA
signed the certificate in the Secret, and hands those facts to the pure
:func:`policy.revocation.resolve_target`, which decides Revoke, Pending or Failed.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature

from certctl_operator.api import IssuerReference, IssuerType, ManagedCertificate, Revocation
from certctl_operator.api.metadata_keys import ANNOTATION_ISSUER_KIND, ANNOTATION_ISSUER_NAME
from certctl_operator.context import OperatorContext
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.revocation_store import (
    get_issuer,
    issuer_class,
    issuer_kind_of,
    load_ca,
    lookup_revoked,
)
from certctl_operator.kube.secrets import read_secret
from certctl_operator.pki import PKIError, load_certificates
from certctl_operator.pki.inspect import summarize_certificate
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.revocation import (
    CurrentCertificate,
    IssuerKey,
    RevocationTarget,
    RevokingIssuer,
    normalize_serial,
    resolve_target,
)
from certctl_operator.web.pki_state import registry_of


async def resolve(context: OperatorContext, namespace: str, revocation: Revocation) -> RevocationTarget:
    """Find what ``revocation`` revokes: the certificate in its ManagedCertificate's Secret now."""
    api, settings = context.api, context.settings
    certificate_name = revocation.spec.certificate_ref.name
    certificate_body = await get_object(
        api, ManagedCertificate.PLURAL, namespace=namespace, name=certificate_name
    )
    if certificate_body is None:
        return resolve_target(
            certificate_name=certificate_name,
            certificate_exists=False,
            secret_name=None,
            current=None,
            issuer=None,
            revoked_serials=(),
            created_at=revocation.metadata.creation_timestamp,
        )
    certificate = ManagedCertificate.from_body(certificate_body)
    secret_name = certificate.spec.secret_name
    secret = await read_secret(api, namespace=namespace, name=secret_name)
    annotations = secret.annotations if secret is not None else {}
    pem = secret.text("tls.crt") if secret is not None else None

    # The issuer that signed what is in the Secret (its annotations say), else the one asked for.
    if annotations.get(ANNOTATION_ISSUER_NAME):
        ref = IssuerReference(
            name=annotations[ANNOTATION_ISSUER_NAME],
            kind=issuer_kind_of(annotations.get(ANNOTATION_ISSUER_KIND)),
        )
    else:
        ref = certificate.status.issuer_ref or certificate.spec.issuer_ref
    key = IssuerKey.of(ref, namespace)

    leaf = None
    if pem:
        try:
            leaf = load_certificates(pem, f"tls.crt of Secret {secret_name}")[0]
        except PKIError:
            leaf = None

    view: RevokingIssuer
    issuer_body = await get_issuer(api, key)
    issued_by_ca = False
    if issuer_body is None:
        view = RevokingIssuer(key, None)
    else:
        issuer = issuer_class(key).from_body(issuer_body)
        if issuer.spec.acme is not None:
            # The ACME CA itself refuses a certificate that is not its own when asked to revoke it.
            view, issued_by_ca = RevokingIssuer(key, IssuerType.ACME), True
        elif issuer.spec.ca is None:
            view = RevokingIssuer(key, IssuerType.SELF_SIGNED)
        else:
            state = registry_of(context).issuer(key)
            ca = await load_ca(
                api, settings, key, issuer, utc_now(), cached=(state.authority_version, state.authority)
            )
            if ca.authority is not None and leaf is not None:
                try:
                    leaf.verify_directly_issued_by(ca.authority.certificate)
                    issued_by_ca = True
                except (ValueError, TypeError, InvalidSignature):
                    issued_by_ca = False
            earlier = await lookup_revoked(
                api, settings, key, issuer_body, certificate.status.revoked_serial_numbers or ()
            )
            view = RevokingIssuer(key, IssuerType.CA, ca.problem, tuple(earlier))

    current = None
    if leaf is not None:
        summary = summarize_certificate(leaf)
        current = CurrentCertificate(
            serial=normalize_serial(summary.serial),
            not_after=summary.not_after,
            self_signed=summary.self_signed,
            issued_by_issuer_ca=issued_by_ca,
        )
    return resolve_target(
        certificate_name=certificate_name,
        certificate_exists=True,
        secret_name=secret_name,
        current=current,
        issuer=view,
        revoked_serials=certificate.status.revoked_serial_numbers or (),
        created_at=revocation.metadata.creation_timestamp,
    )
