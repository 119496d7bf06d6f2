"""Controllers: thin glue between Kubernetes objects and the pure domain modules.

Importing this package registers every controller with Kopf's default registry.
"""

from certctl_operator.controllers import lifecycle  # noqa: F401

# isort: split
# After lifecycle: Kopf runs start-up and clean-up handlers in the order they were registered.
from certctl_operator.controllers import (  # noqa: F401
    acme,
    certificates,
    issuers,
    notifications,
    publishing,
    revocations,
)
