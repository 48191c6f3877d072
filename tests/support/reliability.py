"""Sizes for the reliability tests, and where they report their figures.

The default suite runs small but real versions (still at least 20 kill points);
`make reliability` sets NOTIFIER_RELIABILITY=full for the sizes the report quotes and
NOTIFIER_RELIABILITY_RESULTS to a JSON-lines file that `tests/support/reliability_report.py`
turns into the table in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FULL = os.environ.get("NOTIFIER_RELIABILITY", "") == "full"
_RESULTS = os.environ.get("NOTIFIER_RELIABILITY_RESULTS", "")

# Property-based tests: examples per property.
EXAMPLES = 1000 if FULL else 40
# The batch-run kill test.
KILL_NOTICES = 1000 if FULL else 100
KILLS = 20
KILL_ROUNDS = 3 if FULL else 1
# The long-running worker kill test (serve's delivery loop).
WORKER_NOTICES = 1000 if FULL else 100
WORKER_KILLS = 20 if FULL else 3


def report(
    test: str,
    *,
    injects: str,
    runs: int,
    notices: int | None = None,
    sent: int | None = None,
    duplicated: int | None = None,
    lost: int | None = None,
    notes: str = "",
) -> None:
    """Append one test's figures to the results file (when `make reliability` asks for it)."""
    if not _RESULTS:
        return
    entry: dict[str, Any] = {
        "test": test,
        "injects": injects,
        "runs": runs,
        "notices": notices,
        "sent": sent,
        "duplicated": duplicated,
        "lost": lost,
        "notes": notes,
        "full": FULL,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with Path(_RESULTS).open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(entry) + "\n")


_examples: Counter[str] = Counter()


def example_ran(test: str) -> None:
    """Count one example of a property test (reported by report_examples)."""
    _examples[test] += 1


def report_examples(injects: dict[str, str]) -> None:
    """Report how many examples each property test ran (call once, after the module)."""
    for test, what in injects.items():
        if _examples[test]:
            report(test, injects=what, runs=_examples[test], notes="no unhandled exception")
