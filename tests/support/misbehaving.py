"""TCP servers on 127.0.0.1 that misbehave below HTTP and SMTP: they never answer, or hang up at once.

* :class:`SilentServer` accepts connections and never sends a byte (a
  receiver that hangs), counting the connections it accepted.
* :class:`HangUpServer` accepts and closes every connection at once (an SMTP
  server that drops the client before its greeting).

Both run one thread and close every socket they hold on ``stop()``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"


class _AcceptingServer:
    def __init__(self, *, keep_open: bool) -> None:
        self._keep_open = keep_open
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._accepted = 0
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def accepted(self) -> int:
        with self._condition:
            return self._accepted

    def wait_accepted(self, count: int, seconds: float) -> None:
        with self._condition:
            if not self._condition.wait_for(lambda: self._accepted >= count, timeout=seconds):
                raise TimeoutError(f"{count} connection(s) not accepted within {seconds}s")

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._condition:
                self._accepted += 1
                if self._keep_open:
                    self._held.append(connection)
                self._condition.notify_all()
            if not self._keep_open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self._listener.close()
        with self._condition:
            for connection in self._held:
                connection.close()
            self._held.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class SilentServer(_AcceptingServer):
    """Accepts connections and never answers on them."""

    def __init__(self) -> None:
        super().__init__(keep_open=True)


class HangUpServer(_AcceptingServer):
    """Accepts connections and closes each at once."""

    def __init__(self) -> None:
        super().__init__(keep_open=False)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


__all__ = ["HangUpServer", "SilentServer", "closed_port"]
