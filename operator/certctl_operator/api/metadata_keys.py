"""Every label and annotation key the project reads or writes, declared once.

Users set some of them (``renew``, ``requeue``, ``allow-takeover-by``); the
operator writes the others to find its own objects again and to make writes
idempotent. All live under the API group's domain. Documented for users in
docs/api-reference.md and docs/concepts.md.
"""

from __future__ import annotations

from certctl_operator import API_GROUP

# --- set by users -------------------------------------------------------------------------------

ANNOTATION_RENEW = f"{API_GROUP}/renew"
"""On a ManagedCertificate: any new value requests a new certificate (``kubectl certctl renew``)."""

ANNOTATION_REQUEUE = f"{API_GROUP}/requeue"
"""On a NotificationEvent: a new value (a timestamp, a counter) delivers it again."""

ANNOTATION_ALLOW_TAKEOVER = f"{API_GROUP}/allow-takeover-by"
"""On a Secret the operator did not write: the ManagedCertificate allowed to replace its contents."""

ANNOTATION_REQUESTED_BY = f"{API_GROUP}/requested-by"
"""On a Revocation: who asked for it, as the CLI records it."""

# --- written by the operator on the Secrets it issues -------------------------------------------

LABEL_MANAGED_BY_CERTIFICATE = f"{API_GROUP}/managed-by-certificate"
"""On Secrets (and ACME solver Pods): the ManagedCertificate they belong to."""

ANNOTATION_CERTIFICATE_NAME = f"{API_GROUP}/certificate-name"
ANNOTATION_ISSUER_NAME = f"{API_GROUP}/issuer-name"
ANNOTATION_ISSUER_KIND = f"{API_GROUP}/issuer-kind"
ANNOTATION_SERIAL_NUMBER = f"{API_GROUP}/serial-number"
ANNOTATION_REVISION = f"{API_GROUP}/revision"
ANNOTATION_REQUEST_HASH = f"{API_GROUP}/request-hash"
ANNOTATION_RENEW_REQUEST = f"{API_GROUP}/renew-request"

ANNOTATION_IMPORTED_FROM = f"{API_GROUP}/imported-from"
"""On objects written by ``kubectl certctl import``: the cert-manager object they came from."""

LABEL_ACME_ACCOUNT_KEY = f"{API_GROUP}/acme-account-key"
"""On an ACME account-key Secret the operator created."""

# --- ACME HTTP-01 solver Pods and Services -----------------------------------------------------

LABEL_ACME_HTTP01_SOLVER = f"{API_GROUP}/acme-http01-solver"
ANNOTATION_ACME_IDENTIFIER = f"{API_GROUP}/acme-identifier"
ANNOTATION_ACME_TOKEN = f"{API_GROUP}/acme-token"

# --- NotificationEvents -------------------------------------------------------------------------

LABEL_PHASE = f"{API_GROUP}/phase"
"""Carried with the value ``dead`` by dead-lettered events: the dead-letter queue is a label selector."""

LABEL_PHASE_DEAD = "dead"

LABEL_CERTIFICATE = f"{API_GROUP}/certificate"
LABEL_EVENT_TYPE = f"{API_GROUP}/event-type"
LABEL_CHANNEL = f"{API_GROUP}/channel"

# --- published CRLs (ConfigMaps) and revocation-list shards --------------------------------------

ANNOTATION_CRL_NUMBER = f"{API_GROUP}/crl-number"
ANNOTATION_CA_FINGERPRINT = f"{API_GROUP}/ca-fingerprint"
ANNOTATION_THIS_UPDATE = f"{API_GROUP}/this-update"
ANNOTATION_NEXT_UPDATE = f"{API_GROUP}/next-update"
ANNOTATION_CRL_SIZE = f"{API_GROUP}/crl-size"
LABEL_ISSUER_NAME = f"{API_GROUP}/issuer-name"
LABEL_ISSUER_KIND = f"{API_GROUP}/issuer-kind"

# --- the operator's own finalizers -------------------------------------------------------------

FINALIZER_DELETE_SECRET = f"{API_GROUP}/delete-secret"
"""On a ManagedCertificate whose Secret is deleted with it (``secretDeletionPolicy``)."""

FINALIZER_KOPF = f"{API_GROUP}/finalizer"
"""Kopf's own finalizer, kept under the project's domain."""
