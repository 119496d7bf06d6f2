"""The issuance runtime: state shared by the certificate and issuer controllers, and their one work queue.

It holds the object keys, the watched bodies and indexes both controllers
read, the ``reconciler`` registry the queue dispatches to, and the start-up
and clean-up of the queue.

Kopf's ``@kopf.on.event`` handlers for Issuers and ClusterIssuers, and the
plain list-then-watches of ManagedCertificates and of the operator's own
Secrets (:mod:`certctl_operator.kube.list_watch`: no per-object machinery for
ten thousand of each), only put keys on a
:class:`~certctl_operator.workqueue.WorkQueue`; the reconcilers read fresh
objects and do the work. Each reconcile ends by scheduling its object's next
action (renewal, retry after a failure, an expiry notice, a CA re-check) from
its status, so:

* there is no task per object: ten thousand healthy certificates are ten
  thousand heap entries and one sleeping scheduler task;
* nothing that matters lives only in memory: after a restart, the watches'
  initial listings reconcile every object once and the schedule is rebuilt
  from the status subresources;
* an object is never reconciled by two workers at once.

The in-memory maps below are indexes and caches rebuilt from watch events;
losing them costs reads, never correctness. Reconciles start from the bodies
the watches delivered (certificates, issuers, the operator's own Secrets)
rather than reading each object again: every write carries the
resourceVersion it was computed from, so one computed from a body that was
behind fails with 409 Conflict, and the next reconcile of that object reads
afresh (as does any reconcile after a failure). The CA verdict of an issuer
whose CA Secret is watched holds until that watch reports a change.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import kopf
from pydantic import ValidationError

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import ClusterIssuer, Issuer, IssuerKind, IssuerReference, IssuerSpec
from certctl_operator.api.metadata_keys import (
    LABEL_MANAGED_BY_CERTIFICATE,
)
from certctl_operator.context import OperatorContext
from certctl_operator.kube.compact import KeptBody
from certctl_operator.kube.list_watch import ListWatch
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.secret_watch import secret_watcher
from certctl_operator.kube.secrets import StoredSecret, read_secret
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.issuance import (
    IssuerView,
    Reason,
    spec_error_message,
)
from certctl_operator.policy.issuers import IssuerCheck, SecretSnapshot, ca_secret_namespace, evaluate_issuer
from certctl_operator.workqueue import WorkQueue

logger = logging.getLogger("certctl.issuance")

T = TypeVar("T")

CERTIFICATE = "ManagedCertificate"
ISSUER = IssuerKind.ISSUER.value
CLUSTER_ISSUER = IssuerKind.CLUSTER_ISSUER.value
PLURALS = {CERTIFICATE: "managedcertificates", ISSUER: "issuers", CLUSTER_ISSUER: "clusterissuers"}


class Key(NamedTuple):
    """One object the reconcilers handle; ``namespace`` is empty for a ClusterIssuer."""

    kind: str
    namespace: str
    name: str

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]

    def ref(self, uid: str | None = None) -> dict[str, str | None]:
        """Identifies the object in log records, like :func:`certctl_operator.logs.object_ref`."""
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": self.kind,
            "name": self.name,
            "uid": uid,
            "namespace": self.namespace or None,
        }

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def issuer_key(ref: IssuerReference, namespace: str) -> Key:
    # Interned: every certificate of an issuer keeps its key, and ten thousand copies of its name add up.
    if ref.kind is IssuerKind.CLUSTER_ISSUER:
        return Key(CLUSTER_ISSUER, "", sys.intern(ref.name))
    return Key(ISSUER, sys.intern(namespace), sys.intern(ref.name))


def key_of(body: Any) -> Key:
    metadata = body.get("metadata") or {}
    return Key(str(body.get("kind")), str(metadata.get("namespace") or ""), str(metadata.get("name")))


@dataclass
class CachedCheck:
    """An issuer verdict, valid while the CA Secret keeps its resourceVersion and time allows."""

    secret_name: str | None
    resource_version: str | None
    check: IssuerCheck
    ca_generation: int = 0
    """How many changes the watch of the CA Secret had reported when the Secret was read."""

    def still_valid(self, secret_name: str | None, resource_version: str | None, now: datetime) -> bool:
        if (secret_name, resource_version) != (self.secret_name, self.resource_version):
            return False
        authority = self.check.authority
        if authority is not None:
            return authority.not_before <= now < authority.not_after
        return self.check.reason != "NotYetValid"


Reconciler = Callable[["IssuanceRuntime", Key], Awaitable[None]]
RECONCILERS: dict[str, Reconciler] = {}


def reconciler(*kinds: str) -> Callable[[Reconciler], Reconciler]:
    """Register the reconcile function of ``kinds``."""

    def register(function: Reconciler) -> Reconciler:
        for kind in kinds:
            RECONCILERS[kind] = function
        return function

    return register


@dataclass
class IssuanceRuntime:
    context: OperatorContext
    queue: WorkQueue[Key] = field(init=False)
    # certificate -> its issuer, and the reverse index.
    issuer_of: dict[Key, Key] = field(default_factory=dict)
    certificates_by_issuer: dict[Key, set[Key]] = field(default_factory=dict)
    # certificate -> the Secret (namespace, name) its spec names, and the reverse index: the
    # certificates sharing a secretName, woken when one of them lets go of it.
    secret_of_certificate: dict[Key, tuple[str, str]] = field(default_factory=dict)
    certificates_by_secret: dict[tuple[str, str], set[Key]] = field(default_factory=dict)
    # issuer -> its CA Secret (namespace, name), and the reverse index.
    secret_of_issuer: dict[Key, tuple[str, str]] = field(default_factory=dict)
    issuers_by_secret: dict[tuple[str, str], set[Key]] = field(default_factory=dict)
    issuer_bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    issuer_checks: dict[Key, CachedCheck] = field(default_factory=dict)
    # What each issuer looked like at its last reconcile; a change wakes its certificates.
    issuer_states: dict[Key, tuple[object, ...]] = field(default_factory=dict)
    # resourceVersions this operator wrote itself: their watch events need no reconcile.
    own_writes: dict[Key, str] = field(default_factory=dict)
    own_secret_writes: dict[tuple[str, str], str] = field(default_factory=dict)
    # Watch events that came while their certificate was being reconciled, judged when it ends
    # (see wake): each tells whether its event was of one of the operator's own writes.
    undecided_events: dict[Key, list[Callable[[], bool]]] = field(default_factory=dict)
    # Per-certificate metric records (CertificateSeries), read when Prometheus scrapes.
    certificate_metrics: dict[Key, Any] = field(default_factory=dict)
    # uid of each object, from watch events and reads: log records name the object by it.
    uids: dict[Key, str] = field(default_factory=dict)
    # The latest body of each certificate: its watch events and this operator's writes, as compact
    # JSON text (see KeptBody) without metadata.managedFields.
    certificate_bodies: dict[Key, KeptBody] = field(default_factory=dict)
    # The operator's own Secrets (those their watch selects by label) as last seen or written.
    secrets: dict[tuple[str, str], StoredSecret] = field(default_factory=dict)
    # The list-then-watches that keep ``secrets`` and feed ``certificate_bodies`` and the queue
    # (controllers/certificates/watch.py starts them).
    secret_watch: ListWatch | None = None
    certificate_watch: ListWatch | None = None
    # Certificates whose next reconcile reads the certificate and its Secret from the API server.
    read_afresh: set[Key] = field(default_factory=set)
    # Changes the watch of each issuer's CA Secret reported (see CachedCheck.ca_generation).
    ca_generations: dict[Key, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings = self.context.settings
        self.queue = WorkQueue(
            self._process,
            workers=settings.reconcile_workers,
            name="issuance",
            max_sleep=settings.renewal_check_interval,
            log_extra=self.log_extra,
        )

    @property
    def api(self) -> Any:
        return self.context.api

    @property
    def secrets_listed(self) -> bool:
        """Whether ``secrets`` holds every Secret of the operator: from then on a Secret it lacks is
        absent or not the operator's, and is created without being read first (see secret())."""
        return self.secret_watch is not None and self.secret_watch.listed

    @property
    def settings(self) -> Any:
        return self.context.settings

    @staticmethod
    def now() -> datetime:
        return utc_now()

    async def off_loop(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run CPU-bound crypto (parsing keys, signing) on the crypto pool, not on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.context.crypto_pool, functools.partial(function, *args, **kwargs)
        )

    async def _process(self, key: Key) -> None:
        function = RECONCILERS.get(key.kind)
        if function is None:
            logger.error("no reconciler for %s", key.kind)
            return
        try:
            await function(self, key)
        finally:
            undecided = self.undecided_events.pop(key, None)
            if undecided and not all(own_write() for own_write in undecided):
                # Still being processed: the queue processes it again right after.
                self.queue.add(key)

    def wake(self, key: Key, own_write: Callable[[], bool]) -> None:
        """Reconcile ``key`` for a watch event unless ``own_write()`` says it was the operator's own write.

        The watch often brings the event of a write before the write's own answer is in, so an
        event that comes while ``key`` is being reconciled is judged when that reconcile ends:
        an issuance's own Secret and status then cost no second reconcile.
        """
        if self.queue.processing(key):
            self.undecided_events.setdefault(key, []).append(own_write)
        elif not own_write():
            self.queue.add(key)

    # ------------------------------------------------------------------ indexes

    def track_certificate(self, key: Key, issuer: Key | None) -> None:
        previous = self.issuer_of.get(key)
        if previous == issuer:
            return
        if previous is not None:
            self.certificates_by_issuer.get(previous, set()).discard(key)
        if issuer is None:
            self.issuer_of.pop(key, None)
        else:
            self.issuer_of[key] = issuer
            self.certificates_by_issuer.setdefault(issuer, set()).add(key)

    def track_secret_claim(self, key: Key, secret: tuple[str, str] | None) -> set[Key]:
        """Record the Secret certificate ``key`` names; returns the others that named the one it left."""
        previous = self.secret_of_certificate.get(key)
        if previous == secret:
            return set()
        left: set[Key] = set()
        if previous is not None:
            claimants = self.certificates_by_secret.get(previous, set())
            claimants.discard(key)
            left = set(claimants)
            if not claimants:
                self.certificates_by_secret.pop(previous, None)
        if secret is None:
            self.secret_of_certificate.pop(key, None)
        else:
            self.secret_of_certificate[key] = secret
            self.certificates_by_secret.setdefault(secret, set()).add(key)
        return left

    def track_issuer(self, key: Key, secret: tuple[str, str] | None) -> None:
        previous = self.secret_of_issuer.get(key)
        if previous == secret:
            return
        if previous is not None:
            self.issuers_by_secret.get(previous, set()).discard(key)
        if secret is None:
            self.secret_of_issuer.pop(key, None)
        else:
            self.secret_of_issuer[key] = secret
            self.issuers_by_secret.setdefault(secret, set()).add(key)

    def wake_certificates(self, issuer: Key) -> int:
        """Reconcile every certificate that names ``issuer``."""
        keys = list(self.certificates_by_issuer.get(issuer, ()))
        for key in keys:
            self.queue.add(key)
        return len(keys)

    def forget(self, key: Key) -> None:
        self.queue.forget(key)
        self.own_writes.pop(key, None)
        self.uids.pop(key, None)
        self.certificate_bodies.pop(key, None)
        self.read_afresh.discard(key)

    # ------------------------------------------------------------------ watched bodies

    # A read or a write answered after a watch event of the same object may be older than that
    # event: what either returns replaces only the entry it started from, never a newer one.

    async def certificate_body(self, key: Key, *, fresh: bool) -> dict[str, Any] | None:
        """The certificate as last seen, or read now when ``fresh`` or not seen yet; None when gone.

        The body returned is the caller's own (parsed for it).
        """
        known = self.certificate_bodies.get(key)
        if known is not None and not fresh:
            return known.body()
        body = await get_object(self.api, key.plural, namespace=key.namespace or None, name=key.name)
        if body is not None:
            self.certificate_written(key, None if known is None else {"metadata": known.metadata}, body)
        return body

    def certificate_written(
        self, key: Key, before: Mapping[str, Any] | None, after: Mapping[str, Any]
    ) -> None:
        """``after`` (read or written) replaces the body it started from, or an older one seen meanwhile.

        ``before`` is that body, None when nothing was kept for the certificate.
        """
        kept = self.certificate_bodies.get(key)
        after_metadata = after.get("metadata")
        if kept is None:
            # Nothing kept: none was when this started, or the certificate went meanwhile.
            replace = before is None
        else:
            started_from = None if before is None else before.get("metadata")
            replace = not_newer_than(kept.metadata, started_from) or older_than(kept.metadata, after_metadata)
        if replace:
            self.certificate_bodies[key] = KeptBody.of(after)

    def certificate_seen(self, key: Key, body: KeptBody) -> None:
        """A certificate's watch event: its body is kept unless the body kept is as new or newer.

        The event of the very version a reconcile read afresh (or that a write answered) often comes
        after that answer: it must not take the place of the body the reconcile holds, or the answer
        to the reconcile's next write would not be kept (:meth:`certificate_written`) and the reconcile
        after it would start from this event's older status.
        """
        kept = self.certificate_bodies.get(key)
        if kept is None or not not_newer_than(body.metadata, kept.metadata):
            self.certificate_bodies[key] = body

    def secret_seen(self, location: tuple[str, str], secret: StoredSecret | None) -> None:
        """A watch event of one of the operator's Secrets (None: deleted, or not ours now)."""
        if secret is None:
            self.secrets.pop(location, None)
            return
        kept = self.secrets.get(location)
        if kept is None or not not_newer_than(_secret_meta(secret), _secret_meta(kept)):
            self.secrets[location] = secret

    def secret_written(
        self, location: tuple[str, str], before: SecretSnapshot | None, after: StoredSecret
    ) -> None:
        """``after`` (read or written) replaces ``before``, or an older watch event that came in meanwhile."""
        kept = self.secrets.get(location)
        if kept is before or (kept is not None and older_than(_secret_meta(kept), _secret_meta(after))):
            if LABEL_MANAGED_BY_CERTIFICATE in after.labels:
                self.secrets[location] = after
            else:
                self.secrets.pop(location, None)

    async def secret(self, namespace: str, name: str, *, fresh: bool) -> StoredSecret | None:
        """The Secret as last seen when it is one of the operator's, else (or when ``fresh``) read now.

        Once the operator's Secrets were listed, one not among them is taken as absent without a
        read: it is then created, and a Secret that is there after all (not the operator's, or
        created since) fails that create with 409, after which the certificate is reconciled
        again with ``fresh`` reads. A new certificate costs no read of its Secret.
        """
        location = (namespace, name)
        known = self.secrets.get(location)
        if not fresh and (known is not None or self.secrets_listed):
            return known
        secret = await read_secret(self.api, namespace=namespace, name=name)
        if secret is None:
            if self.secrets.get(location) is known:
                self.secrets.pop(location, None)
        else:
            self.secret_written(location, known, secret)
        return secret

    def remember_uid(self, key: Key, body: Any) -> None:
        uid = (body.get("metadata") or {}).get("uid")
        if uid:
            self.uids[key] = str(uid)

    def log_extra(self, key: Key) -> dict[str, Any]:
        """``extra=`` for a log record about ``key``: its reference, with its uid when known."""
        return {"k8s_ref": key.ref(self.uids.get(key))}

    # ------------------------------------------------------------------ issuers

    def ca_secret_location(self, key: Key, spec: IssuerSpec) -> tuple[str, str] | None:
        if spec.ca is None:
            return None
        kind = IssuerKind(key.kind)
        namespace = ca_secret_namespace(kind, key.namespace, self.settings.operator_namespace)
        return namespace, spec.ca.secret_name

    def ca_secret_changed(self, key: Key) -> None:
        """The watch of the issuer's CA Secret saw it (first look) or a change of it."""
        self.ca_generations[key] = self.ca_generations.get(key, 0) + 1

    async def issuer_check(
        self, key: Key, spec: IssuerSpec, *, fresh: bool, trust_watch: bool = True
    ) -> IssuerCheck:
        """Whether the issuer can sign.

        ``fresh``: as the CA Secret is now: the cached verdict while the watch
        of that Secret has seen no change since it was read (``trust_watch``),
        else the Secret read again. Otherwise a cached verdict may do.
        """
        now = self.now()
        location = self.ca_secret_location(key, spec)
        if location is None:
            return evaluate_issuer(spec, None, now)
        cached = self.issuer_checks.get(key)
        generation = self.ca_generations.get(key, 0)
        if cached is not None and cached.secret_name == location[1]:
            authority = cached.check.authority
            in_time = authority is None or authority.not_before <= now < authority.not_after
            current = (
                trust_watch
                and cached.ca_generation == generation
                and location in secret_watcher(self.context).watched()
            )
            if in_time and (not fresh or current):
                return cached.check
        secret = await read_secret(self.api, namespace=location[0], name=location[1])
        version = secret.resource_version if secret else None
        if cached is not None and cached.still_valid(location[1], version, now):
            check = cached.check
        else:
            check = await self.off_loop(evaluate_issuer, spec, secret, now)
        self.issuer_checks[key] = CachedCheck(location[1], version, check, generation)
        return check

    async def issuer_body(self, key: Key) -> dict[str, Any] | None:
        """The issuer as its watch last delivered it (or its reconcile read it), else read now."""
        body = self.issuer_bodies.get(key)
        if body is None:
            body = await get_object(self.api, key.plural, namespace=key.namespace or None, name=key.name)
            if body is not None:
                # A watch event that came in meanwhile is at least as new as this read.
                body = self.issuer_bodies.setdefault(key, body)
        return body

    async def issuer_view(self, ref: IssuerReference, namespace: str, *, fresh: bool) -> IssuerView:
        """The issuer a certificate in ``namespace`` names, and whether it can sign."""
        key = issuer_key(ref, namespace)
        body = await self.issuer_body(key)
        where = f"{key.kind} {key.name}" + (f" in namespace {namespace}" if key.namespace else "")
        if body is None:
            return IssuerView(
                ref, None, IssuerCheck(False, Reason.ISSUER_NOT_FOUND, f"{where} does not exist")
            )
        model_class = ClusterIssuer if key.kind == CLUSTER_ISSUER else Issuer
        try:
            spec = model_class.from_body(body).spec
        except ValidationError as error:
            return IssuerView(
                # Without the input values pydantic would quote: the names and bounds say enough.
                ref,
                None,
                IssuerCheck(False, Reason.ISSUER_NOT_READY, f"{where} has an {spec_error_message(error)}"),
            )
        check = await self.issuer_check(key, spec, fresh=fresh)
        if not check.ready:
            check = IssuerCheck(False, Reason.ISSUER_NOT_READY, f"{where} cannot sign: {check.message}")
        return IssuerView(ref, spec, check)


def runtime(memo: Any) -> IssuanceRuntime:
    """The runtime kept in the operator context (created at start-up)."""
    context: OperatorContext = memo.context
    if context.issuance_runtime is None:
        context.issuance_runtime = IssuanceRuntime(context)
    return context.issuance_runtime


WATCH_HANDLERS = (
    "issuer_event",
    "cluster_issuer_event",
    # controllers/publishing/index.py: the OCSP responder's revocation lists of CA issuers.
    "pki-issuer-index",
)


class QuietWatchHandlers(logging.Filter):
    """Drops Kopf's "Handler ... succeeded." line for the watch handlers that only queue a key or index.

    They run on every watch event of every object (one line for each, at information level, was most
    of the operator's log in a burst of issuances); the reconciles log what they do.
    """

    MESSAGES = frozenset(f"Handler {name!r} succeeded." for name in WATCH_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.MESSAGES


@kopf.on.startup()
async def start_issuance(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    objects_logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietWatchHandlers) for f in objects_logger.filters):
        objects_logger.addFilter(QuietWatchHandlers())
    runtime(memo).queue.start()


@kopf.on.cleanup()
async def stop_issuance(memo: Any, **_: Any) -> None:
    found = memo.context.issuance_runtime
    if found is not None:
        await found.queue.stop()


def older_than(incoming: Mapping[str, Any] | None, kept: Mapping[str, Any] | None) -> bool:
    """Whether a watch event's ``metadata`` is of an older version of the object than the one ``kept``.

    A reconcile that reads afresh gets the object as stored now, while the
    watch may still be delivering events from before that read: such an event
    must not replace the newer body, or the next reconcile would act on an old
    spec (and, for a certificate, issue for it). resourceVersions are etcd
    revisions, compared as numbers when both are; a different uid (the object
    was deleted and created again) is never older.
    """
    if incoming is None or kept is None or incoming.get("uid") != kept.get("uid"):
        return False
    try:
        return int(str(incoming.get("resourceVersion"))) < int(str(kept.get("resourceVersion")))
    except ValueError:
        return False


def not_newer_than(incoming: Mapping[str, Any] | None, kept: Mapping[str, Any] | None) -> bool:
    """Whether ``incoming`` is the same version of the object as ``kept``, or an older one."""
    if incoming is None or kept is None or incoming.get("uid") != kept.get("uid"):
        return False
    return incoming.get("resourceVersion") == kept.get("resourceVersion") or older_than(incoming, kept)


def _secret_meta(secret: SecretSnapshot) -> dict[str, Any]:
    return {"uid": secret.uid, "resourceVersion": secret.resource_version}


__all__ = [
    "CERTIFICATE",
    "CLUSTER_ISSUER",
    "ISSUER",
    "IssuanceRuntime",
    "Key",
    "issuer_key",
    "key_of",
    "not_newer_than",
    "older_than",
    "reconciler",
    "runtime",
]
