"""Read a NotificationChannel and the Secrets it references, and judge them.

A missing object is ``None``, never an exception. What is wrong with a
channel and the sender's target it becomes are decided by the pure
:mod:`certctl_operator.notify.channel_config`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from certctl_operator.api.notification import NotificationChannel
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.secrets import read_secret
from certctl_operator.notify import senders
from certctl_operator.notify.channel_config import (
    ChannelConfigError,
    SecretData,
    build_channel,
    channel_problems,
    destination_hosts,
    resolved_egress_problems,
    secret_names,
    spec_problems,
)
from certctl_operator.notify.egress import EgressPolicy


async def read_secrets(api: Any, namespace: str, names: Iterable[str]) -> dict[str, SecretData | None]:
    """The decoded data of each named Secret, None for those that do not exist."""
    found: dict[str, SecretData | None] = {}
    for name in dict.fromkeys(names):
        secret = await read_secret(api, namespace=namespace, name=name)
        found[name] = dict(secret.data) if secret is not None else None
    return found


@dataclass(frozen=True)
class ChannelLookup:
    """What :func:`resolve_channel` found.

    ``body`` is None when the NotificationChannel does not exist. Otherwise
    ``model`` is set (or ``problems`` says why the object does not parse),
    and ``channel`` is set exactly when ``problems`` is empty.
    """

    body: dict[str, Any] | None
    model: NotificationChannel | None
    channel: senders.DeliveryTarget | None
    problems: tuple[str, ...]

    @property
    def found(self) -> bool:
        return self.body is not None


async def resolve_channel(
    api: Any,
    namespace: str,
    name: str,
    *,
    egress: EgressPolicy | None = None,
    resolve_names: bool = False,
    known: dict[str, Any] | None = None,
) -> ChannelLookup:
    """Read the channel and its Secrets and build the sender's channel when possible.

    ``known`` is the channel as its watch last delivered it; without it the
    channel is read from the API server. With ``egress`` a literal IP
    destination the policy refuses is a problem; with ``resolve_names`` as
    well, host names are resolved and judged now.
    """
    body = known
    if body is None:
        body = await get_object(api, NotificationChannel.PLURAL, namespace=namespace, name=name)
    if body is None:
        return ChannelLookup(None, None, None, ())
    try:
        model = NotificationChannel.from_body(body)
    except ValueError as error:
        return ChannelLookup(body, None, None, spec_problems(error))
    secrets = await read_secrets(api, namespace, secret_names(model.spec))
    problems = channel_problems(model.spec, secrets, egress=egress)
    if egress is not None and resolve_names:
        problems += await resolved_egress_problems(destination_hosts(model.spec, secrets), egress)
    if problems:
        return ChannelLookup(body, model, None, tuple(problems))
    try:
        channel = build_channel(model.spec, secrets, egress=egress)
    except ChannelConfigError as error:
        return ChannelLookup(body, model, None, (str(error),))
    return ChannelLookup(body, model, channel, ())
