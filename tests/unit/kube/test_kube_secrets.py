"""The fields a create of the operator set, and how they are handed to its apply manager (no cluster)."""

from __future__ import annotations

import base64
from typing import Any

from certctl_operator.kube.secrets import FIELD_MANAGER, created_fields, handed_over, snapshot
from certctl_operator.policy.issuers import SecretSnapshot

CREATE = {
    "manager": FIELD_MANAGER,
    "operation": "Update",
    "apiVersion": "v1",
    "time": "2026-01-01T00:00:00Z",
    "fieldsType": "FieldsV1",
    "fieldsV1": {"f:data": {".": {}, "f:tls.crt": {}}, "f:metadata": {"f:labels": {"f:team": {}}}},
}
KUBECTL = {
    "manager": "kubectl",
    "operation": "Update",
    "apiVersion": "v1",
    "time": "2026-01-02T00:00:00Z",
    "fieldsType": "FieldsV1",
    "fieldsV1": {"f:metadata": {"f:labels": {"f:mine": {}}}},
}


def body(*managed: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-tls",
            "namespace": "team-a",
            "resourceVersion": "7",
            "managedFields": list(managed),
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y2VydA=="},
    }


def test_a_secret_the_operator_created_has_fields_to_hand_over_and_one_it_applied_has_none() -> None:
    created = snapshot(body(CREATE, KUBECTL))
    assert created.data == {"tls.crt": b"cert"}
    assert created_fields(created) == (CREATE, KUBECTL)
    applied = snapshot(body({**CREATE, "operation": "Apply"}, KUBECTL))
    assert created_fields(applied) == ()
    assert created_fields(SecretSnapshot("team-a", "web-tls")) == ()
    assert created_fields(None) == ()


def test_the_fields_of_the_create_become_the_apply_managers_and_other_managers_keep_theirs() -> None:
    assert handed_over([CREATE, KUBECTL]) == [
        KUBECTL,
        {key: value for key, value in CREATE.items() if key != "time"} | {"operation": "Apply"},
    ]
    # An apply entry already there takes the create's fields in.
    applied = {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:ca.crt": {}}, "f:type": {}},
    }
    result = handed_over([applied, CREATE])
    assert result == [
        {
            **applied,
            "fieldsV1": {
                "f:data": {"f:ca.crt": {}, ".": {}, "f:tls.crt": {}},
                "f:type": {},
                "f:metadata": {"f:labels": {"f:team": {}}},
            },
        }
    ]
    assert applied["fieldsV1"] == {"f:data": {"f:ca.crt": {}}, "f:type": {}}, "the input is left as it was"


def test_secrets_of_one_ca_keep_its_certificate_once_and_their_own_data_apart() -> None:
    def with_data(ca: bytes, leaf: bytes) -> dict[str, Any]:
        encoded = {"ca.crt": base64.b64encode(ca).decode(), "tls.crt": base64.b64encode(leaf).decode()}
        return body(CREATE) | {"data": encoded}

    # Parsed apart, as two watch events are: equal values, distinct objects until kept.
    first = snapshot(with_data(b"ca-one" * 100, b"leaf-1" * 100))
    second = snapshot(with_data(b"ca-one" * 100, b"leaf-2" * 100))
    other = snapshot(with_data(b"ca-two" * 100, b"leaf-1" * 100))
    assert first.data["ca.crt"] is second.data["ca.crt"]
    assert other.data["ca.crt"] == b"ca-two" * 100
    assert first.data["tls.crt"] == other.data["tls.crt"]
    assert first.data["tls.crt"] is not other.data["tls.crt"]
    assert second.data["tls.crt"] == b"leaf-2" * 100
