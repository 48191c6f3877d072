"""Claims straight to the DB-API driver: which notices are due, and taking them.

A delivery batch claims its notices in one transaction: the due notices (locked, skipping
those another worker holds), the rest of the digests they belong to, then all of them
marked `sending` under this worker's token and lease and read back. Through SQLAlchemy Core
that was as much CPU per notice as rendering its message (building and compiling the
statements, expanding their IN lists, processing each column of each row read back), so,
like the other hot paths (notifier.store.fast_paths), it speaks SQL to the driver: the same
statements SQLAlchemy wrote, and the rows read back as notifier.store.sql reads them.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from notifier.core.models import NoticeStatus
from notifier.store.fast_paths import DriverTx
from notifier.store.schema import UtcDateTime, as_utc, notices

_SENDING = NoticeStatus.SENDING.value
# Due: waiting for a first or a next attempt, or claimed with its lease run out.
_DUE = (NoticeStatus.PENDING.value, NoticeStatus.RETRY.value, _SENDING)
_CLAIMABLE = (NoticeStatus.PENDING.value, NoticeStatus.RETRY.value)
_COLUMNS = tuple(column.name for column in notices.columns)
_STAMPED = tuple(
    index for index, column in enumerate(notices.columns) if isinstance(column.type, UtcDateTime)
)
_SELECT_NOTICES = f"SELECT {', '.join(_COLUMNS)} FROM {notices.name}"

# A notices row read from the driver, its stamps as UtcDateTime reads them: what
# notifier.store.sql.notice_from_row takes (it reads the columns by name).
NoticeRow: Any = namedtuple("NoticeRow", _COLUMNS)  # type: ignore[misc]


def _not_in(tx: DriverTx, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """DriverTx.in_'s opposite: `column NOT IN values` (PostgreSQL: `<> ALL(array)`)."""
    if tx.dialect == "sqlite":
        return f"{column} NOT IN ({tx.marks(len(values))})", list(values)
    return f"{column} <> ALL({tx.mark})", [list(values)]


def _locking(tx: DriverTx) -> str:
    """PostgreSQL: lock the rows selected, skipping those another worker has locked. SQLite
    needs nothing: a write transaction there is the only writer (BEGIN IMMEDIATE)."""
    return " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""


def due(tx: DriverTx, *, now: datetime, limit: int) -> list[tuple[str, str | None]]:
    """Up to `limit` due notices, the soonest first: each key with its digest key."""
    status, params = tx.in_("status", _DUE)
    sql = (
        f"SELECT key, digest_key FROM {notices.name}"
        f" WHERE {status} AND due_at <= {tx.mark} ORDER BY due_at LIMIT {tx.mark}{_locking(tx)}"
    )
    return [(key, digest) for key, digest in tx.rows(sql, [*params, tx.stamp(now), limit])]


def due_among(tx: DriverTx, keys: Sequence[str], *, now: datetime) -> list[str]:
    """Those of `keys` that are due now."""
    key, key_params = tx.in_("key", keys)
    status, status_params = tx.in_("status", _DUE)
    sql = (
        f"SELECT key FROM {notices.name}"
        f" WHERE {key} AND {status} AND due_at <= {tx.mark}{_locking(tx)}"
    )
    return [row[0] for row in tx.rows(sql, [*key_params, *status_params, tx.stamp(now)])]


def digest_siblings(tx: DriverTx, keys: Sequence[str], *, now: datetime) -> list[str]:
    """The other claimable notices of the digests these keys belong to: a digest is sent as
    one message, so its notices are claimed together, past the batch limit."""
    member, member_params = tx.in_("key", keys)
    other, other_params = _not_in(tx, "key", keys)
    waiting, waiting_params = tx.in_("status", _CLAIMABLE)
    sql = (
        f"SELECT key FROM {notices.name} WHERE digest_key IN"
        f" (SELECT digest_key FROM {notices.name} WHERE {member} AND digest_key IS NOT NULL)"
        f" AND {other} AND ({waiting} OR status = {tx.mark} AND due_at <= {tx.mark})"
        f"{_locking(tx)}"
    )
    params = [*member_params, *other_params, *waiting_params, _SENDING, tx.stamp(now)]
    return [row[0] for row in tx.rows(sql, params)]


def claim(
    tx: DriverTx, keys: Sequence[str], *, now: datetime, lease_until: datetime, token: str
) -> list[Any]:
    """Mark the selected (and locked) notices `sending` under this token and lease; their
    rows as they now stand."""
    if not keys:
        return []
    key, params = tx.in_("key", keys)
    tx.run(
        f"UPDATE {notices.name} SET status = {tx.mark},"
        # Claimed with its send mark still set, a notice is not attempted again now: the
        # engine records the interrupted send as the attempt (Engine._deliver_one).
        " attempts = attempts + CASE WHEN send_started_at IS NULL THEN 1 ELSE 0 END,"
        f" due_at = {tx.mark}, first_attempt_at = coalesce(first_attempt_at, {tx.mark}),"
        f" claim_token = {tx.mark} WHERE {key}",
        [_SENDING, tx.stamp(lease_until), tx.stamp(now), token, *params],
    )
    rows = tx.rows(f"{_SELECT_NOTICES} WHERE {key} ORDER BY due_at", params)
    return [_row(values) for values in rows]


def _row(values: Sequence[Any]) -> Any:
    converted = list(values)
    for index in _STAMPED:
        if converted[index] is not None:
            converted[index] = as_utc(converted[index])
    return NoticeRow(*converted)
