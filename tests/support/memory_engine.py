"""An engine on MemoryStore and MemoryTransport, on a clock the test moves: the engine's
unit tests. The project's own rules (or given TOML text) and templates; no database, no
network."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from notifier.core.decide import DueAdjuster
from notifier.core.models import Notice, Record
from notifier.core.records import parse_record
from notifier.core.rules import Rule, load_rules, parse_rule
from notifier.engine import DeliveryReport, Engine, EngineConfig
from notifier.rendering.renderer import Renderer
from notifier.store.memory import MemoryStore
from notifier.transports.memory import MemoryTransport
from support.project import BRANDING, RULES, TEMPLATES

UPS = "1Z999AA10123456784"
USPS = "9400111206206406260787"
# Every scenario's "now": records and the engine's clock are placed relative to it, and
# nothing compares it with the real date.
START = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


class Clock:
    """The engine's clock: it reads `now`, which the test moves."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


@dataclass
class Rig:
    """An engine and the parts a test asserts on."""

    engine: Engine
    store: MemoryStore
    transport: MemoryTransport
    clock: Clock

    def deliver(self) -> DeliveryReport:
        """One delivery pass: everything due now."""
        return asyncio.run(self.engine.deliver_due())

    def notice(self, key: str) -> Notice:
        return self.store.notices_by_key[key]

    @property
    def sent(self) -> list[EmailMessage]:
        return self.transport.messages


def shipped_rule(name: str, extra: str = "") -> Rule:
    """A rule file of the project (rules/NAME.toml), with `extra` TOML lines appended."""
    text = (RULES / f"{name}.toml").read_text(encoding="utf-8")
    return parse_rule(text + "\n" + extra + "\n", source=f"{name}.toml")


def rig(
    *,
    rules: Sequence[Rule] | None = None,
    clock: Clock | None = None,
    due_adjuster: DueAdjuster | None = None,
    max_ambiguous: int = 2,
    store: MemoryStore | None = None,
    claim_batch: int = 64,
    operator_email: str | None = None,
) -> Rig:
    """An engine on a MemoryStore (a fresh one unless given: another "instance" on the same
    ledger) and a fresh MemoryTransport, with the project's templates."""
    store = MemoryStore() if store is None else store
    transport, clock = MemoryTransport(), clock or Clock()
    engine = Engine(
        store=store,
        transport=transport,
        rules=load_rules(RULES) if rules is None else rules,
        renderer=Renderer(TEMPLATES),
        config=EngineConfig(
            BRANDING,
            due_adjuster=due_adjuster,
            max_ambiguous=max_ambiguous,
            claim_batch=claim_batch,
            operator_email=operator_email,
        ),
        clock=clock,
    )
    return Rig(engine=engine, store=store, transport=transport, clock=clock)


def change(
    order: str,
    fulfillment: str,
    status: str,
    *,
    at: datetime | None,
    received: datetime = START,
    **fields: Any,
) -> Record:
    """A status change of one fulfillment to jane@example.com; `at` its occurred_at."""
    data: dict[str, Any] = {
        "order_id": order,
        "fulfillment_id": fulfillment,
        "status": status,
        "email": "jane@example.com",
        "first_name": "Jane",
    }
    if at is not None:
        data["occurred_at"] = at.isoformat()
    data.update(fields)
    return parse_record(data, received_at=received)


def tracking(n: int, *, at: datetime = START, **fields: Any) -> Record:
    """Order O{n}'s one fulfillment F{n} entering Pending Shipment: one notice, tna_key(n)."""
    fields = {"email": f"customer{n}@example.com", **fields}
    return change(f"O{n}", f"F{n}", "Pending Shipment", at=at, tracking_number=UPS, **fields)


def tna_key(n: int) -> str:
    return f"tracking_number_assigned:fulfillment:F{n}"


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]
