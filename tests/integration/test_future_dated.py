"""Future-dated records end to end (DESIGN.md §8 "Time"): a real ledger (SQLite and
PostgreSQL), a real SMTP server, the real webhook over HTTP, a real drop folder.

Every "5 h ahead" is counted from the real now, which is the clock the code reads here, so
these tests hold on any date (and under a shifted clock).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.cli import notifier
from support.project import settings_for, smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink
from support.webhook import SECRET, TOKEN, body_of, shipment, signed

from notifier.http.metrics import Metrics
from notifier.http.webhook import create_app
from notifier.processes.wiring import open_engine
from notifier.sources.dropfolder import DropFolder, DropFolderOptions
from notifier.store.sql import SqlStore

UPS = "1Z999AA10123456784"
AHEAD = timedelta(hours=5)
URL = "/v1/status-changes"
POSTBACK = "/v1/postbacks/konnektive"


def change(status: str, occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    record = {
        "order_id": "KN-2001",
        "fulfillment_id": "F-2001",
        "status": status,
        "occurred_at": occurred_at.isoformat(),
        "email": "jane@example.com",
        "first_name": "Jane",
        "tracking_number": UPS,
    }
    record.update(fields)
    return record


def test_a_pending_shipment_5_h_ahead_mails_at_once_and_shipped_completes_the_order(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """The issue's case through `notifier run`: Tracking Number Assigned is sent at once, not
    in 5 h; the summary says why; the real Shipped that follows sends All Fulfillments, even
    dated a little before the skewed record was received. The audit copy keeps the 5 h date."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)
    # The real moment the parcel shipped: before the skewed record is even received.
    shipped_at = datetime.now(UTC) - timedelta(seconds=30)
    claimed = datetime.now(UTC) + AHEAD
    first_file = write_jsonl(tmp_path / "pending.jsonl", [change("Pending Shipment", claimed)])

    first = notifier(settings, "run", str(first_file))

    assert first.exit_code == 0, first.stderr
    assert [m["Subject"] for m in smtp_sink.messages] == [
        "Your Example Store order KN-2001 has a tracking number"
    ]
    assert (
        f"future-dated: 1 record(s) from batch {first_file} dated up to 5 h after they were"
        " received, taken as received now: check the sender's clock"
    ) in first.stdout
    store = SqlStore(settings.database_url)
    try:
        state = store.fulfillment("F-2001")
        assert state is not None and state.occurred_at_clamped
        assert state.occurred_at < datetime.now(UTC) < claimed
        notice = store.notice("tracking_number_assigned:fulfillment:F-2001")
        assert notice is not None and notice.status.value == "sent"
        assert datetime.fromisoformat(notice.record["occurred_at"]) == claimed  # audit: as sent

        second_file = write_jsonl(tmp_path / "shipped.jsonl", [change("Shipped", shipped_at)])
        second = notifier(settings, "run", str(second_file))

        assert second.exit_code == 0, second.stderr
        assert "future-dated" not in second.stdout
        assert [m["Subject"] for m in smtp_sink.messages][1:] == [
            "Your Example Store order KN-2001 has shipped"
        ]
        state = store.fulfillment("F-2001")
        assert state is not None and state.status.value == "Shipped"
        assert state.occurred_at == shipped_at and not state.occurred_at_clamped
    finally:
        store.close()


def test_webhook_and_postback_answers_and_metrics_count_future_dated_records(
    tmp_path: Path,
) -> None:
    """A webhook record 5 h ahead: 202 says `future_dated: 1` and why, and its notice is due
    at once; a postback likewise; /metrics counts each under its source."""
    settings = settings_for(tmp_path, webhook_secret=SECRET, postback_token=TOKEN)
    metrics = Metrics()
    ahead = (datetime.now(UTC) + AHEAD).isoformat()
    with open_engine(settings, observer=metrics) as engine:
        app = create_app(settings=settings, engine=engine, metrics=metrics)
        with TestClient(app) as client:
            bodies = [body_of(shipment(n, occurred_at=ahead)) for n in (1, 2)]
            answers = [client.post(URL, content=b, headers=signed(b)) for b in bodies]
            postback = client.get(
                POSTBACK,
                params={
                    "token": TOKEN,
                    "orderId": "KP-1",
                    "fulfillmentId": "KPF-1",
                    "fulfillmentStatus": "Pending Shipment",
                    "trackingNumber": UPS,
                    "emailAddress": "pat@example.com",
                    "occurred_at": ahead,
                },
            )
            exposition = client.get("/metrics").text
            due = engine.store.due_count(now=datetime.now(UTC))

    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == {
        "accepted": 1,
        "duplicates": 0,
        "stale": 0,
        "future_dated": 1,
        "note": "occurred_at is up to 5 h later than the time received: taken as received"
        " now; check the sender's clock",
    }
    assert postback.status_code == 200 and postback.json()["future_dated"] == 1
    assert due == 3  # all due now, none held back 5 h
    assert 'notifier_future_dated_records_total{source="webhook"} 2.0' in exposition
    assert 'notifier_future_dated_records_total{source="postback"} 1.0' in exposition


def test_a_drop_folder_job_names_itself_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two files from job `house` 5 h ahead: one warning naming the job, both counted."""
    settings = settings_for(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    ahead = datetime.now(UTC) + AHEAD
    for n in (1, 2):
        path = write_jsonl(
            drop / f"{n}.jsonl",
            [change("Pending Shipment", ahead, order_id=f"KN-{n}", fulfillment_id=f"F-{n}")],
        )
        then = path.stat().st_mtime - 60
        os.utime(path, (then, then))
    metrics = Metrics()
    folder = DropFolder(DropFolderOptions(path=drop), name="house")
    with (
        caplog.at_level(logging.WARNING, logger="notifier.engine"),
        open_engine(settings, observer=metrics) as engine,
    ):
        outcomes = folder.run(engine)
        due = engine.store.due_count(now=datetime.now(UTC))
    warnings = [r.getMessage() for r in caplog.records if "ahead of this clock" in r.getMessage()]
    assert [o.accepted for o in outcomes] == [1, 1] and due == 2
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "times from job `house` are 5 h ahead of this clock: check the sender's clock"
    )
    assert 'notifier_future_dated_records_total{source="job `house`"} 2.0' in (
        metrics.exposition().decode()
    )
