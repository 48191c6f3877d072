"""From records to fulfillment state and notices (docs/design.md §3). Pure: no I/O, no clock.

The store loads the orders a batch touches, `decide` works out what changes, and the
store writes the result in the same transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from notifier.core.digests import digest_key, digest_window
from notifier.core.models import (
    DEFAULT_FUTURE_TOLERANCE,
    SHIPPED_STATUSES,
    FulfillmentState,
    NewNotice,
    NoticeStatus,
    Record,
    Scope,
    Status,
    ordering_time,
)
from notifier.core.models import OrderView as OrderView  # its home; decide's name for it
from notifier.core.rules import Audience, Rule, applies_to, missing_fields, notice_key, rules_on
from notifier.core.stalled import stalled_key

# Moves a notice's due time (e.g. out of a campaign's quiet hours): (due_at, campaign_id) -> due_at.
DueAdjuster = Callable[[datetime, str | None], datetime]


class Outcome(enum.StrEnum):
    APPLIED = "applied"  # changed the fulfillment's status
    REPEAT = "repeat"  # the status it already had: fires nothing new
    STALE = "stale"  # older than the state it would change: stored for audit only
    DUPLICATE = "duplicate"  # a redelivery: stored for audit only, counted, changes nothing


# How many record keys each fulfillment remembers. A fulfillment lives through a handful
# of changes (Hold, Pending, Pending Shipment, Shipped, Delivered, a return), and sources
# redeliver recent ones (a batch run again, a webhook retried, a poll window re-read). A
# record redelivered after 16 newer ones of its fulfillment is still compared with the
# state (an older one is stale: stored, fires nothing) and can never send twice: that rests
# on the notices' keys, not on this.
RECENT_KEYS = 16


@dataclass(slots=True)
class Decision:
    # Every record, in order, with what it was: duplicates too (the audit keeps them all).
    outcomes: list[tuple[Record, Outcome]] = field(default_factory=list)
    duplicates: int = 0
    states: dict[str, FulfillmentState] = field(default_factory=dict)
    order_fulfillment_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notices: list[NewNotice] = field(default_factory=list)
    notice_keys: set[str] = field(default_factory=set)  # the keys of `notices`
    # Notice key -> the position in the batch of the record that called for it (to credit
    # the right request of a group commit).
    triggers: dict[str, int] = field(default_factory=dict)
    # (rule id, record, why no notice) for rules that matched but were held back.
    skipped: list[tuple[str, Record, str]] = field(default_factory=list)
    # Accepted records dated further past their receipt than the tolerance, with how far.
    future_dated: list[tuple[Record, timedelta]] = field(default_factory=list)


def apply_record(
    state: FulfillmentState | None,
    record: Record,
    *,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> tuple[FulfillmentState, Outcome]:
    """The fulfillment's state after a record, and what the record was.

    A record dated more than `future_tolerance` past its receipt counts as happening when
    it was received (models.ordering_time), and the state remembers that its time is such
    a receipt. Against that state the rule is: a record received at or after that receipt
    is newer news, whatever it is dated. A Shipped record dated 12:00:30 and received at
    12:02 applies over a Pending Shipment received at 12:01 claiming 17:00: when that
    change really happened is unknown, and the report that came later is the likelier
    truth. Only a record received before it (a replay) is stale against it.
    """
    at, clamped = ordering_time(record, future_tolerance)
    return _apply(state, record, at, clamped)


def _apply(
    state: FulfillmentState | None, record: Record, at: datetime, clamped: bool
) -> tuple[FulfillmentState, Outcome]:
    """apply_record, given the record's ordering time (decide works it out once a record)."""
    if state is None:
        return _state_from(record, at, clamped=clamped), Outcome.APPLIED
    if is_duplicate(state, record):
        return state, Outcome.DUPLICATE
    recent_keys = (*state.recent_keys, record.dedup_key)[-RECENT_KEYS:]
    if _is_older(record, at, state):
        # Changes nothing but the keys it remembers: its redelivery is a duplicate.
        return replace(state, recent_keys=recent_keys), Outcome.STALE
    merged = replace(
        state,
        tracking_number=record.tracking_number or state.tracking_number,
        carrier=record.carrier or state.carrier,
        shipped_at=record.shipped_at or state.shipped_at,
        delivered_at=record.delivered_at or state.delivered_at,
        occurred_at=at,
        occurred_at_clamped=clamped,
        recent_keys=recent_keys,
    )
    if record.status is state.status:
        return merged, Outcome.REPEAT
    return replace(merged, status=record.status, status_since=at), Outcome.APPLIED


def is_duplicate(state: FulfillmentState, record: Record) -> bool:
    """Whether the fulfillment has taken this record already (docs/design.md §2): its key
    (its event id, else its change: status, tracking number, `occurred_at`) is among the
    fulfillment's recent ones. No table of every record's key: the state is loaded (and
    on PostgreSQL its order locked) for the record anyway, and the keys ride along in it."""
    return record.dedup_key in state.recent_keys


def _is_older(record: Record, at: datetime, state: FulfillmentState) -> bool:
    if state.occurred_at_clamped:
        return record.received_at < state.occurred_at
    return at < state.occurred_at


def _state_from(record: Record, at: datetime, clamped: bool) -> FulfillmentState:
    # By position, in FulfillmentState's order (fulfillment_id, order_id, status,
    # occurred_at, tracking_number, carrier, shipped_at, delivered_at, occurred_at_clamped,
    # status_since, recent_keys): once per new fulfillment, where keywords cost a fifth
    # of building it.
    return FulfillmentState(
        record.fulfillment_id,
        record.order_id,
        record.status,
        at,
        record.tracking_number,
        record.carrier,
        record.shipped_at,
        record.delivered_at,
        clamped,
        at,
        (record.dedup_key,),
    )


def order_reached(order: OrderView, status: Status) -> bool:
    """Whether the order as a whole has reached Shipped (or Delivered).

    Shipped: at least one fulfillment Shipped or Delivered and every one not Cancelled is.
    Delivered: the same with Delivered alone. A fulfillment we have not heard of yet holds
    the order back.
    """
    reached = SHIPPED_STATUSES if status is Status.SHIPPED else frozenset({status})
    counted = 0
    for fulfillment_id in order.expected_ids():
        state = order.fulfillments.get(fulfillment_id)
        if state is None:
            return False
        if state.status is Status.CANCELLED:
            continue
        if state.status not in reached:
            return False
        counted += 1
    return counted > 0


def shipped_fulfillment_ids(order: OrderView) -> tuple[str, ...]:
    return tuple(
        fid
        for fid in order.expected_ids()
        if (state := order.fulfillments.get(fid)) is not None and state.status in SHIPPED_STATUSES
    )


# Looked up once, not per record (an enum member is a class attribute lookup away).
_APPLIED, _STALE, _DUPLICATE = Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE

# Statuses whose arrival can complete an order (a cancelled sibling can, too).
_ORDER_TRIGGERS = SHIPPED_STATUSES | {Status.CANCELLED}
# No stalled order rule, or a record that changed no status: no entry to tell apart.
_NONE_REACHED: frozenset[Status] = frozenset()


def decide(
    records: Iterable[Record],
    *,
    orders: Mapping[str, OrderView],
    rules: Sequence[Rule],
    now: datetime,
    due_adjuster: DueAdjuster | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    operator_email: str | None = None,
) -> Decision:
    """Apply records in order to the loaded orders; say what to store and which notices to create.

    A record its fulfillment has taken already is a duplicate (`is_duplicate`), checked
    against the state as each record leaves it: a redelivery within the batch is one too.
    `orders` is updated in place, so a caller can keep using it as the current state. A
    future-dated record (more than `future_tolerance` past its receipt) is ordered, and
    its notices made due, as if it happened when received; the decision lists it.
    Notices of rules `to = "operator"` go to `operator_email`.
    """
    decision = Decision()
    ctx = _Context(now, decision, due_adjuster, operator_email)
    stalled_order_statuses = {
        rule.on for rule in rules if rule.scope is Scope.ORDER and rule.stalled_after is not None
    }
    # The rules each status triggers, looked up per record: built once per call. A disabled
    # rule fires for nothing (rules.applies_to), so it is left out here, not asked per record.
    fulfillment_rules = {
        status: [rule for rule in rules_on(rules, status, Scope.FULFILLMENT) if rule.enabled]
        for status in Status
    }
    order_rules_on = {
        status: [rule for rule in rules_on(rules, status, Scope.ORDER) if rule.enabled]
        for status in Status
    }
    order_of, note_outcome, states = orders.get, decision.outcomes.append, decision.states
    # A batch's records share their receipt: the latest future-dated limit is kept.
    received: datetime | None = None
    limit = now
    for position, record in enumerate(records):
        order = order_of(record.order_id)
        if order is None:
            order = OrderView(record.order_id)
            assert isinstance(orders, dict)
            orders[record.order_id] = order
        # models.future_skew and ordering_time, inline (two calls a record saved): the
        # record's ordering time is its receipt if it is dated too far ahead of it.
        at = record.occurred_at
        skew = None
        if at is None:
            at = record.received_at
        else:
            if record.received_at is not received:
                received = record.received_at
                limit = received + future_tolerance
            if at > limit:
                skew, at = at - record.received_at, record.received_at
        known = order.fulfillments.get(record.fulfillment_id)
        if known is None:  # a new fulfillment, as most of a batch's are: nothing to compare
            state, outcome = _state_from(record, at, skew is not None), _APPLIED
        else:
            state, outcome = _apply(known, record, at, skew is not None)
        note_outcome((record, outcome))
        if outcome is _DUPLICATE:
            decision.duplicates += 1
            continue
        if record.order_fulfillment_ids and record.order_fulfillment_ids != order.fulfillment_ids:
            order.fulfillment_ids = record.order_fulfillment_ids
            decision.order_fulfillment_ids[order.order_id] = record.order_fulfillment_ids

        if skew is not None:
            decision.future_dated.append((record, skew))
        if outcome is _STALE:
            order.fulfillments[record.fulfillment_id] = state  # it remembers the stale key
            states[record.fulfillment_id] = state
            continue
        # A stalled order rule is about the order *entering* its status: a later change that
        # finds it still there (a sibling delivered) is no new entry.
        already_at = (
            {status for status in stalled_order_statuses if order_reached(order, status)}
            if stalled_order_statuses and outcome is _APPLIED
            else _NONE_REACHED
        )
        order.fulfillments[record.fulfillment_id] = states[record.fulfillment_id] = state
        if outcome is not _APPLIED:
            continue
        for rule in fulfillment_rules[record.status]:
            if applies_to(rule, record):
                own = notice_fulfillment_ids(rule, record, order)
                _consider(rule, record, position, at, order, own, ctx)
        if record.status in _ORDER_TRIGGERS:
            for status in (Status.SHIPPED, Status.DELIVERED):
                order_rules = order_rules_on[status]
                if order_rules and order_reached(order, status):
                    for rule in order_rules:
                        if rule.stalled_after is not None and status in already_at:
                            continue
                        if not applies_to(rule, record):
                            continue
                        shipped = notice_fulfillment_ids(rule, record, order)
                        _consider(rule, record, position, at, order, shipped, ctx)
    return decision


@dataclass(frozen=True, slots=True)
class _Context:
    """What every notice of one decide() call shares."""

    now: datetime
    decision: Decision
    due_adjuster: DueAdjuster | None
    operator_email: str | None


def _consider(
    rule: Rule,
    record: Record,
    position: int,
    at: datetime,
    order: OrderView,
    fulfillment_ids: tuple[str, ...],
    ctx: _Context,
) -> None:
    """A notice of `rule` for `record`, unless held back. The caller has checked that the
    rule applies to the record (rules.applies_to): most records meet no rule's conditions,
    and need not have their notice's fulfillments worked out first."""
    now, decision, due_adjuster = ctx.now, ctx.decision, ctx.due_adjuster
    # `at` is the record's ordering time: a future date would hold the notice back for hours.
    if rule.max_age is not None and now - at > rule.max_age:
        decision.skipped.append((rule.id, record, f"older than max_age {rule.max_age}"))
        return
    key = notice_key_at(rule, record, at)
    due_at = max(now, at + rule.delay)
    if rule.stalled_after is not None:
        # Due once the status has stood that long; the re-check before sending cancels it
        # if anything changed since (notifier.core.stalled).
        due_at = max(now, at + rule.stalled_after + rule.delay)
    if key in decision.notice_keys:
        return  # an order can reach Shipped, then Delivered, in one batch: one notice
    group = None
    if rule.digest is not None:
        # Due at the end of the window it falls due in, with the window's other notices.
        start, due_at = digest_window(due_at, rule.digest)
        group = digest_key(rule.id, start)
    to_operator = rule.to is Audience.OPERATOR
    # Quiet hours keep the customer's night free; the operator's alerts keep their window.
    if due_adjuster is not None and not to_operator:
        due_at = due_adjuster(due_at, record.campaign_id)
    decision.notice_keys.add(key)
    decision.triggers[key] = position
    decision.notices.append(
        build_notice(
            rule,
            record,
            order,
            fulfillment_ids,
            now=now,
            at=at,
            due_at=due_at,
            operator_email=ctx.operator_email,
            digest_key=group,
        )
    )


def notice_fulfillment_ids(rule: Rule, record: Record, order: OrderView) -> tuple[str, ...]:
    """The fulfillments a notice of this rule is about: its own, or the order's shipped ones."""
    if rule.scope is Scope.ORDER:
        return shipped_fulfillment_ids(order)
    return (record.fulfillment_id,)


def notice_key_at(rule: Rule, record: Record, at: datetime) -> str:
    """The notice's key; a stalled rule's also names the entry (at `at`) it is about, so a
    fulfillment that leaves its status and enters it again can stall again."""
    key = notice_key(rule, record)
    return stalled_key(key, at) if rule.stalled_after is not None else key


def build_notice(
    rule: Rule,
    record: Record,
    order: OrderView,
    fulfillment_ids: tuple[str, ...],
    *,
    now: datetime,
    at: datetime,
    due_at: datetime,
    operator_email: str | None = None,
    digest_key: str | None = None,
) -> NewNotice:
    """The one place a notice is made from a record: decide and preview both build here.

    `at` is the record's ordering time (for a stalled rule, the entry into its status);
    a rule `to = "operator"` sends to `operator_email` instead of the record's address."""
    missing = missing_fields(rule, record)
    to_operator = rule.to is Audience.OPERATOR
    return NewNotice(
        key=notice_key_at(rule, record, at),
        rule_id=rule.id,
        scope=rule.scope,
        order_id=order.order_id,
        fulfillment_id=record.fulfillment_id if rule.scope is Scope.FULFILLMENT else None,
        recipient=operator_email if to_operator else record.email,
        campaign_id=record.campaign_id,
        due_at=due_at,
        created_at=now,
        fulfillment_ids=fulfillment_ids,
        record=record.to_json(),
        # Missing data is visible in the ledger as a cancelled notice with the reason.
        status=NoticeStatus.CANCELLED if missing else NoticeStatus.PENDING,
        reason=f"missing {', '.join(missing)}" if missing else None,
        entered_at=at if rule.stalled_after is not None else None,
        digest_key=digest_key,
    )
