"""Run a probe in a fresh interpreter: what a process imports or allocates from its start.

The test process has imported and allocated much already; a probe that looks at
``sys.modules`` or resident memory runs in a new ``python -c`` and prints one
JSON object as its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_probe(source: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``source`` with this interpreter; the JSON object its last output line holds."""
    run = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stderr
    found: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return found
