"""What the issuance reconciler does with one ManagedCertificate right now.

Everything here is pure: the caller reads the ManagedCertificate, its Secret
and its issuer, passes them in with ``now``, performs the :class:`Decision`
and writes the status these functions build. The Kopf glue lives in
``certctl_operator.controllers.certificates``.

The idempotency protocol
------------------------
The Secret is written before the status, and it carries what the status will
say: ``certctl.io/revision`` and ``certctl.io/serial-number`` annotations.
An operator killed between the two writes leaves a Secret one revision ahead
of the status; so does a status write that lost a race with another
client's edit (it carries the resourceVersion it was computed from), and
when the spec changes meanwhile the Secret can end up several revisions
ahead. The next reconcile *adopts* such a Secret (status revision ``R``,
Secret revision above ``R``, content matching the spec and the issuer)
instead of issuing again, so no revision is ever issued twice and the Secret
and the status end up agreeing. A new issuance always takes the revision
after the highest one seen in the status or in the certificate's own Secret,
so a revision number is never reused either.

The modules
-----------
``names`` (annotations, labels, reasons), ``spec`` (the request a spec asks
for and whether it can be issued), ``secret`` (what the Secret holds and whose
it is), ``schedule`` (renewal time, back-off, revocation, renew requests),
``notices`` (notifications and expiry thresholds) and ``reissue``
(:func:`decide` and the ordered chain of reissue checks). Every public name is
re-exported here. The status each outcome writes is built in
:mod:`certctl_operator.status.certificates`.
"""

from __future__ import annotations

from certctl_operator.policy.issuance.names import (
    CLUSTER_SEGMENT,
    ISSUER_FAILURES,
    OUR_ANNOTATIONS,
    RENEW_TOKEN_LIMIT,
    Reason,
    managed_by_label_value,
    renew_token,
    serial_hex,
)
from certctl_operator.policy.issuance.notices import (
    ExpiryNotice,
    expiry_notice_due,
    next_expiry_notice_time,
    subscribed_channels,
    with_notified,
)
from certctl_operator.policy.issuance.reissue import (
    REISSUE_CHAIN,
    Action,
    Decision,
    ReissueCheck,
    ReissueInput,
    ReissueReason,
    adoption,
    certificate_expired,
    claimed_revision,
    decide,
    reissue_reason,
    renewal_requested,
    renewal_time_reached,
    secret_does_not_exist,
    secret_does_not_fit,
    secret_is_not_the_recorded_certificate,
)
from certctl_operator.policy.issuance.schedule import (
    backoff_until,
    certificate_renewal_time,
    current_serial_revoked,
    next_action_time,
    pending_renew_request,
    revoked_serials,
)
from certctl_operator.policy.issuance.secret import (
    Mismatch,
    SecretExamination,
    chain_for,
    desired_annotations,
    desired_labels,
    examine_secret,
    metadata_differs,
    other_owner,
    pem_key_encoding,
    secret_conflict,
    secret_written_for,
)
from certctl_operator.policy.issuance.spec import (
    IssuerView,
    build_request,
    crl_url,
    issuer_url_segment,
    key_encoding_for,
    key_spec_for,
    name_constraint_violations,
    ocsp_url,
    request_hash,
    spec_error_message,
    spec_problems,
)

__all__ = [
    "CLUSTER_SEGMENT",
    "ISSUER_FAILURES",
    "OUR_ANNOTATIONS",
    "REISSUE_CHAIN",
    "RENEW_TOKEN_LIMIT",
    "Action",
    "Decision",
    "ExpiryNotice",
    "IssuerView",
    "Mismatch",
    "Reason",
    "ReissueCheck",
    "ReissueInput",
    "ReissueReason",
    "SecretExamination",
    "adoption",
    "backoff_until",
    "build_request",
    "certificate_expired",
    "certificate_renewal_time",
    "chain_for",
    "claimed_revision",
    "crl_url",
    "current_serial_revoked",
    "decide",
    "desired_annotations",
    "desired_labels",
    "examine_secret",
    "expiry_notice_due",
    "issuer_url_segment",
    "key_encoding_for",
    "key_spec_for",
    "managed_by_label_value",
    "metadata_differs",
    "name_constraint_violations",
    "next_action_time",
    "next_expiry_notice_time",
    "ocsp_url",
    "other_owner",
    "pem_key_encoding",
    "pending_renew_request",
    "reissue_reason",
    "renew_token",
    "renewal_requested",
    "renewal_time_reached",
    "request_hash",
    "revoked_serials",
    "secret_conflict",
    "secret_does_not_exist",
    "secret_does_not_fit",
    "secret_is_not_the_recorded_certificate",
    "secret_written_for",
    "serial_hex",
    "spec_error_message",
    "spec_problems",
    "subscribed_channels",
    "with_notified",
]
