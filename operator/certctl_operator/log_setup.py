"""Logging set-up of the operator process: plain text by default, JSON lines on request.

Kopf's formatters do the rendering (they put a record's object reference,
see :mod:`certctl_operator.logs`, under ``object``); this module is the only
one outside the controllers that touches Kopf, so the API-call and endpoint
modules that log about objects stay free of it.
"""

from __future__ import annotations

import logging

import kopf

# Loggers of libraries that are chatty at INFO and say nothing an operator needs.
_QUIET_LOGGERS = ("aiohttp.access", "httpx", "httpcore", "kubernetes_asyncio.client.rest")


def configure_logging(log_format: str, level: str) -> None:
    """Install the root handler once, in the requested format."""
    kopf.configure(
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=log_format != "json",
        log_refkey="object",
    )
    root = logging.getLogger()
    root.setLevel(level)
    if log_format == "json":
        for handler in root.handlers:
            if not any(isinstance(f, _LoggerName) for f in handler.filters):
                handler.addFilter(_LoggerName())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class _LoggerName(logging.Filter):
    """Puts the logger's name in each JSON line as ``logger`` (the text format shows it anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "logger"):
            record.logger = record.name
        return True
