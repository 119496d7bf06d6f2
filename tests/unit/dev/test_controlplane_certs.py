"""Pure parts of the development control plane: PKI, kubeconfig, go.mod versions, cache paths."""

from __future__ import annotations

import base64
import ipaddress
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certctl_operator.dev import binaries, pki, processes
from certctl_operator.dev.controlplane import ControlPlane, ControlPlaneError, apply_crds

# --------------------------------------------------------------------------- PKI


def _verify_signed_by(cert: x509.Certificate, ca: pki.CertAndKey) -> None:
    public = ca.key.public_key()
    assert cert.signature_hash_algorithm is not None
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_ca_is_self_signed_ca() -> None:
    ca = pki.new_ca("test-ca")
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert ca.cert.subject == ca.cert.issuer
    _verify_signed_by(ca.cert, ca)
    assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_serving_cert_has_loopback_sans_and_server_usage() -> None:
    ca = pki.new_ca()
    serving = pki.issue(
        ca, "kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True
    )
    _verify_signed_by(serving.cert, ca)
    sans = serving.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = serving.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert serving.cert.issuer == ca.cert.subject


def test_admin_client_cert_names_user_and_group() -> None:
    ca = pki.new_ca()
    admin = pki.issue(ca, "admin", organizations=["system:masters"], client=True)
    _verify_signed_by(admin.cert, ca)
    subject = admin.cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["admin"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    usages = admin.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        admin.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_pem_round_trip() -> None:
    ca = pki.new_ca()
    leaf = pki.issue(ca, "x", client=True)
    assert x509.load_pem_x509_certificate(leaf.cert_pem) == leaf.cert
    key = serialization.load_pem_private_key(leaf.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == leaf.cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_leaf_needs_a_usage() -> None:
    with pytest.raises(ValueError, match="usage"):
        pki.issue(pki.new_ca(), "nothing")


def test_service_account_keys_are_a_matching_rsa_pair() -> None:
    private_pem, public_pem = pki.new_service_account_keys()
    private = serialization.load_pem_private_key(private_pem, password=None)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    assert private.key_size == 2048
    signature = private.sign(b"token", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"token", padding.PKCS1v15(), hashes.SHA256())


# --------------------------------------------------------------------------- kubeconfig


def test_kubeconfig_with_client_certificate() -> None:
    text = pki.render_kubeconfig(
        "https://127.0.0.1:6443", b"CA", user="admin", client_cert_pem=b"CERT", client_key_pem=b"KEY"
    )
    config = yaml.safe_load(text)
    assert config["current-context"] == "admin@certctl-dev"
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA"
    [user] = config["users"]
    assert user["name"] == "admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"
    [context] = config["contexts"]
    assert context["context"] == {"cluster": "certctl-dev", "user": "admin"}


def test_kubeconfig_with_token_and_namespace() -> None:
    text = pki.render_kubeconfig(
        "https://127.0.0.1:1", b"CA", user="system:serviceaccount:ns:sa", token="t0k", namespace="ns"
    )
    config = yaml.safe_load(text)
    assert config["users"][0]["user"] == {"token": "t0k"}
    assert config["contexts"][0]["context"]["namespace"] == "ns"


@pytest.mark.parametrize(
    ("cert", "key", "token"),
    [(None, None, None), (b"C", None, None), (None, b"K", None), (b"C", b"K", "t")],
)
def test_kubeconfig_needs_exactly_one_credential(
    cert: bytes | None, key: bytes | None, token: str | None
) -> None:
    with pytest.raises(ValueError, match=r"credential|certificate"):
        pki.render_kubeconfig(
            "https://h", b"CA", user="u", client_cert_pem=cert, client_key_pem=key, token=token
        )


# --------------------------------------------------------------------------- go.mod


GO_MOD = textwrap.dedent(
    """\
    module certctl.io/controlplane-build

    go 1.26.0

    require (
    \tgo.etcd.io/etcd/server/v3 v3.6.8 // the server main package
    \tk8s.io/kubernetes v1.36.3
    )

    require k8s.io/api v0.0.0 // indirect

    replace (
    \tk8s.io/api => k8s.io/api v0.36.3
    )
    """
)


def test_versions_from_go_mod() -> None:
    versions = binaries.parse_go_mod(GO_MOD)
    assert versions == binaries.ModuleVersions(kubernetes="v1.36.3", etcd="v3.6.8")
    assert versions.key == "v1.36.3-v3.6.8"


def test_single_line_require_and_replace_by_version_win() -> None:
    text = (
        "module x\n"
        "require k8s.io/kubernetes v1.35.0\n"
        "require go.etcd.io/etcd/server/v3 v3.6.0\n"
        "replace k8s.io/kubernetes v1.35.0 => k8s.io/kubernetes v1.35.4\n"
        "replace go.etcd.io/etcd/server/v3 => ../etcd/server\n"
    )
    assert binaries.parse_go_mod(text) == binaries.ModuleVersions("v1.35.4", "v3.6.0")


def test_go_mod_without_kubernetes_is_an_error() -> None:
    with pytest.raises(binaries.BinariesError, match=r"k8s\.io/kubernetes"):
        binaries.parse_go_mod("module x\nrequire go.etcd.io/etcd/server/v3 v3.6.8\n")


def test_the_checked_in_go_mod_parses() -> None:
    go_mod = binaries.find_go_mod()
    assert go_mod.parent.name == "gobuild"
    versions = binaries.parse_go_mod(go_mod.read_text())
    assert versions.kubernetes.startswith("v1.")
    assert versions.etcd.startswith("v3.")


def test_apiserver_link_flags_carry_the_release_version() -> None:
    targets = {t.name: t for t in binaries._targets(binaries.ModuleVersions("v1.36.3", "v3.6.8"))}
    flags = targets["kube-apiserver"].ldflags
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "gitMajor=1 " in flags
    assert "gitMinor=36 " in flags
    assert targets["etcd"].package == "go.etcd.io/etcd/server/v3"


# --------------------------------------------------------------------------- locating things


def test_find_go_mod_searches_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(binaries.GOMOD_ENV, raising=False)
    go_mod = tmp_path / binaries.GOMOD_RELATIVE_PATH
    go_mod.parent.mkdir(parents=True)
    go_mod.write_text(GO_MOD)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert binaries.find_go_mod([tmp_path / "elsewhere", deep]) == go_mod


def test_find_go_mod_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "go.mod").write_text(GO_MOD)
    monkeypatch.setenv(binaries.GOMOD_ENV, str(tmp_path))
    assert binaries.find_go_mod() == (tmp_path / "go.mod").resolve()
    monkeypatch.setenv(binaries.GOMOD_ENV, str(tmp_path / "missing"))
    with pytest.raises(binaries.BinariesError, match=binaries.GOMOD_ENV):
        binaries.find_go_mod()


def test_find_go_mod_reports_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(binaries.GOMOD_ENV, raising=False)
    with pytest.raises(binaries.BinariesError, match="cannot find"):
        binaries.find_go_mod([tmp_path])


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path / "cache"))
    assert binaries.cache_root() == tmp_path / "cache"
    monkeypatch.delenv(binaries.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert binaries.cache_root() == tmp_path / "xdg" / "certctl-operator" / "controlplane"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert binaries.cache_root() == Path.home() / ".cache" / "certctl-operator" / "controlplane"


def test_warm_cache_needs_no_go(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    directory = tmp_path / "cache" / "v1.36.3-v3.6.8"
    directory.mkdir(parents=True)
    for name in ("kube-apiserver", "etcd"):
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    messages: list[str] = []
    found = binaries.ensure_binaries(
        messages.append, go_mod=go_mod, cache_dir=tmp_path / "cache", go="/nonexistent/go"
    )
    assert found.kube_apiserver == directory / "kube-apiserver"
    assert found.etcd == directory / "etcd"
    assert found.version == "v1.36.3-v3.6.8"
    assert messages == []


def test_failed_build_leaves_no_partial_binary(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    fake_go = tmp_path / "go"
    fake_go.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n'
        'echo half > "$out"\n'
        "echo k8s.io/some/package\n"
        "echo 'main.go:1:1: broken' >&2\n"
        "exit 2\n"
    )
    fake_go.chmod(0o755)
    messages: list[str] = []
    with pytest.raises(binaries.BinariesError, match="exit status 2") as failure:
        binaries.ensure_binaries(
            messages.append, go_mod=go_mod, cache_dir=tmp_path / "cache", go=str(fake_go)
        )
    assert "main.go:1:1: broken" in str(failure.value)
    assert "main.go:1:1: broken" in messages
    assert "k8s.io/some/package" not in messages  # package names are counted, not echoed
    directory = tmp_path / "cache" / "v1.36.3-v3.6.8"
    assert sorted(p.name for p in directory.iterdir()) == ["build-kube-apiserver.log"]


def test_successful_build_renames_into_place_and_reports_progress(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    fake_go = tmp_path / "go"
    fake_go.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n'
        'printf \'#!/bin/sh\\necho "fake version 1.2.3"\\n\' > "$out"\n'
        "echo k8s.io/some/package\n"
        "sleep 0.3\n"
    )
    fake_go.chmod(0o755)
    messages: list[str] = []
    found = binaries.ensure_binaries(
        messages.append, go_mod=go_mod, cache_dir=tmp_path / "cache", go=str(fake_go), heartbeat=0.1
    )
    assert os.access(found.kube_apiserver, os.X_OK)
    assert os.access(found.etcd, os.X_OK)
    assert any(m.startswith("still building kube-apiserver (") for m in messages)
    assert any(m.startswith("built etcd in ") and "fake version 1.2.3" in m for m in messages)
    assert not list(found.etcd.parent.glob(".*.partial"))


def test_format_elapsed() -> None:
    assert binaries.format_elapsed(5.9) == "5s"
    assert binaries.format_elapsed(130) == "2m10s"


# --------------------------------------------------------------------------- processes and CRD files


def _wait_gone(pid: int, timeout: float) -> bool:
    """Block until ``pid`` has exited (via a pidfd, no sleeping), at most ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


def test_spawned_child_is_marked_and_found() -> None:
    proc = processes.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert proc.pid in processes.find_owned_processes()
        assert processes.pid_alive(proc.pid)
    finally:
        processes.terminate(proc, grace=5.0)
    assert proc.pid not in processes.find_owned_processes()
    assert not processes.pid_alive(proc.pid)


def test_terminate_escalates_to_sigkill() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = processes.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert processes.terminate(proc, grace=0.5) == -9
    proc.stdout.close()


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    # A parent that spawns a child and is then killed hard: the kernel kills the child.
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from certctl_operator.dev.processes import spawn
        child = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
        Path({str(pid_file)!r}).write_text(str(child.pid))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert result.returncode == -9
    child = int(pid_file.read_text())
    assert _wait_gone(child, timeout=10.0), f"child {child} outlived its killed parent"


def test_apply_crds_of_a_missing_directory_applies_nothing(tmp_path: Path) -> None:
    assert apply_crds(tmp_path / "kubeconfig", tmp_path / "no-crds") == []


def test_apply_crds_refuses_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "x.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n")
    with pytest.raises(ControlPlaneError, match="not a CustomResourceDefinition"):
        apply_crds(tmp_path / "kubeconfig", tmp_path / "crds")


def test_control_plane_paths_before_start(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "cp")
    assert plane.kubeconfig == tmp_path / "cp" / "kubeconfig"
    assert plane.ca_file == tmp_path / "cp" / "pki" / "ca.crt"
    assert plane.pids == {}
    assert not plane.running
    plane.stop()  # stopping a never-started control plane is harmless
    plane.stop()


def test_concurrent_callers_wait_for_one_build(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(GO_MOD)
    cache = tmp_path / "cache"
    directory = cache / "v1.36.3-v3.6.8"
    lock = binaries._build_lock(cache / "v1.36.3-v3.6.8.lock", "test", lambda _: None)
    waiting = threading.Event()
    result: list[binaries.Binaries] = []

    def progress(line: str) -> None:
        if line.startswith("waiting for another process"):
            waiting.set()

    def second_caller() -> None:
        # go is unusable: this caller must find the other caller's binaries.
        result.append(
            binaries.ensure_binaries(progress, go_mod=go_mod, cache_dir=cache, go="/nonexistent/go")
        )

    with lock:
        caller = threading.Thread(target=second_caller)
        caller.start()
        assert waiting.wait(timeout=10.0)
        directory.mkdir(parents=True)
        for name in ("kube-apiserver", "etcd"):
            (directory / name).write_text("#!/bin/sh\n")
            (directory / name).chmod(0o755)
    caller.join(timeout=10.0)
    assert not caller.is_alive()
    assert result[0].etcd == directory / "etcd"


def test_sigint_stops_control_planes_then_raises_keyboard_interrupt(tmp_path: Path) -> None:
    # In a child interpreter: the signal handler stops every control plane of
    # its process, which here would include the test session's own.
    marker = tmp_path / "stopped"
    script = textwrap.dedent(
        f"""
        import signal
        from pathlib import Path
        from certctl_operator.dev import controlplane
        plane = controlplane.ControlPlane(Path({str(tmp_path / "cp")!r}))
        original_stop = plane.stop
        def stop():
            Path({str(marker)!r}).write_text("yes")
            original_stop()
        plane.stop = stop
        before = signal.getsignal(signal.SIGINT)
        controlplane._register(plane, handle_signals=True)
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            print("KeyboardInterrupt raised")
        print("handler restored:", signal.getsignal(signal.SIGINT) is before)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "KeyboardInterrupt raised" in result.stdout
    assert "handler restored: True" in result.stdout
    assert marker.read_text() == "yes"


def test_sigterm_stops_control_planes_then_terminates(tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    script = textwrap.dedent(
        f"""
        import signal
        from pathlib import Path
        from certctl_operator.dev import controlplane
        plane = controlplane.ControlPlane(Path({str(tmp_path / "cp")!r}))
        plane.stop = lambda: Path({str(marker)!r}).write_text("yes")
        controlplane._register(plane, handle_signals=True)
        signal.raise_signal(signal.SIGTERM)
        print("still running")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGTERM
    assert "still running" not in result.stdout
    assert marker.read_text() == "yes"
