"""The plugin's command line: help everywhere, kubectl-style options, argument errors before any API call."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from certctl_operator.cli.main import build_parser, main

COMMANDS = ("status", "inspect", "renew", "revoke", "requeue", "crl", "check")
MISSING = "/nonexistent/kubeconfig"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kubectl certctl {command}")
    assert "--kubeconfig" in out and "--context" in out and "--namespace" in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in out
    assert "exit status: 0 ok, 1 error, 2 bad arguments, 3" in out


def test_connection_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "team-a", "--context", "prod", "status"])
    after = parser.parse_args(["status", "-n", "team-b", "--kubeconfig", "/tmp/k"])
    neither = parser.parse_args(["status"])
    assert (before.namespace, before.context, before.kubeconfig) == ("team-a", "prod", None)
    assert (after.namespace, after.context, after.kubeconfig) == ("team-b", None, "/tmp/k")
    assert (neither.namespace, neither.context) == (None, None)
    assert parser.parse_args(["renew", "-A", "--all"]).all_namespaces is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["renew"], "exactly one of them"),
        (["renew", "web", "--all"], "exactly one of them"),
        (["renew", "web", "-A"], "-A works with --all or -l"),
        (["requeue"], "--all-dead (one of the two)"),
        (["requeue", "x", "--all-dead"], "--all-dead (one of the two)"),
        (["revoke", "web", "--reason", "aACompromise"], "aACompromise is not accepted"),
        (["revoke", "web", "--reason", "removeFromCRL"], "removeFromCRL is not accepted"),
        (
            ["revoke", "web", "--reason", "stolen"],
            "unknown revocation reason 'stolen'; use one of unspecified",
        ),
        (["revoke", "web", "--reason", "superseded", "--timeout", "soon"], "--timeout 'soon'"),
        (
            ["revoke", "web", "--reason", "superseded", "--comment", "x" * 1025],
            "the Revocation would be refused",
        ),
        (["status", "--fail-on", "dead,everything"], "--fail-on takes a comma-separated list"),
        (["crl"], "name the issuer"),
        (["crl", "--url", "ftp://example.test/ca.crl"], "--url must be an http(s) URL"),
    ],
)
def test_argument_errors_exit_2_before_touching_the_cluster(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The kubeconfig does not exist: reaching the cluster would be exit status 1.
    assert main(["--kubeconfig", MISSING, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_a_reason_is_accepted_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    # Past argument checking, the command wants the cluster: exit 1 about the kubeconfig, not 2.
    assert main(["--kubeconfig", MISSING, "revoke", "web", "--reason", "KEYCOMPROMISE"]) == 1
    assert f"kubeconfig {MISSING} does not exist" in capsys.readouterr().err


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
            {"name": "two", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "one",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_unknown_context_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    assert main(["--kubeconfig", str(path), "--context", "three", "status"]) == 1
    err = capsys.readouterr().err
    assert "context 'three' is not in the kubeconfig" in err
    assert "its contexts: one, two" in err


def test_an_unreachable_api_server_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    path = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    assert main(["--kubeconfig", str(path), "status"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the API server at https://127.0.0.1:1" in err
    assert "--kubeconfig / --context (now one)" in err
    assert "Traceback" not in err


def test_the_context_namespace_is_the_default(tmp_path: Path) -> None:
    from certctl_operator.cli.kube import connect

    path = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    assert connect(str(path)).namespace == "team-a"
    second = connect(str(path), "two")
    assert (second.namespace, second.context) == ("default", "two")
