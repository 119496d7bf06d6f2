"""Code that is installed beside the operator but never runs in it, kept out of the operator's memory.

Two libraries import more than the operator uses, because something they
recognise happens to be installed (the command-line tool needs it):

* httpx imports its own command-line client when ``rich`` and ``pygments``
  are importable: about 4 MB of modules, in a process that only sends
  webhooks.
* Kopf imports the synchronous Kubernetes client (``kubernetes``) when it is
  installed: its models, to recognise them when handed one, and the whole
  package, to log in through it. The operator hands Kopf no such models and
  talks to the API through ``kubernetes_asyncio``, which Kopf then logs in
  through instead (same kubeconfig and in-cluster rules). About 3 MB, and the
  ``requests`` stack with it.

Both must happen before the library is first imported; ``certctl-operator
run`` calls them first thing. Nothing else changes: a later import of
``kubernetes`` (none in the operator) works as usual.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

HTTPX_CLI = "httpx._main"
SYNC_CLIENT = "kubernetes"


def leave_out_httpx_cli() -> bool:
    """Make httpx skip its command-line client; False when httpx is already imported."""
    if "httpx" in sys.modules:
        return False
    # httpx imports it in a try/except ImportError; a None entry makes that import fail at once.
    sys.modules.setdefault(HTTPX_CLI, None)  # type: ignore[arg-type]
    return True


def import_kopf() -> ModuleType:
    """Import Kopf and create its registry of handlers as if the synchronous client were absent."""
    hidden = SYNC_CLIENT not in sys.modules
    if hidden:
        sys.modules[SYNC_CLIENT] = None  # type: ignore[assignment]
    try:
        kopf = importlib.import_module("kopf")
        # The default registry picks its login handler when it is created: create it now.
        kopf.get_default_registry()
    finally:
        if hidden:
            del sys.modules[SYNC_CLIENT]
    return kopf


__all__ = ["import_kopf", "leave_out_httpx_cli"]
