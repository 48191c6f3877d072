"""Kill -9 a notifier process at random points, restart it, and count copies per notice.

The SMTP sink lives in the test process, so it survives every kill and sees every copy.
Kill points are chosen two ways: at a random time after start (start-up, migration,
ingest, the first claims), or at a random moment of the delivery phase (after the run's
first message reached the sink, within about twice the run's share of what remains).
A kill that lands after a notice's send started (marked in the ledger) and before its
outcome was recorded leaves it "in flight": it may have arrived, so the next claim counts
it as an ambiguous attempt and sends it again only after the retry backoff, with the same
Message-ID, and never a third time on its own.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from support.smtp_sink import SmtpSink


@dataclass
class KillReport:
    """What happened over a series of kills and restarts."""

    kills: int = 0  # processes killed while still running
    finished_early: int = 0  # restarts that finished before their kill point came
    # Per kill: the notices the dead process held `sending` whose message had already arrived.
    in_flight: list[set[str]] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)

    @property
    def in_flight_union(self) -> set[str]:
        return set().union(*self.in_flight)

    def times_in_flight(self) -> Counter[str]:
        return Counter(key for keys in self.in_flight for key in keys)


def received_ids(sink: SmtpSink) -> Counter[str]:
    """How many copies of each Message-ID the sink accepted."""
    return Counter(str(message["Message-ID"]) for message in sink.messages)


def sending_notices(database: Path) -> dict[str, str]:
    """Key -> claim token of the notices the ledger holds `sending` (read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        try:
            rows = connection.execute(
                "SELECT key, claim_token FROM notices WHERE status = 'sending'"
            ).fetchall()
        except sqlite3.OperationalError:  # killed before the migration made the table
            return {}
        return {key: token for key, token in rows}


def send_started(database: Path) -> set[str]:
    """The keys of the notices whose send had started with no outcome recorded (read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute("SELECT key FROM notices WHERE send_started_at IS NOT NULL")
        return {key for (key,) in rows}


def _work_due(database: Path) -> bool:
    """Whether a run would find notices to send now (True before the ledger exists: a first
    run ingests and sends)."""
    if not database.exists():
        return True
    now = datetime.now(UTC).isoformat(sep=" ", timespec="microseconds")[:26]
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        try:
            (count,) = connection.execute(
                "SELECT count(*) FROM notices WHERE status IN ('pending', 'sending')"
                " OR (status = 'retry' AND due_at <= ?)",
                (now,),
            ).fetchone()
        except sqlite3.OperationalError:  # no table yet: the run migrates, ingests, sends
            return True
    return bool(count)


def kill_and_restart(
    command: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    sink: SmtpSink,
    database: Path,
    kills: int,
    total: int,
    message_id: Callable[[str], str],
    rng: random.Random,
    max_delay: float = 1.5,
) -> KillReport:
    """Start `command`, kill it at a random point, restart; until it was killed `kills` times.

    A restart that finishes before its kill point does not count as a kill (at most
    `3 * kills` starts in all).
    """
    report = KillReport()
    seconds_per_message = 0.03  # refined from what each run shows
    quickest = max_delay  # the shortest run that finished before its kill, less a margin
    for index in range(3 * kills):
        if report.kills == kills:
            break
        kills_left = kills - report.kills
        before = received_ids(sink)
        remaining = max(total - len(before), 0)
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started = time.monotonic()
        if remaining == 0 or not _work_due(database) or rng.random() < 0.25:
            # Anywhere from start-up (imports, migration, ingest) to the first claims; when
            # nothing is due (the rest waits for a retry backoff), within the shortest run
            # seen so far, or it would end before the kill.
            _wait(process, until=started + rng.uniform(0, quickest))
        else:
            # A random moment of the delivery phase: after this run's first message, within
            # about twice this run's share of what remains.
            first = _wait_for_count(process, sink, sum(before.values()) + 1)
            share = 2 * remaining / (kills_left + 1) * seconds_per_message
            _wait(process, until=first + rng.uniform(0, share))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            report.kills += 1
        else:
            report.finished_early += 1
            quickest = min(quickest, 0.9 * (time.monotonic() - started))
        _, stderr = process.communicate()
        report.exit_codes.append(process.returncode)
        if process.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(
                f"run {index} exited {process.returncode}:\n{stderr.decode(errors='replace')}"
            )
        # The sink may still be finishing a message the dead process had handed over.
        time.sleep(0.05)
        after = received_ids(sink)
        arrived_now = after - before
        if sum(arrived_now.values()) > 1:
            elapsed = time.monotonic() - started
            seconds_per_message = min(max(elapsed / sum(arrived_now.values()), 0.001), 0.5)
        held = sending_notices(database) if database.exists() else {}
        # In flight at the kill: held `sending` by the dead run, its copy arrived in this run.
        report.in_flight.append({key for key in held if message_id(key) in arrived_now})
    return report


def _wait(process: subprocess.Popen[bytes], *, until: float) -> None:
    while process.poll() is None and time.monotonic() < until:
        time.sleep(0.002)


def _wait_for_count(
    process: subprocess.Popen[bytes], sink: SmtpSink, count: int, *, at_most: float = 20.0
) -> float:
    """When the sink reached `count` messages (or now, if the process ended first, or after
    `at_most` seconds: a worker may have nothing to send until a retry backoff ends)."""
    deadline = time.monotonic() + at_most
    while process.poll() is None and time.monotonic() < deadline:
        try:
            sink.wait_for(count, timeout=0.05)
        except TimeoutError:
            continue
        break
    return time.monotonic()


def notifier_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "notifier", *args]
