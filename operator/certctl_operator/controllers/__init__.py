"""Controllers: thin glue between Kubernetes objects and the pure domain modules.

Importing this package registers every controller with Kopf's default registry.
Each kind has a package split by responsibility (``watch`` registers with Kopf
or, for ManagedCertificates, starts their own list-then-watch,
``reconcile`` decides with :mod:`certctl_operator.policy` and writes what
:mod:`certctl_operator.status` builds, ``announce`` posts Events and creates
NotificationEvents as API models), and follows one of two patterns:

1. **A keyed work queue** (:class:`~certctl_operator.workqueue.WorkQueue`):
   watch event handlers only put object keys on the queue, workers
   reconcile, and one scheduler task wakes each key at the due time its
   status gives (renewal, retry, expiry notice). ManagedCertificates,
   Issuers and ClusterIssuers (:mod:`.issuance` is their shared runtime),
   NotificationEvents and NotificationChannels (:mod:`.notifications.runtime`).
2. **A Kopf daemon per object**, for work that is a loop of its own and ends
   for good: an unsettled Revocation (:mod:`.revocations`) and a CA issuer's
   CRL and OCSP publishing (:mod:`.publishing`).

Shared state lives in typed fields of
:class:`~certctl_operator.context.OperatorContext` (Kopf's ``memo``).
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
