"""Kept API bodies made small: one string object for every repeated key and short value, or JSON text.

JSON parsing gives every body its own copy of each key (``metadata``,
``lastTransitionTime``...) and of short values (``True``, ``Ready``, a
timestamp to the second). A body kept for as long as its object lives, for
ten thousand objects, is mostly such copies; interned, each text exists once.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEPT_BODY_COMPRESSION = 1
"""zlib level of kept bodies: the fastest; higher levels save a few bytes more for several times the time."""

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


def without_managed_fields(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` without ``metadata.managedFields`` (nothing reads them; they are half of a body's memory).

    A shallow copy when there were some: ``raw`` itself (often shared with Kopf) stays untouched.
    """
    metadata = raw.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        trimmed = {name: value for name, value in metadata.items() if name != "managedFields"}
        return {**raw, "metadata": trimmed}
    return raw


def watched_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A watch event's object as the operator keeps it parsed (notification channels).

    A copy without ``metadata.managedFields``, with its keys and short values
    interned: the event's own dicts are shared with Kopf and stay untouched,
    and many kept bodies share one copy of each repeated text.
    """
    body: dict[str, Any] = compact_json(without_managed_fields(raw))
    return body


def packed_json(value: Any) -> bytes:
    """``value`` as compact JSON compressed at :data:`KEPT_BODY_COMPRESSION` (see KeptBody)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return zlib.compress(text.encode("utf-8"), KEPT_BODY_COMPRESSION)


def unpacked_json(packed: bytes) -> Any:
    """The value :func:`packed_json` packed, newly parsed."""
    return json.loads(zlib.decompress(packed))


@dataclass(frozen=True, slots=True)
class KeptBody:
    """An object's body kept between reconciles as compressed compact JSON, with the version it is of.

    Ten thousand certificates kept as parsed dicts take about 2.8 KB each even
    with their texts interned (a dict per level, a list per array); as text,
    about 1.3 KB; compressed (zlib's fastest level: names, conditions and
    timestamps repeat within a body), about 0.65 KB. A reconcile unpacks and
    parses it again (some microseconds) and gets a body of its own to work on.
    """

    uid: str | None
    resource_version: str | None
    packed: bytes

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> KeptBody:
        """``raw`` without ``metadata.managedFields`` (see without_managed_fields), left untouched."""
        raw = without_managed_fields(raw)
        metadata = raw.get("metadata")
        if not isinstance(metadata, Mapping):
            metadata = {}
        uid, version = metadata.get("uid"), metadata.get("resourceVersion")
        return cls(
            None if uid is None else str(uid),
            None if version is None else str(version),
            packed_json(raw),
        )

    @property
    def metadata(self) -> dict[str, str | None]:
        """The identity and version, as ``older_than`` and its kin compare them."""
        return {"uid": self.uid, "resourceVersion": self.resource_version}

    def body(self) -> dict[str, Any]:
        """A newly parsed copy of the body."""
        parsed: dict[str, Any] = unpacked_json(self.packed)
        return parsed
