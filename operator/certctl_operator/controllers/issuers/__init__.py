"""The Issuer and ClusterIssuer controller.

Importing this package registers its Kopf handlers (:mod:`.watch`) and its
reconcile with the issuance work queue (:mod:`.reconcile`).
"""

from certctl_operator.controllers.issuers import reconcile, watch  # noqa: F401
