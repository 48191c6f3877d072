"""Record duplicates without a key per record, on SQLite and PostgreSQL (design.md §2, §6).

A redelivery is told by its fulfillment's state (the keys of its latest records), stored
in the audit as `duplicate`, and changes nothing; a ledger from before (revision 0005,
a unique key per record) keeps catching redeliveries of its old records once migrated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from support.ledger import audit_rows, engine_on, migrated_to
from support.project import env_for, settings_for

from notifier.core.decide import RECENT_KEYS
from notifier.core.models import Record
from notifier.core.records import parse_record
from notifier.store import migrate
from notifier.store.schema import bind_stamp, metadata
from notifier.store.sql import SqlStore

UPS = "1Z999AA10123456784"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def change(fid: str, status: str, minutes: int | None, **fields: Any) -> Record:
    data: dict[str, Any] = {
        "order_id": f"O-{fid}",
        "fulfillment_id": fid,
        "status": status,
        "email": "jane@example.com",
        "tracking_number": UPS,
        **fields,
    }
    if minutes is not None:
        data["occurred_at"] = (START + timedelta(minutes=minutes)).isoformat()
    return parse_record(data, received_at=datetime.now(UTC))


def outcomes(store: SqlStore) -> list[tuple[str, str]]:
    """(fulfillment, outcome) of every audit row, in the order they were stored."""
    return [(row.fulfillment_id, row.outcome) for row in audit_rows(store)]


def test_a_redelivery_with_or_without_event_id_is_a_stored_duplicate(store_url: str) -> None:
    """Without event_id: the same change (status, tracking number, occurred_at; none given
    counts as the same). With one: the same id, whatever else differs. Each redelivery is
    in the audit as a duplicate; one notice each."""
    store = SqlStore(store_url)
    try:
        engine = engine_on(store)
        first = [
            change("F1", "Pending Shipment", 0),
            change("F2", "Pending Shipment", None),
            change("F3", "Pending Shipment", 0, event_id="evt-3"),
        ]
        assert engine.ingest(first).notices_created == 3
        again = [
            change("F1", "Pending Shipment", 0),
            change("F2", "Pending Shipment", None),
            # The sender's retry, re-stamped and with another spelling of the tracking number.
            change("F3", "Pending Shipment", 7, event_id="evt-3", tracking_number="1Z 999"),
        ]
        report = engine.ingest(again)
        assert (report.accepted, report.duplicates, report.notices_created) == (0, 3, 0)
        assert outcomes(store)[3:] == [
            ("F1", "duplicate"),
            ("F2", "duplicate"),
            ("F3", "duplicate"),
        ]
        assert len(store.notices()) == 3
        state = store.fulfillment("F3")
        assert state is not None and state.tracking_number == UPS  # nothing changed
    finally:
        store.close()


def test_a_batch_run_again_out_of_order_is_all_duplicates(store_url: str) -> None:
    """A fulfillment's older records redelivered after newer ones (a batch run again, a poll
    window re-read, a late record and its retry) are duplicates, not stale: the state keeps
    the keys of its latest records, not only the last."""
    store = SqlStore(store_url)
    try:
        engine = engine_on(store)
        batch = [
            change("F1", "Pending", 0),
            change("F1", "Pending Shipment", 10),
            change("F1", "Shipped", 20),
            change("F1", "Pending Shipment", 5, event_id="late"),  # older: stale
        ]
        first = engine.ingest(batch)
        assert (first.accepted, first.stale, first.notices_created) == (4, 1, 2)
        again = engine.ingest(batch)
        assert (again.accepted, again.duplicates, again.notices_created) == (0, 4, 0)
        assert [outcome for _, outcome in outcomes(store)] == [
            *["applied", "applied", "applied", "stale"],
            *["duplicate"] * 4,
        ]
        state = store.fulfillment("F1")
        assert state is not None and state.status.value == "Shipped"
        assert len(state.recent_keys) == 4
    finally:
        store.close()


def test_a_fulfillment_remembers_its_latest_keys_only(store_url: str) -> None:
    """The keys kept are bounded: past RECENT_KEYS newer records, an old dated record is
    told by its time instead (stale: stored, fires nothing), and no notice is made twice."""
    store = SqlStore(store_url)
    try:
        engine = engine_on(store)
        oldest = change("F1", "Pending Shipment", 0)
        newer = [change("F1", "Shipped", n, event_id=f"e{n}") for n in range(1, RECENT_KEYS + 2)]
        assert engine.ingest([oldest, *newer]).notices_created == 2
        state = store.fulfillment("F1")
        assert state is not None and len(state.recent_keys) == RECENT_KEYS
        assert oldest.dedup_key not in state.recent_keys
        report = engine.ingest([oldest])
        assert (report.stale, report.duplicates, report.notices_created) == (1, 0, 0)
    finally:
        store.close()


def write_batch(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_two_processes_running_the_same_batch_at_once_take_each_change_once(
    store_url: str, tmp_path: Path
) -> None:
    """Two `notifier run` processes on one ledger, the same file (its redeliveries in it
    too), at the same moment: each change taken once, every record stored, each notice
    sent once."""
    records: list[dict[str, Any]] = []
    for n in range(150):
        shipped = {
            "order_id": f"O{n}",
            "fulfillment_id": f"O{n}-F1",
            "status": "Pending Shipment",
            "email": f"c{n}@example.com",
            "tracking_number": UPS,
            "occurred_at": (START + timedelta(seconds=n)).isoformat(),  # all in the past
        }
        records.append(shipped)
        if n % 3 == 0:
            records.append(dict(shipped))  # a redelivery within the file
    batch = write_batch(tmp_path / "batch.jsonl", records)
    settings = settings_for(tmp_path, database_url=store_url)
    SqlStore(store_url).close()  # migrated once, before the race
    env = {**os.environ, **env_for(settings)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "notifier", "run", str(batch)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    store = SqlStore(store_url)
    try:
        stored = [outcome for _, outcome in outcomes(store)]
        assert len(stored) == 2 * len(records)
        assert stored.count("applied") == 150
        assert stored.count("duplicate") == 2 * len(records) - 150
        notices = store.notices()
        assert len(notices) == 150
        # Each sent, in one attempt: neither process sent what the other had.
        assert {(n.status.value, n.attempts) for n in notices} == {("sent", 1)}
    finally:
        store.close()
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 150


# --- a ledger from before: revision 0005, a unique key per record --------------------------


def ledger_at_0005(url: str, rows: list[tuple[Record, str]]) -> None:
    """The schema as 0005 left it, holding these records (with their outcome) and the state
    they made, written as that version wrote them."""
    with migrated_to(url, "0005") as connection:
        dialect = connection.dialect.name
        for record, outcome in rows:
            connection.execute(
                sa.text(
                    "INSERT INTO records (dedup_key, order_id, fulfillment_id, status,"
                    " occurred_at, received_at, outcome, payload) VALUES (:key, :order,"
                    " :fid, :status, :at, :received, :outcome, :payload)"
                ),
                {
                    "key": record.dedup_key,
                    "order": record.order_id,
                    "fid": record.fulfillment_id,
                    "status": record.status.value,
                    "at": bind_stamp(record.effective_at, dialect),
                    "received": bind_stamp(record.received_at, dialect),
                    "outcome": outcome,
                    "payload": json.dumps(record.to_json()),
                },
            )
        last = {r.fulfillment_id: r for r, outcome in rows if outcome != "stale"}
        for record in last.values():
            connection.execute(
                sa.text(
                    "INSERT INTO fulfillments (fulfillment_id, order_id, status,"
                    " occurred_at, tracking_number) VALUES (:fid, :order, :status, :at, :t)"
                ),
                {
                    "fid": record.fulfillment_id,
                    "order": record.order_id,
                    "status": record.status.value,
                    "at": bind_stamp(record.effective_at, dialect),
                    "t": record.tracking_number,
                },
            )


def _table_of(difference: Any) -> str | None:
    """The table an alembic compare_metadata difference is about."""
    item = difference[0] if isinstance(difference, list) else difference
    for part in item[1:]:
        if isinstance(part, str):
            return part
        name = getattr(getattr(part, "table", None), "name", None) or getattr(part, "name", None)
        if name is not None:
            return str(name)
    return None


def test_a_ledger_from_0005_migrates_and_still_catches_its_old_records(
    empty_store_url: str,
) -> None:
    """Migrated to 0008: every row kept, the unique key gone, records and fulfillments
    exactly as schema.py declares them; the old records redelivered (latest, earlier and
    stale ones, with and without event_id) are duplicates; a new change still applies."""
    old = [
        (change("F1", "Pending", 0), "applied"),
        (change("F1", "Pending Shipment", 10), "applied"),
        (change("F1", "Shipped", 20, event_id="evt-s"), "applied"),
        (change("F1", "Hold", 1), "stale"),
        (change("F2", "Pending", None), "applied"),
    ]
    ledger_at_0005(empty_store_url, old)
    store = SqlStore(empty_store_url)  # migrates to head
    try:
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        # The tables this migration changes (SQLite keeps an older notices.key type).
        assert [d for d in differences if _table_of(d) in {"records", "fulfillments"}] == []
        assert [outcome for _, outcome in outcomes(store)] == [o for _, o in old]
        state = store.fulfillment("F1")
        assert state is not None
        assert state.recent_keys == tuple(record.dedup_key for record, _ in old[:4])

        engine = engine_on(store)
        redelivered = [record for record, _ in old]
        # A retry of the Shipped event, re-stamped: its event id still names it.
        redelivered[2] = change("F1", "Shipped", 25, event_id="evt-s")
        report = engine.ingest(redelivered)
        assert (report.accepted, report.duplicates) == (0, 5)
        report = engine.ingest([change("F1", "Delivered", 30)])
        assert (report.accepted, report.duplicates) == (1, 0)
        state = store.fulfillment("F1")
        assert state is not None and state.status.value == "Delivered"
    finally:
        store.close()
