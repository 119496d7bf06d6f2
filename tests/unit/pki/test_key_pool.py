"""The key generation processes: RSA keys come back as keys, the workers end with the pool."""

from __future__ import annotations

from certctl_operator.pki import KeyAlgorithm, KeySpec, generate_private_key_async, key_matches_spec
from certctl_operator.pki.key_pool import key_generation_pool


async def test_the_pool_generates_keys_on_every_worker_and_its_workers_end_with_it() -> None:
    pool = key_generation_pool(workers=2)
    spec = KeySpec(KeyAlgorithm.RSA, 2048)
    try:
        keys = [await generate_private_key_async(spec, pool) for _ in range(2)]
        processes = list(pool._processes.values())
    finally:
        pool.shutdown(wait=True)
    assert all(key_matches_spec(key, spec) for key in keys)
    assert keys[0].private_numbers() != keys[1].private_numbers()
    assert processes and all(not process.is_alive() for process in processes)
