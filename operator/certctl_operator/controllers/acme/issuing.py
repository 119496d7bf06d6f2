"""Issuing a ManagedCertificate from an ACME CA: run the order, resuming the one in the status.

The flow (:mod:`certctl_operator.acme`) runs on the event loop, its network
requests one at a time in a thread; each step's order state is written to the
ManagedCertificate's ``status.acmeOrder`` before the next step, so a
restarted operator resumes the same order, publishing its challenge answers
again (recomputed from the account key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from certctl_operator.acme import ACMEProblem, build_csr_pem, order_identifiers, run_order
from certctl_operator.acme.http01_solver import SolverOwner
from certctl_operator.api import ManagedCertificate, status_patch
from certctl_operator.api.certificate import ACMEOrderStatus
from certctl_operator.api.issuer import ACMEIssuer
from certctl_operator.controllers.acme.account import (
    REASON_ACCOUNT,
    acme_account,
    secret_namespace,
    tsig_secrets,
)
from certctl_operator.controllers.acme.challenges import (
    ChallengePublisher,
    remove_solver_pods,
    solver_pod_defaults,
    uses_solver_pods,
)
from certctl_operator.controllers.issuance import IssuanceRuntime, Key
from certctl_operator.kube.acme_account import SecretValueMissing
from certctl_operator.kube.acme_solver import SolverPods
from certctl_operator.kube.objects import patch_status
from certctl_operator.pki.encoding import certificate_to_pem, fingerprint_sha256, serial_to_hex
from certctl_operator.pki.issue import IssuedCertificate
from certctl_operator.policy.issuance import IssuerView
from certctl_operator.status.certificates import with_acme_order

PLURAL = "managedcertificates"


def is_acme(issuer: IssuerView) -> bool:
    return issuer.spec is not None and issuer.spec.acme is not None


@dataclass
class ACMEIssuance:
    """What an ACME issuance attempt ended with, and the certificate object as last written."""

    body: dict[str, Any]
    cert: ManagedCertificate
    issued: IssuedCertificate | None = None
    reason: str = ""
    message: str = ""


def issued_from_chain(fullchain_pem: str) -> IssuedCertificate:
    """The facts of the leaf the CA returned; its chain follows it."""
    certificates = x509.load_pem_x509_certificates(fullchain_pem.encode("ascii"))
    leaf, chain = certificates[0], tuple(certificates[1:])
    return IssuedCertificate(
        certificate=leaf,
        certificate_pem=certificate_to_pem(leaf),
        chain_pems=tuple(certificate_to_pem(c) for c in chain),
        serial=leaf.serial_number,
        serial_hex=serial_to_hex(leaf.serial_number),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        not_after_clamped=False,
        fingerprint_sha256=fingerprint_sha256(leaf),
        chain=chain,
    )


async def issue_acme(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    issuer: IssuerView,
    private_key: CertificateIssuerPrivateKeyTypes,
) -> ACMEIssuance:
    """Order the certificate, resuming the order in the status when it still fits the spec."""
    assert issuer.spec is not None and issuer.spec.acme is not None
    spec: ACMEIssuer = issuer.spec.acme
    outcome = ACMEIssuance(body=body, cert=cert)
    secrets_namespace = secret_namespace(rt, issuer, key.namespace)
    try:
        account = await acme_account(
            rt.api, rt.settings.operator_namespace, spec, issuer.ref.kind, key.namespace
        )
        tsig = await tsig_secrets(rt, spec, secrets_namespace)
    except SecretValueMissing as error:
        outcome.reason, outcome.message = REASON_ACCOUNT, str(error)
        return outcome
    dns_names = list(cert.spec.dns_names or [])
    ips = list(cert.spec.ip_addresses or [])
    csr_pem = build_csr_pem(private_key, dns_names, ips)
    identifiers = order_identifiers(dns_names, ips)

    async def save(state: ACMEOrderStatus) -> None:
        # A diff against the stored status: fields the new state lacks are removed, not merged.
        before = outcome.cert.status
        patch = status_patch(before, with_acme_order(before, state))
        if not patch:
            return
        result = await patch_status(rt.api, PLURAL, namespace=key.namespace, name=key.name, status=patch)
        rt.own_writes[key] = result["metadata"]["resourceVersion"]
        outcome.body = result
        outcome.cert = ManagedCertificate.from_body(result)

    pods = None
    if uses_solver_pods(spec):
        owner = SolverOwner(key.namespace, key.name, str(body["metadata"].get("uid", "")))
        pods = SolverPods(rt.api, owner, solver_pod_defaults(rt.settings))
    answers = ChallengePublisher(rt.context.http01_answers, tsig, pods)
    try:
        result = await run_order(
            account,
            spec,
            csr_pem=csr_pem,
            identifiers=identifiers,
            previous=cert.status.acme_order,
            save=save,
            answers=answers,
        )
    except ACMEProblem as problem:
        if problem.state is not None:
            await save(problem.state)
        outcome.reason, outcome.message = problem.reason, problem.message
        return outcome
    finally:
        if pods is not None:
            await remove_solver_pods(pods, key)
    outcome.issued = issued_from_chain(result.fullchain_pem)
    return outcome


__all__ = ["ACMEIssuance", "is_acme", "issue_acme", "issued_from_chain"]
