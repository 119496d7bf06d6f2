"""What an Issuer or ClusterIssuer announces: a Kubernetes Event when it becomes able or unable to sign."""

from __future__ import annotations

import logging
from typing import Any

from certctl_operator.controllers.issuance import IssuanceRuntime, Key
from certctl_operator.kube.events import NORMAL, WARNING, post_event
from certctl_operator.policy.issuers import REASON_INVALID_SPEC, IssuerCheck

logger = logging.getLogger("certctl.issuers")


async def announce_readiness(rt: IssuanceRuntime, key: Key, body: dict[str, Any], check: IssuerCheck) -> None:
    if check.ready:
        await post_event(rt.api, body, event_type=NORMAL, reason="Ready", message=check.message)
        logger.info("ready: %s", check.message, extra=rt.log_extra(key))
    else:
        await post_event(rt.api, body, event_type=WARNING, reason=check.reason, message=check.message)
        logger.warning("cannot sign (%s): %s", check.reason, check.message, extra=rt.log_extra(key))


async def announce_invalid_spec(rt: IssuanceRuntime, key: Key, body: dict[str, Any], message: str) -> None:
    await post_event(rt.api, body, event_type=WARNING, reason=REASON_INVALID_SPEC, message=message)
    logger.error("cannot read the %s: %s", key.kind, message, extra=rt.log_extra(key))


__all__ = ["announce_invalid_spec", "announce_readiness"]
