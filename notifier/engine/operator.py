"""What an operator may do to notices and addresses: one code path for CLI and console.

Retry (make waiting or failed notices due now), resend (a new notice, a new copy),
suppress and unsuppress an address. Each checks what it is asked first, does it through
the store or the engine, and writes an `action` row in the history of the notices it
touched, naming who asked (`actor`: the console token's name, or the CLI user).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from notifier.core.history import ACTION, HistoryEntry
from notifier.core.models import NoticeStatus
from notifier.engine.engine import Engine
from notifier.engine.reports import DeliveryReport
from notifier.store.base import Store

__all__ = [
    "RetryOutcome",
    "SuppressOutcome",
    "add_resend",
    "resend",
    "retry",
    "suppress",
    "unsuppress",
]

_RETRYABLE = (NoticeStatus.RETRY, NoticeStatus.FAILED)


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What a retry did: the keys made due, and why the others were not."""

    made_due: tuple[str, ...]
    count: int  # how many the store made due (fewer than made_due if some moved meanwhile)
    problems: tuple[str, ...] = ()  # "KEY: why not", one per refused key
    # Made due, but their address is suppressed: they will be cancelled. (key, address, why)
    suppressed: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SuppressOutcome:
    """What a suppression did: the addresses added, and those already suppressed (why)."""

    added: tuple[str, ...]
    already: dict[str, str] = field(default_factory=dict)  # case-folded address -> reason


def retry(store: Store, keys: Sequence[str] | None, *, actor: str, now: datetime) -> RetryOutcome:
    """Make these notices (None: every one in retry or failed) due now. They keep their
    key, so their Message-ID: a retry is the same email, not a new one."""
    problems: list[str] = []
    wanted: list[str] = []
    warned: list[tuple[str, str, str]] = []
    before: dict[str, str] = {}
    if keys is None:
        for status in _RETRYABLE:
            for waiting in store.notices(status=status):
                wanted.append(waiting.key)
                before[waiting.key] = status.value
    else:
        for key in dict.fromkeys(keys):
            notice = store.notice(key)
            if notice is None:
                problems.append(f"{key}: no such notice")
            elif notice.status not in _RETRYABLE:
                hint = (
                    "; `notifier resend KEY --force` sends a second copy"
                    if notice.status is NoticeStatus.SENT
                    else ""
                )
                problems.append(f"{key}: is {notice.status.value}, not retry or failed{hint}")
            else:
                wanted.append(key)
                before[key] = notice.status.value
                if notice.recipient and (why := store.suppressed([notice.recipient])):
                    warned.append((key, notice.recipient, next(iter(why.values()))))
    made = store.make_due(wanted, now=now) if wanted else 0
    if made:
        store.add_history(
            [
                HistoryEntry(
                    key=key,
                    at=now,
                    kind=ACTION,
                    outcome="retry",
                    detail=f"made due now (was {before[key]})",
                    actor=actor,
                )
                for key in wanted
            ]
        )
    return RetryOutcome(
        made_due=tuple(wanted) if made else (),
        count=made,
        problems=tuple(problems),
        suppressed=tuple(warned),
    )


async def resend(engine: Engine, key: str, *, actor: str) -> tuple[str, DeliveryReport]:
    """Send a sent (or failed) notice again as a new notice `<key>#resend-<n>` (a new
    Message-ID); its key and how its delivery went. Raises NotifierError if it may not."""
    new_key = await add_resend(engine, key, actor=actor)
    return new_key, await engine.deliver_keys([new_key])


async def add_resend(engine: Engine, key: str, *, actor: str) -> str:
    """`resend` without the sending: the new notice is due now, for the worker (the
    console's way: the request returns at once). Its key."""
    new_key = await engine.add_resend(key)
    asked = engine.clock()  # not before the copy's creation: its timeline starts there
    # Written before the copy is sent, so its timeline starts with who asked for it.
    await asyncio.to_thread(
        engine.store.add_history,
        [
            HistoryEntry(key, asked, ACTION, "resend", f"sent again as {new_key}", actor),
            HistoryEntry(new_key, asked, ACTION, "resend", f"a resend of {key}", actor),
        ],
    )
    return new_key


def suppress(
    store: Store,
    addresses: Sequence[str],
    *,
    reason: str,
    actor: str,
    now: datetime,
    key: str | None = None,
) -> SuppressOutcome:
    """Never mail these addresses; `key`: the notice whose page it was done from, whose
    history records it."""
    already = store.suppressed(addresses)
    added = [a for a in dict.fromkeys(addresses) if a.casefold() not in already]
    for address in added:
        store.suppress(address, reason=reason, now=now)
    if key is not None and added:
        detail = f"{', '.join(added)}: {reason}"
        store.add_history([HistoryEntry(key, now, ACTION, "suppress", detail, actor)])
    return SuppressOutcome(added=tuple(added), already=already)


def unsuppress(
    store: Store,
    addresses: Sequence[str],
    *,
    actor: str,
    now: datetime,
    key: str | None = None,
) -> tuple[str, ...]:
    """Mail these addresses again (notices already cancelled stay cancelled); the ones that
    were suppressed. `key` as for `suppress`."""
    removed = tuple(a for a in dict.fromkeys(addresses) if store.unsuppress(a))
    if key is not None and removed:
        detail = ", ".join(removed)
        store.add_history([HistoryEntry(key, now, ACTION, "unsuppress", detail, actor)])
    return removed
