"""End-to-end tests in a kind cluster: the image built, loaded and installed by the chart.

They need a running Docker engine and the ``e2e`` extra (``pip install -e '.[e2e]'``,
which brings pytest-kind). Where either is missing, every test here is
skipped with the reason, so the default ``pytest`` run stays green.

pytest-kind downloads ``kind`` and ``kubectl`` unless they are given:
``pytest tests/e2e --kind-bin $(command -v kind) --kind-kubectl-bin $(command -v kubectl)``;
``--keep-cluster`` keeps the cluster for another run.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@functools.cache
def missing_requirement() -> str | None:
    """Why these tests cannot run here, or None."""
    if importlib.util.find_spec("pytest_kind") is None:
        return "pytest-kind is not installed (pip install -e '.[e2e]')"
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command: the e2e tests need a Docker engine for kind"
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker info failed: {error}"
    if info.returncode != 0 or not info.stdout.strip():
        detail = (info.stderr or info.stdout).strip().splitlines()
        return "no running Docker engine" + (f" ({detail[-1]})" if detail else "")
    return None


def _in_this_directory(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _in_this_directory(item)]
    if not ours:
        return
    reason = missing_requirement()
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"e2e: {reason}"))
