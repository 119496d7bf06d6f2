"""The ACME account key Secret and the other Secrets an acme issuer names."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.acme import generate_account_key_pem
from certctl_operator.api.metadata_keys import LABEL_ACME_ACCOUNT_KEY
from certctl_operator.kube.secrets import create_secret, read_secret

ACCOUNT_KEY_DEFAULT = "tls.key"
SECRET_TYPE_OPAQUE = "Opaque"  # noqa: S105 (a Secret type, not a password)


class SecretValueMissing(Exception):
    """A Secret or key an issuer names is not there."""


async def account_key_pem(api: Any, namespace: str, name: str, key: str | None) -> bytes:
    """The account key from its Secret; a missing Secret is created with a new P-256 key."""
    field = key or ACCOUNT_KEY_DEFAULT
    secret = await read_secret(api, namespace=namespace, name=name)
    if secret is None:
        try:
            secret = await create_secret(
                api,
                namespace,
                name,
                secret_type=SECRET_TYPE_OPAQUE,
                labels={LABEL_ACME_ACCOUNT_KEY: "true"},
                annotations={},
                data={field: generate_account_key_pem()},
            )
        except ApiException as error:
            if error.status != 409:
                raise
            # Another reconcile created it meanwhile: use that one.
            secret = await read_secret(api, namespace=namespace, name=name)
    value = secret.data.get(field) if secret is not None else None
    if not value:
        raise SecretValueMissing(f"Secret {namespace}/{name} has no {field}")
    return value


async def secret_value(api: Any, namespace: str, name: str, key: str) -> bytes:
    """One value of a Secret."""
    secret = await read_secret(api, namespace=namespace, name=name)
    value = secret.data.get(key) if secret is not None else None
    if not value:
        raise SecretValueMissing(f"Secret {namespace}/{name} has no {key}")
    return value
