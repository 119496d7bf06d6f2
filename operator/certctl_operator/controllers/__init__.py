"""Controllers: thin glue between Kubernetes objects and the pure domain modules.

Importing this package registers every controller with Kopf's default registry.
"""

from certctl_operator.controllers import lifecycle  # noqa: F401

# isort: split
# After lifecycle: Kopf runs start-up and clean-up handlers in the order they were registered.
from certctl_operator.controllers import acme, certificates, issuers  # noqa: F401

# isort: split
from certctl_operator.controllers import notifications  # noqa: F401

# isort: split
from certctl_operator.handlers import revocations  # noqa: F401
