"""Sections of docs/benchmarks.md that each benchmark script owns.

Every script writes only the text between its own pair of markers,

    <!-- benchmark:NAME:begin -->
    ...
    <!-- benchmark:NAME:end -->

so the scripts can be run in any order and keep each other's results.
"""

from __future__ import annotations

from pathlib import Path

TITLE = "# Benchmarks\n"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- benchmark:{name}:begin -->", f"<!-- benchmark:{name}:end -->"


def replace_section(document: str, name: str, body: str) -> str:
    """``document`` with the section ``name`` replaced by ``body`` (appended when it has none)."""
    begin, end = markers(name)
    section = f"{begin}\n{body.strip()}\n{end}"
    start = document.find(begin)
    stop = document.find(end)
    if start != -1 and stop > start:
        return document[:start] + section + document[stop + len(end) :]
    if not document.strip():
        document = TITLE
    return document.rstrip("\n") + "\n\n" + section + "\n"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or add) the section ``name`` of the Markdown file at ``path``."""
    document = path.read_text() if path.exists() else ""
    path.write_text(replace_section(document, name, body))
