"""Run the `notifier` command in process (typer's runner) with a test's settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from notifier.cli import app
from notifier.settings import Settings
from support.project import ROOT, env_for

UPS = "1Z999AA10123456784"


@dataclass(frozen=True)
class Outcome:
    """A command's exit code and output; stdout/stderr with line wrapping undone."""

    exit_code: int
    raw_stdout: str
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.raw_stdout)


def notifier(settings: Settings, *args: str) -> Outcome:
    """`notifier ARGS…` in process, with these settings."""
    result = CliRunner().invoke(app, list(args), env=env_for(settings), catch_exceptions=False)
    return Outcome(
        exit_code=result.exit_code,
        raw_stdout=result.stdout,
        stdout=" ".join(result.stdout.split()),
        stderr=" ".join(result.stderr.split()),
    )


def tna_record(n: int | str, *, email: str | None = None, **fields: Any) -> dict[str, Any]:
    """A fulfillment entering Pending Shipment with a tracking number: one notice."""
    record: dict[str, Any] = {
        "event_id": f"evt-{n}-{fields.get('status', 'ps')}",
        "order_id": f"O{n}",
        "fulfillment_id": f"F{n}",
        "status": "Pending Shipment",
        "occurred_at": "2026-11-21T08:00:00Z",
        "email": email or f"customer{n}@example.com",
        "first_name": "Jane",
        "tracking_number": UPS,
    }
    record.update(fields)
    return record


def tna_key(n: int | str) -> str:
    return f"tracking_number_assigned:fulfillment:F{n}"


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def notifier_process(
    *args: str, env: dict[str, str], stdin: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`python -m notifier ARGS…` as a child process: only `env`'s NOTIFIER_* settings."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )
