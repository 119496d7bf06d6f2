"""Kept API bodies made small: one string object for every repeated key and short value.

JSON parsing gives every body its own copy of each key (``metadata``,
``lastTransitionTime``...) and of short values (``True``, ``Ready``, a
timestamp to the second). A body kept for as long as its object lives, for
ten thousand objects, is mostly such copies; interned, each text exists once.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

SHORT_VALUE = 32
"""Longest string value interned: names, enum values and timestamps repeat, PEM blocks do not."""


def compact_json(value: Any) -> Any:
    """A copy of a parsed JSON value with its keys and short string values interned.

    Only dicts, lists and strings are rebuilt; numbers, booleans and None are
    shared as they are. The input is left untouched.
    """
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHORT_VALUE else value
    if isinstance(value, Mapping):
        return {sys.intern(str(key)): compact_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compact_json(item) for item in value]
    return value


def compact_strings(mapping: Mapping[str, str]) -> dict[str, str]:
    """A copy of a flat string map (labels, annotations) with keys and short values interned."""
    return {
        sys.intern(key): sys.intern(item) if len(item) <= SHORT_VALUE else item
        for key, item in mapping.items()
    }


def watched_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A watch event's object as the operator keeps it (certificates, notification channels).

    A copy without ``metadata.managedFields`` (nothing reads them; they are
    half of a body's memory), with its keys and short values interned: the
    event's own dicts are shared with Kopf and stay untouched, and ten
    thousand kept bodies share one copy of each repeated text.
    """
    metadata = raw.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        trimmed = {name: value for name, value in metadata.items() if name != "managedFields"}
        raw = {**raw, "metadata": trimmed}
    body: dict[str, Any] = compact_json(raw)
    return body
