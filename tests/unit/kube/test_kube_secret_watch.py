"""The Secret watcher's bookkeeping: which Secrets are watched for whom, the limit, and callbacks.

The watches themselves run against the real API server in
tests/integration/test_secret_watch.py; here ``_run`` is replaced by a task
that only records which Secrets it was started for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from certctl_operator.kube.secret_watch import SecretLocation, SecretWatcher, backoff_seconds, field_selector


class Recording(SecretWatcher):
    """A watcher whose watches wait forever; ``observe`` stands in for what a watch reports."""

    async def _run(self, location: SecretLocation) -> None:
        await asyncio.Event().wait()

    def observe(self, location: SecretLocation, version: str) -> None:
        self._observe(location, version)


def counter(calls: list[str], name: str) -> Any:
    async def on_change() -> None:
        calls.append(name)

    return on_change


async def settled() -> None:
    """Let the callback tasks scheduled so far run to completion."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_back_off_doubles_up_to_its_cap() -> None:
    assert [backoff_seconds(n, base=0.5, cap=4.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_seconds(10_000) == 30.0


def test_the_filter_names_exactly_one_secret() -> None:
    assert field_selector("ca-keypair") == "metadata.name=ca-keypair"


async def test_a_secret_is_watched_once_while_anyone_references_it() -> None:
    watcher = Recording(api=None)
    calls: list[str] = []
    shared = ("team-a", "shared")
    watcher.watch("issuer", [shared], counter(calls, "issuer"))
    watcher.watch("channel", [shared, ("team-a", "own")], counter(calls, "channel"))
    assert watcher.watched() == {shared, ("team-a", "own")}
    first = watcher._watches[shared]
    watcher.forget("issuer")
    assert watcher._watches[shared] is first, "the watch of a Secret still referenced was restarted"
    watcher.watch("channel", [("team-a", "own")], counter(calls, "channel"))
    await settled()
    assert watcher.watched() == {("team-a", "own")}
    assert first.cancelled()
    await watcher.close()
    assert watcher.watched() == set()


async def test_every_owner_is_called_on_a_new_version_and_not_on_the_same_one() -> None:
    watcher = Recording(api=None)
    calls: list[str] = []
    location = ("team-a", "ca")
    watcher.watch("a", [location], counter(calls, "a"))
    watcher.watch("b", [location], counter(calls, "b"))
    watcher.observe(location, "1")  # the first look
    await settled()
    assert sorted(calls) == ["a", "b"]
    watcher.observe(location, "1")  # a reconnect that finds nothing new
    await settled()
    assert len(calls) == 2
    watcher.observe(location, "")  # deleted
    await settled()
    assert len(calls) == 4
    watcher.forget("a")
    watcher.observe(location, "7")
    await settled()
    assert calls[4:] == ["b"]
    await watcher.close()


async def test_an_owner_called_again_while_its_callback_runs_runs_once_more_afterwards() -> None:
    watcher = Recording(api=None)
    location = ("team-a", "ca")
    release = asyncio.Event()
    runs: list[int] = []

    async def slow() -> None:
        runs.append(len(runs))
        await release.wait()

    watcher.watch("a", [location], slow)
    for version in ("1", "2", "3"):
        watcher.observe(location, version)
        await settled()
    assert runs == [0]
    release.set()
    await settled()
    assert runs == [0, 1], "three changes during one run give exactly one more run"
    await watcher.close()


async def test_beyond_the_limit_secrets_wait_for_a_free_watch(caplog: pytest.LogCaptureFixture) -> None:
    watcher = Recording(api=None, limit=2)
    for index in range(4):
        watcher.watch(f"owner-{index}", [("ns", f"s{index}")], counter([], str(index)))
    assert watcher.watched() == {("ns", "s0"), ("ns", "s1")}
    assert sum("the limit" in record.getMessage() for record in caplog.records) == 1, "warned once"
    watcher.forget("owner-0")
    assert watcher.watched() == {("ns", "s1"), ("ns", "s2")}
    await watcher.close()


async def test_a_failing_callback_is_logged_without_details_and_does_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher = Recording(api=None)
    calls: list[str] = []
    location = ("team-a", "ca")

    async def failing() -> None:
        raise ValueError("password=hunter2")

    watcher.watch("bad", [location], failing)
    watcher.watch("good", [location], counter(calls, "good"))
    watcher.observe(location, "1")
    await settled()
    assert calls == ["good"]
    assert "hunter2" not in caplog.text
    assert "ValueError" in caplog.text
    await watcher.close()
