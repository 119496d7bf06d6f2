"""Revocations: from a Revocation object to a serial on its issuer's CRL (or revoked by its ACME CA).

Importing this package registers the per-Revocation daemon (:mod:`.watch`)
with Kopf. :mod:`.reconcile` takes one Revocation as far as it goes,
:mod:`.resolve` finds its target, :mod:`.steps` writes its status and follows
up on the certificate, :mod:`.acme` revokes at an ACME CA, :mod:`.announce`
posts Events, NotificationEvents and the audit line.
"""

from certctl_operator.controllers.revocations import watch  # noqa: F401
