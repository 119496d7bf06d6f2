"""Kept bodies share one copy of each repeated key and short value, and equal what was parsed."""

from __future__ import annotations

import json
import sys
import zlib
from typing import Any

from certctl_operator.kube.compact import SHORT_VALUE, KeptBody, compact_json, compact_strings


def parsed(index: int) -> Any:
    # Parsed separately, like two watch events: every key and value is its own object.
    return json.loads(
        json.dumps(
            {
                "metadata": {"name": f"cert-{index}", "resourceVersion": str(100 + index)},
                "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]},
                "data": {"tls.crt": "A" * (SHORT_VALUE + 1)},
                "flags": [True, None, 1.5],
            }
        )
    )


def test_a_compacted_body_equals_the_parsed_one_and_leaves_it_untouched() -> None:
    raw = parsed(1)
    before = json.dumps(raw)
    compact = compact_json(raw)
    assert compact == raw
    assert json.dumps(raw) == before
    assert compact is not raw and compact["status"] is not raw["status"]


def test_keys_and_short_values_of_two_bodies_are_one_object_each() -> None:
    first, second = parsed(1), parsed(2)
    key_first = next(iter(first["metadata"]))
    key_second = next(iter(second["metadata"]))
    assert key_first == key_second and key_first is not key_second  # json.loads shares nothing
    a, b = compact_json(first), compact_json(second)
    assert next(iter(a["metadata"])) is next(iter(b["metadata"]))
    ready_a = a["status"]["conditions"][0]
    ready_b = b["status"]["conditions"][0]
    assert ready_a["status"] is ready_b["status"] is sys.intern("True")
    # Long values (PEM blocks, say) are unique: they are not interned.
    assert a["data"]["tls.crt"] is first["data"]["tls.crt"]


def test_flat_string_maps_are_interned_the_same_way() -> None:
    annotations = json.loads('{"certctl.io/revision": "3", "certctl.io/serial-number": "' + "f" * 40 + '"}')
    compact = compact_strings(annotations)
    assert compact == annotations
    assert next(iter(compact)) is sys.intern("certctl.io/revision")
    assert compact["certctl.io/revision"] is sys.intern("3")


def test_a_kept_body_is_compact_text_without_managed_fields_and_parses_back_equal() -> None:
    raw = parsed(3)
    raw["metadata"]["uid"] = "u-3"
    raw["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    kept = KeptBody.of(raw)
    assert "managedFields" in raw["metadata"]  # the event's own body is left as it was
    expected = {**raw, "metadata": {k: v for k, v in raw["metadata"].items() if k != "managedFields"}}
    assert kept.body() == expected
    assert kept.body() is not kept.body()
    assert kept.metadata == {"uid": "u-3", "resourceVersion": "103"}
    text = zlib.decompress(kept.packed).decode("utf-8")
    assert " " not in text.replace("A", "")  # no separators' spaces
    assert len(kept.packed) < len(text)


def test_a_kept_certificate_takes_about_half_its_text() -> None:
    condition = {
        "lastTransitionTime": "2026-12-06T22:29:41Z",
        "message": "Certificate revision 1 (serial 8e8b3a3d6476ef90d104032436bb7959) is valid until 2027",
        "observedGeneration": 1,
        "reason": "Issued",
        "status": "True",
        "type": "Ready",
    }
    raw = {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ManagedCertificate",
        "metadata": {"name": "cert-00432", "namespace": "bench", "resourceVersion": "2648", "uid": "8a33"},
        "spec": {"dnsNames": ["svc-432.bench.svc"], "secretName": "cert-00432-tls", "duration": "2160h"},
        "status": {
            "conditions": [condition, {**condition, "type": "Issuing", "status": "False"}],
            "issuerRef": {"kind": "ClusterIssuer", "name": "bench-ca"},
            "notAfter": "2027-01-05T22:29:17Z",
            "renewalTime": "2026-12-26T22:29:24Z",
            "serialNumber": "8e8b3a3d6476ef90d104032436bb7959",
            "secretName": "cert-00432-tls",
        },
    }
    kept = KeptBody.of(raw)
    assert kept.body() == raw
    # Names, conditions and timestamps repeat within a body: compressed it is about half its text.
    assert len(kept.packed) < 0.6 * len(json.dumps(raw, separators=(",", ":")))
    assert KeptBody.of({}).metadata == {"uid": None, "resourceVersion": None}
