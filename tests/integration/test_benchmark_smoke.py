"""The speed-and-scale benchmark at a tiny size, so it keeps working between full runs.

It runs ``benchmarks/scale.py`` as a user would, without cert-manager (whose
build takes minutes): a burst of 5 ECDSA and one of 2 RSA certificates, 20
certificates and 20 notification events in steady state, and a restart. Targets are not checked
here (they are about full sizes); the measurements must exist and be sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "scale.py"
TARGET_MISSED = 3


@pytest.mark.timeout(200)
def test_benchmark_runs_every_certctl_part_at_a_tiny_size(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\nkept as it is\n")
    measurements = tmp_path / "measurements.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--only=burst,steady,restart",
            "--counts=5",
            "--rsa-counts=2",
            "--steady-certificates=20",
            "--steady-events=20",
            "--retry-base=1s",
            "--retry-interval=1s",
            "--retries=1",
            "--settle-seconds=2",
            "--restart-quiet-seconds=1",
            f"--workdir={tmp_path / 'work'}",
            f"--output={output}",
            f"--json-output={measurements}",
        ],
        capture_output=True,
        text=True,
        timeout=190,
        check=False,
    )
    assert result.returncode in (0, TARGET_MISSED), result.stdout[-3000:] + result.stderr[-3000:]

    data = json.loads(measurements.read_text())
    burst, rsa = data["bursts"]
    assert (burst["tool"], burst["count"], burst["algorithm"]) == ("certctl", 5, "ECDSA")
    assert (rsa["tool"], rsa["count"], rsa["algorithm"]) == ("certctl", 2, "RSA")
    for measured in (burst, rsa):
        assert 0 < measured["seconds_to_ready"] < 60
        assert measured["writes_per_cert"] > 0
        cpu = measured["cpu_seconds"]
        assert 0 < cpu["controller_main_process"] <= cpu["controller"]
        # Each process's share of a burst this small can be below the 10 ms CPU time is counted in.
        assert cpu["kube_apiserver"] + cpu["etcd"] > 0 and cpu["benchmark_client"] > 0
    assert burst["reads_per_cert"] > 0
    # The RSA keys came from the key-generation workers, whose CPU is the controller's too.
    assert rsa["cpu_seconds"]["controller"] > rsa["cpu_seconds"]["controller_main_process"]
    assert set(data["keygen"]) == {"2"}
    # Timed before the bursts and after them; the ratio uses their mean.
    samples = data["keygen_samples"]["2"]
    assert len(samples) == 2 and data["keygen"]["2"] == pytest.approx(sum(samples) / 2)

    steady = data["steady"]
    assert steady["certificates"] == 20
    assert steady["events"] == 20
    # Every failing event retried at least once, in one group or the other.
    assert steady["retries_measured"] + steady["burst_retries"] >= 10
    for prefix, count in (("", steady["retries_measured"]), ("burst_", steady["burst_retries"])):
        if count:
            assert -0.1 <= steady[f"{prefix}late_p50"] <= steady[f"{prefix}late_p99"]
            assert steady[f"{prefix}late_p99"] <= steady[f"{prefix}late_max"]
    assert steady["asyncio_tasks"] > 0
    assert 0 < steady["settled_rss_mb"] <= steady["peak_rss_mb"]

    restart = data["restart"]
    assert 0 < restart["seconds_to_ready"] <= restart["seconds_to_seen"]
    assert restart["unchanged_objects"] >= 30  # 20 certificates and 10 delivered events at least

    document = output.read_text()
    assert "kept as it is" in document
    assert document.count("<!-- benchmark:scale:begin -->") == 1
    assert "### Issuance burst" in document
    assert "Pure generation of 2 RSA-2048 keys on all cores" in document
    assert "CPU of the 2-certificate RSA burst, shared by" in document
    assert "### Steady state" in document
    assert "### Restart" in document
    assert "### Targets" in document
