"""Building and caching helm, and splitting its output into manifests: no helm, no Go needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certctl_operator.dev import helm, render_manifests
from certctl_operator.dev.binaries import BinariesError

GO_MOD = """\
module certctl.io/helm-build

go 1.26.0

require helm.sh/helm/v3 v3.22.0

require (
\tk8s.io/api v0.37.0 // indirect
\tk8s.io/client-go v0.37.0 // indirect
)
"""


def test_versions_from_go_mod() -> None:
    versions = helm.parse_go_mod(GO_MOD)
    assert versions == helm.HelmVersions(helm="v3.22.0", client_go="v0.37.0")
    assert versions.kubernetes == ("1", "37")


def test_go_mod_without_helm_is_an_error() -> None:
    with pytest.raises(helm.HelmError, match=r"helm\.sh/helm/v3"):
        helm.parse_go_mod("module x\nrequire k8s.io/client-go v0.37.0\n")


def test_the_checked_in_go_mod_parses() -> None:
    go_mod = helm.find_go_mod()
    assert go_mod.parent.name == "helm" and go_mod.parent.parent.name == "tools"
    versions = helm.parse_go_mod(go_mod.read_text())
    assert versions.helm.startswith("v3.")
    assert versions.client_go.startswith("v0.")


def test_link_flags_carry_helm_and_kubernetes_versions() -> None:
    target = helm.target(helm.HelmVersions("v3.22.0", "v0.37.0"))
    assert target.package == "helm.sh/helm/v3/cmd/helm"
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in target.ldflags
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in target.ldflags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in target.ldflags


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(helm.CACHE_ENV, str(tmp_path / "cache"))
    assert helm.cache_root() == tmp_path / "cache"
    monkeypatch.delenv(helm.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert helm.cache_root() == tmp_path / "xdg" / "certctl-operator" / "helm"


def test_warm_cache_needs_no_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helm.HELM_ENV, raising=False)
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    cached = tmp_path / "cache" / "v3.22.0" / "helm"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    messages: list[str] = []
    found = helm.ensure_helm(
        messages.append, go_mod=go_mod, cache_dir=tmp_path / "cache", go="/nonexistent/go"
    )
    assert found == helm.Helm(path=cached, version="v3.22.0")
    assert messages == []


def test_cold_cache_builds_once_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helm.HELM_ENV, raising=False)
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    calls = tmp_path / "calls"
    fake_go = tmp_path / "go"
    fake_go.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'out=""; while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n'
        'printf \'#!/bin/sh\\necho "version.BuildInfo{Version:v3.22.0}"\\n\' > "$out"\n'
        "echo helm.sh/helm/v3/pkg/action\n"
    )
    fake_go.chmod(0o755)
    messages: list[str] = []
    cache = tmp_path / "cache"
    found = helm.ensure_helm(messages.append, go_mod=go_mod, cache_dir=cache, go=str(fake_go))
    assert found.path == cache / "v3.22.0" / "helm"
    assert os.access(found.path, os.X_OK)
    assert any(m.startswith("built helm in ") and "v3.22.0" in m for m in messages)
    assert "helm.sh/helm/v3/cmd/helm" in calls.read_text()
    # A second call finds the binary and runs no go at all.
    helm.ensure_helm(messages.append, go_mod=go_mod, cache_dir=cache, go="/nonexistent/go")
    assert len(calls.read_text().splitlines()) == 1


def test_failed_build_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helm.HELM_ENV, raising=False)
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'cmd/helm/helm.go:1:1: broken' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    with pytest.raises(BinariesError, match="broken"):
        helm.ensure_helm(lambda _: None, go_mod=go_mod, cache_dir=tmp_path / "cache", go=str(fake_go))
    assert not (tmp_path / "cache" / "v3.22.0" / "helm").exists()


def test_existing_helm_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "helm"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(helm.HELM_ENV, str(binary))
    assert helm.ensure_helm(go="/nonexistent/go").path == binary
    monkeypatch.setenv(helm.HELM_ENV, str(tmp_path / "missing"))
    with pytest.raises(helm.HelmError, match=helm.HELM_ENV):
        helm.ensure_helm()


def test_helm_runs_isolated_from_the_users_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_NAMESPACE", "somewhere")
    monkeypatch.setenv("KUBECONFIG", "/home/user/.kube/config")
    env = helm.Helm(path=Path("/bin/true"), version="v3").env(tmp_path)
    assert "HELM_NAMESPACE" not in env
    assert env["HELM_CONFIG_HOME"] == str(tmp_path / "config")
    assert env["KUBECONFIG"] == os.devnull
    with_cluster = helm.Helm(Path("/bin/true"), "v3").env(tmp_path, tmp_path / "kc")
    assert with_cluster["KUBECONFIG"] == str(tmp_path / "kc")


# --------------------------------------------------------------------------- splitting helm template output

RENDERED = """\
---
# Source: certctl-operator/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: a
---
# Source: certctl-operator/templates/rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: a
---
# Source: certctl-operator/templates/rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: a
---
# Source: certctl-operator/templates/empty.yaml

"""


def test_split_by_template_groups_documents_in_order() -> None:
    groups = render_manifests.split_by_template(RENDERED)
    assert list(groups) == ["serviceaccount.yaml", "rbac.yaml"]
    assert groups["rbac.yaml"].count("kind:") == 2
    assert groups["rbac.yaml"].index("ClusterRole\n") < groups["rbac.yaml"].index("ClusterRoleBinding")
    assert "# Source" not in groups["rbac.yaml"]


def test_manifests_list_every_file_in_the_kustomization() -> None:
    files = render_manifests.manifests(RENDERED)
    names = {path.name for path in files}
    assert names == {"namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "kustomization.yaml"}
    kustomization = files[Path("manifests/kustomization.yaml")]
    for name in names - {"kustomization.yaml"}:
        assert f"- {name}\n" in kustomization
    assert all(text.startswith(render_manifests.HEADER) for text in files.values())


def test_split_refuses_documents_without_a_source() -> None:
    with pytest.raises(render_manifests.RenderError):
        render_manifests.split_by_template("---\napiVersion: v1\nkind: ConfigMap\n")
