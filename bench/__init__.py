"""Benchmarks, not tests: each prints its figures as ratios to a baseline run beside it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifier.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def bench_settings(folder: Path | None = None, **values: Any) -> Settings:
    """Settings on the project's own rules and templates, with no .env file read; with
    `folder`, a fresh SQLite ledger and outbox in it. `values` set or override the rest."""
    # Imported here: the SMTP sink processes import this package and need none of notifier.
    from notifier.settings import Settings

    defaults: dict[str, Any] = {"rules_dir": ROOT / "rules", "templates_dir": ROOT / "templates"}
    if folder is not None:
        defaults |= {
            "database_url": f"sqlite:///{folder / 'bench.db'}",
            "outbox_dir": folder / "outbox",
        }
    return Settings(_env_file=None, **(defaults | values))
