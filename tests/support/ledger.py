"""Engines on a given ledger and records in bulk, for store-level and multi-process tests."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from notifier.core.models import Record
from notifier.core.records import parse_record
from notifier.core.rules import Rule, load_rules
from notifier.engine import Clock, Engine, EngineConfig, utc_now
from notifier.rendering.renderer import Renderer
from notifier.store import audit, migrate
from notifier.store.audit import AuditRow
from notifier.store.base import Store
from notifier.store.sql import SqlStore, create_store_engine
from notifier.transports import Transport
from notifier.transports.memory import MemoryTransport
from support.project import BRANDING, RULES, TEMPLATES

UPS = "1Z999AA10123456784"


def commit_after(connection: sqlite3.Connection, seconds: float) -> None:
    """Commit `connection`'s transaction (another process's writer, holding SQLite's lock)
    after `seconds`; for a thread. Not threading.Timer: its timed Event wait never ends on a
    clock moved by libfaketime (see support/waiting.py); time.sleep does."""
    time.sleep(seconds)
    connection.execute("COMMIT")


def tracking_records(count: int, *, prefix: str = "O", start: int = 0) -> Iterator[Record]:
    """`count` orders entering Pending Shipment with a tracking number: one notice each."""
    received = datetime.now(UTC)
    for n in range(start, start + count):
        yield parse_record(
            {
                "order_id": f"{prefix}{n}",
                "fulfillment_id": f"{prefix}{n}-F1",
                "status": "Pending Shipment",
                "email": f"customer{n}@example.com",
                "first_name": "Jane",
                "tracking_number": UPS,
                "occurred_at": "2026-11-20T10:00:00+00:00",
            },
            received_at=received,
        )


@contextmanager
def migrated_to(url: str, revision: str, *, down: bool = False) -> Iterator[sa.Connection]:
    """A transaction on the ledger at `url`, its schema first moved to `revision` (upgraded,
    or with `down`, downgraded): for writing a ledger as an older version left it."""
    engine = create_store_engine(url)
    config = migrate.alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
            yield connection
    finally:
        engine.dispose()


def audit_rows(url_or_store: str | SqlStore) -> list[AuditRow]:
    """Every record the ledger's audit keeps, as kept, in the order stored."""
    store = SqlStore(url_or_store) if isinstance(url_or_store, str) else url_or_store
    try:
        with store.engine.connect() as conn:
            return list(audit.all_rows(conn))
    finally:
        if store is not url_or_store:
            store.close()


def engine_on(
    store: Store,
    transport: Transport | None = None,
    *,
    lease: timedelta = timedelta(minutes=5),
    claim_batch: int = 64,
    rules: Sequence[Rule] | None = None,
    clock: Clock = utc_now,
) -> Engine:
    """An engine on this store with the project's rules (unless given) and templates."""
    return Engine(
        store=store,
        transport=transport or MemoryTransport(),
        rules=load_rules(RULES) if rules is None else rules,
        renderer=Renderer(TEMPLATES),
        config=EngineConfig(
            BRANDING,
            lease=lease,
            claim_batch=claim_batch,
        ),
        clock=clock,
    )
