"""Log records about Kubernetes objects.

Every record about an object carries the object's reference (apiVersion,
kind, namespace, name, uid) as the ``k8s_ref`` attribute, the way Kopf's
object loggers attach it: the JSON format puts it under ``object`` so log
pipelines can filter by it, the text format prefixes the message with
``[namespace/name]``. Kopf's handler ``logger`` does this for the object a
handler runs for; the operator's own ``certctl.*`` loggers do it through
:func:`object_extra` or :func:`object_logger`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

AUDIT_LOGGER = "certctl.audit"

REF_ATTRIBUTE = "k8s_ref"
"""The log record attribute Kopf's formatters read the object reference from."""


def object_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reference of a Kubernetes object (a body as the API returns it), as Kopf logs it.

    ``namespace`` is None for a cluster-scoped object.
    """
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "namespace": metadata.get("namespace") or None,
    }


def object_extra(body: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call about ``body``, with any further ``fields``."""
    return {**fields, REF_ATTRIBUTE: object_ref(body)}


class ObjectLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger whose every record is about one object; a call's own ``extra`` is kept too."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def object_logger(logger: logging.Logger, body: Mapping[str, Any]) -> ObjectLogAdapter:
    """``logger``, attaching ``body``'s reference to every record."""
    return ObjectLogAdapter(logger, object_extra(body))
