"""Shared fixtures. Each block is self-contained; add new ones below."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import PgDatabases
from support.postgres import unreachable_reason as postgres_unreachable_reason
from support.smtp_sink import SmtpSink

# --- SMTP: a real server to send to ------------------------------------------


# The sink offers PIPELINING, as the relays notifier sends to do. In a module marked
# `smtp_both_ways` each test using it runs twice: with PIPELINING, and without (the
# transport then waits for each reply in turn). The slow suites (crash safety, outages) run
# once, pipelined.


@pytest.fixture
def smtp_sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """A started SMTP sink on 127.0.0.1 and a free port, stopped after the test."""
    with SmtpSink(pipelining=getattr(request, "param", True)) as sink:
        yield sink


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "smtp_sink" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "smtp_both_ways"
    ):
        metafunc.parametrize(
            "smtp_sink",
            [pytest.param(True, id="pipelining"), pytest.param(False, id="one-by-one")],
            indirect=True,
        )


# --- Stores: the same tests on SQLite and PostgreSQL -------------------------
# `store_url` runs a test once per database engine. PostgreSQL: one database per test run
# (so runs never see each other's rows), emptied before each test, dropped at the end;
# skipped with the reason when the server is not reachable.


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """This run's PostgreSQL databases (skips the test when the server is unreachable)."""
    reason = postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    databases = PgDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def pg_url(pg_databases: PgDatabases) -> str:
    """This run's migrated PostgreSQL database, with every table emptied for this test."""
    return pg_databases.emptied()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ledger's URL: a fresh SQLite file, or this run's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all (for migration tests), on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return databases.fresh()
