"""Reading and writing what a revocation touches: issuers, certificates, their Secrets.

The one write that revokes is :func:`record_revocation`: the issuer's whole
CRL state (list, number, dates) is replaced in a single status update that
carries the resourceVersion it was computed from. A concurrent writer makes it
fail with 409 Conflict, and it is computed again from a fresh read; a serial
already on the list makes it a no-op. So a serial is listed at most once,
never removed before its certificate expired, and the CRL number only grows.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import (
    ClusterIssuer,
    ConditionStatus,
    ConditionType,
    Issuer,
    IssuerKind,
    ManagedCertificate,
    RevokedCertificate,
    set_condition,
    status_patch,
)
from certctl_operator.durations import parse_duration
from certctl_operator.logs import object_extra
from certctl_operator.pki import PKIError, SigningAuthority, load_signing_authority
from certctl_operator.policy.revocation import CRLState, IssuerKey, find_entry, next_crl, normalize_serial
from certctl_operator.settings import Settings

logger = logging.getLogger("certctl.revocation")

MERGE_PATCH = "application/merge-patch+json"
RENEW_ANNOTATION = f"{API_GROUP}/renew"
SERIAL_ANNOTATION = f"{API_GROUP}/serial-number"
REVISION_ANNOTATION = f"{API_GROUP}/revision"
ISSUER_NAME_ANNOTATION = f"{API_GROUP}/issuer-name"
ISSUER_KIND_ANNOTATION = f"{API_GROUP}/issuer-kind"
CONFLICT_ATTEMPTS = 10
MAX_REVOKED_SERIALS_ON_CERTIFICATE = 1000

T = TypeVar("T")


class ConflictRetriesExhausted(Exception):
    """A guarded write kept conflicting with other writers."""


async def retry_on_conflict(
    operation: Callable[[], Awaitable[T]],
    what: str,
    about: Callable[[], Mapping[str, Any] | None] | None = None,
) -> T:
    """Run a read-compute-guarded-write ``operation`` again while it hits 409 Conflict.

    ``about()`` gives the body of the object written (the last one read), which
    the log records of the conflicts refer to.
    """
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return await operation()
        except ApiException as error:
            if error.status != 409:
                raise
            body = about() if about is not None else None
            logger.debug(
                "conflict while %s (attempt %d); reading again",
                what,
                attempt + 1,
                extra=object_extra(body) if body is not None else None,
            )
            await asyncio.sleep(0.05 * (attempt + 1))  # spread competing writers apart
    raise ConflictRetriesExhausted(f"{what}: still conflicting after {CONFLICT_ATTEMPTS} attempts")


def _custom(api: Any) -> Any:
    return client.CustomObjectsApi(api)


def _core(api: Any) -> Any:
    return client.CoreV1Api(api)


# --------------------------------------------------------------------------- issuers


def issuer_class(key: IssuerKey) -> type[Issuer] | type[ClusterIssuer]:
    return ClusterIssuer if key.cluster else Issuer


def pki_namespace(key: IssuerKey, settings: Settings) -> str:
    """Where the issuer's CA Secret, CRL ConfigMap and OCSP responder Secret live."""
    return key.namespace if key.namespace is not None else settings.operator_namespace


async def get_issuer(api: Any, key: IssuerKey) -> dict[str, Any] | None:
    """The issuer object, or None when it does not exist."""
    try:
        if key.cluster:
            body = await _custom(api).get_cluster_custom_object(
                API_GROUP, API_VERSION, ClusterIssuer.PLURAL, key.name
            )
        else:
            body = await _custom(api).get_namespaced_custom_object(
                API_GROUP, API_VERSION, key.namespace, Issuer.PLURAL, key.name
            )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(body)


async def patch_issuer_status(api: Any, key: IssuerKey, patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch the issuer's status; ``patch`` may carry metadata.resourceVersion as a guard."""
    if key.cluster:
        body = await _custom(api).patch_cluster_custom_object_status(
            API_GROUP, API_VERSION, ClusterIssuer.PLURAL, key.name, dict(patch), _content_type=MERGE_PATCH
        )
    else:
        body = await _custom(api).patch_namespaced_custom_object_status(
            API_GROUP,
            API_VERSION,
            key.namespace,
            Issuer.PLURAL,
            key.name,
            dict(patch),
            _content_type=MERGE_PATCH,
        )
    return dict(body)


def guarded(resource_version: str, status_fields: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of ``status_fields`` that the API server applies only at ``resource_version``."""
    return {"metadata": {"resourceVersion": resource_version}, "status": dict(status_fields)}


@dataclass(frozen=True)
class CAKeyPair:
    authority: SigningAuthority | None
    problem: str | None
    version: str | None


async def read_secret(api: Any, namespace: str, name: str) -> Any | None:
    """A Secret (the client's V1Secret), or None when it does not exist."""
    try:
        return await _core(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def secret_text(secret: Any, key: str) -> str | None:
    data = getattr(secret, "data", None) or {}
    value = data.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


async def load_ca(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    issuer: Issuer | ClusterIssuer,
    now: datetime,
    cached: tuple[str | None, SigningAuthority | None] = (None, None),
) -> CAKeyPair:
    """The issuer's CA key pair from its Secret, or the problem that keeps it from signing.

    ``cached`` is (Secret resourceVersion, authority) from an earlier load;
    an unchanged Secret is not parsed again.
    """
    if issuer.spec.ca is None:
        return CAKeyPair(None, "the issuer is not a ca issuer", None)
    namespace = pki_namespace(key, settings)
    secret_name = issuer.spec.ca.secret_name
    secret = await read_secret(api, namespace, secret_name)
    if secret is None:
        return CAKeyPair(None, f"the CA Secret {namespace}/{secret_name} does not exist", None)
    version = secret.metadata.resource_version
    if cached[0] == version and cached[1] is not None and now <= cached[1].not_after:
        return CAKeyPair(cached[1], None, version)
    certificate_pem, key_pem = secret_text(secret, "tls.crt"), secret_text(secret, "tls.key")
    if not certificate_pem or not key_pem:
        return CAKeyPair(None, f"the CA Secret {namespace}/{secret_name} lacks tls.crt or tls.key", version)
    try:
        authority = load_signing_authority(
            certificate_pem, key_pem, now, ca_certificate_pem=secret_text(secret, "ca.crt")
        )
    except PKIError as error:
        return CAKeyPair(None, f"{error.reason}: {error.message}", version)
    if not authority.can_sign_crl:
        return CAKeyPair(None, "the CA certificate's keyUsage lacks cRLSign", version)
    return CAKeyPair(authority, None, version)


def crl_timing(issuer: Issuer | ClusterIssuer) -> tuple[timedelta, timedelta]:
    """(validity, refresh interval) of the issuer's CRLs."""
    settings = issuer.spec.crl_settings
    return parse_duration(settings.validity), parse_duration(settings.refresh_interval)


@dataclass(frozen=True)
class Recorded:
    """The outcome of :func:`record_revocation`."""

    entry: RevokedCertificate
    newly_listed: bool
    issuer_body: dict[str, Any]
    crl: CRLState | None
    """The CRL state written, when this call changed the list."""
    crl_der: bytes | None
    """That CRL, signed, when this call changed the list."""


SignCRL = Callable[[CRLState], bytes]


async def record_revocation(
    api: Any,
    key: IssuerKey,
    entry: RevokedCertificate,
    now: Callable[[], datetime],
    sign: SignCRL,
    executor: Executor | None = None,
    floor: Callable[[], int | None] = lambda: None,
) -> Recorded:
    """List ``entry`` on the issuer's revocation list, exactly once.

    Reads the issuer; when the serial is listed already, returns that entry
    untouched. Otherwise computes the next CRL state (the entry added with
    the new CRL number, expired entries dropped), signs that CRL, and writes
    the state in one resourceVersion-guarded status update; a conflict starts
    over from a fresh read. ``sign`` runs in ``executor``: a CRL of thousands
    of entries takes a while to sign.
    """
    loop = asyncio.get_running_loop()

    read: dict[str, Any] = {}

    async def attempt() -> Recorded:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            raise IssuerGone(f"issuer {key.label} was deleted")
        issuer = issuer_class(key).from_body(body)
        existing = find_entry(issuer.status, entry.serial_number)
        if existing is not None:
            return Recorded(existing, False, body, None, None)
        validity, refresh = crl_timing(issuer)
        state = next_crl(issuer.status, now(), validity, refresh, add=entry, floor=floor())
        der = await loop.run_in_executor(executor, sign, state)
        patch = guarded(body["metadata"]["resourceVersion"], state.status_fields())
        written = await patch_issuer_status(api, key, patch)
        assert state.added is not None
        return Recorded(state.added, True, written, state, der)

    return await retry_on_conflict(
        attempt, f"recording a revocation on issuer {key.label}", lambda: read.get("body")
    )


async def advance_crl(
    api: Any,
    key: IssuerKey,
    due: Callable[[Issuer | ClusterIssuer], bool],
    now: Callable[[], datetime],
    sign: SignCRL,
    executor: Executor | None = None,
    floor: Callable[[], int | None] = lambda: None,
) -> tuple[dict[str, Any], CRLState | None, bytes | None]:
    """Move the issuer to its next CRL when ``due`` says so (a refresh, a changed CA, expiries).

    Same guarded write as :func:`record_revocation`, without adding an entry.
    Returns the issuer body after the call and, when a new CRL was started,
    its state and signed DER.
    """
    loop = asyncio.get_running_loop()

    read: dict[str, Any] = {}

    async def attempt() -> tuple[dict[str, Any], CRLState | None, bytes | None]:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            raise IssuerGone(f"issuer {key.label} was deleted")
        issuer = issuer_class(key).from_body(body)
        if not due(issuer):
            return body, None, None
        validity, refresh = crl_timing(issuer)
        state = next_crl(issuer.status, now(), validity, refresh, floor=floor())
        der = await loop.run_in_executor(executor, sign, state)
        written = await patch_issuer_status(
            api, key, guarded(body["metadata"]["resourceVersion"], state.status_fields())
        )
        return written, state, der

    return await retry_on_conflict(
        attempt, f"starting the next CRL of issuer {key.label}", lambda: read.get("body")
    )


class IssuerGone(Exception):
    """The issuer was deleted while a revocation was being recorded."""


# --------------------------------------------------------------------------- certificates


async def get_certificate(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        body = await _custom(api).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, ManagedCertificate.PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(body)


async def mark_certificate_revoked(
    api: Any, namespace: str, name: str, serial: str, message: str, now: Callable[[], datetime]
) -> dict[str, Any] | None:
    """Show the revocation of ``serial`` on its ManagedCertificate; returns the body when it changed.

    ``serial`` joins status.revokedSerialNumbers; when it is still the
    current serial, status.revoked becomes true and Ready False with reason
    Revoked. A guarded merge patch, so the issuance side's concurrent status
    writes are never overwritten; nothing is written when all of it is shown.
    """
    wanted = normalize_serial(serial)

    read: dict[str, Any] = {}

    async def attempt() -> dict[str, Any] | None:
        body = read["body"] = await get_certificate(api, namespace, name)
        if body is None:
            return None
        certificate = ManagedCertificate.from_body(body)
        before = certificate.status
        after = before.model_copy(deep=True)
        listed = list(after.revoked_serial_numbers or [])
        if wanted not in listed:
            listed = [*listed, wanted][-MAX_REVOKED_SERIALS_ON_CERTIFICATE:]
            after.revoked_serial_numbers = listed
        current = after.serial_number is not None and _same_serial(after.serial_number, wanted)
        if current:
            after.revoked = True
            after.conditions = set_condition(
                after.conditions,
                ConditionType.READY,
                ConditionStatus.FALSE,
                "Revoked",
                message,
                now=now(),
                observed_generation=certificate.metadata.generation,
            )
        patch = status_patch(before, after)
        if not patch:
            return None
        written = await _custom(api).patch_namespaced_custom_object_status(
            API_GROUP,
            API_VERSION,
            namespace,
            ManagedCertificate.PLURAL,
            name,
            guarded(body["metadata"]["resourceVersion"], patch),
            _content_type=MERGE_PATCH,
        )
        return dict(written)

    return await retry_on_conflict(
        attempt, f"marking ManagedCertificate {namespace}/{name} revoked", lambda: read.get("body")
    )


def _same_serial(a: str, b: str) -> bool:
    try:
        return normalize_serial(a) == normalize_serial(b)
    except ValueError:
        return False


async def request_reissue(api: Any, namespace: str, name: str, serial: str) -> bool:
    """Ask the issuance side for a new certificate with a new key, once per revoked serial.

    Sets the annotation ``certctl.io/renew: revoked-<serial>`` while ``serial``
    is still the certificate's current one (in its status, or in its Secret
    when the status has not caught up yet); True when it was set now.
    """
    wanted = normalize_serial(serial)
    value = f"revoked-{wanted}"
    body = await get_certificate(api, namespace, name)
    if body is None:
        return False
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if annotations.get(RENEW_ANNOTATION) == value:
        return False
    current = (body.get("status") or {}).get("serialNumber")
    if not (current and _same_serial(current, wanted)):
        secret_name = (body.get("spec") or {}).get("secretName")
        secret = await read_secret(api, namespace, secret_name) if secret_name else None
        in_secret = ((secret.metadata.annotations or {}) if secret is not None else {}).get(SERIAL_ANNOTATION)
        if not (in_secret and _same_serial(in_secret, wanted)):
            return False
    patch = {"metadata": {"annotations": {RENEW_ANNOTATION: value}}}
    await _custom(api).patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, ManagedCertificate.PLURAL, name, patch, _content_type=MERGE_PATCH
    )
    return True


# --------------------------------------------------------------------------- revocations


async def patch_revocation_status(
    api: Any, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    body = await _custom(api).patch_namespaced_custom_object_status(
        API_GROUP,
        API_VERSION,
        namespace,
        "revocations",
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )
    return dict(body)


async def get_revocation(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        body = await _custom(api).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, "revocations", name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(body)


def issuer_kind_of(value: str | None) -> IssuerKind:
    return IssuerKind.CLUSTER_ISSUER if value == IssuerKind.CLUSTER_ISSUER.value else IssuerKind.ISSUER
