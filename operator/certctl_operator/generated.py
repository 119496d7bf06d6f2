"""Checks for files the project generates (CRDs, API reference, manifests).

Generated files are committed so users can read and apply them, and a check
fails when one no longer matches its source; this is the diff it shows.
"""

from __future__ import annotations

import difflib
from pathlib import Path


def file_drift(path: Path, expected: str, label: Path | str | None = None) -> str:
    """A unified diff from the file at ``path`` to ``expected``; empty when they match.

    A missing file counts as empty. ``label`` names the file in the diff
    (default: ``path``).
    """
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == expected:
        return ""
    name = str(path if label is None else label)
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=name,
            tofile=f"{name} (generated)",
        )
    )
