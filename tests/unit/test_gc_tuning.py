"""The collector settings a serving process takes once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

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


@pytest.mark.usefixtures("restored_gc")
def test_a_batch_run_takes_the_settings_before_its_records(tmp_path: Path) -> None:
    """`notifier run` works through a batch of many small objects: it settles first."""
    from support.cli import notifier, tna_record
    from support.project import settings_for, write_jsonl

    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    batch = write_jsonl(tmp_path / "batch.jsonl", [tna_record(1)])
    outcome = notifier(settings_for(tmp_path), "run", str(batch))
    assert outcome.exit_code == 0, outcome.stdout
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
