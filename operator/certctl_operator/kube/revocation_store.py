"""Reading and writing what a revocation touches: issuers, their revocation lists, certificates.

Storage
-------
An issuer's revocation list is its *head* (the issuer's status: CRL number
and dates, ``revocationArchiveGeneration``, and the journal of newest entries
in ``revokedCertificates``) plus its *archive*: :data:`SHARD_COUNT` ConfigMaps
``<issuer>-revoked-00`` ... ``-15`` next to the issuer (a ClusterIssuer's in the
operator namespace, named ``<issuer>-cluster-revoked-NN``), an entry in the
shard its serial hashes to (:func:`policy.revocation.shard_index`). The list
is the union of journal and archive. ``<issuer>-issued-NN`` hold the serials
the issuer issued, for OCSP; a serial may be in any of them (readers read all
sixteen), so the serials recorded together go to one shard in one write (see
:func:`record_issued`).

The three writes
----------------
1. **Revoking** (:func:`record_revocation`) is one write: the head, replaced
   with the entry added to the journal and the next CRL number, guarded by
   the resourceVersion it was computed from. Before it, the head is read and
   then the serial's shard: a serial found in either is not listed again.
   Reading the head first makes that check complete: an entry leaves the
   journal only in a head write that comes after its shard write (3.), so an
   entry gone from the head that was read was in its shard before the shard
   is read. A concurrent revocation changes the head and makes this write
   fail with 409 Conflict; it is computed again from fresh reads. So a serial
   is listed at most once and the CRL number only grows; a crash before the
   write leaves nothing, after it the revocation is complete.
2. **A new CRL without a revocation** (refresh, expiries, new CA key) is the
   same guarded head write without an entry.
3. **Moving the journal to the archive** (:func:`archive_journal`) is two
   steps. (a) Each shard that receives entries is replaced with its entries
   plus the moving ones, guarded by its own resourceVersion (or created; a
   concurrent create fails with 409). Entries already there are left as
   they are, so repeating (a) changes nothing. (b) The head is written with
   the moved entries removed from the journal and the generation one higher,
   guarded by the resourceVersion read before (a). A crash or conflict
   between (a) and (b) leaves the entries in both places: the union is the
   same list, and the next move finds them archived and only does (b). No
   step removes an entry from the last place that holds it, and none adds or
   changes a CRL number, so the CRL of each number stays what it was.
4. **Pruning** (:func:`prune_archive`) replaces a shard, guarded, without the
   entries whose certificate expired more than one refresh interval before
   the current CRL's thisUpdate: neither that CRL, signed again, nor a later
   one lists them, so deleting them changes no CRL, and a crash before or
   after the write leaves a correct list.

Readers keep the archive in memory, with the generation it was read at; a
head with a higher generation means entries moved since, and the archive is
read again before the journal that lacks them is trusted (see
:mod:`certctl_operator.web.pki_state`). A shard that cannot be decoded stops
the operation that reads it (it is retried and logged) instead of dropping
revocations. A shard owned by an earlier issuer of the same name (its
ownerReference names another uid) counts as empty and is overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from certctl_operator.api.metadata_keys import (
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_RENEW,
    ANNOTATION_SERIAL_NUMBER,
)
from certctl_operator.kube.events import WARNING, event_name, post_event
from certctl_operator.kube.objects import get_object, patch_metadata, patch_status
from certctl_operator.kube.secrets import read_secret
from certctl_operator.logs import object_extra
from certctl_operator.pki import PKIError, SigningAuthority, load_signing_authority
from certctl_operator.policy.renewal import object_name
from certctl_operator.policy.revocation import (
    ISSUED_SHARD_KEY,
    MAX_SHARD_BYTES,
    REVOKED_SHARD_KEY,
    SHARD_COUNT,
    ArchivedEntry,
    CRLState,
    IssuerKey,
    ListEntry,
    RevocationListFull,
    decode_issued,
    decode_revoked,
    encode_issued,
    encode_revoked,
    find_entry,
    merge_issued,
    merge_revoked,
    next_crl,
    normalize_serial,
    shard_index,
)
from certctl_operator.settings import Settings

logger = logging.getLogger("certctl.revocation")

MERGE_PATCH = "application/merge-patch+json"
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
    return await get_object(api, issuer_class(key).PLURAL, namespace=key.namespace, name=key.name)


async def patch_issuer_status(
    api: Any, key: IssuerKey, body: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch the issuer's status, applied only if it is still the version of ``body``."""
    return await patch_status(
        api,
        issuer_class(key).PLURAL,
        namespace=key.namespace,
        name=key.name,
        status=status,
        resource_version=body["metadata"]["resourceVersion"],
    )


@dataclass(frozen=True)
class CAKeyPair:
    authority: SigningAuthority | None
    problem: str | None
    version: str | None


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
    secret = await read_secret(api, namespace=namespace, name=secret_name)
    if secret is None:
        return CAKeyPair(None, f"the CA Secret {namespace}/{secret_name} does not exist", None)
    version = secret.resource_version
    if cached[0] == version and cached[1] is not None and now <= cached[1].not_after:
        return CAKeyPair(cached[1], None, version)
    certificate_pem, key_pem = secret.text("tls.crt"), secret.text("tls.key")
    if not certificate_pem or not key_pem:
        return CAKeyPair(None, f"the CA Secret {namespace}/{secret_name} lacks tls.crt or tls.key", version)
    try:
        authority = load_signing_authority(
            certificate_pem, key_pem, now, ca_certificate_pem=secret.text("ca.crt")
        )
    except PKIError as error:
        return CAKeyPair(None, f"{error.reason}: {error.message}", version)
    if not authority.can_sign_crl:
        return CAKeyPair(None, "the CA certificate's keyUsage lacks cRLSign", version)
    return CAKeyPair(authority, None, version)


def crl_timing(issuer: Issuer | ClusterIssuer) -> tuple[timedelta, timedelta]:
    """(validity, refresh interval) of the issuer's CRLs."""
    settings = issuer.spec.crl_settings
    return settings.validity_delta, settings.refresh_interval_delta


@dataclass(frozen=True)
class Recorded:
    """The outcome of :func:`record_revocation`."""

    entry: RevokedCertificate
    newly_listed: bool
    issuer_body: dict[str, Any]
    crl: CRLState | None
    """The head's CRL state written, when this call changed the list (journal entries only)."""


async def record_revocation(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    entry: RevokedCertificate,
    now: Callable[[], datetime],
    floor: Callable[[], int | None] = lambda: None,
    archived: Callable[[list[RevokedCertificate], int], None] = lambda entries, generation: None,
) -> Recorded:
    """List ``entry`` on the issuer's revocation list, exactly once (write 1 of the module notes).

    Reads the head, then the serial's shard; when the serial is listed in
    either, returns that entry untouched. Otherwise computes the next CRL
    state (the entry added to the journal with the new CRL number, expired
    journal entries dropped) and writes the head in one resourceVersion-guarded
    update; a conflict starts over from fresh reads. A full journal is moved
    to the archive first (``archived`` hears of what moved, as in
    :func:`archive_journal`).
    """
    read: dict[str, Any] = {}

    async def attempt() -> Recorded:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            raise IssuerGone(f"issuer {key.label} was deleted")
        issuer = issuer_class(key).from_body(body)
        existing = find_entry(issuer.status, entry.serial_number)
        if existing is not None:
            return Recorded(existing, False, body, None)
        shard = await read_shard(
            api, settings, key, REVOKED_SHARD_KEY, shard_index(entry.serial_number), body
        )
        listed = revoked_in(shard).get(entry.serial_number)
        if listed is not None:
            return Recorded(listed.as_revoked_certificate(), False, body, None)
        validity, refresh = crl_timing(issuer)
        state = next_crl(issuer.status, now(), validity, refresh, add=entry, floor=floor())
        written = await patch_issuer_status(api, key, body, state.status_fields())
        assert state.added is not None
        return Recorded(state.added, True, written, state)

    what = f"recording a revocation on issuer {key.label}"
    try:
        return await retry_on_conflict(attempt, what, lambda: read.get("body"))
    except RevocationListFull as full:
        try:
            moved = await archive_journal(api, settings, key)
        except ArchiveFull as error:
            raise RevocationListFull(f"{full}, and {error}") from None
        if moved is not None:
            archived(*moved)
        # Moved now or by a concurrent move: once more, and a journal still full stays an error.
        return await retry_on_conflict(attempt, what, lambda: read.get("body"))


async def advance_crl(
    api: Any,
    key: IssuerKey,
    due: Callable[[Issuer | ClusterIssuer], bool],
    now: Callable[[], datetime],
    floor: Callable[[], int | None] = lambda: None,
) -> tuple[dict[str, Any], CRLState | None]:
    """Move the issuer to its next CRL when ``due`` says so (a refresh, a changed CA, expiries).

    Same guarded head write as :func:`record_revocation`, without adding an
    entry. Returns the issuer body after the call and, when a new CRL was
    started, its state (journal entries only).
    """
    read: dict[str, Any] = {}

    async def attempt() -> tuple[dict[str, Any], CRLState | None]:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            raise IssuerGone(f"issuer {key.label} was deleted")
        issuer = issuer_class(key).from_body(body)
        if not due(issuer):
            return body, None
        validity, refresh = crl_timing(issuer)
        state = next_crl(issuer.status, now(), validity, refresh, floor=floor())
        written = await patch_issuer_status(api, key, body, state.status_fields())
        return written, state

    return await retry_on_conflict(
        attempt, f"starting the next CRL of issuer {key.label}", lambda: read.get("body")
    )


# --------------------------------------------------------------------------- the archive


class ArchiveFull(Exception):
    """A shard cannot take more entries within the ConfigMap size limit."""


def shard_name(key: IssuerKey, store: str, index: int) -> str:
    """``<issuer>-revoked-NN`` / ``<issuer>-issued-NN``; a ClusterIssuer's add ``cluster-``."""
    kind = "revoked" if store == REVOKED_SHARD_KEY else "issued"
    return object_name(key.name, f"cluster-{kind}" if key.cluster else kind, f"{index:02d}")


@dataclass(frozen=True)
class Shard:
    """One shard as read: its entries' text ("" when absent or left by an earlier issuer)."""

    name: str
    text: str
    resource_version: str | None
    """None when the ConfigMap does not exist."""


class ShardUnreadable(ValueError):
    """A shard ConfigMap whose content does not parse: edited by hand, or damaged.

    Never rewritten by the operator (that would lose what it still holds):
    revocations wait and the CRL is not published until it is repaired or
    deleted, since a CRL without its entries would un-revoke certificates.
    """

    def __init__(self, shard: Shard, error: ValueError) -> None:
        super().__init__(f"ConfigMap {shard.name} cannot be read: {error}")
        self.shard = shard


REASON_STORE_UNREADABLE = "RevocationStoreUnreadable"


async def report_unreadable(
    api: Any, issuer_body: Mapping[str, Any], error: ShardUnreadable, consequence: str
) -> None:
    """A Warning Event on the issuer naming the ConfigMap, once per version of it, and an error log."""
    shard = error.shard
    posted = await post_event(
        api,
        issuer_body,
        event_type=WARNING,
        reason=REASON_STORE_UNREADABLE,
        message=f"{error}; {consequence}",
        name=event_name(
            str((issuer_body.get("metadata") or {}).get("name")),
            f"unreadable-{shard.name}-{shard.resource_version}",
        ),
    )
    if posted:
        logger.error("%s; %s", error, consequence, extra=object_extra(issuer_body))


def revoked_in(shard: Shard) -> dict[str, ArchivedEntry]:
    """The archived revocations a shard holds; :class:`ShardUnreadable` when it does not parse."""
    try:
        return decode_revoked(shard.text)
    except ValueError as error:
        raise ShardUnreadable(shard, error) from None


def issued_in(shard: Shard) -> dict[str, datetime]:
    """The issued serials a shard holds; :class:`ShardUnreadable` when it does not parse."""
    try:
        return decode_issued(shard.text)
    except ValueError as error:
        raise ShardUnreadable(shard, error) from None


def _owner_uid(configmap: Any) -> str | None:
    for owner in getattr(configmap.metadata, "owner_references", None) or []:
        if owner.kind in (Issuer.KIND, ClusterIssuer.KIND):
            return str(owner.uid)
    return None


async def read_shard(
    api: Any, settings: Settings, key: IssuerKey, store: str, index: int, issuer_body: Mapping[str, Any]
) -> Shard:
    """Shard ``index`` of ``store`` (:data:`REVOKED_SHARD_KEY` or :data:`ISSUED_SHARD_KEY`)."""
    name = shard_name(key, store, index)
    try:
        configmap = await _core(api).read_namespaced_config_map(name, pki_namespace(key, settings))
    except ApiException as error:
        if error.status == 404:
            return Shard(name, "", None)
        raise
    uid = (issuer_body.get("metadata") or {}).get("uid")
    owner = _owner_uid(configmap)
    if uid and owner and owner != uid:
        return Shard(name, "", configmap.metadata.resource_version)
    return Shard(name, (configmap.data or {}).get(store, ""), configmap.metadata.resource_version)


async def read_store(
    api: Any, settings: Settings, key: IssuerKey, store: str, issuer_body: Mapping[str, Any]
) -> list[Shard]:
    """Every shard of ``store``, read one after the other (a GET each: no list permission needed)."""
    return [await read_shard(api, settings, key, store, index, issuer_body) for index in range(SHARD_COUNT)]


async def read_archive(
    api: Any, settings: Settings, key: IssuerKey, issuer_body: Mapping[str, Any]
) -> dict[str, ArchivedEntry]:
    """Every archived revocation of the issuer, by serial."""
    entries: dict[str, ArchivedEntry] = {}
    for shard in await read_store(api, settings, key, REVOKED_SHARD_KEY, issuer_body):
        entries.update(revoked_in(shard))
    return entries


async def read_issued(
    api: Any, settings: Settings, key: IssuerKey, issuer_body: Mapping[str, Any]
) -> tuple[dict[str, datetime], list[ShardUnreadable]]:
    """Every issued serial of the issuer still recorded, with its notAfter, and the shards that do not parse.

    An unreadable shard is passed over: its serials answer "unknown" over OCSP
    (after a restart) until it is repaired, while the others still answer.
    """
    serials: dict[str, datetime] = {}
    unreadable: list[ShardUnreadable] = []
    for shard in await read_store(api, settings, key, ISSUED_SHARD_KEY, issuer_body):
        try:
            serials.update(issued_in(shard))
        except ShardUnreadable as error:
            unreadable.append(error)
    return serials, unreadable


async def lookup_revoked(
    api: Any, settings: Settings, key: IssuerKey, issuer_body: Mapping[str, Any], serials: Iterable[str]
) -> list[ListEntry]:
    """The list entries (journal or archive) of ``serials``, reading only the shards they hash to."""
    wanted = set()
    for serial in serials:
        try:
            wanted.add(normalize_serial(serial))
        except ValueError:
            continue
    status = issuer_class(key).from_body(dict(issuer_body)).status
    found: dict[str, ListEntry] = {
        e.serial_number: e for e in status.revoked_certificates if e.serial_number in wanted
    }
    for index in sorted({shard_index(serial) for serial in wanted - found.keys()}):
        shard = await read_shard(api, settings, key, REVOKED_SHARD_KEY, index, issuer_body)
        for serial, entry in revoked_in(shard).items():
            if serial in wanted:
                found.setdefault(serial, entry)
    return list(found.values())


async def write_shard(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    store: str,
    shard: Shard,
    text: str,
    issuer_body: Mapping[str, Any],
) -> str | None:
    """Replace (or create) ``shard`` with ``text``, guarded by the resourceVersion it was read at.

    Returns the resourceVersion the API server gave the ConfigMap.
    """
    if len(text.encode("ascii")) > MAX_SHARD_BYTES:
        raise ArchiveFull(
            f"ConfigMap {shard.name} would exceed {MAX_SHARD_BYTES} bytes: the issuer {key.label} "
            "holds as many unexpired serials as its shards take"
        )
    metadata: dict[str, Any] = {
        "name": shard.name,
        "namespace": pki_namespace(key, settings),
        "labels": {
            "app.kubernetes.io/managed-by": "certctl-operator",
            ANNOTATION_ISSUER_NAME: key.name[:63],
            ANNOTATION_ISSUER_KIND: key.kind.value,
        },
    }
    issuer_metadata = issuer_body.get("metadata") or {}
    if issuer_metadata.get("uid"):
        metadata["ownerReferences"] = [
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": issuer_body.get("kind") or (ClusterIssuer.KIND if key.cluster else Issuer.KIND),
                "name": issuer_metadata.get("name"),
                "uid": issuer_metadata["uid"],
            }
        ]
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {store: text}}
    if shard.resource_version is None:
        stored = await _core(api).create_namespaced_config_map(metadata["namespace"], body)
    else:
        metadata["resourceVersion"] = shard.resource_version
        stored = await _core(api).replace_namespaced_config_map(shard.name, metadata["namespace"], body)
    version = getattr(getattr(stored, "metadata", None), "resource_version", None)
    return str(version) if version else None


async def archive_journal(
    api: Any, settings: Settings, key: IssuerKey
) -> tuple[list[RevokedCertificate], int] | None:
    """Move the journal to the archive (write 3 of the module notes).

    Returns (the entries moved, the new generation), or None when the issuer
    is gone or its journal was empty.
    """
    read: dict[str, Any] = {}

    async def attempt() -> tuple[list[RevokedCertificate], int] | None:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            return None
        issuer = issuer_class(key).from_body(body)
        journal = list(issuer.status.revoked_certificates)
        if not journal:
            return None
        _, grace = crl_timing(issuer)
        by_shard: dict[int, list[RevokedCertificate]] = {}
        for entry in journal:
            by_shard.setdefault(shard_index(entry.serial_number), []).append(entry)
        for index, moving in sorted(by_shard.items()):
            shard = await read_shard(api, settings, key, REVOKED_SHARD_KEY, index, body)
            before = revoked_in(shard)
            after = merge_revoked(before, moving, issuer.status.crl_this_update, grace)
            if after.keys() != before.keys():
                await write_shard(
                    api, settings, key, REVOKED_SHARD_KEY, shard, encode_revoked(after.values()), body
                )
        generation = (issuer.status.revocation_archive_generation or 0) + 1
        await patch_issuer_status(
            api, key, body, {"revokedCertificates": [], "revocationArchiveGeneration": generation}
        )
        logger.info(
            "moved %d revocations of issuer %s to its revocation-list ConfigMaps (generation %d)",
            len(journal),
            key.label,
            generation,
            extra=object_extra(body),
        )
        return journal, generation

    return await retry_on_conflict(
        attempt, f"archiving the revocations of issuer {key.label}", lambda: read.get("body")
    )


async def prune_archive(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    serials: Iterable[str],
    crl_this_update: datetime,
    grace: timedelta,
) -> list[str]:
    """Delete from the archive those of ``serials`` no CRL lists any more (write 4 of the module notes).

    Reads each shard the serials hash to and drops every entry that the CRL
    issued at ``crl_this_update`` (one already published) and every later
    one leave out. Returns the serials deleted.
    """
    read: dict[str, Any] = {}
    shards = sorted({shard_index(serial) for serial in serials})

    async def attempt() -> list[str]:
        body = read["body"] = await get_issuer(api, key)
        if body is None:
            return []
        deleted: list[str] = []
        for index in shards:
            shard = await read_shard(api, settings, key, REVOKED_SHARD_KEY, index, body)
            before = revoked_in(shard)
            after = merge_revoked(before, (), crl_this_update, grace)
            if after.keys() != before.keys():
                await write_shard(
                    api, settings, key, REVOKED_SHARD_KEY, shard, encode_revoked(after.values()), body
                )
                deleted.extend(before.keys() - after.keys())
        if deleted:
            logger.info(
                "deleted %d expired revocations of issuer %s from its revocation-list ConfigMaps",
                len(deleted),
                key.label,
                extra=object_extra(body),
            )
        return deleted

    return await retry_on_conflict(
        attempt, f"pruning the revocations of issuer {key.label}", lambda: read.get("body")
    )


async def record_issued(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    serial: str,
    not_after: datetime,
    now: Callable[[], datetime],
    *,
    linger: float = 0.0,
    issuer_body: Mapping[str, Any] | None = None,
) -> bool:
    """Add ``serial`` to the issuer's issued-serials shards; True when it was written now.

    Returns once the serial is stored. The serials of one issuer that wait
    meanwhile are stored together, in one guarded replace of one shard (which
    also drops expired serials from it): while one write is under way, the
    serials that arrive wait for the next, so a burst of issuances costs a
    write per batch rather than per serial. Repeating a serial changes
    nothing. Issuers without a CA key pair (selfSigned) have no OCSP
    responder and record nothing.

    ``linger``: seconds the first serial of a batch waits for others before
    the write, for a caller that has something slower to wait for meanwhile
    (an RSA key from the key pool); serials that arrive one by one then share
    writes too.

    ``issuer_body``: the issuer as the caller last saw it (its watch), read
    instead when not given. Shards this process wrote are not read again
    before its next write to them either (:class:`WrittenShards`); a write
    that conflicts reads both afresh.
    """
    recorder = _issued_recorders.setdefault(api, {}).setdefault(key, _IssuedRecorder())
    return await recorder.record(
        api, settings, key, normalize_serial(serial), not_after, now, linger, issuer_body
    )


@dataclass
class _IssuedBatch:
    serials: dict[str, datetime] = field(default_factory=dict)
    closed: bool = False
    write_after: float | None = None
    """Event-loop time before which the batch is not written (its first serial lingers), if any."""
    written: set[str] | None = None
    """The serials this batch added (some may have been stored already); None until it was written."""
    error: BaseException | None = None


@dataclass
class WrittenShards:
    """The issued-serials shards of one issuer as this process last wrote them, by index.

    The next batch for a shard starts from what was written rather than
    reading it back: the write is guarded by that resourceVersion, so a shard
    someone else changed meanwhile (another replica, a hand edit) or deleted
    fails the write, and the batch is tried again from a fresh read. Kept for
    one issuer uid: a recreated issuer starts over.
    """

    issuer_uid: str | None = None
    shards: dict[int, Shard] = field(default_factory=dict)

    def for_issuer(self, uid: str | None) -> dict[int, Shard]:
        if uid != self.issuer_uid:
            self.issuer_uid, self.shards = uid, {}
        return self.shards


@dataclass
class _IssuedRecorder:
    """One issuer's issued serials waiting to be stored: the open batch, and the one write at a time."""

    open: _IssuedBatch = field(default_factory=_IssuedBatch)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    written: WrittenShards = field(default_factory=WrittenShards)

    async def record(
        self,
        api: Any,
        settings: Settings,
        key: IssuerKey,
        serial: str,
        not_after: datetime,
        now: Callable[[], datetime],
        linger: float = 0.0,
        issuer_body: Mapping[str, Any] | None = None,
    ) -> bool:
        batch = self.open
        batch.serials[serial] = not_after
        loop = asyncio.get_running_loop()
        if linger > 0 and batch.write_after is None and len(batch.serials) == 1:
            batch.write_after = loop.time() + linger
        if batch.write_after is not None:
            # A group commit: the batch is written once its first serial's linger is over, with
            # every serial that joined meanwhile (they wait too, or the next would write at once).
            await asyncio.sleep(max(0.0, batch.write_after - loop.time()))
        # The lock serves waiters in order: the first of a batch to get it writes the whole batch,
        # the others of that batch find it written. One cut short (cancelled) leaves it to the next.
        async with self.lock:
            if batch.written is None and batch.error is None:
                if not batch.closed:
                    batch.closed = True
                    self.open = _IssuedBatch()
                try:
                    batch.written = await _store_issued(
                        api, settings, key, batch.serials, now, written=self.written, issuer_body=issuer_body
                    )
                except Exception as error:
                    # Every serial of the batch failed with it: each caller sees the error.
                    batch.error = error
        if batch.error is not None:
            raise batch.error
        return serial in (batch.written or ())


_issued_recorders: weakref.WeakKeyDictionary[Any, dict[IssuerKey, _IssuedRecorder]] = (
    weakref.WeakKeyDictionary()
)
"""The recorders of each API client (one per operator process)."""


async def _store_issued(
    api: Any,
    settings: Settings,
    key: IssuerKey,
    serials: Mapping[str, datetime],
    now: Callable[[], datetime],
    *,
    written: WrittenShards | None = None,
    issuer_body: Mapping[str, Any] | None = None,
) -> set[str]:
    """Store ``serials`` in one shard; returns those it added. Raises ArchiveFull when no shard has room.

    The shard is the one the smallest serial hashes to, so the same batch
    tried again goes to the same shard, and batches spread over all shards;
    a full one passes the batch on to the next. ``written`` and
    ``issuer_body`` spare the reads of the first try (see :func:`record_issued`).
    """
    read: dict[str, Any] = {}
    first = shard_index(min(serials))
    written = written if written is not None else WrittenShards()
    tries = 0

    async def attempt() -> set[str]:
        nonlocal tries
        tries += 1
        # A try after a conflict reads everything again: what it knew was overtaken.
        fresh = tries > 1
        body = read["body"] = (
            issuer_body if issuer_body is not None and not fresh else await get_issuer(api, key)
        )
        if body is None or not (body.get("spec") or {}).get("ca"):
            return set()
        known = written.for_issuer((body.get("metadata") or {}).get("uid"))
        for offset in range(SHARD_COUNT):
            index = (first + offset) % SHARD_COUNT
            shard = None if fresh else known.pop(index, None)
            if shard is None:
                shard = await read_shard(api, settings, key, ISSUED_SHARD_KEY, index, body)
            try:
                before = issued_in(shard)
            except ShardUnreadable as error:
                # Left as it is for someone to look at; the serials go to the next shard.
                logger.warning("%s; recording issued serials elsewhere", error, extra=object_extra(body))
                if offset == SHARD_COUNT - 1:
                    raise ArchiveFull(f"no issued-serials ConfigMap can take more: {error}") from None
                continue
            added = {serial: expiry for serial, expiry in serials.items() if serial not in before}
            if not added:
                known[index] = shard
                return set()
            text = encode_issued(merge_issued(before, added, now()))
            try:
                version = await write_shard(api, settings, key, ISSUED_SHARD_KEY, shard, text, body)
            except ArchiveFull:
                if offset == SHARD_COUNT - 1:
                    raise
                continue
            except ApiException as error:
                if error.status == 404 and not fresh:
                    # Deleted since this process wrote it: a conflict like any other.
                    raise ApiException(status=409, reason="shard deleted since it was written") from error
                raise
            if version is not None:
                known[index] = Shard(shard.name, text, version)
            return set(added)
        return set()

    return await retry_on_conflict(
        attempt, f"recording issued serials of issuer {key.label}", lambda: read.get("body")
    )


class IssuerGone(Exception):
    """The issuer was deleted while a revocation was being recorded."""


# --------------------------------------------------------------------------- certificates


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
        body = read["body"] = await get_object(api, ManagedCertificate.PLURAL, namespace=namespace, name=name)
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
        return await patch_status(
            api,
            ManagedCertificate.PLURAL,
            namespace=namespace,
            name=name,
            status=patch,
            resource_version=body["metadata"]["resourceVersion"],
        )

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
    body = await get_object(api, ManagedCertificate.PLURAL, namespace=namespace, name=name)
    if body is None:
        return False
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_RENEW) == value:
        return False
    current = (body.get("status") or {}).get("serialNumber")
    if not (current and _same_serial(current, wanted)):
        secret_name = (body.get("spec") or {}).get("secretName")
        secret = await read_secret(api, namespace=namespace, name=secret_name) if secret_name else None
        in_secret = secret.annotations.get(ANNOTATION_SERIAL_NUMBER) if secret is not None else None
        if not (in_secret and _same_serial(in_secret, wanted)):
            return False
    await patch_metadata(
        api,
        ManagedCertificate.PLURAL,
        namespace=namespace,
        name=name,
        metadata={"annotations": {ANNOTATION_RENEW: value}},
    )
    return True


def issuer_kind_of(value: str | None) -> IssuerKind:
    return IssuerKind.CLUSTER_ISSUER if value == IssuerKind.CLUSTER_ISSUER.value else IssuerKind.ISSUER
