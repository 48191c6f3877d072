"""The one orchestrator: ingest -> decide -> claim -> send -> record.

Every entry point (batch run, webhook, scheduler, preview) goes through an Engine. It is
handed its store, transport, rules and renderer; it imports no driver or framework.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TypeVar

from notifier.core.decide import OrderView
from notifier.core.mime import wire_bytes
from notifier.core.models import (
    Notice,
    NoticeStatus,
    message_id_for,
)
from notifier.core.redact import mask_email
from notifier.core.rules import Rule, operator_problems
from notifier.engine.claimant import holder_is_gone, this_process
from notifier.engine.config import EngineConfig
from notifier.engine.group_commit import InlineWriter
from notifier.engine.ingesting import Ingesting
from notifier.engine.outcomes import SendInterrupted, cancel_reason, retry_outcome
from notifier.engine.reports import (
    Clock,
    DeliveryReport,
    NullObserver,
    Observer,
    utc_now,
)
from notifier.engine.send_ledger import Approach, SendLedger
from notifier.errors import (
    AmbiguousSendError,
    ConfigError,
    NotifierError,
    PermanentSendError,
    SendError,
    StoreError,
    TemplateError,
    TransientSendError,
)
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer
from notifier.store.base import Completion, Store
from notifier.transports import Transport

T = TypeVar("T")

log = logging.getLogger("notifier.engine")
# Sent copies deleted per delivery pass at most: more than a pass sends, so it keeps up.
PRUNE_BATCH = 500
# Messages composed between two turns of the event loop when a batch is composed (see
# Engine._compose_batch): other work on the loop (webhook requests) waits at most this many.
COMPOSE_TURN = 16


class _ClaimLost(Exception):
    """Another worker holds this notice now: it must not be sent from here."""


class _Stopped(Exception):
    """The process is stopping: a send that has not begun its DATA does not begin it."""


@dataclass(frozen=True, slots=True)
class _Composed:
    """A notice's message, built and ready for the transport."""

    message: EmailMessage
    message_id: str


# What a single notice's send starts from: its message, or how it ended without one
# (cancelled by the re-check, or its template failed).
_Prepared = _Composed | Completion


class Engine(Ingesting):
    """Ingestion (engine.ingesting) and delivery, over one store and one transport."""

    def __init__(
        self,
        *,
        store: Store,
        transport: Transport,
        rules: Sequence[Rule],
        renderer: Renderer,
        config: EngineConfig,
        clock: Clock = utc_now,
        observer: Observer | None = None,
        inline_writer: InlineWriter | None = None,
    ) -> None:
        if problems := operator_problems(rules, config.operator_email):
            raise ConfigError("\n".join(problems))
        self.store = store
        # From the wiring: how this store writes on the event loop's thread when it is free.
        self.inline_writer = inline_writer
        self.transport = transport
        self.rules = tuple(rules)
        self.rules_by_id = {rule.id: rule for rule in self.rules}
        self.config = config
        self.composer = Composer(renderer, config.branding)
        self.clock = clock
        self.observer: Observer = observer or NullObserver()
        # The claim token names this process, so that after a crash a restart on the same
        # machine takes its notices over at once (notifier.engine.claimant).
        self.claimant = this_process()
        self.worker_id = self.claimant.token
        # Send marks and outcomes, group-committed together; an outcome rides with the next
        # send's mark when one is on its way (notifier.engine.send_ledger).
        self._ledger = SendLedger(
            lambda writes: self.store.record_sends(writes, token=self.worker_id, now=self.clock()),
            try_inline=inline_writer,
        )
        # Sources already warned about future-dated records: one warning each per process.
        self._warned_sources: set[str] = set()

    # --- deliver --------------------------------------------------------------------------

    async def deliver_due(
        self, *, limit: int | None = None, stopping: Callable[[], bool] | None = None
    ) -> DeliveryReport:
        """Deliver every notice due now (at most `limit`), batch by batch, until none is left.

        `stopping` is asked before each new batch and before each send: a shutting-down
        worker finishes the sends it has handed to the transport and starts no others; the
        notices it claimed but never started stay claimed for its caller to release.
        """
        report = DeliveryReport()
        await self.take_over_orphans()
        while (limit is None or report.total < limit) and not (stopping and stopping()):
            batch = (
                self.config.claim_batch
                if limit is None
                else min(self.config.claim_batch, limit - report.total)
            )
            claimed = await self.claim(batch)
            if not claimed:
                break
            report.add(await self.deliver_claimed(claimed, stopping=stopping))
        if report.total:
            await self.prune_sent_copies()
        return report

    async def prune_sent_copies(self) -> int:
        """Drop sent copies older than the retention: a bounded DELETE after each pass that
        sent something, so the table stays at about the retention's worth of mail."""
        if not self.config.sent_copy_retention:
            return 0
        before = self.clock() - self.config.sent_copy_retention
        try:
            return await asyncio.to_thread(
                self.store.prune_sent_copies, before=before, limit=PRUNE_BATCH
            )
        except StoreError as exc:  # only housekeeping: the next pass tries again
            log.warning("could not prune sent copies: %s", exc)
            return 0

    async def claim(self, limit: int) -> list[Notice]:
        now = self.clock()
        return await self._on_store(
            lambda: self.store.claim_due(
                now=now, limit=limit, lease_until=now + self.config.lease, token=self.worker_id
            )
        )

    async def _on_store(self, call: Callable[[], T]) -> T:
        """A batch's short store call (its claim, the orders and suppressions it reads): on
        the event loop's own thread where the store can run it at once (SQLite, its write
        lock free this instant: the wiring's inline writer), else on a thread.

        Each hop to a thread and back took 130-300 µs on a loaded machine, three a batch,
        with the loop idle meanwhile: run here, the paired delivery went from 1.47x to 1.50x
        (bench/delivery.py). A claim of a batch holds the loop for about as long as
        composing a turn of COMPOSE_TURN messages does; a store that would make it wait (the
        lock taken, PostgreSQL's round trips) still goes to a thread."""
        if self.inline_writer is not None:
            done = self.inline_writer(call)
            if done is not None:
                return done
        return await asyncio.to_thread(call)

    async def take_over_orphans(self) -> int:
        """Make notices claimed by a crashed process on this machine due now (no lease wait).

        Those whose send had started at the crash (marked in the ledger) may have arrived:
        when claimed, each counts as one ambiguous attempt and waits for the retry backoff,
        or fails after the second (Engine._deliver_one), as after a lease running out.
        Holders on other machines wait for the lease.
        """
        holders = await self._on_store(self.store.claim_holders)
        dead = [
            token
            for token in holders
            if token != self.worker_id and holder_is_gone(token, me=self.claimant)
        ]
        if not dead:
            return 0
        taken = await asyncio.to_thread(self.store.expire_claims, dead, now=self.clock())
        if taken:
            log.warning(
                "took over %d notice(s) claimed by %d crashed process(es) on this machine;"
                " any whose send had started count as an ambiguous attempt (may have arrived)",
                taken,
                len(dead),
            )
        return taken

    async def deliver_keys(self, keys: Sequence[str]) -> DeliveryReport:
        """Deliver just these notices, those of them that are due, through the same path."""
        now = self.clock()
        claimed = await self._on_store(
            lambda: self.store.claim_keys(
                keys, now=now, lease_until=now + self.config.lease, token=self.worker_id
            )
        )
        if not claimed:
            return DeliveryReport()
        return await self.deliver_claimed(claimed)

    async def resend(self, key: str) -> tuple[str, DeliveryReport]:
        """Send a sent (or failed) notice again, as a new notice `<key>#resend-<n>`.

        The copy has its own key, so its own Message-ID: mail clients show it as a new
        message. It is an operator's explicit decision; the CLI insists on --force.
        """
        new_key = await self.add_resend(key)
        return new_key, await self.deliver_keys([new_key])

    async def add_resend(self, key: str) -> str:
        """The first half of `resend`: the new notice, due now, not yet sent; its key."""
        original = await asyncio.to_thread(self.store.notice, key)
        if original is None:
            raise NotifierError(f"no notice with key {key!r} (see `notifier notices`)")
        if original.status not in (NoticeStatus.SENT, NoticeStatus.FAILED):
            raise NotifierError(
                f"notice {key!r} is {original.status.value}, not sent or failed: a resend now"
                " could deliver it twice (use `notifier retry` for notices waiting to retry)"
            )
        new_key = await asyncio.to_thread(
            self.store.add_resend,
            key,
            now=self.clock(),
            reason=f"resend of {key} ({original.status.value}), forced by the operator",
        )
        if new_key is None:
            raise NotifierError(f"notice {key!r}: another resend was added at the same time")
        log.warning(
            "resending notice %s to %s as %s (forced by the operator; new Message-ID)",
            key,
            mask_email(original.recipient or ""),
            new_key,
        )
        return new_key

    async def deliver_claimed(
        self, claimed: Sequence[Notice], *, stopping: Callable[[], bool] | None = None
    ) -> DeliveryReport:
        orders = await self._on_store(lambda: self.store.orders({n.order_id for n in claimed}))
        suppressed = await self._on_store(
            lambda: self.store.suppressed([n.recipient for n in claimed if n.recipient])
        )
        report = DeliveryReport()
        in_flight = asyncio.Semaphore(self.config.max_in_flight)
        digests: dict[str, list[Notice]] = {}
        for notice in claimed:
            if notice.digest_key is not None:
                digests.setdefault(notice.digest_key, []).append(notice)
        singles = [notice for notice in claimed if notice.digest_key is None]
        prepared = await self._compose_batch(singles, orders, suppressed)
        sent_singly = await asyncio.gather(
            *(
                self._deliver_one(notice, prepared.get(notice.key), in_flight, stopping)
                for notice in singles
            )
        )
        gathered = await asyncio.gather(
            *(
                self._deliver_digest(members, orders, suppressed, in_flight, stopping)
                for members in digests.values()
            )
        )
        results = [*sent_singly, *(result for group in gathered for result in group)]
        for completion, kept in filter(None, results):
            if kept:
                report.counts[completion.status] += 1
                report.ambiguous += completion.ambiguous
            else:
                report.lost_claims += 1
        return report

    async def _compose_batch(
        self,
        notices: Sequence[Notice],
        orders: Mapping[str, OrderView],
        suppressed: Mapping[str, str],
    ) -> dict[str, _Prepared]:
        """Each notice's message (or its end without one), by key, composed before the
        batch's first send; not those whose last send was cut off (they are not sent now).

        Composed back to back, a message took about half the CPU it took when each was
        composed between other notices' network and ledger work (bench/delivery.py: the
        templates' code and data stay in the CPU's caches). The cost: a message's Date
        header is when its batch was composed, up to the batch's sending time (tens of
        milliseconds) before it leaves. The re-check reads the same state either way: the
        orders and suppressions read once for the batch."""
        prepared: dict[str, _Prepared] = {}
        for notice in notices:
            if notice.send_started_at is not None:
                continue
            if prepared and len(prepared) % COMPOSE_TURN == 0:
                await asyncio.sleep(0)  # let the loop's other work run between turns
            prepared[notice.key] = self._prepare(notice, orders[notice.order_id], suppressed)
        return prepared

    async def _deliver_one(
        self,
        notice: Notice,
        prepared: _Prepared | None,
        in_flight: asyncio.Semaphore,
        stopping: Callable[[], bool] | None = None,
    ) -> tuple[Completion, bool] | None:
        """Send one notice from what _compose_batch prepared for it (None: its last send
        was cut off), and record how it ended."""
        if notice.send_started_at is not None:
            # Its last send was cut off (a crash, a lease run out) once its DATA had begun:
            # it may have arrived. Sent again at once, a crash loop would
            # multiply it; so it is one ambiguous attempt, like a connection dropped after
            # DATA, and waits for the backoff (or, the second time, stops for the operator).
            started = self.clock()
            completion = self._retry(notice, SendInterrupted(), ambiguous=True)
            log.warning(
                "notice %s: its send at %s was interrupted (may have arrived): %s",
                notice.key,
                notice.send_started_at.isoformat(),
                completion.status.value,
            )
            kept = await self._record(notice, completion)
        else:
            assert prepared is not None
            # Sending and recording hold one slot together, so sends never race ahead of the
            # ledger: at a crash, at most max_in_flight notices are marked as sending.
            # The outcome is queued before the slot is given up, to ride with the next send
            # mark (notifier.engine.send_ledger: the bound holds), or written in the slot.
            async with in_flight:
                if stopping is not None and stopping():
                    return None  # shutting down: a shutdown waits for one send, not a batch
                started = self.clock()
                with self._ledger.approaching() as approach:
                    try:
                        completion = await self._attempt(notice, prepared, approach, stopping)
                    except _ClaimLost:
                        log.warning("notice %s: claim lost before its send", notice.key)
                        return Completion(NoticeStatus.SENDING, at=self.clock()), False
                    except _Stopped:
                        return None  # still claimed, unmarked: the shutdown gives it back
                queued = self._ledger.record_later(notice.key, completion)
                if queued is None:
                    kept = await self._record(notice, completion)
            if queued is not None:
                kept = await self._record(notice, completion, queued=queued)
        if not kept:
            log.warning("notice %s: claim lost to another worker (lease expired?)", notice.key)
        seconds = (self.clock() - started).total_seconds()
        self.observer.completed(completion.status, seconds=seconds, ambiguous=completion.ambiguous)
        return completion, kept

    async def _deliver_digest(
        self,
        members: Sequence[Notice],
        orders: Mapping[str, OrderView],
        suppressed: Mapping[str, str],
        in_flight: asyncio.Semaphore,
        stopping: Callable[[], bool] | None = None,
    ) -> list[tuple[Completion, bool] | None]:
        """One digest's claimed notices: each re-checked, the rest sent as ONE message."""
        started = self.clock()
        outcomes: list[tuple[Notice, Completion]] = []
        if any(member.send_started_at is not None for member in members):
            # Its last send was cut off (as in _deliver_one): one ambiguous attempt for all.
            outcomes = [(m, self._retry(m, SendInterrupted(), ambiguous=True)) for m in members]
            log.warning("digest %s: its send was interrupted (may have arrived)", members[0].key)
        else:
            async with in_flight:
                if stopping is not None and stopping():
                    return [None] * len(members)
                rule = self.rules_by_id.get(members[0].rule_id)
                live = []
                for member in members:
                    why = self.cancel_reason(member, rule, orders[member.order_id], suppressed)
                    if why is None:
                        live.append(member)
                    else:
                        log.info("notice %s cancelled: %s", member.key, why)
                        outcomes.append(
                            (member, Completion(NoticeStatus.CANCELLED, at=started, reason=why))
                        )
                if live:
                    assert rule is not None
                    try:
                        completion = await self._attempt_digest(live, rule, orders, stopping)
                    except _ClaimLost:
                        log.warning("digest of %s: claim lost before its send", live[0].key)
                        lost = Completion(NoticeStatus.SENDING, at=self.clock())
                        return [(lost, False)] * len(members)
                    except _Stopped:
                        return [None] * len(members)
                    outcomes += [(member, completion) for member in live]
        kept = await asyncio.gather(*(self._record(m, c) for m, c in outcomes))
        seconds = (self.clock() - started).total_seconds()
        for _, completion in outcomes:
            self.observer.completed(
                completion.status, seconds=seconds, ambiguous=completion.ambiguous
            )
        return [(c, k) for (_, c), k in zip(outcomes, kept, strict=True)]

    async def _attempt_digest(
        self,
        live: Sequence[Notice],
        rule: Rule,
        orders: Mapping[str, OrderView],
        stopping: Callable[[], bool] | None = None,
    ) -> Completion:
        """Render and send the digest of these notices; how it went holds for each of them."""
        lead = live[0]
        assert lead.digest_key is not None
        # From the window, not the notices: a resend after a crash carries the same one.
        message_id = message_id_for(lead.digest_key, self.config.branding.message_id_domain)
        now = self.clock()
        members = [(member, orders[member.order_id]) for member in live]
        try:
            message = self.composer.compose_digest(members, rule, message_id=message_id, now=now)
        except TemplateError as exc:
            log.error("digest %s failed: %s", lead.digest_key, exc)
            return Completion(NoticeStatus.FAILED, at=now, reason=str(exc))

        async def mark_all() -> None:
            if stopping is not None and stopping():
                raise _Stopped(lead.key)
            await asyncio.gather(*(self._mark_send_started(member) for member in live))

        return await self._transmit(lead, message, message_id, mark_all)

    async def _record(
        self, notice: Notice, completion: Completion, *, queued: Awaitable[bool] | None = None
    ) -> bool:
        """Write how a notice ended (`queued`: already queued, SendLedger.record_later),
        trying again while the store is locked or away.

        A message that was sent but not recorded would be sent again when its lease runs
        out, so this keeps trying for up to half the lease (no other worker takes the
        notice meanwhile) before giving up.
        """

        def write() -> Awaitable[bool]:
            nonlocal queued
            if queued is not None:
                first, queued = queued, None
                return first
            return self._ledger.record(notice.key, completion)

        return await self._persist(
            write, f"notice {notice.key}: could not record that it is {completion.status.value}"
        )

    async def _mark_send_started(
        self,
        notice: Notice,
        approach: Approach | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        """Write (committed) that this notice's message is about to leave (the transport's
        before_data: for SMTP, DATA is next), so a crash before its outcome is recorded
        counts as an attempt; raise _ClaimLost if another
        worker holds it now (it must not be sent from here), _Stopped if the process is
        stopping (a send waiting in the transport for a connection gets this far: its
        envelope may have gone, chained after another's content, but no DATA begins)."""
        if stopping is not None and stopping():
            raise _Stopped(notice.key)
        kept = await self._persist(
            lambda: self._ledger.mark(notice.key, approach),
            f"notice {notice.key}: could not record that its send starts",
        )
        if not kept:
            raise _ClaimLost(notice.key)

    async def _persist(self, write: Callable[[], Awaitable[bool]], failing: str) -> bool:
        """Run a ledger write, trying again while the store is locked or away, for up to
        half the lease (no other worker takes the notice meanwhile)."""
        deadline = time.monotonic() + self.config.lease.total_seconds() / 2
        delay = 0.25
        while True:
            try:
                return await write()
            except StoreError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s, trying again in %.2f s: %s", failing, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _prepare(
        self, notice: Notice, order: OrderView, suppressed: Mapping[str, str]
    ) -> _Prepared:
        """Re-check a notice and compose its message, or say how it ends without one."""
        now = self.clock()
        rule = self.rules_by_id.get(notice.rule_id)
        reason = self.cancel_reason(notice, rule, order, suppressed)
        if reason is not None:
            log.info("notice %s cancelled: %s", notice.key, reason)
            return Completion(NoticeStatus.CANCELLED, at=now, reason=reason)
        assert rule is not None and notice.recipient is not None
        message_id = message_id_for(notice.key, self.config.branding.message_id_domain)
        try:
            message = self.composer.compose(notice, rule, order, message_id=message_id, now=now)
        except TemplateError as exc:
            log.error("notice %s failed: %s", notice.key, exc)
            return Completion(NoticeStatus.FAILED, at=now, reason=str(exc))
        except Exception as exc:
            # A bug or data no one foresaw must fail this one notice, not stall the batch
            # (and every later pass) with a notice stuck in `sending`.
            log.exception("notice %s: could not build the message", notice.key)
            reason = f"could not build the message: {type(exc).__name__}: {exc}"
            return Completion(NoticeStatus.FAILED, at=now, reason=reason)
        return _Composed(message, message_id)

    async def _attempt(
        self,
        notice: Notice,
        prepared: _Prepared,
        approach: Approach,
        stopping: Callable[[], bool] | None = None,
    ) -> Completion:
        if isinstance(prepared, Completion):
            return prepared  # cancelled or failed as it was composed: nothing to send
        # Marked as the message is about to leave (for SMTP: envelope accepted, DATA next),
        # not before connecting: a crash before that point cannot have delivered it, so it
        # must not cost the notice one of its two ambiguous chances.
        return await self._transmit(
            notice,
            prepared.message,
            prepared.message_id,
            lambda: self._mark_send_started(notice, approach, stopping),
        )

    async def _transmit(
        self,
        notice: Notice,
        message: EmailMessage,
        message_id: str,
        before_data: Callable[[], Awaitable[None]],
    ) -> Completion:
        """Hand a built message to the transport; every error classified into a Completion."""
        assert notice.recipient is not None
        try:
            reply = await self.transport.send(message, before_data=before_data)
        except (_ClaimLost, _Stopped, StoreError):
            raise  # from the send mark: not a send error, and nothing was sent
        except PermanentSendError as exc:
            log.warning(
                "notice %s to %s refused: %s", notice.key, mask_email(notice.recipient), exc
            )
            return Completion(
                NoticeStatus.FAILED,
                at=self.clock(),
                reason=f"permanent: {exc}",
                message_id=message_id,
                suppress_reason=f"hard bounce: {exc}" if exc.recipient_refused else None,
            )
        except AmbiguousSendError as exc:
            return self._retry(notice, exc, ambiguous=True)
        except TransientSendError as exc:
            return self._retry(notice, exc, ambiguous=False)
        except SendError as exc:  # an unclassified send error: treat as transient
            return self._retry(notice, exc, ambiguous=False)
        except Exception as exc:
            # The safety net: a transport broke its contract and raised something it did not
            # classify. Nothing says how far the message got, so it may have left: counted
            # transient, it would be retried for two days, and a bug that strikes after the
            # message left would mail the customer on every retry. Ambiguous allows one more
            # try with the same Message-ID, then fails the notice "may have arrived".
            # One log line at ERROR; the traceback only when the log level asks for detail.
            log.error(
                "notice %s: the transport raised an unclassified %s, counted as ambiguous: %s",
                notice.key,
                type(exc).__name__,
                exc,
                exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            )
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            unforeseen = AmbiguousSendError(f"unexpected error from the transport: {what}")
            return self._retry(notice, unforeseen, ambiguous=True)
        log.info("notice %s sent to %s", notice.key, mask_email(notice.recipient))
        return Completion(
            NoticeStatus.SENT,
            at=self.clock(),
            message_id=message_id,
            detail=reply,
            # Kept (compressed) with the outcome, for the console to show as it was sent.
            sent_bytes=wire_bytes(message) if self.config.sent_copy_retention else None,
        )

    def _retry(self, notice: Notice, exc: SendError, *, ambiguous: bool) -> Completion:
        return retry_outcome(
            notice,
            exc,
            ambiguous=ambiguous,
            now=self.clock(),
            policy=self.config.retry_policy,
            max_ambiguous=self.config.max_ambiguous,
        )

    def cancel_reason(
        self, notice: Notice, rule: Rule | None, order: OrderView, suppressed: Mapping[str, str]
    ) -> str | None:
        """Why a claimed notice must not be sent after all (re-checked right before sending)."""
        return cancel_reason(notice, rule, order, suppressed)
