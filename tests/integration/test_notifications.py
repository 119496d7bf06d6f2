"""Notification delivery end to end: a real operator process, a real API server, real receivers.

Every test starts ``certctl-operator run`` for its own namespace with fast
retry settings (base 1 s, cap 30 s, timer interval 1 s unless a test says
otherwise) and talks to HTTP and SMTP receivers on 127.0.0.1. Waits are
watches on the API server or condition variables of the receivers, each
bounded by a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families
from tests.support.receivers import (
    HTTPReceiver,
    RecordedRequest,
    ScriptedResponse,
    SMTPReceiver,
    make_self_signed,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

GROUP = "certctl.io"
VERSION = "v1alpha1"
EVENTS = "notificationevents"
CHANNELS = "notificationchannels"
SIGNING_KEY = b"test-signing-key-0123456789"
PROCESSING = 0.5
"""Seconds an attempt may take between its scheduled time and the receiver (API reads, a busy machine)."""
LABEL_PHASE = "certctl.io/phase"
DEAD_SELECTOR = f"{LABEL_PHASE}=dead"

Kubectl = Callable[..., Any]
Body = dict[str, Any]


# --------------------------------------------------------------------------- receivers


class KeyedReceiver(HTTPReceiver):
    """Answers ``status`` to the first ``failures`` requests of each idempotency key, then 200.

    ``failures=None`` fails every request. Arrival times (wall clock, like the
    operator's timestamps) are recorded with each request.
    """

    def __init__(self, failures: int | None, status: int = 503) -> None:
        super().__init__(default=ScriptedResponse(status=200))
        self._failures = failures
        self._status = status
        self._seen: Counter[str] = Counter()
        self.arrivals: list[tuple[float, RecordedRequest]] = []
        self.healthy = threading.Event()

    def _record(self, request: RecordedRequest) -> ScriptedResponse:
        arrived = time.time()
        key = request.header("Idempotency-Key") or ""
        with self._condition:
            self._seen[key] += 1
            count = self._seen[key]
            self.arrivals.append((arrived, request))
        super()._record(request)
        failing = not self.healthy.is_set() and (self._failures is None or count <= self._failures)
        if failing:
            return ScriptedResponse(status=self._status, body=b"try later")
        return ScriptedResponse(status=200, body=b"ok")

    def times_by_key(self) -> dict[str, list[float]]:
        with self._condition:
            grouped: dict[str, list[float]] = defaultdict(list)
            for arrived, request in self.arrivals:
                grouped[request.header("Idempotency-Key") or ""].append(arrived)
            return dict(grouped)


# --------------------------------------------------------------------------- API helpers


def custom(kube: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def make_secret(
    kube: Any, namespace: str, name: str, data: Mapping[str, str | bytes], type_: str = "Opaque"
) -> None:
    encoded = {
        key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
        for key, value in data.items()
    }
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded, type=type_)
    )


def make_channel(kube: Any, namespace: str, name: str, spec: Mapping[str, Any]) -> Body:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel", "metadata": {"name": name}}
    body["spec"] = dict(spec)
    created: Body = custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, CHANNELS, body)
    return created


def make_webhook_channel(kube: Any, namespace: str, name: str, url: str, signed: bool = True) -> Body:
    spec: dict[str, Any] = {"url": url, "timeout": "5s"}
    if signed:
        make_secret(kube, namespace, f"{name}-signing", {"key": SIGNING_KEY})
        spec["signingSecretRef"] = {"name": f"{name}-signing", "key": "key"}
    return make_channel(kube, namespace, name, {"webhook": spec})


def event_manifest(name: str, channel: str, **spec: Any) -> Body:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NotificationEvent",
        "metadata": {"name": name},
        "spec": {
            "type": "Test",
            "channelRef": {"name": channel},
            "subject": f"test notification {name}",
            "message": f"Message body of {name}.",
            **spec,
        },
    }


def make_event(kube: Any, namespace: str, name: str, channel: str, **spec: Any) -> Body:
    manifest = event_manifest(name, channel, **spec)
    created: Body = custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, EVENTS, manifest)
    return created


def get_event(kube: Any, namespace: str, name: str) -> Body:
    body: Body = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, EVENTS, name)
    return body


def condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for entry in (body.get("status") or {}).get("conditions") or []:
        if entry["type"] == type_:
            return dict(entry)
    raise AssertionError(f"no {type_} condition in {body.get('status')}")


def phase(body: Mapping[str, Any]) -> str | None:
    value = (body.get("status") or {}).get("phase")
    return str(value) if value is not None else None


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def watch_object(
    kube: Any,
    namespace: str,
    plural: str,
    name: str,
    predicate: Callable[[str, Body], bool],
    timeout: float,
    what: str,
) -> Body:
    """Block until a watch event of ``namespace/name`` satisfies ``predicate(type, object)``."""
    deadline = time.monotonic() + timeout
    last: Body | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        stream = watch.Watch()
        for item in stream.stream(
            custom(kube).list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(int(remaining), 1),
        ):
            last = item["object"]
            if predicate(item["type"], item["object"]):
                stream.stop()
                return item["object"]
            if time.monotonic() > deadline:
                stream.stop()
                break
    raise TimeoutError(
        f"{what}: not seen within {timeout}s; last state: {json.dumps((last or {}).get('status'))}"
    )


def wait_phase(kube: Any, namespace: str, name: str, wanted: str, timeout: float = 30.0) -> Body:
    return watch_object(
        kube, namespace, EVENTS, name, lambda _, body: phase(body) == wanted, timeout, f"{name} {wanted}"
    )


def wait_k8s_event(kube: Any, namespace: str, involved: str, reason: str, timeout: float = 20.0) -> Any:
    """The first Kubernetes Event about ``involved`` with ``reason``."""
    deadline = time.monotonic() + timeout
    selector = f"involvedObject.name={involved},reason={reason}"
    while (remaining := deadline - time.monotonic()) > 0:
        stream = watch.Watch()
        for item in stream.stream(
            client.CoreV1Api(kube).list_namespaced_event,
            namespace,
            field_selector=selector,
            timeout_seconds=max(int(remaining), 1),
        ):
            stream.stop()
            return item["object"]
    raise TimeoutError(f"no Event {reason} about {involved} within {timeout}s")


class History:
    """Every version of every NotificationEvent in a namespace, as a background watch sees them."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._seen: set[str] = set()
        self._resource_version = ""
        self.versions: list[tuple[float, Body]] = []
        self.latest: dict[str, Body] = {}
        self._thread = threading.Thread(target=self._run, name="nevent-history", daemon=True)

    def __enter__(self) -> History:
        # Watch from the version of a list made now, so no change after this point is missed
        # however long the watch takes to connect.
        listed = custom(self._kube).list_namespaced_custom_object(GROUP, VERSION, self._namespace, EVENTS)
        for body in listed["items"]:
            self._record(body)
        self._resource_version = listed["metadata"]["resourceVersion"]
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _record(self, body: Body) -> None:
        version = body["metadata"]["resourceVersion"]
        with self._changed:
            if version not in self._seen:
                self._seen.add(version)
                self.versions.append((time.time(), body))
                self.latest[body["metadata"]["name"]] = body
                self._changed.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            with contextlib.suppress(Exception):
                for item in stream.stream(
                    custom(self._kube).list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self._namespace,
                    EVENTS,
                    resource_version=self._resource_version,
                    timeout_seconds=2,
                ):
                    self._record(item["object"])
                    self._resource_version = item["object"]["metadata"]["resourceVersion"]
                    if self._stop.is_set():
                        stream.stop()

    def wait_until(self, predicate: Callable[[Mapping[str, Body]], bool], timeout: float, what: str) -> None:
        """Block until ``predicate`` holds for the latest version of every event seen."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.latest), timeout):
                raise TimeoutError(f"{what}: not reached within {timeout}s")

    def schedules(self, name: str) -> dict[int, float]:
        """``retryCount`` -> ``nextRetryAt`` (Unix time) of every Failed version of ``name``."""
        found: dict[int, float] = {}
        with self._changed:
            for _, body in self.versions:
                status = body.get("status") or {}
                if body["metadata"]["name"] == name and status.get("phase") == "Failed":
                    found[int(status["retryCount"])] = parse_time(status["nextRetryAt"])
        return found


def metric_value(
    operator: OperatorProcess, name: str, labels: Mapping[str, str] | None = None
) -> float | None:
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return None


def eventually_metric(
    operator: OperatorProcess,
    name: str,
    expected: float,
    labels: Mapping[str, str] | None = None,
    timeout: float = 15,
) -> None:
    """Wait until the operator exports ``expected`` for the metric (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (value := metric_value(operator, name, labels)) != expected:
        assert time.monotonic() < deadline, f"{name}{labels or ''} is {value}, not {expected}"
        time.sleep(0.1)  # polling interval of a deadline-bounded wait


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., KeyedReceiver]]:
    started: list[HTTPReceiver] = []

    def start(failures: int | None = 0, status: int = 503) -> KeyedReceiver:
        receiver = KeyedReceiver(failures, status)
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


# --------------------------------------------------------------------------- tests


def test_delivered_on_third_attempt_with_one_idempotency_key_and_a_valid_signature(
    kube: Any,
    kubectl: Kubectl,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    receiver = receiver_factory(failures=2)
    operator_factory(namespaces=[namespace])
    make_webhook_channel(kube, namespace, "hook", receiver.url_for("/certctl"))
    created = time.time()
    event = make_event(kube, namespace, "third-time", "hook", severity="warning")
    uid = event["metadata"]["uid"]

    first = receiver.wait_for_requests(1, seconds=10)[0]
    assert time.time() - created < 5, "the first attempt of a new event is prompt"
    assert first.path == "/certctl"

    sent = wait_phase(kube, namespace, "third-time", "Sent")
    status = sent["status"]
    assert status["retryCount"] == 2
    assert "sentAt" in status and "nextRetryAt" not in status and "lastError" not in status
    assert condition(sent, "Delivered")["status"] == "True"
    assert condition(sent, "Ready")["status"] == "True"
    assert condition(sent, "DeadLetter")["status"] == "False"
    assert [attempt["result"] for attempt in status["attempts"]] == ["Failed", "Failed", "Succeeded"]
    assert status["attempts"][0]["errorKind"] == "ServerError"
    assert "503" in status["attempts"][0]["error"]

    requests = receiver.requests
    assert len(requests) == 3
    assert {request.header("Idempotency-Key") for request in requests} == {uid}
    assert len({request.body for request in requests}) == 1, "every retry sends the same body"
    for request in requests:
        timestamp, signature = request.header(TIMESTAMP_HEADER), request.header(SIGNATURE_HEADER)
        assert timestamp is not None and signature is not None and signature.startswith("sha256=")
        assert verify(SIGNING_KEY, timestamp, request.body, signature)
        assert not verify(b"another key", timestamp, request.body, signature)
    document = requests[-1].json()
    assert document["id"] == uid
    assert document["severity"] == "warning"
    assert document["subject"] == "test notification third-time"

    # The readiness check of the demo and of GitOps tools.
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "nevent/third-time", "--timeout=10s")
    assert wait_k8s_event(kube, namespace, "third-time", "Delivered").type == "Normal"


def test_always_failing_is_dead_lettered_after_five_attempts_on_schedule(
    kube: Any,
    kubectl: Kubectl,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    receiver = receiver_factory(failures=None, status=500)
    operator = operator_factory(namespaces=[namespace])
    make_webhook_channel(kube, namespace, "hook", receiver.url_for("/down"), signed=False)
    interval = 1.0  # CERTCTL_NOTIFICATION_RETRY_INTERVAL of the fast settings

    with History(kube, namespace) as history:
        make_event(kube, namespace, "doomed", "hook")
        # Waits of 1, 2, 4 and 8 s: dead about 15 s after creation.
        dead = watch_object(
            kube,
            namespace,
            EVENTS,
            "doomed",
            lambda _, body: phase(body) == "Dead" and LABEL_PHASE in body["metadata"].get("labels", {}),
            45,
            "doomed Dead and labelled",
        )

    status = dead["status"]
    assert status["retryCount"] == 5
    assert "nextRetryAt" not in status
    assert status["lastError"] == "HTTP 500 Internal Server Error"
    assert status["lastErrorKind"] == "ServerError"
    dead_letter = condition(dead, "DeadLetter")
    assert (dead_letter["status"], dead_letter["reason"]) == ("True", "RetriesExhausted")
    assert dead_letter["message"] == status["lastError"]
    assert condition(dead, "Ready")["status"] == "False"
    assert dead["metadata"]["labels"][LABEL_PHASE] == "dead"

    # Exactly five attempts, each at its scheduled time.
    times = receiver.times_by_key()[dead["metadata"]["uid"]]
    assert len(times) == 5
    schedules = history.schedules("doomed")
    assert sorted(schedules) == [1, 2, 3, 4]
    for count in (1, 2, 3, 4):
        scheduled = schedules[count]
        wait = scheduled - times[count - 1]
        assert 2 ** (count - 1) <= wait <= 2 ** (count - 1) + 1.5, (
            f"backoff after failure {count}: {wait:.2f}s"
        )
        late = times[count] - scheduled
        # Within one timer interval, plus the attempt's own reads of the event, channel and Secret.
        assert -0.05 <= late <= interval + PROCESSING, (
            f"attempt {count + 1} came {late:.2f}s after nextRetryAt"
        )

    # The dead-letter queue, the Warning Event and the gauges.
    listed = kubectl("get", "nevent", "-A", "-l", DEAD_SELECTOR, "-o", "name").stdout.split()
    assert f"notificationevent.{GROUP}/doomed" in listed
    warning = wait_k8s_event(kube, namespace, "doomed", "NotificationDeadLettered")
    assert warning.type == "Warning"
    assert "HTTP 500" in warning.message
    assert metric_value(operator, "certctl_notification_dead_total") == 1
    assert metric_value(operator, "certctl_notification_events", {"phase": "Dead"}) == 1
    assert metric_value(operator, "certctl_notification_events", {"phase": "Failed"}) == 0
    failures = metric_value(
        operator,
        "certctl_notification_delivery_attempts_total",
        {"channel_type": "webhook", "result": "failure"},
    )
    assert failures == 5

    # The gauges are counted from the watch: right again after a restart, with no transition.
    operator.kill()
    operator.start()
    eventually_metric(operator, "certctl_notification_dead_total", 1)
    eventually_metric(operator, "certctl_notification_events", 1, {"phase": "Dead"})
    assert len(receiver.requests) == 5, "a dead event takes no further attempts, even after a restart"


def test_requeue_from_dead_delivers_once_the_receiver_is_healthy(
    kube: Any,
    kubectl: Kubectl,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    receiver = receiver_factory(failures=None)
    operator = operator_factory(namespaces=[namespace], env={"CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "2"})
    make_webhook_channel(kube, namespace, "hook", receiver.url_for("/hook"))
    make_event(kube, namespace, "retry-me", "hook")
    dead = watch_object(
        kube,
        namespace,
        EVENTS,
        "retry-me",
        lambda _, body: phase(body) == "Dead" and LABEL_PHASE in body["metadata"].get("labels", {}),
        30,
        "retry-me Dead and labelled",
    )
    assert dead["status"]["retryCount"] == 2

    receiver.healthy.set()
    kubectl("annotate", "-n", namespace, "nevent/retry-me", "certctl.io/requeue=first")
    sent = watch_object(
        kube,
        namespace,
        EVENTS,
        "retry-me",
        lambda _, body: phase(body) == "Sent" and LABEL_PHASE not in body["metadata"].get("labels", {}),
        30,
        "retry-me Sent and unlabelled",
    )
    status = sent["status"]
    assert status["retryCount"] == 0, "requeue resets the budget and success leaves it"
    assert status["lastHandledRequeue"] == "first"
    assert status["requeueCount"] == 1
    assert "lastError" not in status and "nextRetryAt" not in status
    assert condition(sent, "DeadLetter")["status"] == "False"
    assert condition(sent, "Ready")["status"] == "True"
    assert len(receiver.requests) == 3
    assert wait_k8s_event(kube, namespace, "retry-me", "NotificationRequeued").type == "Normal"
    assert metric_value(operator, "certctl_notification_dead_total") == 0

    # GitOps: the annotation applied from a manifest requeues too (here a Sent event: sent again).
    manifest = event_manifest("retry-me", "hook")
    manifest["metadata"]["annotations"] = {"certctl.io/requeue": "second"}
    kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", input=json.dumps(manifest)
    )
    again = watch_object(
        kube,
        namespace,
        EVENTS,
        "retry-me",
        lambda _, body: (
            (body.get("status") or {}).get("lastHandledRequeue") == "second" and phase(body) == "Sent"
        ),
        30,
        "retry-me requeued by apply and Sent",
    )
    assert again["status"]["requeueCount"] == 2
    assert len(receiver.wait_for_requests(4)) == 4
    assert {request.header("Idempotency-Key") for request in receiver.requests} == {dead["metadata"]["uid"]}


def test_schedules_survive_sigkill_without_lost_attempts(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    failures, count, kills, interval = 2, 20, 2, 1.0
    receiver = receiver_factory(failures=failures)
    # Waits of 4 s and 8 s: the operator is back before most schedules fall due.
    operator = operator_factory(namespaces=[namespace], env={"CERTCTL_NOTIFICATION_RETRY_BASE": "4s"})
    make_webhook_channel(kube, namespace, "hook", receiver.url_for("/hook"), signed=False)
    names = [f"burst-{index:02d}" for index in range(count)]
    downtimes: list[tuple[float, float]] = []

    with History(kube, namespace) as history:
        for name in names:
            make_event(kube, namespace, name, "hook")
        for kill in range(1, kills + 1):
            # Every event has failed `kill` times and waits for its next attempt: kill now.
            history.wait_until(
                lambda latest, n=kill: (
                    len(latest) == count
                    and all((body.get("status") or {}).get("retryCount", 0) >= n for body in latest.values())
                ),
                30,
                f"every event failed {kill} time(s)",
            )
            killed_at = time.time()
            operator.kill()
            operator.start()
            downtimes.append((killed_at, time.time()))
        history.wait_until(
            lambda latest: len(latest) == count and all(phase(body) == "Sent" for body in latest.values()),
            40,
            "every event Sent",
        )
        finals = dict(history.latest)

    def due(scheduled: float) -> float:
        """When an attempt scheduled at ``scheduled`` can happen: not before the operator is back."""
        for killed_at, back_at in downtimes:
            if killed_at <= scheduled <= back_at:
                return back_at + 1.0  # listing the events and spawning their timers
        return scheduled

    arrivals = receiver.times_by_key()
    checked = 0
    for name, body in finals.items():
        times = arrivals[body["metadata"]["uid"]]
        recorded = body["status"]["retryCount"] + 1
        unrecorded = len(times) - recorded
        # At-least-once: an attempt made just before a kill may be made again, never lost.
        assert 0 <= unrecorded <= kills, f"{name}: {len(times)} requests for {recorded} recorded attempts"
        if unrecorded:
            continue
        assert body["status"]["retryCount"] == failures
        schedules = history.schedules(name)
        assert sorted(schedules) == list(range(1, failures + 1)), f"{name}: schedules {schedules}"
        for retry, scheduled in schedules.items():
            early = scheduled - times[retry]
            late = times[retry] - due(scheduled)
            assert early <= 0.05, f"{name}: attempt {retry + 1} came {early:.2f}s before nextRetryAt"
            assert late <= interval + PROCESSING, f"{name}: attempt {retry + 1} came {late:.2f}s late"
        checked += 1
    # The kills land between attempts, so hardly any attempt is repeated and nearly all are timed.
    assert checked >= count - kills
    assert operator.starts == kills + 1
    eventually_metric(operator, "certctl_notification_events", count, {"phase": "Sent"})
    eventually_metric(operator, "certctl_notification_events", 0, {"phase": "Failed"})


def test_email_reaches_the_smtp_server_over_starttls_with_credentials(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    tls = make_self_signed()
    with SMTPReceiver(mode="starttls", tls=tls, credentials={"certctl": "smtp-password"}) as smtp:
        operator_factory(namespaces=[namespace])
        make_secret(
            kube,
            namespace,
            "smtp-login",
            {"username": "certctl", "password": "smtp-password"},
            type_="kubernetes.io/basic-auth",
        )
        make_channel(
            kube,
            namespace,
            "mail",
            {
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "starttls",
                    "credentialsSecretRef": {"name": "smtp-login"},
                    "from": "certctl@example.test",
                    "to": ["ops@example.test", "security@example.test"],
                    "caBundle": base64.b64encode(tls.cert_pem.encode()).decode(),
                    "timeout": "10s",
                }
            },
        )
        event = make_event(
            kube,
            namespace,
            "mail-test",
            "mail",
            severity="critical",
            subject="Certificate shop/web expires in 3 days",
            message="Renew it now.",
            details={"threshold": "7d"},
        )
        (mail,) = smtp.wait_for_messages(1, seconds=20)
        sent = wait_phase(kube, namespace, "mail-test", "Sent")

    assert sorted(mail.rcpt_tos) == ["ops@example.test", "security@example.test"]
    assert mail.mail_from == "certctl@example.test"
    assert mail.login == "certctl" and mail.tls
    message = mail.message
    assert message["Subject"] == "[certctl] CRITICAL: Certificate shop/web expires in 3 days"
    assert message["X-Certctl-Event-Id"] == event["metadata"]["uid"]
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Renew it now." in text and "threshold: 7d" in text
    assert sent["status"]["retryCount"] == 0
    assert "SMTP accepted 2 of 2" in sent["status"]["attempts"][-1]["detail"]


def test_slack_teams_and_pagerduty_payloads(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    slack, teams, pagerduty = receiver_factory(), receiver_factory(), receiver_factory()
    operator_factory(namespaces=[namespace])
    make_secret(
        kube,
        namespace,
        "hooks",
        {
            "slack": slack.url_for("/services/T000/B000/XXXXXXXX"),
            "teams": teams.url_for("/workflows/abc"),
            "routing": "R0UT1NGKEY0123456789",
        },
    )
    make_channel(
        kube, namespace, "slack", {"slack": {"webhookURLSecretRef": {"name": "hooks", "key": "slack"}}}
    )
    make_channel(
        kube, namespace, "teams", {"teams": {"webhookURLSecretRef": {"name": "hooks", "key": "teams"}}}
    )
    make_channel(
        kube,
        namespace,
        "pager",
        {
            "pagerduty": {
                "routingKeySecretRef": {"name": "hooks", "key": "routing"},
                "url": pagerduty.url_for("/v2/enqueue"),
            }
        },
    )
    uids = {
        name: make_event(kube, namespace, f"to-{name}", name)["metadata"]["uid"]
        for name in ("slack", "teams", "pager")
    }

    (slack_request,) = slack.wait_for_requests(1, seconds=15)
    (teams_request,) = teams.wait_for_requests(1, seconds=15)
    (pager_request,) = pagerduty.wait_for_requests(1, seconds=15)
    assert slack_request.path == "/services/T000/B000/XXXXXXXX"
    assert "test notification to-slack" in slack_request.json()["text"]
    assert teams_request.json()["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    pager = pager_request.json()
    assert (pager["routing_key"], pager["event_action"], pager["dedup_key"]) == (
        "R0UT1NGKEY0123456789",
        "trigger",
        uids["pager"],
    )
    for name in ("slack", "teams", "pager"):
        assert wait_phase(kube, namespace, f"to-{name}", "Sent")["status"]["retryCount"] == 0


def test_channel_readiness_and_a_missing_channel(
    kube: Any,
    kubectl: Kubectl,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    receiver = receiver_factory()
    operator_factory(namespaces=[namespace])
    make_channel(
        kube,
        namespace,
        "later",
        {"webhook": {"url": receiver.url_for("/x"), "signingSecretRef": {"name": "later-key", "key": "key"}}},
    )
    not_ready = watch_object(
        kube,
        namespace,
        CHANNELS,
        "later",
        lambda _, body: any(c["type"] == "Ready" for c in (body.get("status") or {}).get("conditions") or []),
        20,
        "channel later checked",
    )
    ready = condition(not_ready, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert "later-key" in ready["message"]
    assert not_ready["status"]["type"] == "Webhook"
    header, row = kubectl("get", "-n", namespace, "nchannel", "later").stdout.splitlines()
    assert header.split()[:3] == ["NAME", "TYPE", "READY"]
    assert row.split()[:3] == ["later", "Webhook", "False"]

    # An event for a channel that cannot work yet fails (and retries) instead of vanishing.
    make_event(kube, namespace, "early", "later")
    failed = wait_phase(kube, namespace, "early", "Failed")
    assert failed["status"]["lastErrorKind"] == "InvalidConfiguration"
    assert "later-key" in failed["status"]["lastError"]

    make_secret(kube, namespace, "later-key", {"key": b"now-it-exists"})
    became_ready = watch_object(
        kube,
        namespace,
        CHANNELS,
        "later",
        lambda _, body: condition(body, "Ready")["status"] == "True",
        20,
        "channel later Ready",
    )
    assert condition(became_ready, "Ready")["reason"] == "Ready"
    assert wait_phase(kube, namespace, "early", "Sent")["status"]["retryCount"] >= 1

    # A channel that does not exist closes the event instead of wedging it.
    make_event(kube, namespace, "orphan", "never-created")
    closed = wait_phase(kube, namespace, "orphan", "Sent")
    delivered = condition(closed, "Delivered")
    assert (delivered["status"], delivered["reason"]) == ("False", "ChannelNotFound")
    assert condition(closed, "Ready")["status"] == "False"
    assert wait_k8s_event(kube, namespace, "orphan", "ChannelNotFound").type == "Warning"


def test_a_changed_channel_is_used_by_the_next_attempt(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    # Attempts read the channel as its watch delivered it: a change must reach the next one.
    broken, healthy = receiver_factory(failures=None), receiver_factory()
    operator_factory(namespaces=[namespace])
    make_webhook_channel(kube, namespace, "moving", broken.url_for("/old"), signed=False)
    make_event(kube, namespace, "follows", "moving")
    failed = wait_phase(kube, namespace, "follows", "Failed")
    assert broken.requests and not healthy.requests

    custom(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, CHANNELS, "moving", {"spec": {"webhook": {"url": healthy.url_for("/new")}}}
    )
    sent = wait_phase(kube, namespace, "follows", "Sent")
    assert sent["status"]["retryCount"] >= failed["status"]["retryCount"]
    assert [request.path for request in healthy.requests] == ["/new"]
    assert {request.path for request in broken.requests} == {"/old"}


def test_sent_events_expire_and_dead_ones_stay(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    receiver_factory: Callable[..., KeyedReceiver],
) -> None:
    healthy, broken = receiver_factory(), receiver_factory(failures=None)
    operator_factory(
        namespaces=[namespace],
        env={"CERTCTL_NOTIFICATION_SENT_RETENTION": "3s", "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "1"},
    )
    make_webhook_channel(kube, namespace, "good", healthy.url_for("/"), signed=False)
    make_webhook_channel(kube, namespace, "bad", broken.url_for("/"), signed=False)
    make_event(kube, namespace, "dead-one", "bad")
    dead = wait_phase(kube, namespace, "dead-one", "Dead")
    make_event(kube, namespace, "sent-one", "good")
    sent = wait_phase(kube, namespace, "sent-one", "Sent")

    watch_object(
        kube, namespace, EVENTS, "sent-one", lambda kind, _: kind == "DELETED", 20, "sent-one deleted"
    )
    deleted_after = time.time() - parse_time(sent["status"]["sentAt"])
    assert deleted_after >= 3 - 1, "kept for the retention period (sentAt has whole seconds)"
    # Dead events are older than the retention period by now and are still there.
    still = get_event(kube, namespace, "dead-one")
    assert still["metadata"]["uid"] == dead["metadata"]["uid"]
    assert phase(still) == "Dead"
    assert time.time() - parse_time(dead["status"]["deadAt"]) > 3
