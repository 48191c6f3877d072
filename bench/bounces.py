"""Benchmark: reading bounce messages, over storing the events they give.

    python -m bench.bounces [N]

Baseline (same process, fresh SQLite file each): the feedback intake taking the events of N
bounce messages, read beforehand. Measured: `notifier feedback import`'s work on an mbox of
the same N messages (read the mbox, parse each message, read the bounce, take the events),
and reading alone (no ledger), split by how the bounces were read: the standards' parsers
(DSN, ARF) and flufl.bounce's detectors. The messages cycle through the real bounces in
tests/data/bounces (the ones that are no bounce are left out). Reported as ratios.
"""

from __future__ import annotations

import email
import logging
import mailbox
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from bench import ROOT, bench_settings
from notifier.core.feedback import FeedbackEvent
from notifier.engine.feedback import FeedbackIntake
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.sources.bounces import NotUnderstood, read_bounce
from notifier.sources.bounces.files import messages_in
from notifier.sources.bounces.importing import import_bounces

SAMPLES = ROOT / "tests" / "data" / "bounces"


def understood_samples() -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    found = []
    for path in sorted(SAMPLES.glob("*.eml")):
        data = path.read_bytes()
        reading = read_bounce(email.message_from_bytes(data), received_at=now)
        if not isinstance(reading, NotUnderstood) and reading:
            found.append((reading[0].provider, data))
    return found


def with_intake(run: Callable[[FeedbackIntake], int]) -> float:
    folder = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    try:
        settings = bench_settings(folder)
        with open_engine(settings) as engine:
            intake = feedback_intake(settings, engine)
            started = time.perf_counter()
            run(intake)
            return time.perf_counter() - started
    finally:
        shutil.rmtree(folder)


def reading(messages: list[Message]) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    for message in messages:
        read_bounce(message, received_at=now)
    return time.perf_counter() - started


def main(n: int) -> None:
    # Every bounce suppresses an address, each logged as a warning: not what is measured.
    logging.getLogger("notifier.feedback").setLevel(logging.ERROR)
    samples = understood_samples()
    chosen = [samples[i % len(samples)] for i in range(n)]
    source = Path(tempfile.mkdtemp(prefix="notifier-bench-src-"))
    box_path = source / "bounces.mbox"
    box = mailbox.mbox(box_path)
    for _, data in chosen:
        box.add(data)
    box.close()
    now = datetime.now(UTC)
    events: list[FeedbackEvent] = []
    for _, data in chosen:
        got = read_bounce(email.message_from_bytes(data), received_at=now)
        assert isinstance(got, list)
        events += got

    def baseline(intake: FeedbackIntake) -> int:
        stored = 0
        for start in range(0, len(events), 500):
            stored += intake.take(events[start : start + 500]).stored
        return stored

    def whole_import(intake: FeedbackIntake) -> int:
        report = import_bounces(messages_in(box_path), intake, received_at=now, bounce_address=None)
        assert report.messages == n and not report.not_understood
        return report.feedback.stored

    by_kind = {
        kind: [email.message_from_bytes(d) for k, d in chosen if k == kind]
        for kind in ("dsn", "arf", "bounce")
    }
    try:
        base = min(with_intake(baseline) for _ in range(3))
        full = min(with_intake(whole_import) for _ in range(3))
        standard = by_kind["dsn"] + by_kind["arf"]
        read_standard = min(reading(standard) for _ in range(3))
        read_detected = min(reading(by_kind["bounce"]) for _ in range(3))
    finally:
        shutil.rmtree(source)
    print(f"messages: {n:,} ({len(events):,} events; best of 3 each, fresh SQLite file per run)")
    print(f"{'baseline intake.take':32} {base:7.3f} s {n / base:9,.0f} messages/s  1.00x")
    ratio = full / base
    print(f"{'feedback import (mbox)':32} {full:7.3f} s {n / full:9,.0f} messages/s {ratio:5.2f}x")
    for label, count, seconds in (
        ("reading: DSN and ARF parsers", len(standard), read_standard),
        ("reading: flufl.bounce detectors", len(by_kind["bounce"]), read_detected),
    ):
        print(
            f"{label:32} {seconds:7.3f} s {count / seconds:9,.0f} messages/s ({count:,} messages)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000)
