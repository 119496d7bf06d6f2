"""Whose Secret is it: the operator never replaces a Secret it did not write, and one wins a shared name.

A ManagedCertificate writes only a Secret that does not exist yet (created,
never overwritten), a Secret written for it, a Secret written for a
certificate that no longer claims it, or a Secret whose owner allowed it
with the ``certctl.io/allow-takeover-by`` annotation. Anything else ends in
Ready=False/SecretConflict, with the Secret untouched, and recovers on its own
when the conflict goes away.

The issuance back-off is set to ten minutes here, so every recovery the tests
wait for (well under a minute) is a reaction to the change, not a retry that
happened to come due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from tests.integration.test_issuance import (
    CERTS,
    GROUP,
    VERSION,
    Body,
    Cluster,
    certificate,
    cluster,
    condition,
    issuer,
    start_operator,
    tls_secret,
    verify_secret,
    wait_for,
    wait_ready,
    wait_reason,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.pki import KeyAlgorithm, KeySpec, create_self_signed_ca

__all__ = ["cluster"]

SLOW_RETRY = {"CERTCTL_ISSUANCE_RETRY_BASE": "10m", "CERTCTL_ISSUANCE_RETRY_CAP": "1h"}
TAKEOVER = "certctl.io/allow-takeover-by"


def start(operator_factory: OperatorFactory, namespace: str) -> OperatorProcess:
    return start_operator(operator_factory, namespace, **SLOW_RETRY)


def ready_reason(body: Body) -> tuple[str, str]:
    found = condition(body) or {}
    return str(found.get("status")), str(found.get("reason"))


def conflict_events(cluster: Cluster, name: str) -> list[Any]:
    return [e for e in cluster.events(name, "SecretConflict") if e.type == "Warning"]


def barrier(cluster: Cluster, name: str) -> None:
    """A certificate the operator must handle; everything queued before it has been looked at."""
    cluster.apply(certificate(name, "selfsigned"))
    wait_ready(cluster, name, timeout=60)


def test_a_users_own_tls_secret_is_not_replaced_until_its_owner_allows_it(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    start(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    own = create_self_signed_ca(
        "users own", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), datetime.now(UTC)
    )
    cluster.apply(tls_secret("users-tls", own.certificate_pem, own.private_key_pem))
    before = cluster.secret("users-tls")
    assert before is not None

    cluster.apply(certificate("web", "selfsigned", secretName="users-tls"))
    body = wait_reason(cluster, "web", "SecretConflict", timeout=60)
    ready = condition(body)
    assert ready is not None and ready["status"] == "False"
    assert "users-tls" in ready["message"] and TAKEOVER in ready["message"]
    assert not body["status"].get("serialNumber")

    # Nothing happens behind the barrier: the Secret is as the user wrote it, one Event, one attempt.
    barrier(cluster, "barrier")
    after = cluster.secret("users-tls")
    assert after is not None and after.metadata.resource_version == before.metadata.resource_version
    data = cluster.secret_data("users-tls")
    assert data["tls.crt"].decode() == own.certificate_pem
    assert data["tls.key"].decode() == own.private_key_pem
    assert len(conflict_events(cluster, "web")) == 1
    assert cluster.cert("web")["status"]["failedIssuanceAttempts"] == 1

    # Allowed for another certificate only: still a conflict, still untouched.
    cluster.core.patch_namespaced_secret(
        "users-tls", cluster.namespace, {"metadata": {"annotations": {TAKEOVER: "api"}}}
    )
    wait_for(
        lambda: "api" in ((condition(cluster.cert("web")) or {}).get("message") or ""),
        60,
        "the conflict message to name the certificate the Secret allows",
    )
    assert cluster.secret_data("users-tls")["tls.crt"].decode() == own.certificate_pem

    # Allowed for this one: taken over at once (the back-off is ten minutes), the annotation kept.
    cluster.core.patch_namespaced_secret(
        "users-tls", cluster.namespace, {"metadata": {"annotations": {TAKEOVER: "web"}}}
    )
    issued = wait_ready(cluster, "web", timeout=60)["status"]
    facts = verify_secret(cluster, "users-tls", tmp_path)
    assert facts["serial"] == issued["serialNumber"]
    assert facts["key"] != own.private_key_pem
    taken = cluster.secret("users-tls")
    assert taken is not None
    assert taken.metadata.annotations["certctl.io/certificate-name"] == "web"
    assert taken.metadata.annotations[TAKEOVER] == "web"
    assert len(conflict_events(cluster, "web")) == 1


def test_certificates_sharing_a_secret_name_one_wins_the_others_conflict_and_recover(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    start(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    names = ["one", "two", "three", "four"]
    # RSA-4096 keys take long to generate: every certificate finds the Secret missing, then races.
    slow = {"algorithm": "RSA", "size": 4096}
    cluster.apply(*(certificate(n, "selfsigned", secretName="shared-tls", privateKey=slow) for n in names))

    def settled(candidates: list[str]) -> dict[str, Body] | None:
        bodies = {n: cluster.cert(n) for n in candidates}
        reasons = [ready_reason(b) for b in bodies.values()]
        if all(r in (("True", "Issued"), ("False", "SecretConflict")) for r in reasons):
            return bodies
        return None

    def one_winner(candidates: list[str]) -> str:
        bodies = wait_for(lambda: settled(candidates), 120, f"{candidates} Ready or in SecretConflict")
        winners = [n for n, b in bodies.items() if ready_reason(b) == ("True", "Issued")]
        assert len(winners) == 1, {n: condition(b) for n, b in bodies.items()}
        winner = winners[0]
        facts = verify_secret(cluster, "shared-tls", tmp_path)
        assert facts["serial"] == bodies[winner]["status"]["serialNumber"]
        secret = cluster.secret("shared-tls")
        assert secret is not None and secret.metadata.annotations["certctl.io/certificate-name"] == winner
        for name, body in bodies.items():
            if name != winner:
                message = (condition(body) or {}).get("message", "")
                assert "shared-tls" in message and winner in message, message
                assert len(conflict_events(cluster, name)) == 1
        return winner

    winner = one_winner(names)
    losers = [n for n in names if n != winner]
    # Created in one write: the fields stay the create's until the first apply hands them over.
    created = cluster.secret("shared-tls")
    assert created is not None
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [
        ("certctl-operator", "Update")
    ]
    # No retry loop: the losers tried once and wait.
    barrier(cluster, "barrier")
    for name in losers:
        assert cluster.cert(name)["status"]["failedIssuanceAttempts"] == 1

    # The winner goes: exactly one of the others takes the Secret over, the rest name the new owner.
    cluster.objects.delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace, CERTS, winner)

    def gone() -> bool:
        try:
            cluster.cert(winner)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 30, f"ManagedCertificate {winner} deleted")
    second = wait_for(
        lambda: next((n for n in losers if ready_reason(cluster.cert(n)) == ("True", "Issued")), None),
        60,
        "one of the other certificates to take the Secret over",
    )
    remaining = [n for n in losers if n != second]
    # Taken over by an apply, which first took the fields of the create over.
    taken = cluster.secret("shared-tls")
    assert taken is not None
    assert [(e.manager, e.operation) for e in taken.metadata.managed_fields] == [
        ("certctl-operator", "Apply")
    ]
    wait_for(
        lambda: all(second in ((condition(cluster.cert(n)) or {}).get("message") or "") for n in remaining),
        60,
        f"the remaining certificates to name {second}",
    )
    assert one_winner(losers) == second

    # One of the rest moves to a Secret of its own: issued there at once.
    mover = remaining[0]
    cluster.objects.patch_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, CERTS, mover, {"spec": {"secretName": f"{mover}-tls"}}
    )
    moved = wait_ready(cluster, mover, timeout=60)["status"]
    assert verify_secret(cluster, f"{mover}-tls", tmp_path)["serial"] == moved["serialNumber"]
    assert ready_reason(cluster.cert(remaining[1])) == ("False", "SecretConflict")
    assert (
        verify_secret(cluster, "shared-tls", tmp_path)["serial"]
        == cluster.cert(second)["status"]["serialNumber"]
    )
    # The owner stops claiming the shared name: the last one takes it over at once.
    cluster.objects.patch_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, CERTS, second, {"spec": {"secretName": f"{second}-tls"}}
    )
    last = wait_ready(cluster, remaining[1], timeout=60)["status"]
    assert verify_secret(cluster, "shared-tls", tmp_path)["serial"] == last["serialNumber"]
    own = wait_ready(cluster, second, timeout=60, revision=2)["status"]
    assert verify_secret(cluster, f"{second}-tls", tmp_path)["serial"] == own["serialNumber"]


def test_a_label_dropped_from_the_template_leaves_the_secret_the_operator_created(
    cluster: Cluster, operator_factory: OperatorFactory
) -> None:
    start(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    template = {"labels": {"team": "payments", "tier": "gold"}, "annotations": {"owner": "payments"}}
    cluster.apply(certificate("app", "selfsigned", secretTemplate=template))
    wait_ready(cluster, "app")
    created = cluster.secret("app-tls")
    assert created is not None and created.metadata.labels["tier"] == "gold"
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [
        ("certctl-operator", "Update")
    ]

    # A label and the annotation leave the template, and a renewal is asked for: its apply first
    # takes the create's fields over, so it removes what the template no longer has.
    cluster.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        CERTS,
        "app",
        {
            "metadata": {"annotations": {"certctl.io/renew": "retemplate"}},
            "spec": {"secretTemplate": {"labels": {"team": "payments", "tier": None}, "annotations": None}},
        },
    )
    wait_ready(cluster, "app", timeout=30, revision=2)
    secret = cluster.secret("app-tls")
    assert secret is not None
    assert secret.metadata.labels["team"] == "payments"
    assert "tier" not in secret.metadata.labels
    assert "owner" not in (secret.metadata.annotations or {})
    assert [(e.manager, e.operation) for e in secret.metadata.managed_fields] == [
        ("certctl-operator", "Apply")
    ]
