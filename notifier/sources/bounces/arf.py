"""RFC 5965 abuse reports (ARF): a recipient marked the message as spam.

Feedback-Type `abuse` and `fraud` (and `virus`, `other`) are complaints. `not-spam` (the
recipient took the message back out of the spam folder) and `auth-failure` (an SPF or
DKIM report) are understood but are no complaint, so they record nothing. The recipient
is the report's Original-Rcpt-To, else the returned message's To; providers that redact
it (most do) still name the Message-ID, which ties the complaint to its notice.
"""

from __future__ import annotations

from email.message import Message
from email.utils import getaddresses

from notifier.core.feedback import FeedbackKind
from notifier.sources.bounces.outcome import Outcome, bare_address, unfolded
from notifier.sources.bounces.parts import field_blocks, report_parts, returned_headers

FEEDBACK_REPORT = "message/feedback-report"

_COMPLAINTS = frozenset({"abuse", "fraud", "virus", "other"})


def is_arf(message: Message) -> bool:
    return next(report_parts(message, FEEDBACK_REPORT), None) is not None


def arf_outcomes(message: Message) -> list[Outcome]:
    """One complaint per reported recipient (one with no recipient when the report hides
    it); nothing for a report type that is no complaint."""
    fields = _report_fields(message)
    feedback_type = unfolded(fields.get("Feedback-Type", "")).lower()
    if feedback_type not in _COMPLAINTS:
        return []
    reporter = unfolded(fields.get("User-Agent") or fields.get("Reporting-MTA") or "")
    diagnostic = f"{feedback_type} report" + (f" from {reporter}" if reporter else "")
    recipients = [bare_address(unfolded(v)) for v in fields.get_all("Original-Rcpt-To", [])]
    if not any(recipients):
        returned = returned_headers(message)
        if returned is not None:
            found = getaddresses([str(v) for v in returned.get_all("To", [])])
            recipients = [bare_address(address) for _, address in found]
    named: list[str | None] = list(dict.fromkeys(r for r in recipients if r))
    return [
        Outcome(recipient=r, kind=FeedbackKind.COMPLAINT, diagnostic=diagnostic)
        for r in named or [None]
    ]


def _report_fields(message: Message) -> Message:
    for part in report_parts(message, FEEDBACK_REPORT):
        blocks = field_blocks(part)
        if blocks:
            return blocks[0]
    return Message()
