"""cert-manager's own CRDs, from its Go module, applied to the test control plane.

``go mod download`` fetches the module once into Go's module cache (a fresh
CI machine needs the module proxy); ``deploy/crds/`` of that module holds the
CRDs as plain YAML (no Helm templating in the pinned release). Only the three
kinds the importer reads are applied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from certctl_operator.dev.controlplane import apply_crd_manifests, load_manifests

CERT_MANAGER_MODULE = "github.com/cert-manager/cert-manager"
CERT_MANAGER_VERSION = "v1.21.2"
CRD_FILES = (
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
)


def cert_manager_crd_dir(version: str = CERT_MANAGER_VERSION) -> Path:
    """``deploy/crds`` of cert-manager's module at ``version`` (downloaded when not cached)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{CERT_MANAGER_MODULE}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"go mod download {CERT_MANAGER_MODULE}@{version} failed: {info.get('Error') or result.stderr}"
        )
    crds = Path(info["Dir"]) / "deploy" / "crds"
    missing = [name for name in CRD_FILES if not (crds / name).is_file()]
    if missing:
        raise RuntimeError(f"{crds} lacks {', '.join(missing)}")
    for name in CRD_FILES:
        if "{{" in (crds / name).read_text():
            raise RuntimeError(f"{crds / name} is Helm-templated; render it before applying")
    return crds


def apply_cert_manager_crds(kubeconfig: Path, version: str = CERT_MANAGER_VERSION) -> list[str]:
    """Apply cert-manager's Certificate, Issuer and ClusterIssuer CRDs; wait until Established."""
    crds = cert_manager_crd_dir(version)
    documents = [document for _, document in load_manifests([crds / name for name in CRD_FILES])]
    return apply_crd_manifests(kubeconfig, documents, timeout=120)
