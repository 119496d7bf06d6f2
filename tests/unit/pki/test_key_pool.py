"""The key generation processes: RSA keys come back as keys, the workers end with the pool."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from certctl_operator.pki import KeyAlgorithm, KeySpec, generate_private_key_async, key_matches_spec
from certctl_operator.pki.key_pool import WORKER_NICENESS, key_generation_pool


async def test_the_pool_generates_keys_on_every_worker_and_its_workers_end_with_it() -> None:
    pool = key_generation_pool(workers=2)
    spec = KeySpec(KeyAlgorithm.RSA, 2048)
    try:
        keys = [await generate_private_key_async(spec, pool) for _ in range(2)]
        processes = pool.worker_processes()
    finally:
        pool.shutdown(wait=True)
    assert all(key_matches_spec(key, spec) for key in keys)
    assert keys[0].private_numbers() != keys[1].private_numbers()
    assert processes and all(not process.is_alive() for process in processes)


async def test_the_pool_starts_no_process_until_a_key_is_asked_for() -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    pool = key_generation_pool(workers=1)
    ecdsa = await generate_private_key_async(KeySpec(KeyAlgorithm.ECDSA, 256), pool)
    assert key_matches_spec(ecdsa, KeySpec(KeyAlgorithm.ECDSA, 256))
    assert not pool.started and pool.worker_processes() == []
    assert {child.pid for child in multiprocessing.active_children()} == before
    pool.shutdown(wait=True)  # nothing to stop: nothing was started
    assert not pool.started
    with pytest.raises(RuntimeError):
        await generate_private_key_async(KeySpec(KeyAlgorithm.RSA, 2048), pool)
    assert not pool.started


def test_the_workers_run_at_a_lower_priority_than_the_operator() -> None:
    pool = key_generation_pool(workers=1)
    try:
        worker_niceness = pool.submit(os.nice, 0).result(timeout=60)
    finally:
        pool.shutdown(wait=True)
    assert worker_niceness == min(os.nice(0) + WORKER_NICENESS, 19)
