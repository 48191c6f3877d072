"""Ingestion and delivery outcomes straight to the DB-API driver: the store's hot paths.

One SQL style here: hand-written SQL on the pooled DB-API connection, through DriverTx.
SQLAlchemy's work around each statement (execution context, events, result metadata) costs
more than SQLite itself takes for a small ingest: measured here, an empty write transaction
~100 µs and each statement ~80 µs through SQLAlchemy, against ~10 µs and ~5 µs on the
DB-API connection. A webhook group commit runs five or more statements, so ingestion
(webhook and batch alike), completions and send marks speak SQL to the driver; the rest of
the store stays on SQLAlchemy Core (notifier.store.sql). Column lists and the stamp format
come from notifier.store.schema; errors are still translated by SqlStore.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import Any

from notifier.core.decide import Decision, OrderView, Outcome
from notifier.core.models import FulfillmentState, NoticeStatus, Status
from notifier.store import audit
from notifier.store.base import Completion
from notifier.store.compression import deflate
from notifier.store.schema import (
    FULFILLMENT_COLUMNS,
    NEW_NOTICE_COLUMNS,
    as_utc,
    bind_stamp,
    fulfillments,
    notice_history,
    notices,
    orders,
    record_batches,
    record_orders,
    sent_copies,
    suppressions,
)


def param_mark(dialect: str) -> str:
    """The driver's parameter marker: sqlite3's `?`, psycopg's `%s`."""
    return "?" if dialect == "sqlite" else "%s"


class DriverTx:
    """One open transaction on a DB-API cursor. `mark` is the dialect's parameter marker."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self.mark = param_mark(dialect)

    def marks(self, count: int) -> str:
        """`count` parameter markers, comma-separated (for VALUES lists)."""
        return ", ".join([self.mark] * count)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(sql, params)
        return list(self._cursor.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        self._cursor.execute(sql, params)
        return int(self._cursor.rowcount)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, rows)

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN values` and its parameters (PostgreSQL: `= ANY(array)`, one parameter)."""
        if self.dialect == "sqlite":
            return f"{column} IN ({self.marks(len(values))})", list(values)
        return f"{column} = ANY({self.mark})", [list(values)]

    def where_in(
        self, select_sql: str, column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """`select_sql WHERE column IN values`."""
        if not values:
            return []
        condition, params = self.in_(column, values)
        return self.rows(f"{select_sql} WHERE {condition}", params)

    def stamp(self, moment: datetime) -> Any:
        return bind_stamp(moment, self.dialect)


_SELECT_FULFILLMENTS = f"SELECT {', '.join(FULFILLMENT_COLUMNS)} FROM {fulfillments.name}"
_SELECT_ORDERS = f"SELECT order_id, fulfillment_ids FROM {orders.name}"
_SENDING = NoticeStatus.SENDING.value
# An enum member's .value is a property lookup, a third of a microsecond each: the rows of
# every record read their texts from these instead.
_STATUS_TEXT = {status: status.value for status in Status}
_OUTCOME_TEXT = {outcome: outcome.value for outcome in Outcome}
_STALE = Outcome.STALE
_RECEIVED_AT, _ORDER_ID = attrgetter("received_at"), attrgetter("order_id")


@cache
def _insert_sql(
    mark: str,
    table: str,
    columns: tuple[str, ...],
    *,
    upsert_on: str | None = None,
    nulls: tuple[str, ...] = (),
    skip_on: str | None = None,
    returning: str | None = None,
) -> str:
    """INSERT of `columns` (`mark`: the driver's parameter marker): a conflict on `upsert_on`
    updates the row's other columns, and sets the `nulls` (columns left out) to NULL; one on
    `skip_on` skips the row; `returning` names a column to return for inserted rows. Built
    once per shape: ingest runs them per group."""
    values = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
    if upsert_on is not None:
        updates = ", ".join(
            [f"{c} = excluded.{c}" for c in columns if c != upsert_on]
            + [f"{c} = NULL" for c in nulls]
        )
        sql += f" ON CONFLICT ({upsert_on}) DO UPDATE SET {updates}"
    if skip_on is not None:
        sql += f" ON CONFLICT ({skip_on}) DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {returning}"
    return sql


_INSERT_BATCH = {
    mark: _insert_sql(
        mark, record_batches.name, ("received_at", "records", "stale", "body"), returning="id"
    )
    for mark in ("?", "%s")
}
# A batch is new, so its entries are too: a plain insert, no conflict to look for.
_INSERT_ORDERS = {
    mark: _insert_sql(mark, record_orders.name, ("order_id", "batch_id")) for mark in ("?", "%s")
}


# --- ingestion --------------------------------------------------------------------------


def load_orders(tx: DriverTx, order_ids: Sequence[str]) -> dict[str, OrderView]:
    views = {order_id: OrderView(order_id) for order_id in order_ids}
    for row in tx.where_in(_SELECT_FULFILLMENTS, "order_id", order_ids):
        state = _state(row)
        views[state.order_id].fulfillments[state.fulfillment_id] = state
    for order_id, fulfillment_ids in tx.where_in(_SELECT_ORDERS, "order_id", order_ids):
        views[order_id].fulfillment_ids = tuple(json.loads(fulfillment_ids))
    return views


def load_fulfillment(tx: DriverTx, fulfillment_id: str) -> FulfillmentState | None:
    rows = tx.where_in(_SELECT_FULFILLMENTS, "fulfillment_id", [fulfillment_id])
    return _state(rows[0]) if rows else None


class _Stamps(dict[datetime, Any]):
    """Each moment as the driver binds it, formatted once: many records share a time (a
    batch's received_at, above all), and a hit is a plain dict lookup, no Python call."""

    def __init__(self, dialect: str) -> None:
        super().__init__()
        self._dialect = dialect

    def __missing__(self, moment: datetime) -> Any:
        value = self[moment] = bind_stamp(moment, self._dialect)
        return value


def _append_audit(tx: DriverTx, decision: Decision, stamps: _Stamps) -> None:
    """The audit copy of the decided records, duplicates included: one batch row, and an
    entry per order it holds (notifier.store.audit)."""
    texts = stamps if tx.dialect == "sqlite" else _Stamps("sqlite")  # the body's stamps
    outcomes = decision.outcomes
    body = audit.encode_batch(
        [
            (
                record.order_id,
                record.fulfillment_id,
                _STATUS_TEXT[record.status],
                texts[record.occurred_at or record.received_at],  # effective_at, no call
                texts[record.received_at],
                _OUTCOME_TEXT[outcome],
                record.received_text or json.dumps(record.to_json(), ensure_ascii=False),
            )
            for record, outcome in outcomes
        ]
    )
    # The batch's own columns and its order entries, by passes in C (a generator's step a
    # record cost more than the values taken).
    records, kinds = zip(*outcomes, strict=True)
    received = max(map(_RECEIVED_AT, records))
    row = (stamps[received], len(outcomes), kinds.count(_STALE), body)
    (batch_id,) = tx.rows(_INSERT_BATCH[tx.mark], row)[0]
    order_ids = dict.fromkeys(map(_ORDER_ID, records))
    tx.run_many(_INSERT_ORDERS[tx.mark], [(order_id, batch_id) for order_id in order_ids])


def write_decision(tx: DriverTx, decision: Decision) -> tuple[str, ...]:
    """Write what `decide` chose; the keys of the notices that were new."""
    stamps = _Stamps(tx.dialect)

    if decision.outcomes:
        _append_audit(tx, decision, stamps)
    if decision.states:
        _write_states(tx, decision.states.values(), stamps)
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
        tx.mark, notices.name, NEW_NOTICE_COLUMNS, skip_on="key", returning="key"
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
            stamps[notice.due_at],
            stamps[notice.created_at],
            notice.reason,
            json.dumps(list(notice.fulfillment_ids)),
            json.dumps(dict(notice.record), ensure_ascii=False),
            None if notice.entered_at is None else stamps[notice.entered_at],
            notice.digest_key,
        )
        if tx.rows(insert_notice, row):
            created.append(notice.key)
    return tuple(created)


# A fulfillment's shipping details, empty until it ships: most states written (a batch of
# Hold and Pending records, above all) have none.
_SHIPPING = ("tracking_number", "carrier", "shipped_at", "delivered_at")
_UNSHIPPED_COLUMNS = tuple(c for c in FULFILLMENT_COLUMNS if c not in _SHIPPING)


def _write_states(tx: DriverTx, states: Iterable[FulfillmentState], stamps: _Stamps) -> None:
    """Upsert each fulfillment's state. A state without shipping details goes by a statement
    that writes them as NULL in its SQL, not by four bound NULLs: sqlite3 binds each None
    through a Python call, and the shorter row took 3.9 µs to upsert against 4.9 µs
    (a sixth of ingesting a record that fires nothing). The flag is bound as an int for the
    same reason on SQLite: a bool is no exact int, so sqlite3 adapts it by a call
    (PostgreSQL's column is a boolean, which takes no int)."""
    flag = _SQLITE_FLAG if tx.dialect == "sqlite" else _BOOLEAN_FLAG
    shipped, unshipped = [], []
    for state in states:
        fulfillment_id, order_id = state.fulfillment_id, state.order_id
        status, occurred = _STATUS_TEXT[state.status], stamps[state.occurred_at]
        clamped = flag[state.occurred_at_clamped]
        since = None if state.status_since is None else stamps[state.status_since]
        keys = " ".join(state.recent_keys) or None
        tracking, carrier = state.tracking_number, state.carrier
        shipped_at, delivered_at = state.shipped_at, state.delivered_at
        if tracking is None and carrier is None and shipped_at is None and delivered_at is None:
            unshipped.append((fulfillment_id, order_id, status, occurred, clamped, since, keys))
        else:
            details = (tracking, carrier, shipped_at, delivered_at)
            shipped.append(
                (fulfillment_id, order_id, status, occurred, *details, clamped, since, keys)
            )
    upsert = "fulfillment_id"
    if unshipped:
        sql = _insert_sql(
            tx.mark, fulfillments.name, _UNSHIPPED_COLUMNS, upsert_on=upsert, nulls=_SHIPPING
        )
        tx.run_many(sql, unshipped)
    if shipped:
        tx.run_many(
            _insert_sql(tx.mark, fulfillments.name, FULFILLMENT_COLUMNS, upsert_on=upsert), shipped
        )


_SQLITE_FLAG = {False: 0, True: 1}
_BOOLEAN_FLAG = {False: False, True: True}  # the same lookup either way: no branch a row


# --- delivery outcomes ------------------------------------------------------------------


@cache
def _complete_sql(mark: str) -> str:
    return (
        f"UPDATE {notices.name} SET status = {mark}, reason = {mark}, claim_token = NULL,"
        f" due_at = {mark}, sent_at = coalesce({mark}, sent_at),"
        f" message_id = coalesce({mark}, message_id),"
        f" ambiguous_attempts = ambiguous_attempts + {mark}, send_started_at = NULL"
        f" WHERE key = {mark} AND claim_token = {mark} AND status = '{_SENDING}'"
    )


def compressed_copy(completion: Completion) -> bytes | None:
    """The sent copy as stored (zlib's format: notifier.store.compression). Done before
    the transaction opens, so the write lock is not held for it."""
    if completion.status is not NoticeStatus.SENT or completion.sent_bytes is None:
        return None
    return deflate(completion.sent_bytes)


def complete(
    tx: DriverTx, key: str, token: str, completion: Completion, copy: bytes | None = None
) -> bool:
    """Record how a claimed notice ended; False if the claim is no longer `token`'s.
    `copy`: the sent message, from `compressed_copy`."""
    sent = completion.status is NoticeStatus.SENT
    at = tx.stamp(completion.at)  # once: the outcome, its history row and the sent copy
    done = tx.run(
        _complete_sql(tx.mark),
        (
            completion.status.value,
            completion.reason,
            tx.stamp(completion.stored_due_at),
            at if sent else None,
            completion.message_id,
            1 if completion.ambiguous else 0,
            key,
            token,
        ),
    )
    if not done:
        return False
    history = _insert_sql(
        tx.mark, notice_history.name, ("notice_key", "at", "kind", "outcome", "detail")
    )
    detail = completion.detail or completion.reason
    tx.run(history, (key, at, "attempt", completion.status.value, detail))
    if sent and copy is not None:
        keep = _insert_sql(
            tx.mark, sent_copies.name, ("notice_key", "sent_at", "message"), upsert_on="notice_key"
        )
        tx.run(keep, (key, at, copy))
    if completion.suppress_reason:
        found = tx.rows(f"SELECT recipient FROM {notices.name} WHERE key = {tx.mark}", (key,))
        recipient = found[0][0] if found else None
        if recipient:
            suppress(tx, recipient, completion.suppress_reason, completion.at)
    return True


def suppress(tx: DriverTx, address: str, reason: str, now: datetime) -> None:
    """Add `address` (case-folded) to the suppression list, unless it is there already."""
    sql = _insert_sql(
        tx.mark, suppressions.name, ("address", "reason", "created_at"), skip_on="address"
    )
    tx.run(sql, (address.casefold(), reason, tx.stamp(now)))


def mark_send_started(tx: DriverTx, keys: Sequence[str], token: str, now: datetime) -> list[bool]:
    """Mark claimed notices' messages as about to leave; False where the claim was lost."""
    sql = (
        f"UPDATE {notices.name} SET send_started_at = {tx.mark}"
        f" WHERE key = {tx.mark} AND claim_token = {tx.mark} AND status = '{_SENDING}'"
    )
    stamp = tx.stamp(now)
    return [bool(tx.run(sql, (stamp, key, token))) for key in keys]


def _state(row: Sequence[Any]) -> FulfillmentState:
    """A fulfillments row, its columns in FULFILLMENT_COLUMNS order."""
    fulfillment_id, order_id, status, occurred_at, tracking, carrier, shipped, delivered = row[:8]
    clamped, since, recent_keys = row[8:11]
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
        recent_keys=tuple(recent_keys.split()) if recent_keys else (),
    )
