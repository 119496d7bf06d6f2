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

The pool itself is made with the first key it is asked for: a process pool
starts multiprocessing's resource tracker (a Python process of about 12 MB)
as soon as it exists, and an operator whose certificates all have ECDSA or
Ed25519 keys never needs either (those keys are made in the operator process).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

PARENT_CHECK_SECONDS = 0.5
"""How often a worker looks whether the operator process still exists."""


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)  # polling interval of a watchdog, not a synchronisation
    os._exit(0)


WORKER_NICENESS = 10
"""How much lower the workers' CPU priority is than the operator process's.

In a burst of RSA keys every core is busy. The event loop (watch events, API
writes, health probes) then runs as soon as it has work and key generation
takes what is left, so finished keys become Secrets at once instead of
waiting behind the next keys: 1,000 RSA certificates were Ready several
seconds sooner.
"""


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


class KeyGenerationPool(Executor):
    """``workers`` key generation processes (default: one per core), made when the first key is asked for."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _processes(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._processes().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def worker_processes(self) -> list[Any]:
        """The live worker processes (none before the first key)."""
        return list((self._pool._processes or {}).values()) if self._pool is not None else []


def key_generation_pool(workers: int | None = None) -> KeyGenerationPool:
    """A pool of ``workers`` key generation processes (default: one per core), started on first use."""
    return KeyGenerationPool(workers)


__all__ = ["KeyGenerationPool", "key_generation_pool"]
