"""cert-manager's own CRDs, from its Go module, applied to the test control plane.

The download and checks live in :mod:`certctl_operator.dev.cert_manager`
(the benchmark against cert-manager uses them too). Only the three kinds the
importer reads are applied here.
"""

from __future__ import annotations

from pathlib import Path

from certctl_operator.dev.cert_manager import CERT_MANAGER_VERSION, apply_crds

CRD_FILES = (
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
)


def apply_cert_manager_crds(kubeconfig: Path, version: str = CERT_MANAGER_VERSION) -> list[str]:
    """Apply cert-manager's Certificate, Issuer and ClusterIssuer CRDs; wait until Established."""
    return apply_crds(kubeconfig, version, CRD_FILES)
