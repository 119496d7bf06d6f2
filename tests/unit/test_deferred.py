"""A deferred module is imported by the first read of one of its attributes, not before."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl_operator.deferred import DeferredModule


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "certctl_deferred_probe"
    (tmp_path / f"{name}.py").write_text("ANSWER = 42\nclass Failure(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_nothing_is_imported_until_an_attribute_is_read(probe_module: str) -> None:
    deferred = DeferredModule(probe_module)
    assert probe_module not in sys.modules
    assert probe_module in repr(deferred)
    copy.copy(deferred)  # looks for __reduce_ex__ and the like: no import for those
    assert probe_module not in sys.modules

    assert deferred.ANSWER == 42
    assert probe_module in sys.modules


def test_its_classes_are_the_real_ones_in_except_clauses(probe_module: str) -> None:
    deferred = DeferredModule(probe_module)
    caught: BaseException | None = None
    try:
        raise deferred.Failure("refused")
    except (deferred.Failure, OSError) as error:
        caught = error
    assert type(caught) is sys.modules[probe_module].Failure


def test_an_unknown_attribute_is_an_attribute_error(probe_module: str) -> None:
    with pytest.raises(AttributeError):
        _ = DeferredModule(probe_module).MISSING
