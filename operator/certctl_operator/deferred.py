"""A module imported when one of its attributes is first read.

For libraries that only some configurations use (the ACME client stack, the
DNS update library): an operator with none of those issuers never has them in
memory. Annotations and type checking import the real module under
``TYPE_CHECKING``; at run time the module's own code reads attributes through
a :class:`DeferredModule`, which imports it on the first read.
"""

from __future__ import annotations

import importlib
from typing import Any


class DeferredModule:
    """Stands for the module ``name`` until an attribute is read; then reads it from the real one."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)  # copy, pickle and inspect look for these: no import for them
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


__all__ = ["DeferredModule"]
