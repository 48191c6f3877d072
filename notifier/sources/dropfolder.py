"""The drop folder: record files a fulfillment house leaves on the server, each processed once.

Convention for writers: write to a temporary name (a dotfile, or `*.tmp` / `*.part`), then
rename to the final `.jsonl`, `.json` or `.csv` name; a rename within one file system is
atomic. Files younger than `min_age` are left for the next run as well, for writers that
cannot rename. A file's age is read on the file system's clock (a probe file's mtime), not
the engine's: the times on a network share come from its server, and the engine's clock
may be a test's or simply another machine's.

Crash safety: a file is moved out of the folder only after every record in it has been
ingested (each ingest chunk is its own committed transaction). A crash mid-file leaves the
file in place; the next run reads it whole again and record dedup absorbs what was already
stored, so no record is processed twice and none is skipped.

Outcome: a clean file moves to `processed/`. A file with bad lines moves to `rejected/`
with `<name>.report.txt` beside it naming each bad line; its valid records are ingested
all the same (nothing accepted is ever lost), so only the bad lines need fixing and
re-dropping. Moved files get a UTC timestamp prefix so a daily `orders.csv` never
overwrites yesterday's.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path

from notifier.core.future_dated import job_source
from notifier.core.models import Record
from notifier.core.records import Rejection, read_path
from notifier.engine import Clock, Engine, utc_now

log = logging.getLogger("notifier.dropfolder")

SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv"})
PARTIAL_SUFFIXES = frozenset({".tmp", ".part", ".partial", ".crdownload"})
PROCESSED = "processed"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DropFolderOptions:
    path: Path
    # Files modified more recently than this are still being written: leave them for later.
    min_age: timedelta = timedelta(seconds=5)


@dataclass(slots=True)
class FileOutcome:
    """What became of one dropped file."""

    name: str
    moved_to: Path
    accepted: int = 0
    duplicates: int = 0
    notices_created: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    report: Path | None = None


class DropFolder:
    def __init__(
        self, options: DropFolderOptions, *, clock: Clock = utc_now, name: str = "dropfolder"
    ) -> None:
        self.options = options
        self.clock = clock
        self.source = job_source(name)

    @property
    def path(self) -> Path:
        return self.options.path

    def ready_files(self) -> list[Path]:
        """Record files complete enough to read, oldest first."""
        if not self.path.is_dir():
            log.warning("drop folder %s does not exist (yet)", self.path)
            return []
        try:
            cutoff = self._cutoff()
        except OSError as exc:
            # Nothing could be moved out of it either: say so once, take nothing.
            log.error("drop folder %s: cannot write there (%s); nothing taken", self.path, exc)
            return []
        ready: list[tuple[float, str, Path]] = []
        for entry in os.scandir(self.path):
            name = entry.name
            if name.startswith((".", "~")) or not entry.is_file(follow_symlinks=False):
                continue
            suffix = Path(name).suffix.lower()
            if suffix in PARTIAL_SUFFIXES or suffix not in SUFFIXES:
                continue
            mtime = entry.stat().st_mtime
            if mtime > cutoff:
                continue  # still being written (or just renamed): next run
            ready.append((mtime, name, Path(entry.path)))
        return [path for _, _, path in sorted(ready)]

    def _cutoff(self) -> float:
        """Files modified after this (file system time) are too young to read."""
        if not self.options.min_age:
            return float("inf")
        return _file_system_now(self.path) - self.options.min_age.total_seconds()

    def run(
        self, engine: Engine, *, stopping: Callable[[], bool] | None = None
    ) -> list[FileOutcome]:
        """Process every ready file; a store error stops the run and leaves the file in place.

        `stopping` is asked between files: a shutdown finishes the file in hand, no more.
        """
        outcomes = []
        for path in self.ready_files():
            if stopping is not None and stopping():
                break
            try:
                outcomes.append(self.process(engine, path))
            except OSError as exc:
                # Unreadable, vanished, or not movable: leave it, go on with the others; the
                # next run tries again (dedup absorbs what this one already ingested).
                log.error("drop folder: %s: %s; left in place", path.name, exc)
        return outcomes

    def process(self, engine: Engine, path: Path) -> FileOutcome:
        """Ingest one file's valid records, then move it (and write its report if needed)."""
        received_at = self.clock()
        rejections: list[Rejection] = []

        def records() -> Iterator[Record]:
            try:
                for item in read_path(path, received_at=received_at):
                    if isinstance(item, Rejection):
                        rejections.append(item)
                    else:
                        yield item
            except UnicodeDecodeError as exc:
                rejections.append(
                    Rejection(str(path), f"byte {exc.start}", "not UTF-8 text; stopped reading")
                )

        report = engine.ingest(records(), source=self.source)
        engine.note_rejections(rejections)
        # Everything is committed: only now may the file leave the folder.
        stamp = received_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        target_dir = self.path / (REJECTED if rejections else PROCESSED)
        target_dir.mkdir(exist_ok=True)
        target = _free_name(target_dir, f"{stamp}-{path.name}")
        outcome = FileOutcome(
            name=path.name,
            moved_to=target,
            accepted=report.accepted,
            duplicates=report.duplicates,
            notices_created=report.notices_created,
            rejections=rejections,
        )
        if rejections:
            outcome.report = target.with_name(target.name + ".report.txt")
            _write_atomically(outcome.report, _report_text(outcome))
        os.replace(path, target)
        log_method = log.warning if rejections else log.info
        log_method(
            "drop folder: %s: %d record(s) accepted (%d duplicate), %d rejected, "
            "%d notice(s) created; moved to %s",
            path.name,
            report.accepted,
            report.duplicates,
            len(rejections),
            report.notices_created,
            target,
        )
        return outcome


def _report_text(outcome: FileOutcome) -> str:
    lines = [
        f"{outcome.name}: {len(outcome.rejections)} record(s) rejected, "
        f"{outcome.accepted + outcome.duplicates} accepted and ingested.",
        "Fix the lines below and drop them again as a new file; the accepted records are in.",
        "",
    ]
    lines += [f"{r.location}: {r.reason}" for r in outcome.rejections]
    return "\n".join(lines) + "\n"


def _file_system_now(folder: Path) -> float:
    """The current time as the folder's file system stamps it on a file written now."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".notifier-clock-") as probe:
        return os.fstat(probe.fileno()).st_mtime


def _free_name(directory: Path, name: str) -> Path:
    candidate = directory / name
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = directory / f"{Path(name).stem}-{counter}{Path(name).suffix}"
    return candidate


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
