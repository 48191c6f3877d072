"""Stalled rules: a status that has stood too long with no later change (docs/design.md §3).

A stalled notice is created when the fulfillment (or the order) enters the rule's status,
due once that status has stood for `stalled_after`. Nothing scans for stalls: the notice's
due time is the wake-up. Whether it stalled after all is decided when it falls due, by
`moved_on`: any change since that entry makes it moot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from notifier.core.models import FulfillmentState, OrderView, Scope, Status


def stalled_key(base_key: str, entered_at: datetime) -> str:
    """The notice key for one entry into the status: a fulfillment that leaves and comes
    back can stall again, and a redelivered entry (same time) is still one notice."""
    return f"{base_key}:since={entered_at.astimezone(UTC).isoformat()}"


def _since(state: FulfillmentState) -> datetime:
    # A state stored before status_since was kept: its last change is the best bound.
    return state.status_since or state.occurred_at


def moved_on(
    *,
    on: Status,
    scope: Scope,
    fulfillment_ids: Sequence[str],
    entered_at: datetime,
    order: OrderView,
) -> str | None:
    """Why a stalled notice no longer applies (a change since its entry), or None."""
    if scope is Scope.ORDER:
        for fid in order.expected_ids():
            state = order.fulfillments.get(fid)
            if state is not None and _since(state) > entered_at:
                return f"fulfillment {fid} moved on to {state.status.value}"
        return None
    for fid in fulfillment_ids:
        state = order.fulfillments.get(fid)
        if state is None:
            continue
        if state.status is not on:
            return f"fulfillment {fid} moved on to {state.status.value}"
        if _since(state) > entered_at:
            return (
                f"fulfillment {fid} left {on.value} and entered it again at"
                f" {_since(state).isoformat()}"
            )
    return None
