"""How a claimed notice ends: the decisions delivery makes, pure (no clock, no store).

Whether a claimed notice may still be sent (`cancel_reason`, re-checked right before
sending) and what a failed send leads to (`retry_outcome`: retry after the backoff, or
give up) are rules of the contract (docs/design.md §4); the engine applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from notifier.core.decide import OrderView
from notifier.core.models import Notice, NoticeStatus
from notifier.core.retry_policy import RetryPolicy
from notifier.core.rules import Rule
from notifier.core.stalled import moved_on
from notifier.errors import AmbiguousSendError, SendError
from notifier.store.base import Completion

log = logging.getLogger("notifier.engine")


class SendInterrupted(AmbiguousSendError):
    """interrupted by a crash during its send (may have arrived)"""


def retry_outcome(
    notice: Notice,
    exc: SendError,
    *,
    ambiguous: bool,
    now: datetime,
    policy: RetryPolicy,
    max_ambiguous: int,
) -> Completion:
    """A failed send's outcome: retry after the backoff, or `failed` once the policy gives up
    or (ambiguous) once a further try could deliver a second copy."""
    if ambiguous and notice.ambiguous_attempts + 1 >= max_ambiguous:
        reason = (
            f"gave up after {notice.attempts} attempts: delivery ambiguous twice"
            f" (may have arrived): {exc}"
        )
        return Completion(NoticeStatus.FAILED, at=now, reason=reason, ambiguous=True)
    next_at = policy.next_attempt(
        attempts=notice.attempts,
        first_attempt_at=notice.first_attempt_at or now,
        now=now,
        retry_after=exc.retry_after,
    )
    if next_at is None:
        reason = f"gave up after {notice.attempts} attempts: {exc}"
        log.warning("notice %s failed: %s", notice.key, reason)
        return Completion(NoticeStatus.FAILED, at=now, reason=reason, ambiguous=ambiguous)
    kind = "ambiguous" if ambiguous else "transient"
    log.info(
        "notice %s: %s failure, next attempt %s: %s", notice.key, kind, next_at.isoformat(), exc
    )
    return Completion(
        NoticeStatus.RETRY, at=now, due_at=next_at, reason=f"{kind}: {exc}", ambiguous=ambiguous
    )


def cancel_reason(
    notice: Notice, rule: Rule | None, order: OrderView, suppressed: Mapping[str, str]
) -> str | None:
    """Why a claimed notice must not be sent after all (re-checked right before sending)."""
    if rule is None:
        return f"rule {notice.rule_id!r} no longer exists"
    if not rule.enabled:
        return f"rule {rule.id!r} is disabled"
    if not notice.recipient:
        return "no email address"
    if (why := suppressed.get(notice.recipient.casefold())) is not None:
        return f"address suppressed: {why}"
    for fulfillment_id in notice.fulfillment_ids:
        state = order.fulfillments.get(fulfillment_id)
        if state is not None and state.status in rule.cancel_if:
            return f"fulfillment {fulfillment_id} is now {state.status.value}"
    if notice.entered_at is not None:
        return moved_on(
            on=rule.on,
            scope=notice.scope,
            fulfillment_ids=notice.fulfillment_ids,
            entered_at=notice.entered_at,
            order=order,
        )
    return None
