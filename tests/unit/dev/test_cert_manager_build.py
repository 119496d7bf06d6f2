"""Pure parts of building cert-manager's controller: leaving the Venafi issuer out, the build environment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from certctl_operator.dev.cert_manager import (
    CERT_MANAGER_MODULE,
    CertManagerError,
    build_environment,
    constant_literals,
    drop_package_imports,
    leave_out_venafi,
)

START_GO = textwrap.dedent(
    """\
    package app

    import (
    \t"context"

    \t_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
    \t_ "github.com/cert-manager/cert-manager/pkg/issuer/venafi"
    )
    """
)

CONTROLLERS = "github.com/cert-manager/cert-manager/pkg/controller"
DEFAULTS_GO = textwrap.dedent(
    f"""\
    package v1alpha1

    import (
    \tcrvenaficontroller "{CONTROLLERS}/certificaterequests/venafi"
    \tcsrvenaficontroller "{CONTROLLERS}/certificatesigningrequests/venafi"
    \tcrcacontroller "{CONTROLLERS}/certificaterequests/ca"
    )

    var all = []string{{
    \tcrcacontroller.CRControllerName,
    \tcrvenaficontroller.CRControllerName,
    \tcsrvenaficontroller.CSRControllerName,
    }}
    """
)

CR_VENAFI_GO = textwrap.dedent(
    """\
    package venafi

    const (
    \tCRControllerName = "certificaterequests-issuer-venafi"
    )
    """
)

CSR_VENAFI_GO = (
    'package venafi\n\nconst CSRControllerName string = "certificatesigningrequests-issuer-venafi"\n'
)


def test_a_blank_import_is_removed_and_nothing_else() -> None:
    text = drop_package_imports(START_GO, f"{CERT_MANAGER_MODULE}/pkg/issuer/venafi", {})
    assert "issuer/venafi" not in text
    assert '_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"' in text
    assert text.count("\n") == START_GO.count("\n") - 1


def test_a_named_import_used_for_constants_becomes_their_literals() -> None:
    constants = constant_literals([CR_VENAFI_GO])
    text = drop_package_imports(
        DEFAULTS_GO, f"{CERT_MANAGER_MODULE}/pkg/controller/certificaterequests/venafi", constants
    )
    assert "crvenaficontroller" not in text
    assert '\t"certificaterequests-issuer-venafi",\n' in text
    assert "crcacontroller.CRControllerName" in text  # another package's constant stays a reference


def test_a_use_that_is_not_a_string_constant_stops_the_build() -> None:
    with pytest.raises(CertManagerError, match=r"crvenaficontroller\.CRControllerName"):
        drop_package_imports(
            DEFAULTS_GO, f"{CERT_MANAGER_MODULE}/pkg/controller/certificaterequests/venafi", {}
        )


def test_constant_literals_read_blocks_and_typed_constants() -> None:
    assert constant_literals([CR_VENAFI_GO, CSR_VENAFI_GO]) == {
        "CRControllerName": '"certificaterequests-issuer-venafi"',
        "CSRControllerName": '"certificatesigningrequests-issuer-venafi"',
    }


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_source_tree_loses_every_venafi_import_outside_the_venafi_packages(tmp_path: Path) -> None:
    start = _write(tmp_path, "cmd/controller/app/start.go", START_GO)
    defaults = _write(tmp_path, "internal/apis/config/controller/v1alpha1/defaults.go", DEFAULTS_GO)
    _write(tmp_path, "pkg/controller/certificaterequests/venafi/venafi.go", CR_VENAFI_GO)
    _write(tmp_path, "pkg/controller/certificatesigningrequests/venafi/venafi.go", CSR_VENAFI_GO)
    venafi_client = 'package venafi\n\nimport _ "github.com/Venafi/vcert/v5"\n'
    inside = _write(tmp_path, "pkg/issuer/venafi/venafi.go", venafi_client)
    test_file = _write(tmp_path, "cmd/controller/app/start_test.go", START_GO)

    edited = leave_out_venafi(tmp_path)

    assert sorted(edited) == sorted([start, defaults])
    assert '/venafi"' not in start.read_text()
    assert '/venafi"' not in defaults.read_text()
    assert '"certificatesigningrequests-issuer-venafi"' in defaults.read_text()
    assert inside.read_text() == venafi_client
    assert test_file.read_text() == START_GO


def test_a_tree_without_venafi_imports_is_a_changed_layout(tmp_path: Path) -> None:
    _write(tmp_path, "cmd/controller/main.go", "package main\n")
    with pytest.raises(CertManagerError, match="layout"):
        leave_out_venafi(tmp_path)


def test_the_build_resolves_modules_itself_and_keeps_the_callers_proxy() -> None:
    env = build_environment({"GOFLAGS": "-buildvcs=false -mod=vendor", "GOPROXY": "http://127.0.0.1:3000"})
    assert env["GOFLAGS"] == "-buildvcs=false -mod=mod"
    assert env["GOPROXY"] == "http://127.0.0.1:3000"
    assert env["GOWORK"] == "off"
