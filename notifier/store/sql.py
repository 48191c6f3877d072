"""The ledger on SQLAlchemy Core: SQLite by default, PostgreSQL for several instances.

Dedup is the database's: records.dedup_key and notices.key are unique, and inserts skip
conflicts, so no code path checks first and acts after. Write transactions on SQLite are
BEGIN IMMEDIATE (one writer at a time, no upgrade deadlocks); on PostgreSQL, ingestion
takes a transaction-scoped advisory lock per order and claims use FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from notifier.core.decide import Decision, OrderView
from notifier.core.models import (
    FulfillmentState,
    Notice,
    NoticeStatus,
    Scope,
    Status,
)
from notifier.errors import StoreError
from notifier.store import migrate, postgres
from notifier.store.base import Completion, Decider, IngestResult, T
from notifier.store.driver import DriverTx, param_mark
from notifier.store.schema import (
    as_utc,
    cursors,
    fulfillments,
    notices,
    orders,
    records,
    suppressions,
)

_RECORD_COLUMNS = (
    "dedup_key",
    "order_id",
    "fulfillment_id",
    "status",
    "occurred_at",
    "received_at",
    "outcome",
    "payload",
)
_FULFILLMENT_COLUMNS = (
    "fulfillment_id",
    "order_id",
    "status",
    "occurred_at",
    "tracking_number",
    "carrier",
    "shipped_at",
    "delivered_at",
    "occurred_at_clamped",
    "status_since",
)
_NOTICE_COLUMNS = (
    "key",
    "rule_id",
    "scope",
    "order_id",
    "fulfillment_id",
    "recipient",
    "campaign_id",
    "status",
    "attempts",
    "ambiguous_attempts",
    "due_at",
    "created_at",
    "reason",
    "fulfillment_ids",
    "record",
    "entered_at",
    "digest_key",
)
_SELECT_DEDUP_KEYS = "SELECT dedup_key FROM records"
_SELECT_FULFILLMENTS = f"SELECT {', '.join(_FULFILLMENT_COLUMNS)} FROM fulfillments"
_SELECT_ORDERS = "SELECT order_id, fulfillment_ids FROM orders"
_DUE_STATUSES = (NoticeStatus.PENDING, NoticeStatus.RETRY, NoticeStatus.SENDING)
_SQLITE_BUSY_MS = 30_000


def _normalise_url(url: str) -> str:
    """Plain `postgresql://` means psycopg 3, the driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_store_engine(url: str) -> Engine:
    url = _normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. NORMAL: durable across process crashes
        # (a power cut may lose the last commits; those notices are then re-sent, same Message-ID).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = not connection.get_execution_options().get("notifier_readonly", False)
        _begin_sqlite(connection.connection, write=write)


def _begin_sqlite(connection: PoolProxiedConnection, *, write: bool) -> None:
    """BEGIN (IMMEDIATE, to write) on a pooled SQLite connection; under SqlStore.try_now,
    a write begins only if the lock is free this instant. Said to the driver directly:
    SQLAlchemy's per-statement work cost as much as the inline write saved."""
    driver = connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    if not write:
        driver.execute("BEGIN")
    elif not _WRITE_NOW.get():
        driver.execute("BEGIN IMMEDIATE")
    else:
        driver.execute("PRAGMA busy_timeout=0")  # cannot fail on a lock
        try:
            driver.execute("BEGIN IMMEDIATE")
        finally:
            driver.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")


# Set (only) while SqlStore.try_now runs its work: SQLite write transactions then begin
# only if no other connection holds the write lock, instead of waiting for it.
_WRITE_NOW: ContextVar[bool] = ContextVar("notifier_sqlite_write_now", default=False)


class _WouldWait(Exception):
    """try_now's write found the SQLite write lock taken."""


@cache
def _insert_sql(
    mark: str,
    table: str,
    columns: tuple[str, ...],
    *,
    upsert_on: str | None = None,
    skip_on: str | None = None,
    returning: str | None = None,
) -> str:
    """INSERT of `columns` (`mark`: the driver's parameter marker): a conflict on `upsert_on`
    updates the row's other columns, one on `skip_on` skips the row; `returning` names a
    column to return for inserted rows. Built once per shape: ingest runs them per group."""
    values = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
    if upsert_on is not None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != upsert_on)
        sql += f" ON CONFLICT ({upsert_on}) DO UPDATE SET {updates}"
    if skip_on is not None:
        sql += f" ON CONFLICT ({skip_on}) DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {returning}"
    return sql


def _advisory_key(text_value: str) -> int:
    # A stable signed 64-bit key for pg_advisory_xact_lock.
    return zlib.crc32(text_value.encode()) - 2**31


class SqlStore:
    """The Store protocol (notifier.store.base) over one SQLAlchemy engine."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = _normalise_url(url)
        self.engine = create_store_engine(self.url)
        self.dialect = self.engine.dialect.name
        # What the driver itself raises on the driver-direct paths (notifier.store.driver).
        dbapi = self.engine.dialect.loaded_dbapi
        self._driver_error: type[Exception] = dbapi.Error
        self._driver_operational: type[Exception] = dbapi.OperationalError
        if migrate_schema:
            with self._translate("migrating the schema"):
                migrate.upgrade(self.engine)

    # --- plumbing ---------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def try_now(self, work: Callable[[], T]) -> T | None:
        """See Store.try_now. SQLite: runs `work` here when the write lock is free (a
        local transaction of a millisecond or two); PostgreSQL: None, its writes are network
        round trips and belong on a thread."""
        if self.dialect != "sqlite":
            return None
        token = _WRITE_NOW.set(True)
        try:
            return work()
        except _WouldWait:
            return None  # nothing was written: the transaction rolled back, or never began
        finally:
            _WRITE_NOW.reset(token)

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, self._driver_error) as exc:
            orig = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else exc
            detail = str(orig) if orig is not None else str(exc)
            if isinstance(exc, OperationalError | self._driver_operational) and "locked" in detail:
                if _WRITE_NOW.get():
                    raise _WouldWait from exc
                detail += f" (another process held the store for over {_SQLITE_BUSY_MS // 1000} s)"
            raise StoreError(f"store {self.safe_url}: {doing}: {detail}") from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._translate(doing), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        with (
            self._translate(doing),
            self.engine.connect().execution_options(notifier_readonly=True) as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def _driver_tx(self, doing: str, *, write: bool = True) -> Iterator[DriverTx]:
        """One transaction on a pooled DB-API connection (see notifier.store.driver)."""
        with self._translate(doing):
            connection = self.engine.raw_connection()
            try:
                if self.dialect == "sqlite":
                    _begin_sqlite(connection, write=write)
                yield DriverTx(connection.cursor(), self.dialect)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.close()  # back to the pool

    def _insert(self, table: Any) -> Any:
        module = postgresql if self.dialect == "postgresql" else sqlite
        return module.insert(table)

    def close(self) -> None:
        self.engine.dispose()

    def _notify_due(self, run: Callable[[str, tuple[str, str]], object], count: int) -> None:
        # Idle workers on other instances LISTEN for this (delivered at commit); SQLite polls.
        if self.dialect == "postgresql":
            postgres.notify_due(run, count)

    # --- ingestion --------------------------------------------------------------------
    # Straight to the driver (notifier.store.driver): a webhook group commit is a handful of
    # statements on a few rows, and SQLAlchemy's work around each cost more than SQLite's.

    def ingest(self, batch: Sequence[Any], decide: Decider) -> IngestResult:
        order_ids = sorted({record.order_id for record in batch})
        keys = list({record.dedup_key for record in batch})
        with self._driver_tx("ingesting records") as tx:
            if self.dialect == "postgresql" and order_ids:
                # Serialise work on the same order across instances; sorted, so no deadlock.
                # executemany runs them in order, pipelined: one round trip, not one per order.
                locks = sorted({_advisory_key(order_id) for order_id in order_ids})
                tx.run_many("SELECT pg_advisory_xact_lock(%s)", [(key,) for key in locks])
            known = {key for (key,) in tx.where_in(_SELECT_DEDUP_KEYS, "dedup_key", keys)}
            loaded = self._load_orders(tx, order_ids)
            decision = decide(known, loaded)
            created = self._write_decision(tx, decision)
            if created:
                self._notify_due(tx.run, len(created))
        return IngestResult(decision=decision, created=created)

    def _load_orders(self, tx: DriverTx, order_ids: Sequence[str]) -> dict[str, OrderView]:
        views = {order_id: OrderView(order_id) for order_id in order_ids}
        for row in tx.where_in(_SELECT_FULFILLMENTS, "order_id", order_ids):
            state = _state(row)
            views[state.order_id].fulfillments[state.fulfillment_id] = state
        for order_id, fulfillment_ids in tx.where_in(_SELECT_ORDERS, "order_id", order_ids):
            views[order_id].fulfillment_ids = tuple(json.loads(fulfillment_ids))
        return views

    def _stamp(self, moment: datetime) -> Any:
        """A datetime as UtcDateTime would bind it (SQLite: UTC text in SQLAlchemy's format)."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        if self.dialect == "sqlite":
            return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")[:26]
        return moment

    def _write_decision(self, tx: DriverTx, decision: Decision) -> tuple[str, ...]:
        # Many records share a time (a batch's received_at, above all): format each once.
        stamps: dict[datetime, Any] = {}

        def stamp(moment: datetime) -> Any:
            value = stamps.get(moment)
            if value is None:
                value = stamps[moment] = self._stamp(moment)
            return value

        if decision.outcomes:
            tx.run_many(
                _insert_sql(tx.mark, records.name, _RECORD_COLUMNS),
                [
                    (
                        record.dedup_key,
                        record.order_id,
                        record.fulfillment_id,
                        record.status.value,
                        stamp(record.effective_at),
                        stamp(record.received_at),
                        outcome.value,
                        record.received_text or json.dumps(record.to_json(), ensure_ascii=False),
                    )
                    for record, outcome in decision.outcomes
                ],
            )
        if decision.states:
            tx.run_many(
                _insert_sql(
                    tx.mark, fulfillments.name, _FULFILLMENT_COLUMNS, upsert_on="fulfillment_id"
                ),
                [
                    (
                        state.fulfillment_id,
                        state.order_id,
                        state.status.value,
                        stamp(state.occurred_at),
                        state.tracking_number,
                        state.carrier,
                        state.shipped_at,
                        state.delivered_at,
                        state.occurred_at_clamped,
                        None if state.status_since is None else stamp(state.status_since),
                    )
                    for state in decision.states.values()
                ],
            )
        if decision.order_fulfillment_ids:
            tx.run_many(
                _insert_sql(
                    tx.mark, orders.name, ("order_id", "fulfillment_ids"), upsert_on="order_id"
                ),
                [
                    (order_id, json.dumps(list(ids)))
                    for order_id, ids in decision.order_fulfillment_ids.items()
                ],
            )
        # One statement per notice: the count of notices per batch is small, and RETURNING
        # with skipped conflicts is the unique constraint telling us which were new.
        insert_notice = _insert_sql(
            tx.mark, notices.name, _NOTICE_COLUMNS, skip_on="key", returning="key"
        )
        created: list[str] = []
        for notice in decision.notices:
            row = (
                notice.key,
                notice.rule_id,
                notice.scope.value,
                notice.order_id,
                notice.fulfillment_id,
                notice.recipient,
                notice.campaign_id,
                notice.status.value,
                0,
                0,
                stamp(notice.due_at),
                stamp(notice.created_at),
                notice.reason,
                json.dumps(list(notice.fulfillment_ids)),
                json.dumps(dict(notice.record), ensure_ascii=False),
                None if notice.entered_at is None else stamp(notice.entered_at),
                notice.digest_key,
            )
            if tx.rows(insert_notice, row):
                created.append(notice.key)
        return tuple(created)

    @cached_property
    def _complete_sql(self) -> str:
        # Straight to the driver, like the ingest inserts: SQLAlchemy's per-statement work
        # (compiling, binding by type) cost more than this UPDATE (bench/delivery.py).
        mark = param_mark(self.dialect)
        return (
            f"UPDATE notices SET status = {mark}, reason = {mark}, claim_token = NULL,"
            f" due_at = {mark}, sent_at = coalesce({mark}, sent_at),"
            f" message_id = coalesce({mark}, message_id),"
            f" ambiguous_attempts = ambiguous_attempts + {mark}, send_started_at = NULL"
            f" WHERE key = {mark} AND claim_token = {mark}"
            f" AND status = '{NoticeStatus.SENDING.value}'"
        )

    def orders(self, order_ids: Collection[str]) -> dict[str, OrderView]:
        with self._driver_tx("reading orders", write=False) as tx:
            return self._load_orders(tx, sorted(set(order_ids)))

    def fulfillment(self, fulfillment_id: str) -> FulfillmentState | None:
        with self._driver_tx("reading a fulfillment", write=False) as tx:
            rows = tx.where_in(_SELECT_FULFILLMENTS, "fulfillment_id", [fulfillment_id])
        return _state(rows[0]) if rows else None

    # --- delivery ---------------------------------------------------------------------

    def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, token: str
    ) -> list[Notice]:
        with self._write("claiming due notices") as conn:
            due = (
                select(notices.c.key)
                .where(
                    notices.c.status.in_([s.value for s in _DUE_STATUSES]), notices.c.due_at <= now
                )
                .order_by(notices.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            keys = list(conn.scalars(due))
            return self._claim(
                conn, keys + self._digest_siblings(conn, keys, now), now, lease_until, token
            )

    def _digest_siblings(self, conn: Connection, keys: list[str], now: datetime) -> list[str]:
        """The other claimable notices of the digests these keys belong to: a digest is sent
        as one message, so its notices are claimed together, past the batch limit."""
        if not keys:
            return []
        groups = select(notices.c.digest_key).where(
            notices.c.key.in_(keys), notices.c.digest_key.is_not(None)
        )
        claimable = or_(
            notices.c.status.in_([NoticeStatus.PENDING.value, NoticeStatus.RETRY.value]),
            and_(notices.c.status == NoticeStatus.SENDING.value, notices.c.due_at <= now),
        )
        siblings = (
            select(notices.c.key)
            .where(notices.c.digest_key.in_(groups), notices.c.key.not_in(keys), claimable)
            .with_for_update(skip_locked=True)
        )
        return list(conn.scalars(siblings))

    def complete(self, key: str, *, token: str, completion: Completion) -> bool:
        return self.complete_many([(key, completion)], token=token)[0]

    def complete_many(
        self, completions: Sequence[tuple[str, Completion]], *, token: str
    ) -> list[bool]:
        """Record several deliveries in one transaction (a group commit)."""
        with self._write("recording deliveries") as conn:
            return [self._complete(conn, key, token, done) for key, done in completions]

    def _complete(self, conn: Connection, key: str, token: str, completion: Completion) -> bool:
        if completion.status is NoticeStatus.RETRY:
            assert completion.due_at is not None
            due_at = completion.due_at
        else:
            due_at = completion.at
        sent = completion.status is NoticeStatus.SENT
        done = conn.exec_driver_sql(
            self._complete_sql,
            (
                completion.status.value,
                completion.reason,
                self._stamp(due_at),
                self._stamp(completion.at) if sent else None,
                completion.message_id,
                1 if completion.ambiguous else 0,
                key,
                token,
            ),
        )
        if done.rowcount and completion.suppress_reason:
            recipient = conn.scalar(select(notices.c.recipient).where(notices.c.key == key))
            if recipient:
                self._suppress(conn, recipient, completion.suppress_reason, completion.at)
        return bool(done.rowcount)

    def mark_send_started(self, keys: Sequence[str], *, token: str, now: datetime) -> list[bool]:
        """Record that these claimed notices are being handed to the transport (one
        transaction); False where the claim is no longer this token's."""
        mark = param_mark(self.dialect)
        sql = (
            f"UPDATE notices SET send_started_at = {mark}"
            f" WHERE key = {mark} AND claim_token = {mark}"
            f" AND status = '{NoticeStatus.SENDING.value}'"
        )
        stamp = self._stamp(now)
        with self._driver_tx("recording that sends started") as tx:
            return [bool(tx.run(sql, (stamp, key, token))) for key in keys]

    def release(self, keys: Collection[str], *, token: str, now: datetime) -> int:
        if not keys:
            return 0
        with self._write("releasing claims") as conn:
            done = conn.execute(
                update(notices)
                .where(
                    notices.c.key.in_(list(keys)),
                    notices.c.claim_token == token,
                    notices.c.status == NoticeStatus.SENDING.value,
                )
                .values(
                    status=NoticeStatus.PENDING.value,
                    due_at=now,
                    claim_token=None,
                    # A send cut off at shutdown was an attempt (its mark stays: the next
                    # claim counts it as ambiguous); a notice never handed over was not.
                    attempts=notices.c.attempts
                    - case((notices.c.send_started_at.is_(None), 1), else_=0),
                )
            )
            if done.rowcount:
                self._notify_due(conn.exec_driver_sql, done.rowcount)
        return int(done.rowcount)

    def next_due_at(self) -> datetime | None:
        with self._read("reading the next due time") as conn:
            value = conn.scalar(
                select(notices.c.due_at)
                .where(notices.c.status.in_([s.value for s in _DUE_STATUSES]))
                .order_by(notices.c.due_at)
                .limit(1)
            )
        return value

    # --- takeover, targeted claims and resends (delivery you can trust) ------------------

    def claim_holders(self) -> list[str]:
        with self._read("reading claim holders") as conn:
            return list(
                conn.scalars(
                    select(notices.c.claim_token)
                    .where(
                        notices.c.status == NoticeStatus.SENDING.value,
                        notices.c.claim_token.is_not(None),
                    )
                    .distinct()
                )
            )

    def expire_claims(self, tokens: Collection[str], *, now: datetime) -> int:
        if not tokens:
            return 0
        with self._write("taking over claims") as conn:
            done = conn.execute(
                update(notices)
                .where(
                    notices.c.status == NoticeStatus.SENDING.value,
                    notices.c.claim_token.in_(list(tokens)),
                    notices.c.due_at > now,
                )
                .values(due_at=now)
            )
        return int(done.rowcount)

    def claim_keys(
        self, keys: Collection[str], *, now: datetime, lease_until: datetime, token: str
    ) -> list[Notice]:
        if not keys:
            return []
        with self._write("claiming notices") as conn:
            due = (
                select(notices.c.key)
                .where(
                    notices.c.key.in_(list(keys)),
                    notices.c.status.in_([s.value for s in _DUE_STATUSES]),
                    notices.c.due_at <= now,
                )
                .with_for_update(skip_locked=True)
            )
            return self._claim(conn, list(conn.scalars(due)), now, lease_until, token)

    def _claim(
        self,
        conn: Connection,
        keys: list[str],
        now: datetime,
        lease_until: datetime,
        token: str,
    ) -> list[Notice]:
        """Mark the selected (and locked) notices `sending` under this token and lease."""
        if not keys:
            return []
        conn.execute(
            update(notices)
            .where(notices.c.key.in_(keys))
            .values(
                status=NoticeStatus.SENDING.value,
                due_at=lease_until,
                claim_token=token,
                # Claimed with its send mark still set, a notice is not attempted again now:
                # the engine records the interrupted send as the attempt (Engine._deliver_one).
                attempts=notices.c.attempts
                + case((notices.c.send_started_at.is_(None), 1), else_=0),
                first_attempt_at=func.coalesce(notices.c.first_attempt_at, now),
            )
        )
        rows = conn.execute(
            select(notices).where(notices.c.key.in_(keys)).order_by(notices.c.due_at)
        )
        return [_notice(row) for row in rows]

    def add_resend(self, key: str, *, now: datetime, reason: str) -> str | None:
        with self._write("adding a resend") as conn:
            row = conn.execute(select(notices).where(notices.c.key == key)).first()
            if row is None:
                return None
            # A resend of a resend is numbered after the original: KEY#resend-2, not nested.
            prefix = f"{key.split('#resend-')[0]}#resend-"
            taken = conn.scalars(
                select(notices.c.key).where(notices.c.key.startswith(prefix, autoescape=True))
            )
            numbers = [int(k[len(prefix) :]) for k in taken if k[len(prefix) :].isdigit()]
            new_key = f"{prefix}{max(numbers, default=0) + 1}"
            values = {
                name: getattr(row, name)
                for name in (
                    "rule_id",
                    "scope",
                    "order_id",
                    "fulfillment_id",
                    "recipient",
                    "campaign_id",
                    "fulfillment_ids",
                    "record",
                    "entered_at",
                )
            }
            stmt = self._insert(notices).on_conflict_do_nothing(index_elements=[notices.c.key])
            inserted = conn.execute(
                stmt.returning(notices.c.key),
                {
                    **values,
                    "key": new_key,
                    "status": NoticeStatus.PENDING.value,
                    "attempts": 0,
                    "ambiguous_attempts": 0,
                    "due_at": now,
                    "created_at": now,
                    "reason": reason,
                },
            ).first()
        return new_key if inserted is not None else None

    # --- inspection -------------------------------------------------------------------

    def notices(
        self,
        *,
        status: NoticeStatus | None = None,
        order_id: str | None = None,
        limit: int | None = None,
    ) -> list[Notice]:
        query = select(notices).order_by(notices.c.created_at, notices.c.key)
        if status is not None:
            query = query.where(notices.c.status == status.value)
        if order_id is not None:
            query = query.where(notices.c.order_id == order_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read("listing notices") as conn:
            return [_notice(row) for row in conn.execute(query)]

    def notice(self, key: str) -> Notice | None:
        with self._read("reading a notice") as conn:
            row = conn.execute(select(notices).where(notices.c.key == key)).first()
        return None if row is None else _notice(row)

    def notice_counts(self) -> Mapping[NoticeStatus, int]:
        with self._read("counting notices") as conn:
            rows = conn.execute(select(notices.c.status, func.count()).group_by(notices.c.status))
            return {NoticeStatus(status): count for status, count in rows}

    def due_count(self, *, now: datetime) -> int:
        waiting = (NoticeStatus.PENDING.value, NoticeStatus.RETRY.value)
        with self._read("counting due notices") as conn:
            query = select(func.count()).where(
                notices.c.status.in_(waiting), notices.c.due_at <= now
            )
            return int(conn.scalar(query) or 0)

    def record_count(self) -> int:
        with self._read("counting records") as conn:
            return int(conn.scalar(select(func.count()).select_from(records)) or 0)

    def make_due(self, keys: Collection[str] | None, *, now: datetime) -> int:
        query = update(notices).where(
            notices.c.status.in_([NoticeStatus.RETRY.value, NoticeStatus.FAILED.value])
        )
        if keys is not None:
            query = query.where(notices.c.key.in_(list(keys)))
        with self._write("making notices due") as conn:
            count = int(
                conn.execute(
                    query.values(
                        status=NoticeStatus.RETRY.value,
                        due_at=now,
                        first_attempt_at=None,
                        reason=None,
                    )
                ).rowcount
            )
            if count:
                self._notify_due(conn.exec_driver_sql, count)
            return count

    # --- suppression ------------------------------------------------------------------

    def _suppress(self, conn: Connection, address: str, reason: str, now: datetime) -> None:
        stmt = self._insert(suppressions).on_conflict_do_nothing(
            index_elements=[suppressions.c.address]
        )
        conn.execute(stmt, {"address": address.casefold(), "reason": reason, "created_at": now})

    def suppressed(self, addresses: Collection[str]) -> dict[str, str]:
        folded = sorted({address.casefold() for address in addresses})
        if not folded:
            return {}
        with self._read("reading suppressions") as conn:
            rows = conn.execute(
                select(suppressions.c.address, suppressions.c.reason).where(
                    suppressions.c.address.in_(folded)
                )
            )
            return {address: reason for address, reason in rows}

    def suppress(self, address: str, *, reason: str, now: datetime) -> None:
        with self._write("suppressing an address") as conn:
            self._suppress(conn, address, reason, now)

    def unsuppress(self, address: str) -> bool:
        with self._write("removing a suppression") as conn:
            done = conn.execute(
                delete(suppressions).where(suppressions.c.address == address.casefold())
            )
        return bool(done.rowcount)

    def suppressions(self) -> list[tuple[str, str, datetime]]:
        with self._read("listing suppressions") as conn:
            rows = conn.execute(select(suppressions).order_by(suppressions.c.address))
            return [(row.address, row.reason, row.created_at) for row in rows]

    # --- cursors (polled sources) ---------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        with self._read("reading a cursor") as conn:
            return conn.scalar(select(cursors.c.value).where(cursors.c.name == name))

    def set_cursor(self, name: str, value: str, *, now: datetime) -> None:
        stmt = self._insert(cursors)
        stmt = stmt.on_conflict_do_update(
            index_elements=[cursors.c.name],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        with self._write("saving a cursor") as conn:
            conn.execute(stmt, {"name": name, "value": value, "updated_at": now})

    # --- job locks (scheduled jobs: one instance at a time) -------------------------------

    @contextmanager
    def job_lock(self, name: str) -> Iterator[bool]:
        """Yield True while holding the cluster-wide lock for a job; False if another has it."""
        from notifier.store import job_lock

        if self.dialect == "postgresql":
            with (
                self._translate(f"locking job {name!r}"),
                job_lock.pg_job_lock(self.engine, name) as held,
            ):
                yield held
            return
        database = make_url(self.url).database
        if not database or database == ":memory:":
            with job_lock.local_job_lock(f"{id(self)}:{name}") as held:
                yield held
            return
        with job_lock.file_job_lock(job_lock.lock_file_for(database, name)) as held:
            yield held


def _state(row: Sequence[Any]) -> FulfillmentState:
    """A fulfillments row, its columns in _FULFILLMENT_COLUMNS order."""
    fulfillment_id, order_id, status, occurred_at, tracking, carrier, shipped, delivered = row[:8]
    clamped, since = row[8], row[9]
    return FulfillmentState(
        fulfillment_id=fulfillment_id,
        order_id=order_id,
        status=Status(status),
        occurred_at=as_utc(occurred_at),
        tracking_number=tracking,
        carrier=carrier,
        shipped_at=shipped,
        delivered_at=delivered,
        occurred_at_clamped=bool(clamped),
        status_since=None if since is None else as_utc(since),
    )


def _notice(row: Row[Any]) -> Notice:
    status = NoticeStatus(row.status)
    return Notice(
        key=row.key,
        rule_id=row.rule_id,
        scope=Scope(row.scope),
        order_id=row.order_id,
        fulfillment_id=row.fulfillment_id,
        recipient=row.recipient,
        campaign_id=row.campaign_id,
        status=status,
        attempts=row.attempts,
        due_at=row.due_at,
        created_at=row.created_at,
        fulfillment_ids=tuple(json.loads(row.fulfillment_ids)),
        record=json.loads(row.record),
        message_id=row.message_id,
        sent_at=row.sent_at,
        reason=row.reason,
        claim_token=row.claim_token,
        lease_until=row.due_at if status is NoticeStatus.SENDING else None,
        first_attempt_at=row.first_attempt_at,
        ambiguous_attempts=row.ambiguous_attempts,
        send_started_at=row.send_started_at,
        entered_at=row.entered_at,
        digest_key=row.digest_key,
    )
