"""Giving freed C heap pages back: the C library's own call, and when the operator makes it."""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest
from tests.support.fresh_interpreter import run_probe

from certctl_operator import heap
from certctl_operator.controllers import lifecycle

requires_malloc_trim = pytest.mark.skipif(not heap.available(), reason="the C library has no malloc_trim")

MB = 2**20


# In a fresh interpreter: a long-lived one (the test run) reuses free pages of its own heap.
PROBE = textwrap.dedent(
    """
    import json
    from certctl_operator import heap
    before = heap.resident_bytes()
    # Objects over 512 bytes come from malloc; one kept every fifty pins the heap's top, so freeing
    # the others leaves free pages inside the heap that free() alone does not hand back.
    freed = [bytes(2000) for _ in range(40_000)]
    kept = [freed[index] for index in range(0, len(freed), 50)]
    grown = heap.resident_bytes()
    del freed
    after_free = heap.resident_bytes()
    trimmed = heap.trim()
    after_trim = heap.resident_bytes()
    print(json.dumps({"before": before, "grown": grown, "after_free": after_free,
                      "trimmed": trimmed, "after_trim": after_trim, "kept": len(kept)}))
    """
)


@requires_malloc_trim
def test_trim_gives_freed_pages_below_a_live_object_back() -> None:
    found = run_probe(PROBE)
    assert found["grown"] - found["before"] > 60 * MB
    assert found["after_free"] - found["before"] > 50 * MB  # freed, but still resident
    assert found["trimmed"] is True
    assert found["after_free"] - found["after_trim"] > 50 * MB
    assert found["kept"] == 800  # still alive: the trim moved nothing


def test_the_trimmer_trims_first_then_only_after_growth() -> None:
    trimmer = heap.HeapTrimmer(growth=8 * MB)
    assert trimmer.due(100 * MB)
    trimmer.trimmed(90 * MB)
    assert not trimmer.due(97 * MB)
    assert trimmer.due(98 * MB)


def test_the_trimmer_counts_growth_from_the_lowest_level_seen_since() -> None:
    trimmer = heap.HeapTrimmer(growth=8 * MB)
    trimmer.trimmed(90 * MB)
    trimmer.observed(80 * MB)  # objects deleted: memory went down without a trim
    assert trimmer.due(88 * MB)
    trimmer.observed(95 * MB)
    assert trimmer.due(95 * MB)


async def test_the_loop_trims_after_a_burst_and_leaves_a_quiet_process_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Resident memory as the loop reads it: 200 MB after a burst, then what the trim left, then quiet.
    levels = iter([200 * MB, 150 * MB] + [151 * MB] * 1000)
    trims: list[float] = []
    checks = 0

    def resident() -> int:
        nonlocal checks
        checks += 1
        return next(levels)

    monkeypatch.setattr(heap, "resident_bytes", resident)
    monkeypatch.setattr(heap, "trim", lambda: trims.append(time.monotonic()) or True)
    task = asyncio.create_task(lifecycle.trim_heap_after_bursts(heap.HeapTrimmer(growth=8 * MB), 0.001))
    try:
        deadline = time.monotonic() + 10
        while checks < 50:
            assert time.monotonic() < deadline, "the loop stopped checking"
            await asyncio.sleep(0.001)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(trims) == 1
