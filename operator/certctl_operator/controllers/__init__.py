"""Controllers: thin glue between Kubernetes objects and the pure domain modules.

Importing this package registers every controller with Kopf's default registry.
"""

from certctl_operator.controllers import (  # noqa: F401
    lifecycle,
    publishing,
    revocations,
)
from certctl_operator.handlers import (  # noqa: F401
    certificates,
    issuers,
    notifications,
)
