"""ACME (RFC 8555): the order flow and its state, without Kubernetes; see :mod:`.flow`."""

from certctl_operator.acme.flow import (
    ACMEAccount,
    ACMEProblem,
    ChallengeAnswers,
    OrderOutcome,
    build_csr_pem,
    generate_account_key_pem,
    order_identifiers,
    revoke_certificate,
    run_order,
    select_solver,
)

__all__ = [
    "ACMEAccount",
    "ACMEProblem",
    "ChallengeAnswers",
    "OrderOutcome",
    "build_csr_pem",
    "generate_account_key_pem",
    "order_identifiers",
    "revoke_certificate",
    "run_order",
    "select_solver",
]
