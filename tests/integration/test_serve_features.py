"""`notifier serve` with everything on: the /preview page and a drop-folder job, in one process;
and what its extras are built from."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.project import settings_for, smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.webhook import SECRET, shipment

from notifier.engine.feedback import FeedbackIntake
from notifier.processes.project_file import load_project_file
from notifier.processes.scheduler import ScheduledJobs
from notifier.processes.serve import standard_extras
from notifier.processes.wiring import open_engine
from notifier.processes.worker import delivery_worker_for


def test_serve_runs_the_preview_page_and_the_scheduler(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """A file dropped while serve runs is mailed and moved; /preview needs its token."""
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        webhook_secret=SECRET,
        preview_token="let-me-see",
        drop_dir=drop,
        drop_interval="1s",
    )
    with ServeProcess(settings, cwd=tmp_path) as server:
        assert httpx.get(f"{server.url}/preview").status_code == 401
        page = httpx.get(f"{server.url}/preview", headers={"X-Preview-Token": "let-me-see"})
        assert page.status_code == 200 and "tracking_number_assigned" in page.text

        staged = drop / ".incoming.jsonl.tmp"
        staged.write_text(json.dumps(shipment(1)) + "\n")
        staged.rename(drop / "orders.jsonl")  # the documented convention: write, then rename
        (message,) = smtp_sink.wait_for(1, timeout=20)
        deadline = time.monotonic() + 10
        while (drop / "orders.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (drop / "orders.jsonl").exists()
        assert list((drop / "processed").iterdir())
        assert server.terminate() == 0, server.output
    assert "tracking number" in message["Subject"]


def test_the_feedback_webhooks_and_the_jobs_share_one_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve's extras build the feedback intake (its policy read from the settings) once,
    for the providers' webhooks and the scheduled jobs (a mailbox job's bounces) alike."""
    built: list[FeedbackIntake] = []
    build = FeedbackIntake.__init__

    def counted(self: FeedbackIntake, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        build(self, *args, **kwargs)

    monkeypatch.setattr(FeedbackIntake, "__init__", counted)
    settings = settings_for(tmp_path, drop_dir=tmp_path / "drop", drop_interval="1m")
    project_file = load_project_file(settings)
    assert project_file.jobs  # the drop folder's job: the scheduler runs beside the server
    with open_engine(settings, project_file=project_file) as engine:
        extras = standard_extras(settings, project_file)(
            engine, delivery_worker_for(engine, settings)
        )
    (jobs,) = extras.services
    assert isinstance(jobs, ScheduledJobs)
    assert built == [jobs.feedback]
