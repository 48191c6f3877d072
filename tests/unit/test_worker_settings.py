"""Pure helpers of the PostgreSQL waker and the worker command (no I/O)."""

from __future__ import annotations

from pathlib import Path

from support.project import settings_for

from notifier.processes.worker import poll_seconds_for
from notifier.store.postgres import due_listener, is_postgres_url, libpq_url


def test_libpq_url_drops_the_driver_and_keeps_credentials_and_options() -> None:
    """The LISTEN connection gets the same server, user, password and options as the pool."""
    url = "postgresql+psycopg://app:s3cret@db.internal:6432/ledger?sslmode=require"
    assert libpq_url(url) == "postgresql://app:s3cret@db.internal:6432/ledger?sslmode=require"
    assert libpq_url("postgresql://postgres@127.0.0.1/x") == "postgresql://postgres@127.0.0.1/x"


def test_only_postgresql_urls_get_a_listener() -> None:
    """SQLite has no LISTEN/NOTIFY: its workers poll; PostgreSQL's are woken."""
    assert is_postgres_url("postgresql://h/db") and is_postgres_url("postgresql+psycopg://h/db")
    assert not is_postgres_url("sqlite:///notifier.db")
    assert due_listener("sqlite:///notifier.db") is None
    assert due_listener("postgresql://h/db") is not None


def test_poll_interval_defaults_by_store_and_can_be_set(tmp_path: Path) -> None:
    """60 s when NOTIFY wakes the worker, 5 s on SQLite, NOTIFIER_POLL_SECONDS wins over both."""
    assert poll_seconds_for(settings_for(tmp_path)) == 5.0
    assert poll_seconds_for(settings_for(tmp_path, database_url="postgresql://h/db")) == 60.0
    assert poll_seconds_for(settings_for(tmp_path, poll_seconds=0.5)) == 0.5
