"""Glue between the issuance reconciler and the ACME flow (:mod:`certctl_operator.acme`).

The flow runs on the event loop, its network requests one at a time in a
thread; each step's order state is written to the ManagedCertificate's
``status.acmeOrder`` before the next step, so a restarted operator resumes the
same order. HTTP-01 answers are served by the operator's own web server at
``/.well-known/acme-challenge/<token>`` from an in-memory table, or, for a
solver with ``pod``, by a solver Pod and Service per challenge in the
certificate's namespace; a resumed order publishes them again, recomputed
from the account key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.acme import (
    ACMEAccount,
    ACMEProblem,
    build_csr_pem,
    order_identifiers,
    revoke_certificate,
    run_order,
)
from certctl_operator.acme.http01_solver import SolverOwner, SolverPodSettings
from certctl_operator.acme.rfc2136 import update_txt
from certctl_operator.api import IssuerKind, ManagedCertificate, status_patch
from certctl_operator.api.certificate import ACMEOrderStatus
from certctl_operator.api.issuer import ACMEHTTP01SolverPod, ACMEIssuer, ACMESolver, IssuerSpec
from certctl_operator.context import OperatorContext
from certctl_operator.handlers.issuance_runtime import IssuanceRuntime, Key
from certctl_operator.kube.acme_account import SecretValueMissing, account_key_pem, secret_value
from certctl_operator.kube.acme_solver import SolverNotReady, SolverPods
from certctl_operator.kube.objects import patch_status
from certctl_operator.pki.encoding import certificate_to_pem, fingerprint_sha256, serial_to_hex
from certctl_operator.pki.issue import IssuedCertificate
from certctl_operator.policy.issuance import IssuerView
from certctl_operator.policy.issuers import ca_secret_namespace
from certctl_operator.settings import Settings
from certctl_operator.web.server import register_routes

logger = logging.getLogger(__name__)

PLURAL = "managedcertificates"
HTTP01_ANSWERS = "acme_http01_answers"
CHALLENGE_PATH = "/.well-known/acme-challenge/{token}"
REASON_ACCOUNT = "ACMEAccountUnavailable"
EAB_KEY_DEFAULT = "secret"
TSIG_KEY_DEFAULT = "secret"


def http01_answers(context: OperatorContext) -> dict[str, str]:
    """Token -> key authorization of the HTTP-01 challenges being validated now."""
    answers: dict[str, str] = context.extras.setdefault(HTTP01_ANSWERS, {})
    return answers


def install_challenge_route(app: web.Application, context: OperatorContext) -> None:
    async def challenge(request: web.Request) -> web.Response:
        answer = http01_answers(context).get(request.match_info["token"])
        if answer is None:
            return web.Response(status=404, text="no such challenge\n")
        return web.Response(text=answer, content_type="application/octet-stream")

    app.router.add_get(CHALLENGE_PATH, challenge)


register_routes(install_challenge_route)


def is_acme(issuer: IssuerView) -> bool:
    return issuer.spec is not None and issuer.spec.acme is not None


def _secret_namespace(rt: IssuanceRuntime, issuer: IssuerView, namespace: str) -> str:
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


class _Answers:
    """Publishes challenge answers: the operator's table, solver Pods, or RFC 2136 updates."""

    def __init__(
        self, table: dict[str, str], tsig_secrets: dict[str, bytes], pods: SolverPods | None
    ) -> None:
        self.table = table
        self.tsig_secrets = tsig_secrets
        self.pods = pods

    def _pod(self, solver: ACMESolver) -> ACMEHTTP01SolverPod | None:
        return solver.http01.pod if solver.http01 is not None else None

    async def publish_http01(
        self, solver: ACMESolver, identifier: str, token: str, key_authorization: str
    ) -> None:
        pod = self._pod(solver)
        if pod is not None and self.pods is not None:
            try:
                await self.pods.publish(pod, identifier, token, key_authorization)
            except ApiException as error:
                if error.status not in (400, 403, 422):
                    raise
                # Refused, not failed: say so on the certificate instead of retrying blindly.
                raise ACMEProblem(
                    "solverPod",
                    f"creating the HTTP-01 solver for {identifier} was refused: {error.status} "
                    f"{error.reason}: {_api_message(error)}",
                ) from None
        else:
            self.table[token] = key_authorization

    async def withdraw_http01(self, solver: ACMESolver, identifier: str, token: str) -> None:
        if self._pod(solver) is not None and self.pods is not None:
            await self.pods.withdraw(identifier, token)
        else:
            self.table.pop(token, None)

    async def served(self) -> None:
        # The operator's table and RFC 2136 updates answer at once; solver Pods once Ready.
        if self.pods is None:
            return
        try:
            await self.pods.wait_ready()
        except SolverNotReady as error:
            raise ACMEProblem("solverPodNotReady", str(error)) from None

    async def publish_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None:
        await asyncio.to_thread(self._update, solver, record_name, value, add=True)

    async def withdraw_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None:
        await asyncio.to_thread(self._update, solver, record_name, value, add=False)

    def _update(self, solver: ACMESolver, record_name: str, value: str, *, add: bool) -> None:
        assert solver.dns01 is not None
        provider = solver.dns01.rfc2136
        update_txt(
            provider.nameserver,
            record_name,
            value,
            add=add,
            tsig_key_name=provider.tsig_key_name,
            tsig_algorithm=provider.tsig_algorithm,
            tsig_secret=self.tsig_secrets.get(provider.tsig_key_name or ""),
        )


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message", ""))[:500]
    except (ValueError, AttributeError):
        return ""


def solver_pod_defaults(settings: Settings) -> SolverPodSettings:
    """The operator's defaults for what an issuer's http01.pod leaves out."""
    return SolverPodSettings(
        image=settings.acme_solver_image,
        service_type=settings.acme_solver_service_type,
        resources=settings.acme_solver_resources,
        node_selector=settings.acme_solver_node_selector,
        tolerations=settings.acme_solver_tolerations,
    )


def uses_solver_pods(spec: ACMEIssuer) -> bool:
    return any(s.http01 is not None and s.http01.pod is not None for s in spec.solvers)


async def _tsig_secrets(rt: IssuanceRuntime, spec: ACMEIssuer, namespace: str) -> dict[str, bytes]:
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
    secrets_namespace = _secret_namespace(rt, issuer, key.namespace)
    try:
        account = await acme_account(
            rt.api, rt.settings.operator_namespace, spec, issuer.ref.kind, key.namespace
        )
        tsig = await _tsig_secrets(rt, spec, secrets_namespace)
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
        patch = status_patch(before, before.model_copy(update={"acme_order": state}))
        if not patch:
            return
        result = await patch_status(rt.api, PLURAL, key.name, key.namespace, patch, None)
        rt.own_writes[key] = result["metadata"]["resourceVersion"]
        outcome.body = result
        outcome.cert = ManagedCertificate.from_body(result)

    pods = None
    if uses_solver_pods(spec):
        owner = SolverOwner(key.namespace, key.name, str(body["metadata"].get("uid", "")))
        pods = SolverPods(rt.api, owner, solver_pod_defaults(rt.settings))
    answers = _Answers(http01_answers(rt.context), tsig, pods)
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
            await _remove_solver_pods(pods, key)
    outcome.issued = issued_from_chain(result.fullchain_pem)
    return outcome


async def _remove_solver_pods(pods: SolverPods, key: Key) -> None:
    # Left over by an order a crash abandoned: the order in hand withdrew its own.
    try:
        removed = await pods.remove_all()
    except ApiException as error:
        logger.warning("removing HTTP-01 solver Pods of %s failed: %s", key, error.reason)
        return
    if removed:
        logger.info("removed %d leftover HTTP-01 solver objects of %s", removed, key)


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


__all__ = ["ACMEIssuance", "http01_answers", "is_acme", "issue_acme", "issued_from_chain", "revoke_acme"]
