"""Logging set-up: plain text by default, JSON lines on request.

Kopf's object loggers attach the object reference (apiVersion, kind,
namespace, name, uid) to every record about an object; the JSON format
puts it under ``object`` so log pipelines can filter by it.
"""

from __future__ import annotations

import logging

import kopf

AUDIT_LOGGER = "certctl.audit"

# Loggers of libraries that are chatty at INFO and say nothing an operator needs.
_QUIET_LOGGERS = ("aiohttp.access", "httpx", "httpcore", "kubernetes_asyncio.client.rest")


def configure_logging(log_format: str, level: str) -> None:
    """Install the root handler once, in the requested format."""
    kopf.configure(
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=log_format != "json",
        log_refkey="object",
    )
    logging.getLogger().setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
