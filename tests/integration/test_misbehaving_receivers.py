"""Receivers that misbehave end as recorded failures with a clear lastError, and block nobody.

One operator process delivers, side by side, to a webhook that never
answers, one that answers only after the timeout, one that redirects, one
that returns a huge error body, one with a TLS certificate nobody trusts, an
SMTP port that refuses connections, an SMTP server that hangs up at once and
a host name under the reserved ``.invalid`` TLD (it never resolves, so no
packet leaves the machine). Every event is dead-lettered after its single
allowed attempt with a lastError that says what happened, and an event to a
healthy webhook is delivered while the hanging delivery is still in flight.
Its signature verifies with the receiver's copy of the key, and fails once
replayed after the freshness window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.test_notifications import SIGNING_KEY, make_channel, make_event, make_secret
from tests.support.misbehaving import HangUpServer, SilentServer, closed_port
from tests.support.pki_cluster import get, wait_for
from tests.support.receivers import HTTPReceiver, ScriptedResponse, make_self_signed

from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signing_timestamp, verify

EVENTS = "notificationevents"
ONE_ATTEMPT = {"CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "1"}
HUGE_BODY = b"x" * (8 * 1024 * 1024)
SILENT_TIMEOUT = "20s"
"""Long enough that the hanging delivery is surely still in flight while the healthy one is made."""


def status_of(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(kube, namespace, EVENTS, name).get("status") or {})


def wait_dead(kube: Any, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        f"NotificationEvent {name} Dead",
        lambda: (status := status_of(kube, namespace, name)).get("phase") == "Dead" and status,
        timeout,
    )


def email_spec(port: int) -> dict[str, Any]:
    return {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "timeout": "5s",
            "from": "ops@example.test",
            "to": ["team@example.test"],
        }
    }


def test_misbehaving_receivers_fail_clearly_and_block_no_other_delivery(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    untrusted = make_self_signed()
    with (
        SilentServer() as silent,
        HangUpServer() as hang_up,
        HTTPReceiver() as healthy,
        HTTPReceiver(default=ScriptedResponse(status=200, hold=True)) as late,
        HTTPReceiver(default=ScriptedResponse(status=500, body=HUGE_BODY)) as huge,
        HTTPReceiver(tls=untrusted) as tls_receiver,
    ):
        stolen = healthy.url_for("/stolen")
        with HTTPReceiver(
            default=ScriptedResponse(status=302, body=b"moved", headers={"Location": stolen})
        ) as redirecting:
            operator_factory(namespaces=[namespace], env=ONE_ATTEMPT)
            webhooks = {
                "silent": (f"http://127.0.0.1:{silent.port}/hook", SILENT_TIMEOUT),
                "late": (late.url_for("/late"), "2s"),
                "redirect": (redirecting.url_for("/old"), "5s"),
                "huge": (huge.url_for("/huge"), "10s"),
                "untrusted-tls": (tls_receiver.url_for("/tls"), "5s"),
                "unresolvable": ("http://receiver.invalid/hook", "5s"),
                "healthy": (healthy.url_for("/healthy"), "5s"),
            }
            for name, (url, timeout) in webhooks.items():
                if name != "healthy":
                    make_channel(kube, namespace, name, {"webhook": {"url": url, "timeout": timeout}})
            make_secret(kube, namespace, "healthy-signing", {"key": SIGNING_KEY})
            signed = {"name": "healthy-signing", "key": "key"}
            url, timeout = webhooks["healthy"]
            make_channel(
                kube,
                namespace,
                "healthy",
                {"webhook": {"url": url, "timeout": timeout, "signingSecretRef": signed}},
            )
            make_channel(kube, namespace, "smtp-refused", email_spec(closed_port()))
            make_channel(kube, namespace, "smtp-hang-up", email_spec(hang_up.port))

            failing = [name for name in webhooks if name != "healthy"] + ["smtp-refused", "smtp-hang-up"]
            for name in failing:
                make_event(kube, namespace, f"to-{name}", name)

            # The hanging delivery is in flight; a healthy one goes through meanwhile.
            silent.wait_accepted(1, seconds=60)
            make_event(kube, namespace, "to-healthy", "healthy")
            sent = wait_for(
                "to-healthy Sent",
                lambda: (
                    (status := status_of(kube, namespace, "to-healthy")).get("phase") == "Sent" and status
                ),
                60,
            )
            assert sent["attempts"][0]["result"] == "Succeeded"
            received_at = datetime.now(UTC)
            # The receiver's copy of the key verifies the delivery, fresh; the same request
            # replayed six minutes later, or with a new timestamp put in, does not.
            (request,) = healthy.requests
            timestamp, signature = request.header(TIMESTAMP_HEADER), request.header(SIGNATURE_HEADER)
            assert timestamp is not None and signature is not None
            assert verify(SIGNING_KEY, timestamp, request.body, signature, now=received_at)
            assert not verify(
                SIGNING_KEY, timestamp, request.body, signature, now=received_at + timedelta(minutes=6)
            )
            fresh = signing_timestamp(received_at + timedelta(minutes=6))
            assert not verify(
                SIGNING_KEY, fresh, request.body, signature, now=received_at + timedelta(minutes=6)
            )
            assert status_of(kube, namespace, "to-silent").get("phase") != "Dead", "waited for the silent one"

            expected = {
                "silent": ("Timeout", f"timeout after {SILENT_TIMEOUT}"),
                "late": ("Timeout", "timeout after 2s"),
                "redirect": ("ClientError", "HTTP 302 Found: redirects are not followed"),
                "huge": ("ServerError", "HTTP 500 Internal Server Error"),
                "untrusted-tls": ("TLSError", "TLS certificate verification failed: self-signed certificate"),
                "unresolvable": ("ConnectionError", "name resolution failed (receiver.invalid:80)"),
                "smtp-refused": ("ConnectionError", "connection refused"),
                "smtp-hang-up": ("ConnectionError", "connection closed by server"),
            }
            outcomes = {name: wait_dead(kube, namespace, f"to-{name}") for name in failing}
            report = {name: (s.get("lastErrorKind"), s.get("lastError")) for name, s in outcomes.items()}
            for name, (kind, text) in expected.items():
                status = outcomes[name]
                assert [attempt["result"] for attempt in status["attempts"]] == ["Failed"], (name, status)
                assert status.get("lastErrorKind") == kind, (name, report)
                assert text in str(status.get("lastError")), (name, report)
                assert len(str(status.get("lastError"))) < 1024, (name, "lastError is bounded")

            # A redirect is not followed: nothing reached the Location it named.
            assert [request.path for request in healthy.requests] == ["/healthy"]
            assert len(redirecting.requests) == 1
            # Answering after the timeout does not turn the failure into a delivery.
            late.release()
            late_status = status_of(kube, namespace, "to-late")
            assert late_status["phase"] == "Dead" and len(late_status["attempts"]) == 1
            assert len(late.requests) == 1
