"""What an issuer publishes for relying parties, decided without the API: names, the CRL, the responder.

The CRL is rendered from the issuer's revocation list (see
:mod:`certctl_operator.policy.revocation`), so rendering it again after a
crash gives the same CRL; :mod:`certctl_operator.kube.crl_publisher` stores
and serves what is decided here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature

from certctl_operator.api import IssuerStatus
from certctl_operator.pki import (
    KeyAlgorithm,
    KeySpec,
    OCSPResponder,
    RevokedEntry,
    SigningAuthority,
    build_crl,
)
from certctl_operator.policy.renewal import object_name
from certctl_operator.policy.revocation import CRLState, IssuerKey, serial_int

RESPONDER_VALIDITY = timedelta(days=30)
"""Lifetime of a delegated OCSP responder certificate (trusted without a status check: keep it short)."""
RESPONDER_KEY = KeySpec(KeyAlgorithm.ECDSA, 256)


def crl_configmap_name(key: IssuerKey) -> str:
    """``<issuer>-crl``; a ClusterIssuer's, in the operator namespace, is ``<issuer>-cluster-crl``."""
    return object_name(key.name, "cluster-crl") if key.cluster else object_name(key.name, "crl")


def responder_secret_name(key: IssuerKey) -> str:
    """``<issuer>-ocsp-responder``; a ClusterIssuer's is ``<issuer>-cluster-ocsp-responder``."""
    return (
        object_name(key.name, "cluster-ocsp-responder")
        if key.cluster
        else object_name(key.name, "ocsp-responder")
    )


def render_crl(authority: SigningAuthority, state: CRLState) -> bytes:
    """Sign the CRL that ``state`` describes (DER): all of its entries, see :meth:`CRLState.with_archive`."""
    entries = [
        RevokedEntry(serial_int(e.serial_number), e.revoked_at, str(e.reason), e.not_after)
        for e in state.entries
    ]
    return build_crl(
        authority, entries, state.number, state.this_update, state.next_update - state.this_update
    )


def state_of(status: IssuerStatus) -> CRLState | None:
    """The CRL state an issuer status describes (journal entries only), or None before its first CRL."""
    if status.crl_number is None or status.crl_this_update is None or status.crl_next_update is None:
        return None
    return CRLState(
        number=status.crl_number,
        this_update=status.crl_this_update,
        next_update=status.crl_next_update,
        entries=tuple(status.revoked_certificates),
        journal=tuple(status.revoked_certificates),
    )


def responder_due(responder: OCSPResponder, now: datetime) -> bool:
    """Whether a responder certificate should be replaced: a third of its lifetime or less is left."""
    certificate = responder.certificate
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return now >= certificate.not_valid_after_utc - lifetime / 3


def responder_matches(responder: OCSPResponder, authority: SigningAuthority) -> bool:
    """Whether ``authority``'s key issued the responder certificate."""
    try:
        responder.certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
