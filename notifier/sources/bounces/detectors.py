"""Bounces that follow no standard (qmail, old Postfix and Exim, Yahoo, Exchange...), read by
flufl.bounce's detectors — the ones Mailman has kept up for two decades — not by our own
guesses.

flufl.bounce tells permanent failures from temporary ones; its temporary ones are the
"still trying" warnings some MTAs send, which are deferrals, not bounces.
"""

from __future__ import annotations

import logging
from email.message import Message

from flufl.bounce import all_failures

from notifier.core.feedback import FeedbackKind
from notifier.sources.bounces.outcome import Outcome, bare_address, readable

log = logging.getLogger("notifier.sources.bounces")


class DetectorFailed(Exception):
    """A bounce detector raised on this message."""


def detected_outcomes(message: Message) -> list[Outcome]:
    """The recipients the detectors find, permanent failures first; raises DetectorFailed."""
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector's bug on odd input: this message is not understood
        raise DetectorFailed(f"{type(exc).__name__}: {exc}") from exc
    subject = readable(message.get("Subject", ""))
    diagnostic = f"bounce: {subject}" if subject else "bounce"
    found = [(a, FeedbackKind.BOUNCE_PERMANENT) for a in sorted(permanent)]
    found += [(a, FeedbackKind.DEFERRED) for a in sorted(temporary - permanent)]
    outcomes = []
    for raw, kind in found:
        address = bare_address(raw.decode("utf-8", errors="replace"))
        if address is not None:
            outcomes.append(Outcome(recipient=address, kind=kind, diagnostic=diagnostic))
    return outcomes
