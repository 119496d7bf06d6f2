"""Log records about objects carry the object's reference; JSON lines name their logger."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from certctl_operator.controllers.issuance import CERTIFICATE, Key
from certctl_operator.log_setup import configure_logging
from certctl_operator.logs import object_extra, object_logger, object_ref
from certctl_operator.workqueue import WorkQueue

BODY = {
    "apiVersion": "certctl.io/v1alpha1",
    "kind": "ManagedCertificate",
    "metadata": {"name": "web", "namespace": "shop", "uid": "0f6c", "resourceVersion": "7"},
    "spec": {"secretName": "web-tls"},
}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("certctl")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_object_ref_is_kopfs_reference() -> None:
    assert object_ref(BODY) == {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ManagedCertificate",
        "name": "web",
        "uid": "0f6c",
        "namespace": "shop",
    }
    cluster = {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "ca", "uid": "1"},
    }
    assert object_ref(cluster)["namespace"] is None
    assert object_extra(BODY, reason="Issued") == {"reason": "Issued", "k8s_ref": object_ref(BODY)}


def test_object_logger_attaches_the_reference_and_keeps_the_calls_extra(captured: Records) -> None:
    log = object_logger(logging.getLogger("certctl.test"), BODY)
    log.info("issued revision %d", 2, extra={"revision": 2})
    (record,) = captured.records
    assert record.getMessage() == "issued revision 2"
    assert record.k8s_ref == object_ref(BODY)
    assert record.revision == 2


def test_json_lines_carry_the_object_and_the_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("json", "INFO")
        object_logger(logging.getLogger("certctl.test"), BODY).warning("cannot sign")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["message"] == "cannot sign" and line["severity"] == "warn"
        assert line["logger"] == "certctl.test"
        assert line["object"] == object_ref(BODY)

        configure_logging("text", "INFO")
        object_logger(logging.getLogger("certctl.test"), BODY).info("ready")
        text = capsys.readouterr().err.strip().splitlines()[-1]
        assert text.endswith("[shop/web] ready") and "certctl.test" in text
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_key_refs_carry_the_uid_when_known() -> None:
    key = Key(CERTIFICATE, "shop", "web")
    assert key.ref("0f6c") == object_ref(BODY)
    assert str(key) == "ManagedCertificate shop/web"
    assert str(Key("ClusterIssuer", "", "ca")) == "ClusterIssuer ca"


async def test_a_failing_work_item_is_logged_about_its_object(captured: Records) -> None:
    async def fail(key: Key) -> None:
        raise RuntimeError("boom")

    key = Key(CERTIFICATE, "shop", "web")
    queue: WorkQueue[Key] = WorkQueue(fail, workers=1, log_extra=lambda k: {"k8s_ref": k.ref("0f6c")})
    queue.start()
    try:
        queue.add(key)
        await asyncio.wait_for(queue.wait_idle(), timeout=5)
    finally:
        await queue.stop()
    failed = [r for r in captured.records if r.name == "certctl.workqueue"]
    assert failed and failed[0].k8s_ref == object_ref(BODY)
    assert "ManagedCertificate shop/web" in failed[0].getMessage()
