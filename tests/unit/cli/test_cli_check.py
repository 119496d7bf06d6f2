"""``check`` compares installed CRDs with what this release generates."""

from __future__ import annotations

import copy
from typing import Any

from certctl_operator import crdgen
from certctl_operator.api import Issuer, ManagedCertificate
from certctl_operator.cli.check import crd_differences


def installed(resource: Any) -> dict[str, Any]:
    """What the API server returns for a CRD applied from crds/: empty maps dropped, status added."""
    crd = copy.deepcopy(crdgen.crd(resource))

    def drop_empty(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: drop_empty(value) for key, value in node.items() if value not in ({}, [])}
        if isinstance(node, list):
            return [drop_empty(item) for item in node]
        return node

    crd = drop_empty(crd)
    crd["spec"]["versions"][0]["subresources"] = {"status": {}}
    crd["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    return crd


def test_a_current_crd_has_no_differences() -> None:
    assert crd_differences(installed(ManagedCertificate), ManagedCertificate) == []
    assert crd_differences(installed(Issuer), Issuer) == []


def test_schema_changes_are_named_by_path() -> None:
    crd = installed(ManagedCertificate)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    spec["duration"]["default"] = "30d"
    del spec["secretTemplate"]
    spec["legacyField"] = {"type": "string"}
    problems = crd_differences(crd, ManagedCertificate)
    prefix = "versions[v1alpha1].schema.openAPIV3Schema.properties.spec.properties"
    assert f'{prefix}.duration.default: "30d" in the cluster, "90d" in this release' in problems
    assert f"{prefix}.secretTemplate: missing in the cluster" in problems
    assert f"{prefix}.legacyField: in the cluster, not in this release" in problems


def test_an_older_version_or_other_names_are_reported() -> None:
    crd = installed(ManagedCertificate)
    crd["spec"]["versions"][0]["name"] = "v1alpha0"
    crd["spec"]["names"]["shortNames"] = ["mc"]
    problems = crd_differences(crd, ManagedCertificate)
    assert "spec.names.shortNames: ['mc'] in the cluster, ['mcert', 'mcerts'] in this release" in problems
    assert problems[-1] == "version v1alpha1 is not defined (the cluster has v1alpha0)"

    served_only = installed(ManagedCertificate)
    served_only["spec"]["versions"][0]["storage"] = False
    assert crd_differences(served_only, ManagedCertificate) == [
        "version v1alpha1 must be served and the storage version"
    ]
