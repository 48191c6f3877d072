"""RFC 3464 delivery status notifications: one outcome per recipient block.

The kind comes from the block's Action and Status: `failed` with a 4.x.x status is a
transient bounce, with 5.x.x (or none) a permanent one; `delayed` is deferred; `delivered`,
`relayed` and `expanded` are deliveries. Real MTAs bend the fields (`Action: failure`,
`Status: 553 ...`, a missing Status, a recipient without its address type), so each field
is read leniently; a block with no Action and no status class says nothing and is skipped.
"""

from __future__ import annotations

from email.message import Message

from notifier.core.feedback import FeedbackKind
from notifier.sources.bounces.outcome import Outcome, bare_address, unfolded
from notifier.sources.bounces.parts import field_blocks, report_parts

DELIVERY_STATUS = "message/delivery-status"

_FAILED = frozenset({"failed", "failure", "error"})
_DELIVERED = frozenset({"delivered", "relayed", "expanded"})


def is_dsn(message: Message) -> bool:
    """A multipart/report of report-type delivery-status, or any message carrying a
    delivery-status part (some MTAs send it inside multipart/mixed)."""
    return next(report_parts(message, DELIVERY_STATUS), None) is not None


def dsn_outcomes(message: Message) -> list[Outcome]:
    """Every recipient block's outcome, in the order the report lists them."""
    outcomes = []
    for part in report_parts(message, DELIVERY_STATUS):
        blocks = field_blocks(part)
        # The first block is about the message (Reporting-MTA, Arrival-Date); a sender that
        # left it out starts straight with a recipient.
        for block in blocks:
            if block.get("Final-Recipient") is None and block.get("Original-Recipient") is None:
                continue
            outcome = _recipient_outcome(block)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def _recipient_outcome(block: Message) -> Outcome | None:
    action = unfolded(block.get("Action", "")).lower().split(" ", 1)[0]
    status = unfolded(block.get("Status", ""))
    status_class = status[:1] if status[:1] in ("2", "4", "5") else None
    kind = _kind(action, status_class)
    if kind is None:
        return None
    diagnostic = _diagnostic(block.get("Diagnostic-Code")) or (f"status {status}" if status else "")
    # Original-Recipient is the address as we gave it; Final-Recipient may be after aliases.
    recipient = _address(block.get("Original-Recipient")) or _address(block.get("Final-Recipient"))
    return Outcome(recipient=recipient, kind=kind, diagnostic=diagnostic)


def _kind(action: str, status_class: str | None) -> FeedbackKind | None:
    if action in _FAILED:
        transient = status_class == "4"
        return FeedbackKind.BOUNCE_TRANSIENT if transient else FeedbackKind.BOUNCE_PERMANENT
    if action == "delayed":
        return FeedbackKind.DEFERRED
    if action in _DELIVERED:
        return FeedbackKind.DELIVERED
    # An Action no RFC names: the status class alone decides, where there is one.
    return {
        "5": FeedbackKind.BOUNCE_PERMANENT,
        "4": FeedbackKind.BOUNCE_TRANSIENT,
        "2": FeedbackKind.DELIVERED,
    }.get(status_class or "")


def _address(value: object) -> str | None:
    """The address of `rfc822; user@domain` (or of a bare `<user@domain>`); None for other
    address types (x400, utf-8 without an @) and for an empty field."""
    if value is None:
        return None
    text = unfolded(value)
    kind, semicolon, address = text.partition(";")
    if not semicolon:
        return bare_address(text)
    if kind.strip().lower() not in ("rfc822", "utf-8"):
        return None
    return bare_address(address)


def _diagnostic(value: object) -> str:
    """`smtp; 550 5.1.1 <x@y>: Recipient address rejected` -> the remote server's words."""
    if value is None:
        return ""
    text = unfolded(value)
    kind, semicolon, said = text.partition(";")
    if semicolon and " " not in kind.strip():
        return said.strip()
    return text
