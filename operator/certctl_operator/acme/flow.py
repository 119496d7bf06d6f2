"""The ACME order flow: account -> order -> authorizations -> challenges -> finalize -> certificate.

Built on certbot's ``acme`` client library (JWS, nonces, problem documents)
and ``josepy``. The library blocks on the network, so :func:`run_order` is a
coroutine that runs each request in a thread and waits between polls with
``asyncio.sleep``: a thread is held for one request at a time, never for the
minutes a CA may take to validate. The order's progress is an
:class:`ACMEOrderStatus` (the ManagedCertificate status field ``acmeOrder``);
each step hands the new state to ``save`` before going on, so a process
killed at any point resumes the same order from its URL instead of ordering
anew.

No Kubernetes here: the account key, CA bundle and EAB key arrive as bytes,
challenge answers are published through :class:`ChallengeAnswers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from certctl_operator.api.certificate import ACMEAuthorizationStatus, ACMEOrderStatus
from certctl_operator.api.issuer import ACMEIssuer, ACMESolver
from certctl_operator.deferred import DeferredModule

if TYPE_CHECKING:
    from acme import challenges, client, errors, messages
    from josepy import jwa, jwk
else:
    # certbot's acme, josepy and requests are about 5 MB of modules that only an ACME issuer uses.
    challenges, client, errors, messages = (
        DeferredModule(f"acme.{name}") for name in ("challenges", "client", "errors", "messages")
    )
    jwa, jwk = DeferredModule("josepy.jwa"), DeferredModule("josepy.jwk")

USER_AGENT = "certctl-operator"
NETWORK_TIMEOUT_SECONDS = 30
HTTP01 = "http-01"
DNS01 = "dns-01"
FINISHED_STATES = frozenset({"valid", "invalid"})
PROBLEM_PREFIX = "urn:ietf:params:acme:error:"


class ACMEProblem(Exception):
    """The CA refused or failed something; ``type`` is the problem document's type when it sent one."""

    def __init__(self, type_: str, detail: str, state: ACMEOrderStatus | None = None) -> None:
        super().__init__(f"{type_}: {detail}")
        self.type = type_
        self.detail = detail
        self.state = state

    @property
    def reason(self) -> str:
        """A condition reason naming the problem: ACMERejectedIdentifier for ...:rejectedIdentifier."""
        name = self.type.removeprefix(PROBLEM_PREFIX)
        cleaned = "".join(ch for ch in name if ch.isalnum())
        return "ACME" + (cleaned[:1].upper() + cleaned[1:] if cleaned else "Failed")

    @property
    def message(self) -> str:
        return f"ACME problem {self.type}: {self.detail}"


@dataclass(frozen=True)
class ACMEAccount:
    """What identifies the operator to the CA."""

    directory_url: str
    account_key_pem: bytes
    email: str | None = None
    ca_bundle_pem: bytes | None = None
    eab_key_id: str | None = None
    eab_hmac_key: str | None = None
    """The CA's HMAC key, base64url as the CA hands it out."""


class ChallengeAnswers(Protocol):
    """Where challenge answers are published while the CA validates them.

    An answer is withdrawn as soon as its authorization is valid or invalid.
    Publishing the same answer again (a resumed order) must be harmless.
    """

    async def publish_http01(
        self, solver: ACMESolver, identifier: str, token: str, key_authorization: str
    ) -> None: ...

    async def withdraw_http01(self, solver: ACMESolver, identifier: str, token: str) -> None: ...

    async def publish_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None: ...

    async def withdraw_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None: ...

    async def served(self) -> None:
        """Return once every answer published is being served: the CA may look from then on."""


@dataclass(frozen=True)
class OrderOutcome:
    """A finished order: the PEM chain (leaf first) and the final state."""

    fullchain_pem: str
    state: ACMEOrderStatus


def generate_account_key_pem() -> bytes:
    """A new P-256 account key, PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def order_identifiers(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> list[str]:
    """The identifiers of an order for these names, sorted, as kept in the state."""
    return sorted({*dns_names, *(str(ipaddress.ip_address(ip)) for ip in ip_addresses)})


def select_solver(solvers: Sequence[ACMESolver], identifier: str) -> ACMESolver | None:
    """The solver for ``identifier``: dnsNames match first, then the longest dnsZones, then no selector."""
    name = identifier.removeprefix("*.").lower().rstrip(".")
    best: tuple[int, int] | None = None
    chosen = None
    for index, solver in enumerate(solvers):
        selector = solver.selector
        if selector is None or (not selector.dns_names and not selector.dns_zones):
            rank = 0
        elif identifier in (selector.dns_names or ()):
            rank = 10_000
        else:
            zones = [z.lower().rstrip(".") for z in selector.dns_zones or ()]
            matching = [len(z) for z in zones if name == z or name.endswith("." + z)]
            if not matching:
                continue
            rank = 1 + max(matching)
        if best is None or (rank, -index) > best:
            best, chosen = (rank, -index), solver
    return chosen


def resumable(state: ACMEOrderStatus | None, identifiers: Sequence[str]) -> bool:
    """Whether ``state`` is an order still worth resuming for ``identifiers``."""
    return state is not None and state.state not in FINISHED_STATES and state.identifiers == list(identifiers)


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ACMEProblem("accountKey", "the account key must be a P-256 (ES256) EC private key")
    return key


@contextmanager
def _verify_setting(ca_bundle_pem: bytes | None) -> Iterator[bool | str]:
    """``requests``' verify argument: the system roots, or a file holding the issuer's caBundle."""
    if not ca_bundle_pem:
        yield True
        return
    handle, path = tempfile.mkstemp(prefix="acme-ca-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(ca_bundle_pem)
        yield path
    finally:
        Path(path).unlink()


def _problem(error: BaseException, state: ACMEOrderStatus | None) -> ACMEProblem:
    if isinstance(error, messages.Error):
        return ACMEProblem(error.typ or "about:blank", error.detail or str(error), state)
    if isinstance(error, errors.ValidationError):
        for authzr in error.failed_authzrs:
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    return _problem(challb.error, state)
        return ACMEProblem(PROBLEM_PREFIX + "unauthorized", "authorization failed", state)
    if isinstance(error, errors.IssuanceError):
        return _problem(error.error, state)
    if isinstance(error, errors.TimeoutError):
        return ACMEProblem("timeout", "the CA did not finish in time; the order is resumed later", state)
    return ACMEProblem("connection", f"{type(error).__name__}: {error}", state)


def _client(account: ACMEAccount, verify: bool | str) -> tuple[client.ClientV2, jwk.JWKEC]:
    account_jwk = jwk.JWKEC(key=_load_key(account.account_key_pem))
    # requests takes a CA file path where the library's signature says bool.
    net = client.ClientNetwork(
        account_jwk,
        alg=jwa.ES256,
        user_agent=USER_AGENT,
        verify_ssl=cast(bool, verify),
        timeout=NETWORK_TIMEOUT_SECONDS,
    )
    directory = client.ClientV2.get_directory(account.directory_url, net)
    acme_client = client.ClientV2(directory, net)
    eab = None
    if account.eab_key_id and account.eab_hmac_key:
        eab = messages.ExternalAccountBinding.from_data(
            account_public_key=account_jwk.public_key(),
            kid=account.eab_key_id,
            hmac_key=account.eab_hmac_key,
            directory=directory,
        )
    registration = messages.NewRegistration.from_data(
        email=account.email, terms_of_service_agreed=True, external_account_binding=eab
    )
    try:
        acme_client.new_account(registration)
    except errors.ConflictError as existing:
        # The key already has an account: use it (the CA answers with its URL).
        existing_account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        acme_client.query_registration(existing_account)
    return acme_client, account_jwk


def _authz_state(authzr: messages.AuthorizationResource, chosen: str | None) -> ACMEAuthorizationStatus:
    body = authzr.body
    challenge = next((c for c in body.challenges if c.chall.typ == chosen), None)
    return ACMEAuthorizationStatus(
        identifier=body.identifier.value,
        url=authzr.uri,
        state=body.status.name,
        challenge_type=chosen if challenge is not None else None,
        challenge_url=challenge.uri if challenge is not None else None,
        token=challenge.chall.encode("token") if challenge is not None else None,
    )


def _order_state(
    orderr: messages.OrderResource, account_url: str | None, chosen: dict[str, str]
) -> ACMEOrderStatus:
    body = orderr.body
    return ACMEOrderStatus(
        url=orderr.uri,
        account_url=account_url,
        finalize_url=body.finalize,
        state=body.status.name,
        identifiers=sorted(i.value for i in body.identifiers),
        authorizations=[_authz_state(a, chosen.get(a.body.identifier.value)) for a in orderr.authorizations],
    )


def _fetch_order(acme_client: client.ClientV2, url: str, csr_pem: bytes) -> messages.OrderResource:
    response = acme_client._post_as_get(url)
    body = messages.Order.from_json(response.json())
    authorizations = [
        acme_client._authzr_from_response(acme_client._post_as_get(u), uri=u) for u in body.authorizations
    ]
    return messages.OrderResource(body=body, uri=url, authorizations=authorizations, csr_pem=csr_pem)


def build_csr_pem(
    key: CertificateIssuerPrivateKeyTypes, dns_names: Sequence[str], ip_addresses: Sequence[str]
) -> bytes:
    """A CSR with the names as subjectAltNames (ACME takes the names from there)."""
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = (
        None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    )
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM)


def _fetch_authorization(acme_client: client.ClientV2, url: str) -> messages.AuthorizationResource:
    return acme_client._authzr_from_response(acme_client._post_as_get(url), uri=url)


async def _poll_authorizations(
    acme_client: client.ClientV2,
    orderr: messages.OrderResource,
    deadline: float,
    interval: float,
    finished: Callable[[str], Awaitable[None]],
) -> messages.OrderResource:
    """Wait until no authorization is pending; ``finished(url)`` as each one settles."""
    current = {authzr.uri: authzr for authzr in orderr.authorizations}
    waiting = [url for url, authzr in current.items() if authzr.body.status == messages.STATUS_PENDING]
    for url in current.keys() - set(waiting):
        await finished(url)
    while waiting:
        for url in list(waiting):
            authzr = await asyncio.to_thread(_fetch_authorization, acme_client, url)
            current[url] = authzr
            if authzr.body.status != messages.STATUS_PENDING:
                waiting.remove(url)
                await finished(url)
        if not waiting:
            break
        if time.monotonic() >= deadline:
            raise errors.TimeoutError()
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    failed = [authzr for authzr in current.values() if authzr.body.status != messages.STATUS_VALID]
    if failed:
        raise errors.ValidationError(failed)
    updated: messages.OrderResource = orderr.update(authorizations=list(current.values()))
    return updated


async def _begin_finalization(acme_client: client.ClientV2, orderr: messages.OrderResource) -> None:
    try:
        await asyncio.to_thread(acme_client.begin_finalization, orderr)
    except messages.Error as error:
        # The order is not ready yet (or no longer): polling it tells what it is.
        if error.code != "orderNotReady":
            raise


async def _finalize(
    acme_client: client.ClientV2, orderr: messages.OrderResource, deadline: float, interval: float
) -> messages.OrderResource:
    """Send the CSR, wait for the certificate, download it."""
    await _begin_finalization(acme_client, orderr)
    while True:
        response = await asyncio.to_thread(acme_client._post_as_get, orderr.uri)
        body = messages.Order.from_json(response.json())
        if body.status == messages.STATUS_INVALID:
            if body.error is not None:
                raise errors.IssuanceError(body.error)
            raise errors.Error("the CA abandoned the order without saying why")
        if body.status == messages.STATUS_VALID and body.certificate is not None:
            chain = await asyncio.to_thread(acme_client._post_as_get, body.certificate)
            finished: messages.OrderResource = orderr.update(body=body, fullchain_pem=chain.text)
            return finished
        if body.status == messages.STATUS_READY:
            await _begin_finalization(acme_client, orderr)
        if time.monotonic() >= deadline:
            raise errors.TimeoutError()
        wait = interval
        if body.status == messages.STATUS_PROCESSING:
            # Retry-After as the library reads it: naive local time.
            asked = (acme_client.retry_after(response, 1) - datetime.now()).total_seconds()
            wait = max(interval, asked)
        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


async def run_order(
    account: ACMEAccount,
    issuer: ACMEIssuer,
    *,
    csr_pem: bytes,
    identifiers: Sequence[str],
    previous: ACMEOrderStatus | None,
    save: Callable[[ACMEOrderStatus], Awaitable[None]],
    answers: ChallengeAnswers,
    timeout: timedelta = timedelta(minutes=2),  # noqa: ASYNC109 (a deadline over many requests)
    poll_interval: float = 1.0,
) -> OrderOutcome:
    """Take an order from where ``previous`` left it (or from a new order) to the certificate."""
    state: ACMEOrderStatus | None = previous
    published: dict[str, Callable[[], Awaitable[None]]] = {}
    """Authorization URL -> withdrawal of the answer published for it."""

    async def withdraw(url: str) -> None:
        undo = published.pop(url, None)
        if undo is not None:
            # Clean-up must not hide the outcome; a stale answer only lingers until it expires.
            with contextlib.suppress(Exception):
                await undo()

    with _verify_setting(account.ca_bundle_pem) as verify:
        try:
            acme_client, account_jwk = await asyncio.to_thread(_client, account, verify)
            account_url = acme_client.net.account.uri if acme_client.net.account else None
            orderr = None
            if state is not None and resumable(state, identifiers):
                orderr = await asyncio.to_thread(_fetch_order, acme_client, state.url, csr_pem)
                if orderr.body.status not in (messages.STATUS_PENDING, messages.STATUS_READY):
                    # Finalized (or failed) meanwhile: its certificate, if any, is for a key
                    # that died with the process that sent the CSR. Order anew.
                    orderr = None
            if orderr is None:
                orderr = await asyncio.to_thread(acme_client.new_order, csr_pem)
            chosen: dict[str, str] = {}
            for authzr in orderr.authorizations:
                value = authzr.body.identifier.value
                solver = select_solver(issuer.solvers, value)
                chosen[value] = DNS01 if solver is not None and solver.dns01 is not None else HTTP01
            state = _order_state(orderr, account_url, chosen)
            await save(state)
            to_answer: list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]] = []
            for authzr in orderr.authorizations:
                if authzr.body.status != messages.STATUS_PENDING:
                    continue
                value = authzr.body.identifier.value
                solver = select_solver(issuer.solvers, value)
                if solver is None:
                    raise ACMEProblem("noSolver", f"no solver of the issuer takes {value}", state)
                wanted = challenges.DNS01 if solver.dns01 is not None else challenges.HTTP01
                challb = next((c for c in authzr.body.challenges if isinstance(c.chall, wanted)), None)
                if challb is None:
                    raise ACMEProblem(
                        "noChallenge", f"the CA offers no {chosen[value]} challenge for {value}", state
                    )
                response, validation = challb.response_and_validation(account_jwk)
                if isinstance(challb.chall, challenges.HTTP01):
                    token = challb.chall.encode("token")
                    published[authzr.uri] = functools.partial(answers.withdraw_http01, solver, value, token)
                    await answers.publish_http01(solver, value, token, validation)
                else:
                    record = challb.chall.validation_domain_name(value.removeprefix("*."))
                    published[authzr.uri] = functools.partial(
                        answers.withdraw_dns01, solver, record, validation
                    )
                    await answers.publish_dns01(solver, record, validation)
                if challb.status == messages.STATUS_PENDING:
                    to_answer.append((challb, response))
            # The CA validates once it is told to, and may not try again: only when answers are up.
            await answers.served()
            # From here on the CA works: the time it may take starts now, not before the answers were up.
            deadline = time.monotonic() + timeout.total_seconds()
            for challb, response in to_answer:
                await asyncio.to_thread(acme_client.answer_challenge, challb, response)
            orderr = await _poll_authorizations(acme_client, orderr, deadline, poll_interval, withdraw)
            state = _order_state(orderr, account_url, chosen)
            await save(state)
            orderr = await _finalize(acme_client, orderr, deadline, poll_interval)
            state = state.model_copy(update={"state": "valid"})
            await save(state)
            assert orderr.fullchain_pem is not None
            return OrderOutcome(fullchain_pem=orderr.fullchain_pem, state=state)
        except ACMEProblem:
            raise
        except (errors.Error, messages.Error, OSError, ValueError) as error:
            problem = _problem(error, state)
            if state is not None and problem.type.startswith(PROBLEM_PREFIX):
                problem.state = state.model_copy(update={"state": "invalid", "problem": problem.type})
            raise problem from None
        finally:
            for url in list(published):
                await withdraw(url)


def revoke_certificate(account: ACMEAccount, certificate_pem: bytes, reason_code: int) -> None:
    """Ask the CA to revoke ``certificate_pem`` (of this account) with RFC 5280 ``reason_code``."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    with _verify_setting(account.ca_bundle_pem) as verify:
        try:
            acme_client, _ = _client(account, verify)
            acme_client.revoke(certificate, reason_code)
        except (errors.Error, messages.Error, OSError, ValueError) as error:
            raise _problem(error, None) from None
