"""The old import path of :func:`record_issued_serial`, for ``handlers/certificates.py`` until it moves.

It now lives in :mod:`certctl_operator.controllers.publishing.index`; delete
this module once nothing imports it from here.
"""

from certctl_operator.controllers.publishing.index import record_issued_serial

__all__ = ["record_issued_serial"]
