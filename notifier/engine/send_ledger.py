"""The ledger writes of sending: each send's mark and each outcome, in shared transactions.

A delivery writes twice a message: its send mark (DATA is next) and its outcome. Each
written in a transaction of its own, that was the largest cost of a delivery after
rendering (bench/delivery.py: two commits a message, most of their time SQLite writing
the same pages of the notices table and its indexes again). Here both kinds go through one
group committer, and an outcome that ends while another send is on its way to its mark
rides with that mark: about one transaction a message instead of ~1.6.

Why that keeps the crash bound (at most max_in_flight notices marked as sending but not
recorded, the ones a crash makes ambiguous): the outcome is queued before its send gives
up its slot, and the committer writes in order, every waiting item in the next
transaction. So the next send to mark -- on that slot or any other -- commits the
queued outcome with its mark or before it; until then the slot's new send has not
begun its DATA. (A send marks only once it holds a connection, and the next mark on that
connection commits the outcome before it: so at a crash, in practice, at most one notice a
connection is marked and not recorded, whatever max_in_flight allows.) An outcome never
waits long for company: when no other send is on its
way to a mark (or the one that was gives up without marking) it is written at once, and
in any case within RIDE_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence

from notifier.engine.group_commit import GroupCommitter, InlineWriter
from notifier.store.base import Completion

# The longest an outcome waits for a send mark to ride with (a mark follows another every
# few hundred microseconds under load; this bounds the rest).
RIDE_SECONDS = 0.005

# (key, completion): how a notice's send ended; (key, None): its send mark.
SendWrite = tuple[str, Completion | None]


class Approach:
    """One send between taking its slot and writing its mark (or ending without one)."""

    def __init__(self, ledger: SendLedger) -> None:
        self._ledger = ledger
        self._left = False

    def leave(self, *, flush: bool) -> None:
        if not self._left:
            self._left = True
            self._ledger._approaching -= 1
            if flush and not self._ledger._approaching:
                self._ledger.flush()


class SendLedger:
    def __init__(
        self,
        write: Callable[[Sequence[SendWrite]], Sequence[bool]],
        *,
        try_inline: InlineWriter | None,
    ) -> None:
        """`write` (blocking) records a group of SendWrites in one transaction, one answer
        (False: the claim is no longer ours) each."""
        self._committer: GroupCommitter[SendWrite, bool] = GroupCommitter(
            write, try_inline=try_inline, grace_turns=1
        )
        self._approaching = 0  # sends between their slot and their mark
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def groups(self) -> int:
        """Transactions committed (for tests and metrics)."""
        return self._committer.groups

    @contextlib.contextmanager
    def approaching(self) -> Iterator[Approach]:
        """Around a send's attempt: while it lasts, outcomes may wait for its mark."""
        self._approaching += 1
        approach = Approach(self)
        try:
            yield approach
        finally:
            approach.leave(flush=True)

    async def mark(self, key: str, approach: Approach | None = None) -> bool:
        """Write that this notice's send starts (with every outcome waiting); False if the
        claim is no longer ours."""
        if approach is not None:
            approach.leave(flush=False)  # this write takes what waited for it
        return await self._committer.submit((key, None))

    async def record(self, key: str, completion: Completion) -> bool:
        """Write how this notice ended, now (with whatever waits)."""
        return await self._committer.submit((key, completion))

    def record_later(self, key: str, completion: Completion) -> asyncio.Future[bool] | None:
        """Queue how this notice ended to go with the next send mark, if a send is on its
        way to one; None if none is (then `record` it)."""
        if not self._approaching:
            return None
        queued = self._committer.enqueue((key, completion))
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(RIDE_SECONDS, self.flush)
        return queued

    def flush(self) -> None:
        """Write what waits, unless a write that takes it is on its way."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._committer.flush()
