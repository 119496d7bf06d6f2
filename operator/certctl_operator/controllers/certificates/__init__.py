"""The ManagedCertificate controller: issue into a kubernetes.io/tls Secret, keep it matching, renew it.

Importing this package registers its Kopf handlers (:mod:`.watch`: the
start-up and clean-up of the watches of certificates and their Secrets, which
are not Kopf's; :mod:`.metrics`) and its reconcile with the issuance work
queue (:mod:`.reconcile`).
"""

from certctl_operator.controllers.certificates import metrics, reconcile, watch  # noqa: F401
