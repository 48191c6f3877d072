"""Operator digests: a rule's notices of one interval gathered into one email (docs/design.md §3).

Each notice of a digest rule is due at the end of its window (the interval it falls due
in, counted from the Unix epoch: "1d" windows start at midnight UTC), and carries the
window's key. Delivery claims a window's notices together and sends them as one message
whose Message-ID comes from that key, so a resend after a crash carries the same one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEPARATOR = ":digest:"


def digest_window(due_at: datetime, every: timedelta) -> tuple[datetime, datetime]:
    """The window a notice due at `due_at` belongs to: (start, end), end exclusive."""
    start = _EPOCH + ((due_at - _EPOCH) // every) * every
    return start, start + every


def digest_key(rule_id: str, window_start: datetime) -> str:
    """The key shared by every notice of one rule's window (the digest's identity)."""
    return f"{rule_id}{_SEPARATOR}{window_start.astimezone(UTC).isoformat()}"


def window_start_of(key: str) -> datetime:
    """The window start a digest key names (the inverse of digest_key)."""
    return datetime.fromisoformat(key.rpartition(_SEPARATOR)[2])
