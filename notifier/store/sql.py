"""The ledger on SQLAlchemy Core: SQLite by default, PostgreSQL for several instances.

Exactly-once is the database's: notices.key is unique, and inserts skip conflicts, so no
code path checks first and acts after. Records carry no key: a redelivery is told from the
fulfillment's state, read and written in the same transaction under the order's lock.
Write transactions on SQLite are BEGIN IMMEDIATE (one writer at a time, no upgrade
deadlocks); on PostgreSQL, ingestion takes a transaction-scoped advisory lock per order
and claims use FOR UPDATE SKIP LOCKED.

SQL styles: everything here is SQLAlchemy Core, except the hot paths, which run on the
DB-API driver: ingest, completions, send marks and order reads in notifier.store.fast_paths;
claims in notifier.store.claims; the suppression check of each delivery batch.
SQLite specifics live in notifier.store.sqlite, PostgreSQL ones in notifier.store.postgres.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    case,
    create_engine,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from notifier.core.decide import OrderView
from notifier.core.feedback import FeedbackKind, FeedbackRates, StoredFeedback, SuppressionPolicy
from notifier.core.history import HistoryEntry, HistoryKind
from notifier.core.models import (
    FulfillmentState,
    Notice,
    NoticeStatus,
    Scope,
)
from notifier.core.records import Rejection
from notifier.errors import StoreError
from notifier.store import claims, fast_paths, migrate, postgres, sqlite
from notifier.store import feedback as feedback_sql
from notifier.store.base import (
    REJECTIONS_KEPT,
    Completion,
    Decider,
    FeedbackWrite,
    IngestResult,
)
from notifier.store.fast_paths import DriverTx
from notifier.store.schema import (
    cursors,
    notice_history,
    notices,
    record_batches,
    rejected_records,
    sent_copies,
    suppressions,
)

T = TypeVar("T")

_DUE_STATUSES = (NoticeStatus.PENDING, NoticeStatus.RETRY, NoticeStatus.SENDING)
_SELECT_SUPPRESSIONS = f"SELECT address, reason FROM {suppressions.name}"


def _normalise_url(url: str) -> str:
    """Plain `postgresql://` means psycopg 3, the driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_store_engine(url: str) -> Engine:
    url = _normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return sqlite.create_sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


class SqlStore:
    """The Store protocol (notifier.store.base) over one SQLAlchemy engine."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = _normalise_url(url)
        self.engine = create_store_engine(self.url)
        self.dialect = self.engine.dialect.name
        # What the driver itself raises on the driver-direct paths (notifier.store.fast_paths).
        dbapi = self.engine.dialect.loaded_dbapi
        self._driver_error: type[Exception] = dbapi.Error
        self._driver_operational: type[Exception] = dbapi.OperationalError
        # SQLite: the connection inline writes keep between them (sqlite.InlineConnection).
        self._inline = sqlite.InlineConnection(self.engine) if self.dialect == "sqlite" else None
        if migrate_schema:
            with self._translate("migrating the schema"):
                migrate.upgrade(self.engine)

    # --- plumbing ---------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, self._driver_error) as exc:
            orig = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else exc
            detail = str(orig) if orig is not None else str(exc)
            if isinstance(exc, OperationalError | self._driver_operational) and "locked" in detail:
                detail = sqlite.lock_detail(exc, detail)
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

    def reading(self, doing: str) -> AbstractContextManager[Connection]:
        """A read-only transaction, errors translated (for notifier.store.queries)."""
        return self._read(doing)

    @contextmanager
    def _driver_tx(self, doing: str, *, write: bool = True) -> Iterator[DriverTx]:
        """One transaction on a pooled DB-API connection (see notifier.store.fast_paths)."""
        with self._translate(doing):
            inline = self._inline if write else None
            held = inline.take() if inline is not None else None
            connection = held or self.engine.raw_connection()
            # Commit and roll back on the driver's connection itself: the pool's proxy
            # reaches them through __getattr__, an AttributeError made and dropped each time.
            driver = connection.driver_connection
            assert driver is not None  # a checked-out connection always has one
            failed = False
            try:
                if self.dialect == "sqlite":
                    sqlite.begin(connection, write=write)
                yield DriverTx(driver.cursor(), self.dialect)
                driver.commit()
            except BaseException:
                failed = True
                driver.rollback()
                raise
            finally:
                if inline is not None and held is not None:
                    inline.give_back(failed=failed)
                else:
                    connection.close()  # back to the pool

    def _refuse_naive(self, doing: str, *moments: datetime) -> None:
        """Refuse a naive datetime as UtcDateTime does through SQLAlchemy, for the statements
        that bind stamps straight to the driver (there bind_stamp's ValueError is no
        SQLAlchemy error, so it would not be translated)."""
        if any(moment.tzinfo is None for moment in moments):
            raise StoreError(f"store {self.safe_url}: {doing}: naive datetime given to the store")

    def _insert(self, table: Any) -> Any:
        module = pg_dialect if self.dialect == "postgresql" else sqlite_dialect
        return module.insert(table)

    def close(self) -> None:
        if self._inline is not None:
            self._inline.drop()
        self.engine.dispose()

    def hold_checkpoints(self) -> bool:
        """SQLite: leave the WAL's checkpoints to `checkpoint` (notifier.store.sqlite); True.
        PostgreSQL has none to hold: False."""
        if self._inline is None:
            return False
        self._inline.drop()  # made without it, as every pooled connection so far
        sqlite.hold_checkpoints(self.engine)
        return True

    def checkpoint(self) -> tuple[int, int]:
        """SQLite: fold the WAL into the database file as far as it can without waiting:
        the log's frames, and how many are folded in. (0, 0) on PostgreSQL."""
        if self.dialect != "sqlite":
            return 0, 0
        with self._translate("checkpointing the log"):
            return sqlite.checkpoint(self.engine)

    def _notify_due(self, run: Callable[[str, tuple[str, str]], object], count: int) -> None:
        # Idle workers on other instances LISTEN for this (delivered at commit); SQLite polls.
        if self.dialect == "postgresql":
            postgres.notify_due(run, count)

    # --- ingestion --------------------------------------------------------------------
    # Straight to the driver (notifier.store.fast_paths): a webhook group commit is a handful of
    # statements on a few rows, and SQLAlchemy's work around each cost more than SQLite's.

    def ingest(self, batch: Sequence[Any], decide: Decider) -> IngestResult:
        order_ids = sorted({record.order_id for record in batch})
        with self._driver_tx("ingesting records") as tx:
            # The orders' state decides duplicates: no other writer may change it meanwhile
            # (PostgreSQL: these locks; SQLite: BEGIN IMMEDIATE, one writer at a time).
            if self.dialect == "postgresql" and order_ids:
                postgres.lock_orders(tx.run_many, order_ids)
            decision = decide(fast_paths.load_orders(tx, order_ids))
            created = fast_paths.write_decision(tx, decision)
            if created:
                self._notify_due(tx.run, len(created))
        return IngestResult(decision=decision, created=created)

    def orders(self, order_ids: Collection[str]) -> dict[str, OrderView]:
        with self._driver_tx("reading orders", write=False) as tx:
            return fast_paths.load_orders(tx, sorted(set(order_ids)))

    def fulfillment(self, fulfillment_id: str) -> FulfillmentState | None:
        with self._driver_tx("reading a fulfillment", write=False) as tx:
            return fast_paths.load_fulfillment(tx, fulfillment_id)

    # --- delivery feedback (statements in notifier.store.feedback) -----------------------

    def notices_by_message_id(self, message_ids: Collection[str]) -> dict[str, str]:
        with self._read("finding notices by Message-ID") as conn:
            return feedback_sql.notices_by_message_id(conn, message_ids)

    def latest_sent_to(self, address: str, *, since: datetime, until: datetime) -> str | None:
        with self._read("finding the latest notice to an address") as conn:
            return feedback_sql.latest_sent_to(conn, address, since, until)

    def add_feedback(
        self, feedback: Sequence[StoredFeedback], *, policy: SuppressionPolicy
    ) -> FeedbackWrite:
        with self._write("storing delivery feedback") as conn:
            return feedback_sql.add_feedback(conn, self._insert, feedback, policy)

    def feedback_for(self, notice_key: str) -> list[StoredFeedback]:
        with self._read("reading a notice's feedback") as conn:
            return feedback_sql.feedback_for(conn, notice_key)

    def feedback_rates(self, *, since: datetime) -> FeedbackRates:
        with self._read("counting feedback rates") as conn:
            return feedback_sql.feedback_rates(conn, since)

    # --- delivery ---------------------------------------------------------------------

    def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, token: str
    ) -> list[Notice]:
        doing = "claiming due notices"
        self._refuse_naive(doing, now, lease_until)
        with self._driver_tx(doing) as tx:
            found = claims.due(tx, now=now, limit=limit)
            keys = [key for key, _ in found]
            if any(digest is not None for _, digest in found):
                keys += claims.digest_siblings(tx, keys, now=now)
            return self._claim(tx, keys, now, lease_until, token)

    def complete(self, key: str, *, token: str, completion: Completion) -> bool:
        return self.complete_many([(key, completion)], token=token)[0]

    def complete_many(
        self, completions: Sequence[tuple[str, Completion]], *, token: str
    ) -> list[bool]:
        """Record several deliveries in one transaction (a group commit)."""
        copies = [fast_paths.compressed_copy(done) for _, done in completions]
        with self._driver_tx("recording deliveries") as tx:
            return [
                fast_paths.complete(tx, key, token, done, copy)
                for (key, done), copy in zip(completions, copies, strict=True)
            ]

    def record_sends(
        self, writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
    ) -> list[bool]:
        copies = [None if done is None else fast_paths.compressed_copy(done) for _, done in writes]
        with self._driver_tx("recording sends") as tx:
            return [
                fast_paths.mark_send_started(tx, [key], token, now)[0]
                if done is None
                else fast_paths.complete(tx, key, token, done, copy)
                for (key, done), copy in zip(writes, copies, strict=True)
            ]

    def mark_send_started(self, keys: Sequence[str], *, token: str, now: datetime) -> list[bool]:
        """Record that these claimed notices' messages are about to leave (one transaction);
        False where the claim is no longer this token's."""
        with self._driver_tx("recording that sends started") as tx:
            return fast_paths.mark_send_started(tx, keys, token, now)

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
                    # A send cut off at shutdown had begun its DATA (that is when the mark
                    # is written): it may have arrived, so its mark and its attempt stay and
                    # the next claim counts it as ambiguous; a notice never handed over
                    # was not attempted.
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
        doing = "claiming notices"
        self._refuse_naive(doing, now, lease_until)
        with self._driver_tx(doing) as tx:
            due = claims.due_among(tx, list(keys), now=now)
            return self._claim(tx, due, now, lease_until, token)

    @staticmethod
    def _claim(
        tx: DriverTx, keys: list[str], now: datetime, lease_until: datetime, token: str
    ) -> list[Notice]:
        """Mark the selected (and locked) notices `sending` under this token and lease."""
        rows = claims.claim(tx, keys, now=now, lease_until=lease_until, token=token)
        return [notice_from_row(row) for row in rows]

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
            return [notice_from_row(row) for row in conn.execute(query)]

    def notice(self, key: str) -> Notice | None:
        with self._read("reading a notice") as conn:
            row = conn.execute(select(notices).where(notices.c.key == key)).first()
        return None if row is None else notice_from_row(row)

    def notice_counts(self) -> Mapping[NoticeStatus, int]:
        with self._read("counting notices") as conn:
            rows = conn.execute(select(notices.c.status, func.count()).group_by(notices.c.status))
            return {NoticeStatus(status): count for status, count in rows}

    def notice_counts_by_rule(self) -> Mapping[str, Mapping[NoticeStatus, int]]:
        query = select(notices.c.rule_id, notices.c.status, func.count()).group_by(
            notices.c.rule_id, notices.c.status
        )
        counts: dict[str, dict[NoticeStatus, int]] = {}
        with self._read("counting notices by rule") as conn:
            for rule_id, status, count in conn.execute(query):
                counts.setdefault(rule_id, {})[NoticeStatus(status)] = count
        return counts

    def due_count(self, *, now: datetime) -> int:
        waiting = (NoticeStatus.PENDING.value, NoticeStatus.RETRY.value)
        with self._read("counting due notices") as conn:
            query = select(func.count()).where(
                notices.c.status.in_(waiting), notices.c.due_at <= now
            )
            return int(conn.scalar(query) or 0)

    def record_count(self) -> int:
        with self._read("counting records") as conn:
            return int(conn.scalar(select(func.sum(record_batches.c.records))) or 0)

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

    # --- history and sent copies (the operator console) ----------------------------------

    def add_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "notice_key": e.key,
                "at": e.at,
                "kind": e.kind,
                "outcome": e.outcome,
                "detail": e.detail,
                "actor": e.actor,
            }
            for e in entries
        ]
        with self._write("writing a notice's history") as conn:
            conn.execute(notice_history.insert(), rows)

    def history(self, key: str) -> list[HistoryEntry]:
        query = (
            select(notice_history)
            .where(notice_history.c.notice_key == key)
            .order_by(notice_history.c.at, notice_history.c.id)
        )
        with self._read("reading a notice's history") as conn:
            return [_history(row) for row in conn.execute(query)]

    def sent_copy(self, key: str) -> bytes | None:
        query = select(sent_copies.c.message).where(sent_copies.c.notice_key == key)
        with self._read("reading a sent copy") as conn:
            stored = conn.scalar(query)
        return None if stored is None else zlib.decompress(stored)

    def prune_sent_copies(self, *, before: datetime, limit: int) -> int:
        # Bounded: one pass deletes at most `limit` rows, by the sent_at index.
        oldest = (
            select(sent_copies.c.notice_key)
            .where(sent_copies.c.sent_at < before)
            .order_by(sent_copies.c.sent_at)
            .limit(limit)
        )
        with self._write("pruning sent copies") as conn:
            done = conn.execute(
                delete(sent_copies).where(sent_copies.c.notice_key.in_(oldest.scalar_subquery()))
            )
        return int(done.rowcount)

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
        # Straight to the driver: read for every delivery batch (notifier.store.claims).
        with self._driver_tx("reading suppressions", write=False) as tx:
            rows = tx.where_in(_SELECT_SUPPRESSIONS, "address", folded)
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

    # --- refused records (the console's "needs attention") ---------------------------

    def add_rejections(self, rejections: Sequence[Rejection], *, now: datetime) -> None:
        with self._write("keeping refused records") as conn:
            conn.execute(
                delete(rejected_records).where(
                    rejected_records.c.received_at < now - REJECTIONS_KEPT
                )
            )
            if rejections:
                conn.execute(
                    rejected_records.insert(),
                    [
                        {
                            "source": r.source[:255],
                            "location": r.location,
                            "reason": r.reason,
                            "received_at": now,
                        }
                        for r in rejections
                    ],
                )

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


def _history(row: Row[Any]) -> HistoryEntry:
    kind: HistoryKind = "action" if row.kind == "action" else "attempt"
    return HistoryEntry(
        key=row.notice_key,
        at=row.at,
        kind=kind,
        outcome=row.outcome,
        detail=row.detail,
        actor=row.actor,
    )


def notice_from_row(row: Row[Any] | Any) -> Notice:
    """A notices row as the Notice value (also for notifier.store.queries and the claims
    read straight from the driver, notifier.store.claims)."""
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
        feedback=FeedbackKind(row.feedback) if row.feedback else None,
    )


def inline_writer(store: object) -> Callable[[Callable[[], T]], T | None] | None:
    """The inline writer for `store`, for GroupCommitter(try_inline=...): SQLite's, or None
    where a write is a network round trip (PostgreSQL) that belongs on a thread, or where
    the store is not SQL at all (the in-memory one)."""
    if isinstance(store, SqlStore) and store.dialect == "sqlite":
        return sqlite.write_inline
    return None
