"""NotificationEvent bodies as the watch delivers them, for the notification controller's unit tests."""

from __future__ import annotations

from typing import Any


def event_body(
    uid: str, phase: str | None = None, sent_at: str | None = None, version: str = "1"
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if sent_at:
        status["sentAt"] = sent_at
    return {
        "metadata": {"uid": uid, "name": f"n-{uid}", "namespace": "ns", "resourceVersion": version},
        "status": status,
    }
