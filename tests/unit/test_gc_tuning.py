"""The collector settings a serving process takes once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from notifier.processes.gc_tuning import YOUNG_THRESHOLD, settle_after_startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    built_at_startup = [{"n": n} for n in range(1000)]
    gc.unfreeze()
    settle_after_startup()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700


@pytest.mark.usefixtures("restored_gc")
def test_cycles_made_after_startup_are_still_collected() -> None:
    settle_after_startup()

    class Node:
        other: object = None

    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    assert gc.collect() >= 2
