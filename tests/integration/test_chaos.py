"""Chaos: issuance, renewal, notifications in back-off and revocations while the operator is SIGKILLed.

Certificates with short lifetimes are issued and renewed, NotificationEvents
go to a receiver that fails each idempotency key a scripted number of times
(some for ever, so they are dead-lettered), Revocations (with reissue) come
in, and the operator is SIGKILLed at moments drawn from a seeded RNG and
started again each time. At the end:

* every certificate is Ready with a Secret that matches its status, and no
  revision ever held two serials (a watch sees every Secret and status
  version during the run);
* every event is Sent or Dead as its script dictates; each event gets at
  most one request beyond its script per kill that struck while it was being
  sent, always under its one idempotency key;
* every revoked serial is on the CRL once, and CRL numbers only grew;
* no key, signing key or token appears in anything the operator produced.

Default sizes keep the run to a few minutes on a small machine; set
``CERTCTL_CHAOS_FULL=1`` for the sizes of the issue (200 certificates, 200
notifications, 20 revocations), and ``CERTCTL_CHAOS_SEED`` to replay a schedule.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import urllib3
from cryptography import x509
from kubernetes import client, watch
from tests.support.leak_scan import key_needles, leaks, operator_output, text_needles
from tests.support.pki_cluster import (
    GROUP,
    VERSION,
    certificate_body,
    create,
    crl_number,
    get,
    issuer_body,
    make_ca_secret,
    openssl,
    revocation_body,
    wait_for,
)
from tests.support.receivers import HTTPReceiver, RecordedRequest, ScriptedResponse

from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.policy.revocation import normalize_serial

FULL = os.environ.get("CERTCTL_CHAOS_FULL") == "1"
CERTIFICATES = 200 if FULL else 24
NOTIFICATIONS = 200 if FULL else 24
REVOCATIONS = 20 if FULL else 4
KILLS = 10
RUN_SECONDS = 90.0 if FULL else 45.0
"""The kills fall at random moments within this window after the work is created."""
MAX_ATTEMPTS = 5
FAILURES_BY_INDEX = (0, 1, 2, 3, None)
"""Scripted failures of event ``i``: ``FAILURES_BY_INDEX[i % 5]``; None fails every attempt (Dead)."""
ENV = {
    "CERTCTL_NOTIFICATION_RETRY_BASE": "1s",
    "CERTCTL_NOTIFICATION_RETRY_CAP": "4s",
    "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "CERTCTL_RENEWAL_CHECK_INTERVAL": "1s",
    "CERTCTL_RECONCILE_WORKERS": "8",
}
PHASE_DONE = ("Sent", "Dead")
RECEIVER_LAG_S = 1.0
"""How much later than it was sent the receiver may record a request: its thread shares the test
process with the kill loop, so a request sent just before a kill can be recorded after the
moment the kill was taken at (seen once in CI: a repeat with its first arrival after the kill
that caused it)."""


def scripted_failures(index: int) -> int | None:
    return FAILURES_BY_INDEX[index % len(FAILURES_BY_INDEX)]


class ScriptedReceiver(HTTPReceiver):
    """Fails the first ``scripted_failures(i)`` requests of each key of event ``chaos-evt-<i>``, then 200."""

    def __init__(self) -> None:
        super().__init__(default=ScriptedResponse(status=200))
        self.by_event: dict[str, list[str]] = defaultdict(list)
        """Event name -> the idempotency key of each request about it, in order."""
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        """Event name -> when each request about it arrived (monotonic clock), in order."""

    def _record(self, request: RecordedRequest) -> ScriptedResponse:
        super()._record(request)
        name = str(request.json()["subject"])
        key = request.header("Idempotency-Key") or ""
        with self._condition:
            self.by_event[name].append(key)
            self.arrivals[name].append(time.monotonic())
            count = sum(1 for seen in self.by_event[name] if seen == key)
        failures = scripted_failures(int(name.rsplit("-", 1)[1]))
        if failures is None or count <= failures:
            return ScriptedResponse(status=503, body=b"scripted failure")
        return ScriptedResponse(status=200, body=b"ok")


@dataclass
class Recorder:
    """Every Secret and ManagedCertificate version of the namespace, from a watch that resumes."""

    kube: Any
    namespace: str

    def __post_init__(self) -> None:
        self.secret_serials: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.status_serials: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.keys: set[str] = set()
        self.crl_numbers: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        core = client.CoreV1Api(self.kube)
        objects = client.CustomObjectsApi(self.kube)
        listed = core.list_namespaced_secret(self.namespace)
        for secret in listed.items:
            self._secret(secret)
        self._follow(
            core.list_namespaced_secret, listed.metadata.resource_version, self._secret, (self.namespace,)
        )
        certs = objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "managedcertificates")
        self._follow(
            objects.list_namespaced_custom_object,
            certs["metadata"]["resourceVersion"],
            self._cert,
            (GROUP, VERSION, self.namespace, "managedcertificates"),
        )
        issuers = objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "issuers")
        self._follow(
            objects.list_namespaced_custom_object,
            issuers["metadata"]["resourceVersion"],
            self._issuer,
            (GROUP, VERSION, self.namespace, "issuers"),
        )

    def _follow(self, lister: Any, version: str, record: Any, args: tuple[Any, ...]) -> None:
        def run() -> None:
            resource_version = version
            while not self._stop.is_set():
                stream = watch.Watch()
                try:
                    for item in stream.stream(
                        lister, *args, resource_version=resource_version, timeout_seconds=5
                    ):
                        obj = item["object"]
                        with self._lock:
                            record(obj)
                        meta = obj.metadata if hasattr(obj, "metadata") else None
                        resource_version = (
                            meta.resource_version if meta is not None else obj["metadata"]["resourceVersion"]
                        )
                        if self._stop.is_set():
                            stream.stop()
                except (urllib3.exceptions.HTTPError, OSError):
                    continue  # a broken stream: resume after the last version seen
                except Exception as error:  # 410 Gone (versions missed) or a bug: the test fails on it
                    self.errors.append(error)
                    return

        threading.Thread(target=run, daemon=True).start()

    def _secret(self, secret: Any) -> None:
        annotations = secret.metadata.annotations or {}
        data = secret.data or {}
        if "tls.key" in data:
            self.keys.add(base64.b64decode(data["tls.key"]).decode())
        if "certctl.io/revision" in annotations:
            revision = annotations["certctl.io/revision"]
            self.secret_serials[secret.metadata.name][revision].add(annotations["certctl.io/serial-number"])

    def _cert(self, body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        if status.get("revision"):
            self.status_serials[body["metadata"]["name"]][status["revision"]].add(status["serialNumber"])

    def _issuer(self, body: dict[str, Any]) -> None:
        number = (body.get("status") or {}).get("crlNumber")
        if number is not None and (not self.crl_numbers or self.crl_numbers[-1] != int(number)):
            self.crl_numbers.append(int(number))

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def recording(kube: Any, namespace: str) -> Iterator[Recorder]:
    recorder = Recorder(kube, namespace)
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


def in_flight(kube: Any, namespace: str) -> dict[str, int]:
    """Work not finished right now, by kind."""
    objects = client.CustomObjectsApi(kube)

    def items(plural: str) -> list[dict[str, Any]]:
        return list(objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"])

    now = datetime.now(UTC)

    def settled(body: dict[str, Any]) -> bool:
        status = body.get("status") or {}
        conditions = status.get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        renewal = status.get("renewalTime")
        return ready and renewal is not None and datetime.fromisoformat(renewal) > now

    return {
        # Not issued yet, or due for renewal.
        "certificates": sum(1 for body in items("managedcertificates") if not settled(body)),
        "notifications": sum(
            1
            for body in items("notificationevents")
            if (body.get("status") or {}).get("phase") not in PHASE_DONE
        ),
        "revocations": sum(
            1 for body in items("revocations") if (body.get("status") or {}).get("phase") != "Revoked"
        ),
    }


def test_chaos_sigkills_lose_nothing_issue_nothing_twice_and_leak_nothing(
    operator_factory: OperatorFactory, kube: Any, namespace: str, tmp_path: Any
) -> None:
    seed = int(os.environ.get("CERTCTL_CHAOS_SEED") or secrets.randbelow(2**32))
    rng = random.Random(seed)
    kill_times = sorted(rng.uniform(2.0, RUN_SECONDS) for _ in range(KILLS))
    print(f"chaos seed {seed} (CERTCTL_CHAOS_SEED to replay), kills at {[round(t, 1) for t in kill_times]}s")
    run_started = time.monotonic()

    operator = operator_factory(namespaces=[namespace], env=ENV, start=False)
    base = operator.base_url
    receiver = ScriptedReceiver().start()
    core = client.CoreV1Api(kube)
    try:
        make_ca_secret(kube, namespace, "chaos-ca-keypair", "Chaos CA")
        ca_key = base64.b64decode(core.read_namespaced_secret("chaos-ca-keypair", namespace).data["tls.key"])
        signing_key = secrets.token_hex(20)
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="hook-signing"), string_data={"key": signing_key}
            ),
        )
        create(
            kube, namespace, "issuers", issuer_body("chaos-ca", ca_secret="chaos-ca-keypair", base_url=base)
        )
        spec = {
            "webhook": {
                "url": receiver.url,
                "timeout": "5s",
                "signingSecretRef": {"name": "hook-signing", "key": "key"},
            }
        }
        create(
            kube,
            namespace,
            "notificationchannels",
            {"kind": "NotificationChannel", "metadata": {"name": "hook"}, "spec": spec},
        )
        with recording(kube, namespace) as recorder:
            operator.start()
            certs = [f"chaos-crt-{index:03d}" for index in range(CERTIFICATES)]
            events = [f"chaos-evt-{index:03d}" for index in range(NOTIFICATIONS)]

            def create_certificate(name: str) -> None:
                # Renewed every 15 s: several renewals during the run.
                body = certificate_body(name, "chaos-ca", duration="30s", renewBefore="15s")
                create(kube, namespace, "managedcertificates", body)

            def create_event(name: str) -> None:
                body = {
                    "kind": "NotificationEvent",
                    "metadata": {"name": name},
                    "spec": {
                        "type": "Test",
                        "channelRef": {"name": "hook"},
                        "subject": name,
                        "message": name,
                    },
                }
                create(kube, namespace, "notificationevents", body)

            # Half the work at once, the rest in batches just before each kill, so every kill meets
            # fresh issuances and deliveries as well as renewals and back-offs.
            waiting_certs, waiting_events = certs[CERTIFICATES // 2 :], events[NOTIFICATIONS // 2 :]
            for name in certs[: CERTIFICATES // 2]:
                create_certificate(name)
            for name in events[: NOTIFICATIONS // 2]:
                create_event(name)
            cert_batch = -(-len(waiting_certs) // KILLS)
            event_batch = -(-len(waiting_events) // KILLS)
            work_created = time.monotonic()

            revoked_certs = rng.sample(certs[: CERTIFICATES // 2], REVOCATIONS)  # created at the start
            revocation_times = sorted(rng.uniform(1.0, RUN_SECONDS * 0.8) for _ in revoked_certs)
            pending_revocations = list(zip(revocation_times, revoked_certs, strict=True))
            at_kills: list[dict[str, int]] = []
            killed_at: list[float] = []
            for moment in kill_times:
                while time.monotonic() - work_created < moment:
                    if pending_revocations and time.monotonic() - work_created >= pending_revocations[0][0]:
                        _, target = pending_revocations.pop(0)
                        wait_for(
                            f"{target} issued before it is revoked",
                            lambda t=target: (
                                get(kube, namespace, "managedcertificates", t).get("status") or {}
                            ).get("serialNumber"),
                            120,
                        )
                        create(
                            kube,
                            namespace,
                            "revocations",
                            revocation_body(f"revoke-{target}", target, "keyCompromise"),
                        )
                    time.sleep(0.05)  # the clock of the kill schedule, not a synchronisation
                for name in waiting_certs[:cert_batch]:
                    create_certificate(name)
                for name in waiting_events[:event_batch]:
                    create_event(name)
                del waiting_certs[:cert_batch], waiting_events[:event_batch]
                at_kills.append(in_flight(kube, namespace))
                killed_at.append(time.monotonic())
                operator.kill()
                operator.start(timeout=120)
            for _, target in pending_revocations:
                create(
                    kube,
                    namespace,
                    "revocations",
                    revocation_body(f"revoke-{target}", target, "keyCompromise"),
                )
            kills_done = time.monotonic()
            print(
                f"{KILLS} kills survived in {kills_done - work_created:.0f}s; "
                f"in flight at each kill: {at_kills}"
            )

            # Convergence.
            def every_revocation_done() -> bool:
                items = client.CustomObjectsApi(kube).list_namespaced_custom_object(
                    GROUP, VERSION, namespace, "revocations"
                )["items"]
                return len(items) == REVOCATIONS and all(
                    (item.get("status") or {}).get("phase") == "Revoked" for item in items
                )

            wait_for("every revocation done", every_revocation_done, 180, interval=0.5)

            def every_event_done() -> bool:
                return in_flight(kube, namespace)["notifications"] == 0

            wait_for("every notification Sent or Dead", every_event_done, 180, interval=0.5)

            def settled(name: str) -> tuple[dict[str, Any], Any] | None:
                body = get(kube, namespace, "managedcertificates", name)
                status = body.get("status") or {}
                conditions = status.get("conditions") or []
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return None
                secret = core.read_namespaced_secret(body["spec"]["secretName"], namespace)
                annotations = secret.metadata.annotations or {}
                if annotations.get("certctl.io/serial-number") != status.get("serialNumber"):
                    return None  # a renewal between the two reads
                return body, secret

            finals = {name: wait_for(f"{name} Ready", lambda n=name: settled(n), 180) for name in certs}
            converged = time.monotonic()
            revoked = {
                normalize_serial(
                    get(kube, namespace, "revocations", f"revoke-{target}")["status"]["serialNumber"]
                )
                for target in revoked_certs
            }

            def crl_listing_all() -> bytes | None:
                der = httpx.get(f"{base}/crl/{namespace}/chaos-ca.crl", timeout=10).content
                listed = {normalize_serial(entry.serial_number) for entry in x509.load_der_x509_crl(der)}
                return der if revoked <= listed else None

            crl = wait_for("the CRL listing every revoked serial", crl_listing_all, 60, interval=0.5)
            metrics = operator.metrics()
            objects = client.CustomObjectsApi(kube)
            lost = {
                plural: expected
                - len(objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"])
                for plural, expected in (
                    ("managedcertificates", CERTIFICATES),
                    ("notificationevents", NOTIFICATIONS),
                    ("revocations", REVOCATIONS),
                )
            }
        operator.stop()
    finally:
        receiver.stop()
    assert not recorder.errors, recorder.errors

    # Certificates: Ready, Secret = status = certificate; no revision ever held two serials.
    renewals = 0
    for name, (body, secret) in finals.items():
        status = body["status"]
        leaf = x509.load_pem_x509_certificates(base64.b64decode(secret.data["tls.crt"]))[0]
        assert normalize_serial(leaf.serial_number) == normalize_serial(status["serialNumber"]), name
        assert secret.metadata.annotations["certctl.io/revision"] == str(status["revision"]), name
        for revision, serials in recorder.status_serials[name].items():
            assert len(serials) == 1, f"{name} revision {revision} in status as {serials}"
        for revision, serials in recorder.secret_serials[f"{name}-tls"].items():
            assert len(serials) == 1, f"{name} revision {revision} in the Secret as {serials}"
        renewals += status["revision"] - 1
    assert renewals >= CERTIFICATES, f"only {renewals} renewals: the run did not renew"

    # Notifications: Sent or Dead per script; one key per event; every extra request explained by a
    # kill. An event has at most one attempt in flight (one lock per event), so a kill can lose the
    # outcome of at most one of its attempts: an event sent k times more than its script says must
    # have seen at least k kills between its first and its last request. (Across all events a kill
    # can cost one repeat per delivery that was answered but not yet recorded when it struck.)
    duplicates = 0
    for index, name in enumerate(events):
        event = get(kube, namespace, "notificationevents", name)["status"]
        keys = receiver.by_event[name]
        assert len(set(keys)) == 1, f"{name} was sent under several keys: {set(keys)}"
        failures = scripted_failures(index)
        if failures is None:
            assert event["phase"] == "Dead", (name, event["phase"])
            assert event["retryCount"] == MAX_ATTEMPTS, (name, event["retryCount"])
            expected = MAX_ATTEMPTS
        else:
            assert event["phase"] == "Sent", (name, event["phase"])
            assert event.get("retryCount", 0) <= failures, (name, event.get("retryCount"))
            expected = failures + 1
        assert len(keys) >= expected, (name, len(keys), expected)
        arrived = receiver.arrivals[name]
        kills_during = sum(1 for moment in killed_at if arrived[0] - RECEIVER_LAG_S < moment < arrived[-1])
        assert len(keys) - expected <= kills_during, (
            f"{name}: {len(keys) - expected} repeats but {kills_during} kills while it was being sent"
        )
        duplicates += len(keys) - expected

    # Revocations: each serial on the CRL once; CRL numbers only grew.
    assert lost == dict.fromkeys(lost, 0), f"objects lost: {lost}"
    assert len(revoked) == REVOCATIONS
    crl_file = tmp_path / "chaos.crl"
    crl_file.write_bytes(crl)
    listed = Counter(normalize_serial(entry.serial_number) for entry in x509.load_der_x509_crl(crl))
    assert all(listed[serial] == 1 for serial in revoked), {s: listed[s] for s in revoked}
    assert (
        "Revoked Certificates"
        in openssl("crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text").stdout
    )
    numbers = recorder.crl_numbers
    assert numbers == sorted(set(numbers)), f"CRL numbers went back: {numbers}"
    assert crl_number(crl) >= numbers[-1]

    # No secret in anything the operator produced.
    needles: dict[str, str] = {}
    needles |= key_needles("CA key", ca_key.decode())
    for index, pem in enumerate(sorted(recorder.keys)):
        needles |= key_needles(f"tls.key #{index}", pem)
    needles |= text_needles("webhook signing key", signing_key)
    haystacks = operator_output(kube, namespace, operator.logs(), metrics)
    found = leaks(needles, haystacks)
    assert not found, "secrets found:\n" + "\n".join(found)

    print(
        json.dumps(
            {
                "seed": seed,
                "kills_survived": KILLS,
                "in_flight_at_each_kill": at_kills,
                "duplicate_deliveries": duplicates,
                "objects_lost": sum(lost.values()),
                "renewals": renewals,
                "keys_scanned": len(recorder.keys) + 1,
                "crl_numbers_seen": len(numbers),
                "converged_after_last_kill_s": round(converged - kills_done, 1),
                "run_s": round(time.monotonic() - run_started, 1),
            }
        )
    )
