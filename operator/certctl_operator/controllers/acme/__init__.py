"""ACME issuance for the certificate controller: account, challenge answers, ordering, revoking.

Importing this package registers the HTTP-01 challenge route with the
operator's web server (:mod:`.challenges`); the package has no Kopf handlers
of its own.
"""

from certctl_operator.controllers.acme import challenges, issuing, revoking  # noqa: F401
