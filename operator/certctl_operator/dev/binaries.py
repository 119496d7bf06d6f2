"""kube-apiserver and etcd for the development control plane, built from Go modules.

The binaries are compiled by ``go build`` inside the helper Go module
``tools/controlplane/gobuild`` and cached outside the checkout, under
``~/.cache/certctl-operator/controlplane/<kubernetes>-<etcd>/``. The cache key
is read from that module's ``go.mod``, so bumping a version there builds anew.

* ``CERTCTL_CONTROLPLANE_CACHE`` replaces the cache root directory.
* ``CERTCTL_CONTROLPLANE_GOMOD`` names the helper module's ``go.mod`` (or its
  directory) when it cannot be found by searching upward from this package
  and from the current directory.

A cold build takes several minutes; later calls return at once. Each binary
is linked into a temporary file and renamed into place, so an interrupted
build never leaves a half-written binary behind, and a file lock makes
concurrent callers wait for one build instead of running two.

``python -m certctl_operator.dev.binaries`` builds (when needed) and prints
the paths.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import queue
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from certctl_operator.dev.processes import spawn, terminate

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
APISERVER_PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"

CACHE_ENV = "CERTCTL_CONTROLPLANE_CACHE"
GOMOD_ENV = "CERTCTL_CONTROLPLANE_GOMOD"
GOMOD_RELATIVE_PATH = Path("tools/controlplane/gobuild/go.mod")

HEARTBEAT_SECONDS = 30.0

Progress = Callable[[str], None]


class BinariesError(RuntimeError):
    """The control-plane binaries could not be located or built."""


@dataclass(frozen=True)
class ModuleVersions:
    """The versions the helper Go module builds."""

    kubernetes: str
    etcd: str

    @property
    def key(self) -> str:
        """The cache directory name, for example ``v1.36.3-v3.6.8``."""
        return f"{self.kubernetes}-{self.etcd}"


@dataclass(frozen=True)
class Binaries:
    """Paths of ready-to-run control-plane binaries."""

    kube_apiserver: Path
    etcd: Path
    version: str
    """``<kubernetes version>-<etcd version>``, the cache key."""
    kubernetes_version: str
    etcd_version: str


@dataclass(frozen=True)
class GoTarget:
    """One main package to build: the binary's name, its package, link flags and version flag."""

    name: str
    package: str
    ldflags: str
    version_flag: str


# --------------------------------------------------------------------------- go.mod


_DIRECTIVE_RE = re.compile(r"^(require|replace)\b\s*(.*)$")


def _strip_comment(line: str) -> str:
    return line.split("//", 1)[0].strip()


def parse_go_mod(text: str) -> ModuleVersions:
    """Read the kubernetes and etcd server versions out of a ``go.mod`` text.

    A ``replace`` of either module by another module version wins over the
    ``require`` line, as it does for ``go build``.
    """
    modules = parse_go_requirements(text)
    versions: dict[str, str] = {}
    for module in (KUBERNETES_MODULE, ETCD_MODULE):
        version = modules.get(module)
        if not version:
            raise BinariesError(f"go.mod does not require {module}")
        versions[module] = version
    return ModuleVersions(kubernetes=versions[KUBERNETES_MODULE], etcd=versions[ETCD_MODULE])


def parse_go_requirements(text: str) -> dict[str, str]:
    """Every module of a ``go.mod`` text with the version ``go build`` uses.

    Direct and indirect requirements count alike; a ``replace`` by another
    module version wins over the ``require`` line.
    """
    required: dict[str, str] = {}
    replaced: dict[str, str] = {}
    block: str | None = None
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
                continue
            _record(block, line, required, replaced)
            continue
        match = _DIRECTIVE_RE.match(line)
        if not match:
            continue
        directive, rest = match.groups()
        if rest == "(":
            block = directive
        else:
            _record(directive, rest, required, replaced)
    return {**required, **replaced}


def _record(directive: str, line: str, required: dict[str, str], replaced: dict[str, str]) -> None:
    fields = line.split()
    if directive == "require" and len(fields) >= 2:
        required[fields[0]] = fields[1]
    elif directive == "replace" and "=>" in fields:
        arrow = fields.index("=>")
        old, new = fields[:arrow], fields[arrow + 1 :]
        # Only "old [version] => new version" names a module version; a
        # replacement by a local directory has no version to key a cache on.
        if old and len(new) == 2:
            replaced[old[0]] = new[1]


def find_go_mod(start_points: Sequence[Path] | None = None) -> Path:
    """Locate the helper module's ``go.mod``.

    ``CERTCTL_CONTROLPLANE_GOMOD`` wins; otherwise every directory from each
    start point (default: this package's directory, then the current
    directory) upward is tried for ``tools/controlplane/gobuild/go.mod``.
    """
    return locate_go_mod(GOMOD_RELATIVE_PATH, GOMOD_ENV, start_points)


def locate_go_mod(relative: Path, env: str, start_points: Sequence[Path] | None = None) -> Path:
    """Locate a helper module's ``go.mod`` at ``relative`` (from the checkout's root).

    The environment variable ``env`` (a ``go.mod`` file or its directory)
    wins; otherwise every directory from each start point (default: this
    package's directory, then the current directory) upward is tried.
    """
    override = os.environ.get(env)
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / "go.mod"
        if not path.is_file():
            raise BinariesError(f"{env}={override} does not name a go.mod file")
        return path.resolve()
    if start_points is None:
        start_points = (Path(__file__).resolve().parent, Path.cwd().resolve())
    for start in start_points:
        for directory in (start, *start.parents):
            candidate = directory / relative
            if candidate.is_file():
                return candidate
    raise BinariesError(
        f"cannot find {relative} above {', '.join(str(s) for s in start_points)}; "
        f"run from the certctl-operator checkout or set {env}"
    )


def cache_base() -> Path:
    """``$XDG_CACHE_HOME/certctl-operator`` (``~/.cache/certctl-operator`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "certctl-operator"


def cache_root() -> Path:
    """The directory holding one sub-directory per built version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return cache_base() / "controlplane"


def _targets(versions: ModuleVersions) -> list[GoTarget]:
    major, minor = _major_minor(versions.kubernetes)
    # The version variables are set the way the Kubernetes release build sets
    # them, so /version reports the real release instead of v0.0.0-master.
    # Link flags do not change the compiled packages, so the Go build cache
    # is shared with a plain `go build` of the same module.
    version_pkg = "k8s.io/component-base/version"
    apiserver_ldflags = " ".join(
        [
            "-s -w",
            f"-X {version_pkg}.gitVersion={versions.kubernetes}",
            f"-X {version_pkg}.gitMajor={major}",
            f"-X {version_pkg}.gitMinor={minor}",
            f"-X {version_pkg}.gitTreeState=clean",
        ]
    )
    return [
        GoTarget("kube-apiserver", APISERVER_PACKAGE, apiserver_ldflags, "--version"),
        GoTarget("etcd", ETCD_MODULE, "-s -w", "--version"),
    ]


def _major_minor(version: str) -> tuple[str, str]:
    match = re.match(r"^v(\d+)\.(\d+)\.", version)
    if not match:
        raise BinariesError(f"unexpected {KUBERNETES_MODULE} version {version!r}")
    return match.group(1), match.group(2)


# --------------------------------------------------------------------------- building


def format_elapsed(seconds: float) -> str:
    """``75.2`` -> ``1m15s``."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _is_package_line(line: str) -> bool:
    # `go build -v` names each package as it compiles it; anything else
    # (downloads, compiler errors) is worth showing as it is.
    return bool(line) and " " not in line and ":" not in line and not line.startswith("#")


@contextlib.contextmanager
def build_lock(path: Path, what: str, progress: Progress) -> Iterator[None]:
    """Hold an exclusive file lock on ``path``, telling ``progress`` when another build holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process that is building {what} (lock {path})...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# The name the control-plane tests have always used.
_build_lock = build_lock


def go_build(
    target: GoTarget,
    output: Path,
    module_dir: Path,
    go: str,
    progress: Progress,
    heartbeat: float,
) -> None:
    """``go build`` ``target`` in ``module_dir`` into ``output``, atomically, with progress lines."""
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    log_path = output.with_name(f"build-{target.name}.log")
    command = [go, "build", "-trimpath", "-v", "-ldflags", target.ldflags, "-o", str(partial), target.package]
    env = dict(os.environ)
    env["GOWORK"] = "off"
    progress(f"building {target.name} with go build in {module_dir} (minutes if Go's build cache is cold)...")
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    compiled = 0
    try:
        with log_path.open("w") as log:
            log.write("$ " + " ".join(command) + "\n")
            proc = spawn(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=module_dir,
                env=env,
                text=True,
            )
            lines: queue.Queue[str | None] = queue.Queue()

            def pump() -> None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.put(line.rstrip("\n"))
                lines.put(None)

            reader = threading.Thread(target=pump, name=f"go-build-{target.name}", daemon=True)
            reader.start()
            try:
                next_beat = started + heartbeat
                while True:
                    try:
                        line = lines.get(timeout=max(0.0, next_beat - time.monotonic()))
                    except queue.Empty:
                        elapsed = format_elapsed(time.monotonic() - started)
                        progress(f"still building {target.name} ({elapsed}, {compiled} packages compiled)...")
                        next_beat += heartbeat
                        continue
                    if line is None:
                        break
                    log.write(line + "\n")
                    tail.append(line)
                    if _is_package_line(line):
                        compiled += 1
                    else:
                        progress(line)
                returncode = proc.wait()
            finally:
                terminate(proc, grace=5.0)
                reader.join(timeout=5.0)
        if returncode != 0:
            raise BinariesError(
                f"go build of {target.name} failed with exit status {returncode} "
                f"(full log: {log_path}); last lines:\n" + "\n".join(tail)
            )
        partial.chmod(0o755)
        version = _probe_version(partial, target)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    elapsed = format_elapsed(time.monotonic() - started)
    progress(f"built {target.name} in {elapsed} ({compiled} packages compiled): {version} -> {output}")


def _probe_version(binary: Path, target: GoTarget) -> str:
    try:
        result = subprocess.run(
            [str(binary), target.version_flag],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BinariesError(f"freshly built {target.name} does not run: {exc}") from exc
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "(no version output)"


def is_executable(path: Path) -> bool:
    """Whether ``path`` is a file this process may execute."""
    return path.is_file() and os.access(path, os.X_OK)


def ensure_binaries(
    progress: Progress = print,
    *,
    go_mod: Path | None = None,
    cache_dir: Path | None = None,
    go: str = "go",
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Binaries:
    """Return the cached kube-apiserver and etcd, building whichever is missing.

    ``progress`` receives one line per event while building (nothing when the
    cache is warm). ``cache_dir`` replaces the cache *root*; the versioned
    sub-directory is always added.
    """
    go_mod = go_mod or find_go_mod()
    versions = parse_go_mod(go_mod.read_text())
    directory = (cache_dir or cache_root()) / versions.key
    targets = _targets(versions)
    paths = {target.name: directory / target.name for target in targets}

    if not all(is_executable(path) for path in paths.values()):
        with build_lock(directory.with_name(f"{versions.key}.lock"), versions.key, progress):
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(".*.partial"):
                stale.unlink(missing_ok=True)
            for target in targets:
                if not is_executable(paths[target.name]):
                    go_build(target, paths[target.name], go_mod.parent, go, progress, heartbeat)

    return Binaries(
        kube_apiserver=paths["kube-apiserver"],
        etcd=paths["etcd"],
        version=versions.key,
        kubernetes_version=versions.kubernetes,
        etcd_version=versions.etcd,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Build (when needed) and print the control-plane binaries' paths."""
    parser = argparse.ArgumentParser(
        prog="python -m certctl_operator.dev.binaries",
        description="Build and cache kube-apiserver and etcd for the development control plane.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        binaries = ensure_binaries()
    except BinariesError as exc:
        parser.exit(1, f"error: {exc}\n")
    if args.json:
        print(json.dumps({key: str(value) for key, value in asdict(binaries).items()}, indent=2))
    else:
        print(f"kube-apiserver {binaries.kube_apiserver}")
        print(f"etcd           {binaries.etcd}")
        print(f"version        {binaries.version} (ready in {time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
