"""Development tooling: a real local control plane (etcd + kube-apiserver) for tests, demo and benchmarks.

Nothing in this package is used by the operator at run time. The names below
are loaded on first use, so ``python -m certctl_operator.dev.<module>`` runs
each module exactly once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certctl_operator.dev.binaries import Binaries, BinariesError, ensure_binaries
    from certctl_operator.dev.controlplane import (
        ControlPlane,
        ControlPlaneError,
        apply_crd_manifests,
        apply_crds,
        stop_all,
    )
    from certctl_operator.dev.processes import find_owned_processes

_EXPORTS = {
    "Binaries": "binaries",
    "BinariesError": "binaries",
    "ensure_binaries": "binaries",
    "ControlPlane": "controlplane",
    "ControlPlaneError": "controlplane",
    "apply_crd_manifests": "controlplane",
    "apply_crds": "controlplane",
    "stop_all": "controlplane",
    "find_owned_processes": "processes",
}

__all__ = [
    "Binaries",
    "BinariesError",
    "ControlPlane",
    "ControlPlaneError",
    "apply_crd_manifests",
    "apply_crds",
    "ensure_binaries",
    "find_owned_processes",
    "stop_all",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
