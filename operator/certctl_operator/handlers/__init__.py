"""Kopf handlers: thin glue between Kubernetes objects and the pure domain modules.

Importing this package registers every handler with Kopf's default registry.
"""

from certctl_operator.handlers import (  # noqa: F401
    certificates,
    issuers,
    lifecycle,
    notifications,
    revocations,
)
