"""What an engine is set up with, besides its store and transport: read once at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from notifier.core.decide import DueAdjuster
from notifier.core.models import DEFAULT_FUTURE_TOLERANCE
from notifier.core.retry_policy import RetryPolicy
from notifier.rendering.branding import Branding


@dataclass(frozen=True, slots=True)
class EngineConfig:
    # Sender and shop details for composing; the engine itself needs its Message-ID domain.
    branding: Branding
    lease: timedelta = timedelta(minutes=5)
    claim_batch: int = 64
    ingest_chunk: int = 1000
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # After this many deliveries that died after DATA, stop: a further try risks a duplicate.
    max_ambiguous: int = 2
    # Applied to each new notice's due time (quiet hours); None: due when the rule says.
    due_adjuster: DueAdjuster | None = None
    # Notices between "handed to the transport" and "outcome recorded" at any moment: a
    # crash leaves at most these marked as sending (ambiguous). The wiring makes it twice
    # the SMTP connections, so that sends wait in the transport to be chained after the
    # content before them (notifier.transports.smtp); marks only happen on a connection,
    # so in practice at most one notice a connection is marked and not recorded.
    max_in_flight: int = 4
    # A record dated later than its receipt by more than this is taken as received now.
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    # NOTIFIER_OPERATOR_EMAIL: where rules with to = "operator" send.
    operator_email: str | None = None
    # NOTIFIER_SENT_COPY_RETENTION: how long each sent message's bytes are kept; 0: none.
    sent_copy_retention: timedelta = timedelta(days=30)
