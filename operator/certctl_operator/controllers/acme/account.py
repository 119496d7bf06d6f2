"""The ACME account an acme issuer uses, and the Secrets it reads: account key, EAB key, TSIG keys.

The Secrets live in the issuer's namespace, or the operator's for a
ClusterIssuer; the account key Secret is created when missing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from certctl_operator.acme import ACMEAccount
from certctl_operator.api import IssuerKind
from certctl_operator.api.issuer import ACMEIssuer
from certctl_operator.controllers.issuance import IssuanceRuntime
from certctl_operator.kube.acme_account import SecretValueMissing, account_key_pem, secret_value
from certctl_operator.policy.issuance import IssuerView
from certctl_operator.policy.issuers import ca_secret_namespace

REASON_ACCOUNT = "ACMEAccountUnavailable"
EAB_KEY_DEFAULT = "secret"
TSIG_KEY_DEFAULT = "secret"


def secret_namespace(rt: IssuanceRuntime, issuer: IssuerView, namespace: str) -> str:
    """Where the Secrets of ``issuer``, named by a certificate in ``namespace``, live."""
    return ca_secret_namespace(issuer.ref.kind, namespace, rt.settings.operator_namespace)


async def acme_account(
    api: Any, operator_namespace: str, spec: ACMEIssuer, kind: IssuerKind, namespace: str
) -> ACMEAccount:
    """The account an acme issuer uses, its key Secret created when missing.

    The Secrets live in the issuer's namespace, or the operator's for a ClusterIssuer.
    """
    where = ca_secret_namespace(kind, namespace, operator_namespace)
    ref = spec.private_key_secret_ref
    key_pem = await account_key_pem(api, where, ref.name, ref.key)
    eab_id = eab_key = None
    if spec.external_account_binding is not None:
        binding = spec.external_account_binding
        secret_ref = binding.key_secret_ref
        raw = await secret_value(api, where, secret_ref.name, secret_ref.key or EAB_KEY_DEFAULT)
        eab_id, eab_key = binding.key_id, raw.decode("ascii", "replace").strip()
    bundle = None
    if spec.ca_bundle:
        try:
            bundle = base64.b64decode(spec.ca_bundle, validate=True)
        except (binascii.Error, ValueError):
            raise SecretValueMissing("caBundle is not valid base64") from None
    return ACMEAccount(
        directory_url=spec.server,
        account_key_pem=key_pem,
        email=spec.email,
        ca_bundle_pem=bundle,
        eab_key_id=eab_id,
        eab_hmac_key=eab_key,
    )


async def tsig_secrets(rt: IssuanceRuntime, spec: ACMEIssuer, namespace: str) -> dict[str, bytes]:
    """TSIG key name -> secret, for the RFC 2136 DNS-01 solvers of ``spec``."""
    secrets: dict[str, bytes] = {}
    for solver in spec.solvers:
        provider = solver.dns01.rfc2136 if solver.dns01 is not None else None
        if provider is None or not provider.tsig_key_name or provider.tsig_secret_secret_ref is None:
            continue
        ref = provider.tsig_secret_secret_ref
        secrets[provider.tsig_key_name] = await secret_value(
            rt.api, namespace, ref.name, ref.key or TSIG_KEY_DEFAULT
        )
    return secrets


__all__ = ["REASON_ACCOUNT", "acme_account", "secret_namespace", "tsig_secrets"]
