"""Shared test helpers: real local receivers for notifications."""
