"""Publishing an issuer's CRL (a ConfigMap) and keeping its OCSP responder key pair (a Secret).

The CRL is a rendering of the issuer's revocation list (see
:mod:`certctl_operator.policy.revocation`): number and dates come from the
issuer's status, the entries from its journal and archive, each entry with
the number of the first CRL that lists it, so rendering it again after a
crash gives the same CRL. The ConfigMap ``<issuer>-crl`` next to the issuer
holds the last one published (``ca.crl``, PEM) with its number, dates and CA
fingerprint as annotations; it is only ever replaced by a CRL with a higher
number, or by the same number signed by a new CA key. A CRL whose PEM does
not fit in a ConfigMap (:data:`MAX_CONFIGMAP_CRL_BYTES`, some 14,000 entries)
is published with the annotations only: the operator signs it again from the
list when it needs it, and serves it over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api.metadata_keys import (
    ANNOTATION_CA_FINGERPRINT,
    ANNOTATION_CRL_NUMBER,
    ANNOTATION_CRL_SIZE,
    ANNOTATION_NEXT_UPDATE,
    ANNOTATION_THIS_UPDATE,
    LABEL_ISSUER_KIND,
    LABEL_ISSUER_NAME,
)
from certctl_operator.durations import parse_duration
from certctl_operator.logs import object_extra
from certctl_operator.pki import (
    KeyEncoding,
    OCSPResponder,
    PKIError,
    SigningAuthority,
    create_ocsp_responder_certificate,
    crl_der_to_pem,
    crl_pem_to_der,
    fingerprint_sha256,
    load_ocsp_responder,
)
from certctl_operator.policy.publishing import (
    RESPONDER_KEY,
    RESPONDER_VALIDITY,
    crl_configmap_name,
    render_crl,
    responder_due,
    responder_matches,
    responder_secret_name,
)
from certctl_operator.policy.revocation import ArchivedEntry, CRLState, IssuerKey
from certctl_operator.settings import Settings
from certctl_operator.web.pki_state import IssuerPKI, PKIRegistry, PublishedCRL

from .revocation_store import (
    get_issuer,
    issuer_class,
    load_ca,
    pki_namespace,
    read_archive,
    read_issued,
    report_unreadable,
    retry_on_conflict,
)
from .secrets import read_secret

logger = logging.getLogger("certctl.crl")

CRL_DATA_KEY = "ca.crl"
MAX_CONFIGMAP_CRL_BYTES = 1_000_000
"""The largest CRL PEM the ConfigMap holds: its data is limited to 1 MiB."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "certctl-operator"}


async def archive_for(
    api: Any, settings: Settings, key: IssuerKey, issuer_body: dict[str, Any], state: IssuerPKI
) -> list[ArchivedEntry]:
    """The archived entries that go with the head ``issuer_body``; read again when the copy is older."""
    status = issuer_class(key).from_body(issuer_body).status
    generation = status.revocation_archive_generation or 0
    if not state.archive_current(generation):
        entries = await read_archive(api, settings, key, issuer_body)
        state.set_archive(entries, generation)
        logger.info(
            "read %d archived revocations of issuer %s (generation %d)",
            len(entries),
            key.label,
            generation,
            extra=object_extra(issuer_body),
        )
    return list(state.archive.values())


async def load_issued(
    api: Any, settings: Settings, registry: PKIRegistry, key: IssuerKey, issuer_body: dict[str, Any]
) -> None:
    """Take in the issuer's issued-serials store once per process (later ones are added as issued)."""
    if key in registry.index.loaded:
        return
    serials, unreadable = await read_issued(api, settings, key, issuer_body)
    registry.index.load(key, serials)
    for error in unreadable:
        await report_unreadable(
            api,
            issuer_body,
            error,
            "the serials recorded in it answer unknown over OCSP until it is repaired",
        )


def _owner_reference(issuer_body: dict[str, Any]) -> dict[str, Any]:
    metadata = issuer_body["metadata"]
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": issuer_body.get("kind", "Issuer"),
        "name": metadata["name"],
        "uid": metadata["uid"],
    }


def _labels(key: IssuerKey) -> dict[str, str]:
    return {**MANAGED_BY, LABEL_ISSUER_NAME: key.name[:63], LABEL_ISSUER_KIND: key.kind.value}


def published_marker(configmap: Any) -> tuple[int, str] | None:
    """(CRL number, CA fingerprint) of the CRL a ConfigMap stands for, with or without its data."""
    annotations = getattr(configmap.metadata, "annotations", None) or {}
    try:
        return int(annotations[ANNOTATION_CRL_NUMBER]), annotations.get(ANNOTATION_CA_FINGERPRINT, "")
    except (KeyError, ValueError):
        return None


def published_from_configmap(configmap: Any) -> PublishedCRL | None:
    """The CRL a ConfigMap holds, or None when it holds none readable (or it was too large for it)."""
    data = getattr(configmap, "data", None) or {}
    annotations = getattr(configmap.metadata, "annotations", None) or {}
    pem = data.get(CRL_DATA_KEY)
    if not pem:
        return None
    try:
        der = crl_pem_to_der(pem)
        number = int(annotations.get(ANNOTATION_CRL_NUMBER, "-1"))
        this_update = datetime.fromisoformat(annotations[ANNOTATION_THIS_UPDATE].replace("Z", "+00:00"))
        next_text = annotations.get(ANNOTATION_NEXT_UPDATE)
        next_update = datetime.fromisoformat(next_text.replace("Z", "+00:00")) if next_text else None
    except (ValueError, KeyError):
        return None
    return PublishedCRL(der, number, this_update, next_update, annotations.get(ANNOTATION_CA_FINGERPRINT, ""))


async def read_published_crl(api: Any, settings: Settings, key: IssuerKey) -> PublishedCRL | None:
    """The CRL in the issuer's ConfigMap, or None."""
    try:
        configmap = await client.CoreV1Api(api).read_namespaced_config_map(
            crl_configmap_name(key), pki_namespace(key, settings)
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return published_from_configmap(configmap)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


async def publish_crl(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    issuer_body: dict[str, Any],
    authority: SigningAuthority,
    state: CRLState,
    der: bytes | None = None,
    executor: Executor | None = None,
) -> PublishedCRL | None:
    """Make the ConfigMap hold the CRL of ``state`` (signing it unless ``der`` is given).

    ``state`` lists every entry (see :meth:`CRLState.with_archive`). Never
    replaces a CRL of a higher number; one of the same number signed by the
    same CA is left as it is (so its bytes and ETag stay stable). Returns the
    CRL published for that number or a higher one, or None when a higher one
    is published without its data.
    """
    fingerprint = fingerprint_sha256(authority.certificate)
    namespace = pki_namespace(key, settings)
    name = crl_configmap_name(key)
    core: Any = client.CoreV1Api(api)
    signed = der

    async def attempt() -> PublishedCRL | None:
        nonlocal signed
        try:
            existing = await core.read_namespaced_config_map(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            existing = None
        marker = published_marker(existing) if existing is not None else None
        if marker is not None:
            number, current_fingerprint = marker
            if number > state.number:
                return published_from_configmap(existing)
            if number == state.number and current_fingerprint == fingerprint:
                current = published_from_configmap(existing)
                if current is not None:
                    return current
                # Published without its data (too large for a ConfigMap): the same CRL, signed again.
                if signed is None:
                    signed = await asyncio.get_running_loop().run_in_executor(
                        executor, render_crl, authority, state
                    )
                return PublishedCRL(signed, state.number, state.this_update, state.next_update, fingerprint)
        if signed is None:
            signed = await asyncio.get_running_loop().run_in_executor(executor, render_crl, authority, state)
        published = PublishedCRL(signed, state.number, state.this_update, state.next_update, fingerprint)
        pem = crl_der_to_pem(signed)
        annotations = {
            ANNOTATION_CRL_NUMBER: str(state.number),
            ANNOTATION_CA_FINGERPRINT: fingerprint,
            ANNOTATION_THIS_UPDATE: _stamp(state.this_update),
            ANNOTATION_NEXT_UPDATE: _stamp(state.next_update),
            ANNOTATION_CRL_SIZE: str(len(signed)),
        }
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": _labels(key),
            "annotations": annotations,
        }
        if issuer_body.get("metadata", {}).get("uid"):
            metadata["ownerReferences"] = [_owner_reference(issuer_body)]
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {CRL_DATA_KEY: pem} if len(pem) <= MAX_CONFIGMAP_CRL_BYTES else {},
        }
        if existing is None:
            await core.create_namespaced_config_map(namespace, body)
        else:
            metadata["resourceVersion"] = existing.metadata.resource_version
            await core.replace_namespaced_config_map(name, namespace, body)
        logger.info(
            "published CRL number %d of issuer %s (%d entries, %d bytes%s)",
            state.number,
            key.label,
            len(state.entries),
            len(signed),
            "" if body["data"] else "; too large for its ConfigMap, served over HTTP only",
            extra=object_extra(issuer_body),
        )
        return published

    return await retry_on_conflict(attempt, f"publishing the CRL of issuer {key.label}", lambda: issuer_body)


# --------------------------------------------------------------------------- OCSP responder


@dataclass(frozen=True)
class ResponderState:
    responder: OCSPResponder
    created: bool


async def ensure_ocsp_responder(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    issuer_body: dict[str, Any],
    authority: SigningAuthority,
    now: datetime,
    executor: Executor | None = None,
    known: OCSPResponder | None = None,
) -> ResponderState:
    """The issuer's delegated OCSP responder, from its Secret; created or renewed when needed.

    A responder certificate is replaced when a third of its lifetime is left,
    when the CA changed, or when the Secret is missing or unreadable.
    """
    if known is not None and not responder_due(known, now) and responder_matches(known, authority):
        return ResponderState(known, False)
    namespace = pki_namespace(key, settings)
    name = responder_secret_name(key)
    core: Any = client.CoreV1Api(api)

    async def attempt() -> ResponderState:
        secret = await read_secret(api, namespace=namespace, name=name)
        if secret is not None:
            certificate_pem, key_pem = secret.text("tls.crt"), secret.text("tls.key")
            if certificate_pem and key_pem:
                try:
                    loaded = load_ocsp_responder(certificate_pem, key_pem, authority, now)
                except PKIError as error:
                    logger.info(
                        "replacing the OCSP responder of issuer %s: %s",
                        key.label,
                        error.message,
                        extra=object_extra(issuer_body),
                    )
                else:
                    if not responder_due(loaded, now):
                        return ResponderState(loaded, False)
        responder = await asyncio.get_running_loop().run_in_executor(
            executor, create_ocsp_responder_certificate, authority, RESPONDER_KEY, RESPONDER_VALIDITY, now
        )
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": _labels(key),
            "annotations": {ANNOTATION_CA_FINGERPRINT: fingerprint_sha256(authority.certificate)},
        }
        if issuer_body.get("metadata", {}).get("uid"):
            metadata["ownerReferences"] = [_owner_reference(issuer_body)]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": metadata,
            "stringData": {
                "tls.crt": responder.certificate_pem,
                "tls.key": responder.private_key_pem(KeyEncoding.PKCS8),
                "ca.crt": authority.certificate.public_bytes(Encoding.PEM).decode("ascii"),
            },
        }
        if secret is None:
            await core.create_namespaced_secret(namespace, body)
        else:
            metadata["resourceVersion"] = secret.resource_version
            await core.replace_namespaced_secret(name, namespace, body)
        logger.info(
            "issued the OCSP responder certificate of issuer %s (serial %x, valid until %s)",
            key.label,
            responder.certificate.serial_number,
            _stamp(responder.certificate.not_valid_after_utc),
            extra=object_extra(issuer_body),
        )
        return ResponderState(responder, True)

    return await retry_on_conflict(
        attempt, f"storing the OCSP responder of issuer {key.label}", lambda: issuer_body
    )


async def load_signing_state(
    api: Any, settings: Settings, registry: PKIRegistry, key: IssuerKey, now: datetime
) -> None:
    """Fill ``registry`` with what OCSP answers need for issuer ``key``, reading only.

    The CA key pair, the revocation list (the issuer's journal and its
    archive), the issued serials and, when its Secret holds a valid one, the
    delegated responder. The authority is set last: OCSP answers for an
    issuer only once its revocation list is known.
    """
    body = await get_issuer(api, key)
    if body is None or not (body.get("spec") or {}).get("ca"):
        registry.forget_issuer(key)
        return
    issuer = issuer_class(key).from_body(body)
    state = registry.issuer(key)
    state.uid = issuer.metadata.uid
    state.ocsp_enabled = issuer.spec.ocsp_settings.enabled
    state.ocsp_validity = parse_duration(issuer.spec.ocsp_settings.response_validity)
    ca = await load_ca(api, settings, key, issuer, now, cached=(state.authority_version, state.authority))
    if ca.authority is None:
        return
    await archive_for(api, settings, key, body, state)
    await load_issued(api, settings, registry, key, body)
    registry.update_revoked(key, issuer.status)
    if state.responder is None or not responder_matches(state.responder, ca.authority):
        state.responder = await read_responder(api, settings, key, ca.authority, now)
    if state.authority is None:
        state.authority, state.authority_version = ca.authority, ca.version


async def read_responder(
    api: Any, settings: Settings, key: IssuerKey, authority: SigningAuthority, now: datetime
) -> OCSPResponder | None:
    """The delegated responder in the issuer's Secret, when there is a valid one."""
    secret = await read_secret(api, namespace=pki_namespace(key, settings), name=responder_secret_name(key))
    if secret is None:
        return None
    certificate_pem, key_pem = secret.text("tls.crt"), secret.text("tls.key")
    if not certificate_pem or not key_pem:
        return None
    try:
        return load_ocsp_responder(certificate_pem, key_pem, authority, now)
    except PKIError:
        return None
