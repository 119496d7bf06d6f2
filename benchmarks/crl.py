"""CRL rendering and revocation-list storage at scale.

    python benchmarks/crl.py [--counts 20000,100000] [--cluster]

For each count, in a fresh child process: the entries (random 128-bit
serials, all reasons) are encoded into the 16 revocation-list shards and
decoded again, the CRL of all of them is assembled
(:meth:`CRLState.with_archive`) and signed with a P-256 CA key as the
operator does (:func:`render_crl`). It reports the time of each step, the
memory the decoded list takes (the operator keeps it for CRLs and OCSP
answers), the resident memory before assembling and signing and its peak
during them, the CRL and shard sizes. With ``--cluster`` it also starts a
kube-apiserver + etcd on loopback and times writing the 16 shards as
ConfigMaps and reading them back with one GET each, as the operator does
after a restart.

Targets (checked here): a CRL of 100,000 entries signed in under 10 s with
under 300 MB of extra memory; the largest shard under 1 MiB.

The table goes into its own section of ``docs/benchmarks.md`` (between the
``benchmark:crl`` markers); benchmarks/scale.py writes another one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certctl_operator.api import RevocationReason, RevokedCertificate
from certctl_operator.pki import KeyAlgorithm, KeySpec, create_self_signed_ca, load_signing_authority
from certctl_operator.policy.publishing import (
    render_crl,
)
from certctl_operator.policy.revocation import (
    SHARD_COUNT,
    ArchivedEntry,
    CRLState,
    decode_revoked,
    encode_revoked,
    normalize_serial,
    shard_index,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_sections import write_section

ROOT = Path(__file__).resolve().parents[1]
TARGET_RENDER_SECONDS_FOR_100K = 10.0
TARGET_RENDER_MB_FOR_100K = 300.0
SHARD_LIMIT = 1024 * 1024


@dataclass
class Result:
    count: int
    encode_s: float
    decode_s: float
    assemble_s: float
    render_s: float
    largest_shard_kb: float
    total_shards_kb: float
    crl_kb: float
    archive_mb: float
    """Memory the decoded list takes in the operator (what it keeps for CRLs and OCSP)."""
    rss_before_mb: float
    peak_rss_mb: float
    store_write_s: float | None = None
    store_read_s: float | None = None

    @property
    def render_mb(self) -> float:
        return self.peak_rss_mb - self.rss_before_mb


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    """The resident-memory high-water mark since the last :func:`_reset_peak` (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    # Linux resets VmHWM to the current RSS on "5": the peak then belongs to what follows.
    Path("/proc/self/clear_refs").write_text("5")


def entries_of(count: int, now: datetime) -> list[RevokedCertificate]:
    rng = random.Random(count)  # noqa: S311  (reproducible serials for a benchmark, no secret)
    reasons = list(RevocationReason)
    serials: set[int] = set()
    while len(serials) < count:
        serials.add(rng.getrandbits(127) | 1 << 126)
    return [
        RevokedCertificate(
            serial_number=normalize_serial(serial),
            revoked_at=now - timedelta(days=1),
            reason=reasons[i % len(reasons)],
            not_after=now + timedelta(days=90),
            crl_number=1 + i // 1000,
        )
        for i, serial in enumerate(sorted(serials))
    ]


def shards_of(entries: list[RevokedCertificate]) -> list[str]:
    by_shard: list[list[RevokedCertificate]] = [[] for _ in range(SHARD_COUNT)]
    for entry in entries:
        by_shard[shard_index(entry.serial_number)].append(entry)
    return [encode_revoked(shard) for shard in by_shard]


def measure(count: int) -> Result:
    """One count, in this process: store encoding, assembly and signing."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca = create_self_signed_ca("bench CA", KeySpec(KeyAlgorithm.ECDSA, 256), timedelta(days=30), now)
    authority = load_signing_authority(ca.certificate_pem, ca.private_key_pem, now)
    entries = entries_of(count, now)

    started = time.perf_counter()
    texts = shards_of(entries)
    encode_s = time.perf_counter() - started
    del entries
    started = time.perf_counter()
    archived: dict[str, ArchivedEntry] = {}
    for text in texts:
        archived.update(decode_revoked(text))
    decode_s = time.perf_counter() - started
    # Once more with allocations traced (which slows decoding down several times, so not timed).
    tracemalloc.start()
    probe: dict[str, ArchivedEntry] = {}
    for text in texts:
        probe.update(decode_revoked(text))
    archive_mb = tracemalloc.get_traced_memory()[0] / 1024 / 1024
    tracemalloc.stop()
    del probe
    assert len(archived) == count

    head = CRLState(
        number=count // 1000 + 2, this_update=now, next_update=now + timedelta(hours=24), entries=()
    )
    _reset_peak()
    rss_before = _rss_mb()
    started = time.perf_counter()
    state = head.with_archive(archived.values(), timedelta(hours=1))
    assemble_s = time.perf_counter() - started
    assert len(state.entries) == count
    started = time.perf_counter()
    der = render_crl(authority, state)
    render_s = time.perf_counter() - started
    sizes = [len(text.encode()) for text in texts]
    return Result(
        count=count,
        encode_s=encode_s,
        decode_s=decode_s,
        assemble_s=assemble_s,
        render_s=render_s,
        largest_shard_kb=max(sizes) / 1024,
        total_shards_kb=sum(sizes) / 1024,
        crl_kb=len(der) / 1024,
        archive_mb=archive_mb,
        rss_before_mb=rss_before,
        peak_rss_mb=_peak_rss_mb(),
    )


def _child(count: int, queue: multiprocessing.Queue[dict[str, object]]) -> None:
    queue.put(asdict(measure(count)))


def measure_in_child(count: int) -> Result:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[dict[str, object]] = context.Queue()
    process = context.Process(target=_child, args=(count, queue))
    process.start()
    values = queue.get(timeout=600)
    process.join(60)
    return Result(**values)  # type: ignore[arg-type]


def measure_store(count: int) -> tuple[float, float]:
    """Seconds to write the 16 shards of ``count`` entries as ConfigMaps, and to read them back."""
    from kubernetes import client

    from certctl_operator.dev.binaries import ensure_binaries
    from certctl_operator.dev.controlplane import ControlPlane

    texts = shards_of(entries_of(count, datetime.now(UTC).replace(microsecond=0)))
    with (
        tempfile.TemporaryDirectory(prefix="certctl-bench-") as tmp,
        ControlPlane(Path(tmp) / "cp", binaries=ensure_binaries()) as plane,
    ):
        core = client.CoreV1Api(plane.api_client())
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
        started = time.perf_counter()
        for index, text in enumerate(texts):
            core.create_namespaced_config_map(
                "bench",
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=f"bench-ca-revoked-{index:02d}"),
                    data={"revoked.v1": text},
                ),
            )
        written = time.perf_counter() - started
        started = time.perf_counter()
        total = 0
        for index in range(len(texts)):
            configmap = core.read_namespaced_config_map(f"bench-ca-revoked-{index:02d}", "bench")
            total += len(decode_revoked(configmap.data["revoked.v1"]))
        read = time.perf_counter() - started
        assert total == count
    return written, read


def table(results: list[Result]) -> str:
    lines = [
        "| entries | encode s | decode s | list in memory MB | assemble s | sign s | extra MB while signing "
        "| peak RSS MB | CRL KiB | largest shard KiB | store write s | store read s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        store = (
            f"{r.store_write_s:.2f} | {r.store_read_s:.2f}"
            if r.store_write_s is not None and r.store_read_s is not None
            else "- | -"
        )
        lines.append(
            f"| {r.count} | {r.encode_s:.2f} | {r.decode_s:.2f} | {r.archive_mb:.0f} | {r.assemble_s:.2f} "
            f"| {r.render_s:.2f} "
            f"| {r.render_mb:.0f} | {r.peak_rss_mb:.0f} | {r.crl_kb:.0f} | {r.largest_shard_kb:.0f} "
            f"| {store} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="20000,100000")
    parser.add_argument(
        "--cluster", action="store_true", help="also time the shards through a kube-apiserver"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    results = []
    for count in (int(c) for c in args.counts.split(",")):
        result = measure_in_child(count)
        if args.cluster:
            result.store_write_s, result.store_read_s = measure_store(count)
        print(f"{count}: signed in {result.render_s:.2f}s, peak RSS {result.peak_rss_mb:.0f} MB", flush=True)
        results.append(result)
    print(table(results))
    if not args.no_write:
        # Only the table between this script's markers; the text around it is written by hand.
        write_section(args.output, "crl", table(results))
    failed = [
        r
        for r in results
        if r.largest_shard_kb * 1024 >= SHARD_LIMIT
        or (
            r.count >= 100_000
            and (
                r.render_s * 100_000 / r.count > TARGET_RENDER_SECONDS_FOR_100K
                or r.render_mb > TARGET_RENDER_MB_FOR_100K
            )
        )
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
