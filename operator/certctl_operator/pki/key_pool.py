"""Worker processes that generate private keys, so RSA key generation uses every core.

RSA key generation is the one CPU-heavy step of an issuance that grows with
the key: about 30 ms for 2048 bits, ten times that for 4096. In worker
processes it runs on all cores without competing for the interpreter lock
with the event loop, which keeps serving the API server and the HTTP
endpoints meanwhile. The workers do nothing else: no logging, no network, no
files. A key leaves a worker only as PEM bytes through the pool's pipe, and
only to the process that asked for it.

Workers are started with ``spawn``: forking a process that runs threads and
an event loop could copy a lock some thread held. Each worker ignores SIGINT
(the operator decides when to stop) and exits by itself when the operator
process is gone, also after a SIGKILL that let it close nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PARENT_CHECK_SECONDS = 0.5
"""How often a worker looks whether the operator process still exists."""


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)  # polling interval of a watchdog, not a synchronisation
    os._exit(0)


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


def key_generation_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` key generation processes (default: one per core), started on first use."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


__all__ = ["key_generation_pool"]
