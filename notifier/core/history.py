"""A notice's history in the ledger: each attempt's outcome and each operator action.

The notice row says where a notice stands now; its history says how it got there — every
send attempt with the server's reply or the error, every retry, resend or suppression an
operator asked for, and who asked. Rows are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

HistoryKind = Literal["attempt", "action"]
ATTEMPT: HistoryKind = "attempt"
ACTION: HistoryKind = "action"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of a notice's history."""

    key: str  # the notice's key
    at: datetime
    kind: HistoryKind
    # attempt: the status it ended in (sent | retry | failed | cancelled);
    # action: what was done (retry | resend | suppress | unsuppress)
    outcome: str
    detail: str | None = None  # the server's reply, the error text, the action's note
    actor: str | None = None  # who acted (an action's token name); None for attempts


@dataclass(frozen=True, slots=True)
class ReceivedRecord:
    """The audit copy of one record as the ledger keeps it, and what became of it."""

    order_id: str
    fulfillment_id: str
    status: str
    occurred_at: datetime
    received_at: datetime
    outcome: str  # applied | repeat | stale | duplicate (a redelivery: kept, changed nothing)
    payload: Mapping[str, Any]
