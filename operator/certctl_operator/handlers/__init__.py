"""Kopf handlers not yet moved under ``certctl_operator.controllers``."""
