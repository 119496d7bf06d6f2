"""Transitional: ``revoke_acme`` now lives in :mod:`certctl_operator.controllers.acme.revoking`.

Kept only so ``handlers.acme_revocation`` keeps importing it until that module moves too.
"""

from certctl_operator.controllers.acme.revoking import revoke_acme

__all__ = ["revoke_acme"]
