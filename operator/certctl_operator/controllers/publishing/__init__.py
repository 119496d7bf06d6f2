"""PKI publishing: each CA issuer's CRL and OCSP responder, and the registry they are served from.

Importing this package registers with Kopf the per-CA-issuer publishing
daemons (:mod:`.publisher`) and the issuers' watch handlers that keep the
in-memory PKI registry current (:mod:`.index`, which also takes the
ManagedCertificates' events from their own list-then-watch).
"""

from certctl_operator.controllers.publishing import index, publisher  # noqa: F401
