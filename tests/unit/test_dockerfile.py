"""What can be checked about the image without a Docker engine: the Dockerfile and .dockerignore.

Multi-stage, slim and pinned base images, only runtime dependencies, a
non-root user that matches the chart, and an entry point the installed
package really provides.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from certctl_operator.entrypoint import build_parser
from certctl_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def parse() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            parts = args.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif not stages and keyword == "ARG":
            key, _, value = args.partition("=")
            global_args[key] = value
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse()
RUNTIME = STAGES[-1]


def test_multi_stage_on_slim_pinned_python_images() -> None:
    assert len(STAGES) >= 2
    for stage in STAGES:
        repository, _, tag = stage.image.rpartition(":")
        assert repository == "python", stage.image
        assert tag and tag != "latest", f"{stage.image} is not pinned by tag"
        assert re.match(r"^3\.\d+\.\d+-slim-", tag), f"{stage.image}: pin major.minor.patch of a slim image"
        python = tuple(int(part) for part in tag.split("-")[0].split("."))
        requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
        assert python >= tuple(int(p) for p in requires.removeprefix(">=").split(".")), requires


def test_the_runtime_stage_copies_only_the_built_environment() -> None:
    copies = RUNTIME.all("COPY")
    assert copies, "the runtime stage copies nothing"
    assert all(args.startswith("--from=") for args in copies), copies
    assert not RUNTIME.all("ADD")
    # Nothing is installed into the runtime stage itself.
    assert not any("pip" in args or "apt-get" in args for args in RUNTIME.all("RUN"))


def test_only_runtime_dependencies_are_installed() -> None:
    installs = [args for stage in STAGES for args in stage.all("RUN") if "pip install" in args]
    assert installs
    test_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "test"
    ]
    dev_packages = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in test_extra}
    for args in installs:
        words = shlex.split(args.replace("&&", " "))
        assert "-e" not in words and "--editable" not in words, args
        assert not any("[" in word for word in words), f"an extra is installed: {args}"
        assert not dev_packages & {word.lower() for word in words}, args
        assert not any(word.startswith("-r") for word in words), args


def test_runs_as_the_unprivileged_user_the_chart_expects() -> None:
    user = RUNTIME.last("USER")
    assert user is not None, "the runtime stage runs as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root UID (runAsNonRoot checks it)"
    assert gid.isdigit() and int(gid) != 0
    created = " ".join(RUNTIME.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created
    values = yaml.safe_load((ROOT / "helm/certctl-operator/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)


def test_entry_point_is_the_installed_console_script() -> None:
    entrypoint = RUNTIME.last("ENTRYPOINT")
    command = RUNTIME.last("CMD")
    assert entrypoint is not None and command is not None
    assert json.loads(entrypoint) == ["certctl-operator"]  # exec form: the operator is PID 1 and gets SIGTERM
    assert json.loads(command) == ["run"]
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "certctl-operator"]
    assert script.value == "certctl_operator.entrypoint:main"
    assert build_parser().parse_args(["run"]).command == "run"
    # The virtual environment that holds the script is on PATH.
    assert any("PATH=/opt/certctl/bin:" in args for args in RUNTIME.all("ENV"))


def test_the_exposed_port_is_the_operators() -> None:
    assert RUNTIME.all("EXPOSE") == [str(Settings().http_port)]


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins)."""
    result = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        candidates = [path, *(str(parent) for parent in Path(path).parents if str(parent) != ".")]
        if any(
            fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.replace("**/", ""))
            for candidate in candidates
        ):
            result = not negate
    return result


def test_the_build_context_holds_the_package_and_nothing_else() -> None:
    for needed in ("pyproject.toml", "README.md", "operator/certctl_operator/entrypoint.py"):
        assert not ignored(needed), needed
    for excluded in (
        ".venv/bin/python",
        "tests/unit/test_chart.py",
        ".git/HEAD",
        "tools/helm/go.mod",
        "helm",
    ):
        assert ignored(excluded), excluded
    for args in (args for stage in STAGES for args in stage.all("COPY") if not args.startswith("--from")):
        for source in args.split()[:-1]:
            assert not ignored(source), f"COPY {source} is excluded by .dockerignore"
