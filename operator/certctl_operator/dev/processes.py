"""Child processes that never outlive the Python process that started them.

Every helper process of the development control plane (``go build``, etcd,
kube-apiserver) is started through :func:`spawn`:

* in its own process group, so a terminal's Ctrl-C reaches only Python, which
  then stops the children in order, and so :func:`terminate` can signal the
  whole group;
* on Linux with ``PR_SET_PDEATHSIG`` set to ``SIGKILL``, so the kernel kills
  the child when its parent dies, even when the parent is killed with
  ``SIGKILL`` and no Python clean-up code runs;
* with the environment variable :data:`OWNER_ENV` naming the parent's PID, so
  :func:`find_owned_processes` can find any that escaped (tests assert none).

``PR_SET_PDEATHSIG`` is tied to the *thread* that forked the child: start
control planes from a thread that lives as long as they should (the main
thread, normally).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

OWNER_ENV = "CERTCTL_CONTROLPLANE_OWNER"
"""Set in every spawned child's environment to the PID of the spawning process."""

_PR_SET_PDEATHSIG = 1


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die with this process, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # The parent may have died between fork() and prctl(): then nobody
        # would deliver the death signal any more, so leave at once.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(
    args: Sequence[str],
    *,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start ``args`` in a new process group, tied to the life of this process."""
    child_env = dict(os.environ if env is None else env)
    child_env[OWNER_ENV] = str(os.getpid())
    return subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=child_env,
        text=text,
        process_group=0,
        preexec_fn=_die_with_parent_preexec(),
        close_fds=True,
    )


def terminate(proc: subprocess.Popen[Any], grace: float) -> int:
    """Stop ``proc``'s process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    Waits for the process and returns its exit status. Safe to call again.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may hold spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def find_owned_processes(owner: int | None = None, *, executables: Iterable[Path] | None = None) -> list[int]:
    """PIDs of live processes spawned by ``owner`` (default: this process).

    Reads ``/proc/<pid>/environ`` for :data:`OWNER_ENV`; processes of other
    users, which cannot be read, are skipped. With ``executables``, only
    processes running one of those files count.
    """
    marker = f"{OWNER_ENV}={os.getpid() if owner is None else owner}".encode()
    wanted = None if executables is None else {Path(e).resolve() for e in executables}
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            exe = (entry / "exe").resolve() if wanted is not None else None
        except OSError:
            continue
        if marker not in environ.split(b"\0") or not pid_alive(int(entry.name)):
            continue
        if wanted is None or exe in wanted:
            found.append(int(entry.name))
    return sorted(found)
