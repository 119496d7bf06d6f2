"""Carrying out a ManagedCertificate's decision: issue, adopt, fail, and keep the Secret's metadata.

* **Issue**: sign (or order from an ACME CA), write the Secret (annotated
  with the revision and serial it holds), announce it, then record it in the
  status.
* **Adopt**: a Secret ahead of the status was written by an operator that
  died before recording it, or whose status write lost a race: record it, do
  not issue again.
* **Fail** (and **Conflict**): the status says why and when the next attempt
  is. A Secret that is not this certificate's to write (one the operator did
  not write, or one another certificate holds) is left untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.api import ManagedCertificate
from certctl_operator.controllers.acme.issuing import is_acme, issue_acme
from certctl_operator.controllers.certificates.announce import (
    announce_expiry,
    announce_failure,
    announce_issuance,
)
from certctl_operator.controllers.certificates.writes import PLURAL, Conflict, finish
from certctl_operator.controllers.issuance import IssuanceRuntime, Key, issuer_key
from certctl_operator.controllers.publishing.index import record_issued_serial
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.secrets import apply_secret, create_secret, created_fields
from certctl_operator.metrics import issuance_duration_seconds, issuance_failures_total, issuance_total
from certctl_operator.pki import (
    CertificateRequest,
    IssuedCertificate,
    KeyAlgorithm,
    PKIError,
    generate_private_key,
    generate_private_key_async,
    issue_certificate,
    planned_not_after,
    private_key_to_pem,
    random_serial,
)
from certctl_operator.policy.clock import format_rfc3339
from certctl_operator.policy.issuance import (
    Decision,
    IssuerView,
    Reason,
    SecretExamination,
    build_request,
    desired_annotations,
    desired_labels,
    key_encoding_for,
    key_spec_for,
    metadata_differs,
    name_constraint_violations,
    other_owner,
    request_hash,
    serial_hex,
)
from certctl_operator.policy.issuers import SECRET_TYPE_TLS, SecretSnapshot
from certctl_operator.status.certificates import (
    CertificateFacts,
    ready_transition,
    status_after_failure,
    status_after_issuance,
)

logger = logging.getLogger("certctl.issuance")


RSA_SERIAL_LINGER = 0.1
"""Seconds the serial of an issuance with a new RSA key waits for others before it is stored.

A group commit hidden behind key generation (tens of milliseconds per key,
plus the wait for a free worker of the key pool): without it, RSA issuances
finish one by one and each stores its serial alone, a ConfigMap read and
write and an issuer read per certificate.
"""

SERIAL_LINGER = 0.02
"""The same for every other issuance from a CA: about the time signing takes on a busy machine.

Without it, a burst of ECDSA issuances stores about one serial in two in a
write of its own (each write takes as long as the signing it overlaps);
with it, a write carries five or more (benchmarks/scale.py: 0.53 ConfigMap
writes per certificate at 1,000, 0.2 with it, in the same time).
"""


@dataclass(frozen=True)
class Signed:
    """A certificate signed for a ManagedCertificate, its serial stored, not yet written to the Secret."""

    issued: IssuedCertificate
    key_pem: str
    body: dict[str, Any]
    cert: ManagedCertificate
    """The certificate as it stands after signing (an ACME order writes its status on the way)."""


async def issue(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    exam: SecretExamination,
    secret: SecretSnapshot | None,
    decision: Decision,
) -> None:
    """Sign a certificate for ``cert`` and write it to its Secret, or record why not."""
    started = time.monotonic()
    spec = cert.spec
    ready = await _ready_issuer(rt, key, body, cert, decision)
    if ready is None:
        return
    issuer, request = ready
    signed = await _sign(rt, key, body, cert, exam, decision, issuer, request)
    if signed is None:
        return
    body, cert = signed.body, signed.cert
    assert decision.revision is not None
    serial = serial_hex(signed.issued.serial)
    facts = CertificateFacts(
        revision=decision.revision,
        serial=serial,
        fingerprint=signed.issued.fingerprint_sha256.lower(),
        not_before=signed.issued.not_before,
        not_after=signed.issued.not_after,
    )
    annotations = desired_annotations(
        cert,
        revision=facts.revision,
        serial=serial,
        hash_=request_hash(request, key_spec_for(spec), key_encoding_for(spec), spec.issuer_ref),
        renew_request=decision.renew_request,
    )
    data = {
        "tls.crt": signed.issued.full_chain_pem.encode("ascii"),
        "tls.key": signed.key_pem.encode("ascii"),
        "ca.crt": signed.issued.ca_pem.encode("ascii"),
    }
    if not await _write_secret(rt, key, body, cert, decision, secret, annotations, data):
        return
    # Counted once the Secret holds it: a reconcile cut short after this adopts it, never issues again.
    issuer_kind = spec.issuer_ref.kind.value
    issuance_total.labels(issuer_kind=issuer_kind, result="success").inc()
    issuance_duration_seconds.labels(issuer_kind=issuer_kind).observe(time.monotonic() - started)

    await announce_issuance(rt, body, cert, facts, trigger=decision)
    status = status_after_issuance(cert, facts, renew_request=decision.renew_request, now=rt.now())
    await finish(rt, key, body, cert, status)
    logger.info(
        "issued revision %d (serial %s, %s, valid until %s) into Secret %s",
        facts.revision,
        serial,
        decision.reason,
        format_rfc3339(facts.not_after),
        spec.secret_name,
        extra=rt.log_extra(key),
    )


async def _ready_issuer(
    rt: IssuanceRuntime, key: Key, body: dict[str, Any], cert: ManagedCertificate, decision: Decision
) -> tuple[IssuerView, CertificateRequest] | None:
    """The issuer as it is now and the request to sign; None (failure recorded) when it cannot sign it."""
    namespace = key.namespace
    spec = cert.spec
    # Sign with what the issuer is now, not with a cached verdict.
    issuer = await rt.issuer_view(spec.issuer_ref, namespace, fresh=True)
    if not issuer.check.ready:
        # An issuer that exists but cannot be read (an invalid stored spec) is not ready, not missing.
        missing = issuer.check.reason == Reason.ISSUER_NOT_FOUND
        reason = Reason.ISSUER_NOT_FOUND if missing else Reason.ISSUER_NOT_READY
        await fail(rt, key, body, cert, decision, reason, issuer.check.message)
        if issuer.found:
            rt.queue.add(issuer_key(spec.issuer_ref, namespace))
        return None
    request = build_request(spec, namespace, issuer, rt.settings.public_base_url)
    if issuer.authority is not None:
        authority = issuer.authority
        forbidden = name_constraint_violations(request, [authority.certificate, *authority.chain])
        if forbidden:
            await fail(rt, key, body, cert, decision, Reason.NAME_CONSTRAINTS, "; ".join(forbidden))
            return None
    return issuer, request


async def _sign(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    exam: SecretExamination,
    decision: Decision,
    issuer: IssuerView,
    request: CertificateRequest,
) -> Signed | None:
    """The key (kept or new) and the certificate signed by ``issuer``, its serial stored for OCSP.

    None when signing failed (the failure is recorded).
    """
    spec = cert.spec
    namespace = key.namespace
    key_spec = key_spec_for(spec)
    signed_at = rt.now()
    chosen_serial = random_serial()
    pooled_key = key_spec.algorithm is KeyAlgorithm.RSA and (decision.new_key or exam.key is None)
    # A CA issuer's serial is chosen first and recorded for OCSP while the key is generated and the
    # certificate signed: the writes of the serials of reconciles waiting meanwhile are shared, and
    # the serial is stored before the Secret is written, as always.
    recording: asyncio.Future[None] | None = None
    try:
        if issuer.authority is not None and not is_acme(issuer):
            recording = asyncio.ensure_future(
                record_issued_serial(
                    rt.context,
                    spec.issuer_ref,
                    namespace,
                    serial_hex(chosen_serial),
                    planned_not_after(request, issuer.authority, signed_at),
                    # Key generation and signing take longer than this: the wait is (nearly) free, and
                    # serials of issuances started meanwhile share the write.
                    linger=RSA_SERIAL_LINGER if pooled_key else SERIAL_LINGER,
                    issuer_body=rt.issuer_bodies.get(issuer_key(spec.issuer_ref, namespace)),
                )
            )
        if not decision.new_key and exam.key is not None:
            private_key = exam.key
        elif pooled_key:
            private_key = await generate_private_key_async(key_spec, rt.context.key_pool)
        else:
            # An elliptic-curve key takes well under a millisecond: less than a hop to another thread.
            private_key = generate_private_key(key_spec)
        if is_acme(issuer):
            ordered = await issue_acme(rt, key, body, cert, issuer, private_key)
            body, cert = ordered.body, ordered.cert
            if ordered.issued is None:
                await fail(rt, key, body, cert, decision, ordered.reason, ordered.message)
                return None
            issued = ordered.issued
        else:
            issued = await rt.off_loop(
                issue_certificate, request, private_key, issuer.authority, signed_at, chosen_serial
            )
        key_pem = private_key_to_pem(private_key, key_encoding_for(spec))
    except BaseException as error:
        if recording is not None:
            recording.cancel()
            await asyncio.gather(recording, return_exceptions=True)
        if not isinstance(error, PKIError):
            raise
        await fail(rt, key, body, cert, decision, Reason.ISSUANCE_FAILED, error.message)
        return None
    if recording is not None:
        await recording
    else:
        serial = serial_hex(issued.serial)
        await record_issued_serial(rt.context, spec.issuer_ref, namespace, serial, issued.not_after)
    return Signed(issued, key_pem, body, cert)


async def _write_secret(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    decision: Decision,
    secret: SecretSnapshot | None,
    annotations: dict[str, str],
    data: dict[str, bytes],
) -> bool:
    """Write the issued certificate and key to the Secret; False when the API server refused it (recorded).

    Raises :class:`Conflict` when the Secret changed or appeared meanwhile.
    """
    namespace = key.namespace
    secret_name = cert.spec.secret_name
    contents: dict[str, Any] = {
        "secret_type": SECRET_TYPE_TLS,
        "labels": desired_labels(cert),
        "annotations": annotations,
        "data": data,
    }
    try:
        if secret is None:
            # Create-only: a Secret that appeared meanwhile (another certificate naming it, its user)
            # fails this with 409 and the next reconcile finds out whose it is.
            written = await create_secret(rt.api, namespace, secret_name, **contents)
        else:
            written = await apply_secret(
                rt.api,
                namespace,
                secret_name,
                **contents,
                resource_version=secret.resource_version,
                hand_over=created_fields(secret),
            )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        if error.status in (400, 403, 422):
            message = f"writing the Secret failed: {error.reason}"
            await fail(rt, key, body, cert, decision, Reason.ISSUANCE_FAILED, message)
            return False
        raise
    rt.own_secret_writes[(namespace, secret_name)] = written.resource_version or ""
    rt.secret_written((namespace, secret_name), secret, written)
    return True


async def adopt(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    exam: SecretExamination,
    decision: Decision,
) -> None:
    assert exam.serial and exam.fingerprint and exam.not_before and exam.not_after
    assert decision.revision is not None
    facts = CertificateFacts(
        decision.revision, exam.serial, exam.fingerprint, exam.not_before, exam.not_after
    )
    await announce_issuance(rt, body, cert, facts, trigger=None)
    status = status_after_issuance(cert, facts, renew_request=decision.renew_request, now=rt.now())
    await finish(rt, key, body, cert, status)
    logger.info(
        "recorded revision %d (serial %s) found in Secret %s",
        facts.revision,
        facts.serial,
        cert.spec.secret_name,
        extra=rt.log_extra(key),
    )
    # Whatever else is due (a renewal, a label to restore) is looked at with the adopted status.
    rt.queue.add(key)


async def fail(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    decision: Decision,
    reason: str,
    message: str,
) -> None:
    now = rt.now()
    settings = rt.settings
    status = status_after_failure(
        cert,
        reason=reason,
        message=message,
        trigger=decision.reason,
        trigger_message=decision.message,
        now=now,
        retry_base=settings.issuance_retry_base,
        retry_cap=settings.issuance_retry_cap,
    )
    issuer_kind = cert.spec.issuer_ref.kind.value
    issuance_total.labels(issuer_kind=issuer_kind, result="failure").inc()
    issuance_failures_total.labels(issuer_kind=issuer_kind, reason=reason).inc()
    if ready_transition(cert.status, status):
        await announce_failure(rt, key, body, cert, reason, message)
    logger.warning(
        "issuance failed (%s): %s; next attempt at %s",
        reason,
        message,
        status.next_attempt_time and format_rfc3339(status.next_attempt_time),
        extra=rt.log_extra(key),
    )
    status = await announce_expiry(rt, key, body, cert, status, now)
    await finish(rt, key, body, cert, status)


async def claimed_by_other(
    rt: IssuanceRuntime, key: Key, cert: ManagedCertificate, secret: SecretSnapshot | None
) -> bool:
    """Whether the other certificate the Secret was written for exists and still names it."""
    owner = other_owner(secret, key.name)
    if owner is None:
        return False
    other = await get_object(rt.api, PLURAL, namespace=key.namespace, name=owner)
    return other is not None and (other.get("spec") or {}).get("secretName") == cert.spec.secret_name


async def repair_metadata(
    rt: IssuanceRuntime,
    key: Key,
    cert: ManagedCertificate,
    secret: SecretSnapshot,
    exam: SecretExamination,
    request: Any,
) -> None:
    """Put back labels and annotations the Secret lost while keeping its certificate."""
    assert exam.serial is not None
    spec = cert.spec
    labels = desired_labels(cert)
    annotations = desired_annotations(
        cert,
        revision=cert.status.revision or 0,
        serial=exam.serial,
        hash_=request_hash(request, key_spec_for(spec), key_encoding_for(spec), spec.issuer_ref),
        renew_request=cert.status.last_renew_request,
    )
    if not metadata_differs(secret, labels, annotations):
        return
    try:
        written = await apply_secret(
            rt.api,
            key.namespace,
            secret.name,
            secret_type=SECRET_TYPE_TLS,
            labels=labels,
            annotations=annotations,
            data={
                name: secret.data[name] for name in ("tls.crt", "tls.key", "ca.crt") if name in secret.data
            },
            resource_version=secret.resource_version,
            hand_over=created_fields(secret),
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_secret_writes[(key.namespace, secret.name)] = written.resource_version or ""
    rt.secret_written((key.namespace, secret.name), secret, written)
    logger.info("restored the labels and annotations of Secret %s", secret.name, extra=rt.log_extra(key))


__all__ = ["adopt", "claimed_by_other", "fail", "issue", "repair_metadata"]
