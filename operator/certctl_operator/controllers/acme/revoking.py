"""Revoking a certificate at the ACME CA that issued it, with the issuer's account."""

from __future__ import annotations

import asyncio
from typing import Any

from certctl_operator.acme import ACMEProblem, revoke_certificate
from certctl_operator.api import IssuerKind
from certctl_operator.api.issuer import IssuerSpec
from certctl_operator.controllers.acme.account import acme_account
from certctl_operator.kube.acme_account import SecretValueMissing


async def revoke_acme(
    api: Any,
    operator_namespace: str,
    spec: IssuerSpec,
    kind: IssuerKind,
    namespace: str,
    certificate_pem: bytes,
    reason_code: int,
) -> ACMEProblem | None:
    """Ask the CA to revoke; None when it did, else the problem."""
    assert spec.acme is not None
    try:
        account = await acme_account(api, operator_namespace, spec.acme, kind, namespace)
        await asyncio.to_thread(revoke_certificate, account, certificate_pem, reason_code)
    except SecretValueMissing as error:
        return ACMEProblem("accountUnavailable", str(error))
    except ACMEProblem as problem:
        return problem
    return None


__all__ = ["revoke_acme"]
