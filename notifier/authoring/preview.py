"""Render a rule's notice from sample or given records: no send, no store (docs/design.md §5).

It goes through the same decide and compose code as delivery, on an in-memory order.
"""

from __future__ import annotations

import dataclasses
import tempfile
import webbrowser
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from notifier.core.decide import OrderView, apply_record, build_notice, notice_fulfillment_ids
from notifier.core.models import Notice, Record, Scope, Status, message_id_for
from notifier.core.records import Rejection
from notifier.core.rules import Rule, applies_to, missing_fields
from notifier.errors import ConfigError
from notifier.rendering.compose import Composer

Format = Literal["text", "html", "eml", "all"]
FORMATS: tuple[Format, ...] = ("text", "html", "eml", "all")
# The headers an operator checks before a change goes out, in reading order.
SHOWN_HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted")

_SAMPLE_TIME = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


def sample_records(rule: Rule, *, campaign_id: str | None = None) -> list[Record]:
    """A realistic order for a rule: two shipped fulfillments for order-scope rules."""
    base = {
        "order_id": "KN-10482",
        "email": "jane.doe@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "campaign_id": campaign_id,
        "received_at": _SAMPLE_TIME,
        "ship_method": "Standard",
    }
    if rule.scope is Scope.ORDER:
        ids = ("F-1", "F-2")
        return [
            Record(
                fulfillment_id="F-1",
                status=rule.on,
                occurred_at=_SAMPLE_TIME,
                tracking_number="9400111899223197428497",
                carrier="USPS",
                shipped_at="03/14/2026",
                order_fulfillment_ids=ids,
                **base,  # type: ignore[arg-type]
            ),
            Record(
                fulfillment_id="F-2",
                status=rule.on,
                occurred_at=_SAMPLE_TIME + timedelta(hours=2),
                tracking_number="1Z999AA10123456784",
                carrier="UPS",
                shipped_at="03/14/2026",
                order_fulfillment_ids=ids,
                **base,  # type: ignore[arg-type]
            ),
        ]
    after_shipping = rule.on in _AFTER_SHIPPING
    parcel = Record(
        fulfillment_id="F-1",
        status=rule.on,
        occurred_at=_SAMPLE_TIME,
        tracking_number="1Z999AA10123456784",
        carrier="UPS",
        shipped_at="03/11/2026" if after_shipping else None,
        delivered_at="03/14/2026" if after_shipping and rule.on is not Status.SHIPPED else None,
        extra=_SAMPLE_EXTRA.get(rule.on, {}),
        **base,  # type: ignore[arg-type]
    )
    if rule.on is not Status.CANCELLED:
        return [parcel]
    # A cancellation reads differently while other parcels are still coming: show that case.
    ids = ("F-1", "F-2")
    return [
        dataclasses.replace(parcel, status=Status.PENDING_SHIPMENT, order_fulfillment_ids=ids),
        Record(
            fulfillment_id="F-2",
            status=Status.CANCELLED,
            occurred_at=_SAMPLE_TIME + timedelta(hours=2),
            order_fulfillment_ids=ids,
            **base,  # type: ignore[arg-type]
        ),
    ]


# Statuses a parcel reaches once shipped: their samples carry its shipped (and delivered) date.
_AFTER_SHIPPING = frozenset({Status.SHIPPED, Status.DELIVERED, Status.RMA_PENDING, Status.RETURNED})
# What the CRM tells of a return, as the record's extra fields (notifier.sources).
_SAMPLE_EXTRA: dict[Status, dict[str, str]] = {
    Status.RMA_PENDING: {"rma_number": "RMA-20931"},
    Status.RETURNED: {"rma_number": "RMA-20931"},
}


def preview_notice(rule: Rule, records: Sequence[Record]) -> tuple[Notice, OrderView]:
    """The notice the rule would create for the last record, and the order as it then stands."""
    if not records:
        raise ValueError("preview needs at least one record")
    last = records[-1]
    order = OrderView(last.order_id)
    for record in records:
        if record.order_id != last.order_id:
            continue
        if record.order_fulfillment_ids:
            order.fulfillment_ids = record.order_fulfillment_ids
        state, _ = apply_record(order.fulfillments.get(record.fulfillment_id), record)
        order.fulfillments[record.fulfillment_id] = state
    at = last.effective_at
    new = build_notice(
        rule, last, order, notice_fulfillment_ids(rule, last, order), now=at, at=at, due_at=at
    )
    notice = new.as_stored()
    if notice.recipient is None:
        # A preview still shows the message a record without an address would have made.
        notice = dataclasses.replace(notice, recipient="customer@example.com")
    return notice, order


def preview_message(composer: Composer, rule: Rule, records: Sequence[Record]) -> EmailMessage:
    """The exact message delivery would send for these records (raises TemplateError)."""
    notice, order = preview_notice(rule, records)
    message_id = message_id_for(notice.key, composer.branding.message_id_domain)
    return composer.compose(notice, rule, order, message_id=message_id, now=notice.created_at)


# --- previews for people: the CLI and the preview page ----------------------------------


class UnknownRuleError(ConfigError):
    """No rule has that id."""


class RecordsRejectedError(ConfigError):
    """The records given for a preview are not valid."""


def find_rule(rules: Iterable[Rule], rule_id: str) -> Rule:
    """The rule with this id; the error lists the known ones."""
    known = {rule.id: rule for rule in rules}
    if rule_id in known:
        return known[rule_id]
    listed = ", ".join(sorted(known)) or "none (the rules folder is empty)"
    raise UnknownRuleError(f"no rule {rule_id!r}; known rules: {listed}")


def accepted_records(items: Iterable[Record | Rejection]) -> list[Record]:
    """Every record, or one error naming every rejected one and why."""
    records: list[Record] = []
    rejected: list[str] = []
    for item in items:
        if isinstance(item, Rejection):
            rejected.append(str(item))
        else:
            records.append(item)
    if rejected:
        raise RecordsRejectedError("\n".join(rejected))
    if not records:
        raise RecordsRejectedError("no records given")
    return records


@dataclass(frozen=True, slots=True)
class Preview:
    """A rendered notice and what an operator should know about it."""

    rule: Rule
    message: EmailMessage
    records: tuple[Record, ...]
    from_sample: bool
    # Why delivery might not send this exactly (filters, missing data): shown, not fatal.
    notes: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(self.message[name])) for name in SHOWN_HEADERS if name in self.message]

    @property
    def text(self) -> str:
        return _part(self.message, "plain")

    @property
    def html(self) -> str:
        return _part(self.message, "html")

    @property
    def eml(self) -> str:
        return self.message.as_string(policy=policy.SMTP.clone(linesep="\n"))


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def render_preview(
    composer: Composer,
    rule: Rule,
    records: Sequence[Record] | None = None,
    *,
    campaign_id: str | None = None,
) -> Preview:
    """Render a rule from the given records (else its sample) exactly as delivery would.

    `campaign_id` puts every record in that campaign (its templates and sender).
    Raises TemplateError naming the file, line and problem.
    """
    from_sample = not records
    chosen = list(records) if records else sample_records(rule, campaign_id=campaign_id)
    if campaign_id is not None and not from_sample:
        chosen = [dataclasses.replace(record, campaign_id=campaign_id) for record in chosen]
    message = preview_message(composer, rule, chosen)
    notes = list(_notes(rule, chosen[-1]))
    if campaign_id is not None and not (composer.renderer.templates_dir / campaign_id).is_dir():
        notes.append(
            f"campaign {campaign_id} has no folder in {composer.renderer.templates_dir}: "
            "the default templates and sender are used"
        )
    if others := sorted({r.order_id for r in chosen} - {chosen[-1].order_id}):
        notes.append(
            f"only order {chosen[-1].order_id} (the last record's) is rendered; "
            f"ignored the records of {', '.join(others)}"
        )
    return Preview(rule, message, tuple(chosen), from_sample, tuple(notes))


def _notes(rule: Rule, record: Record) -> Iterable[str]:
    if record.status is not rule.on:
        yield (
            f"rule {rule.id} fires on {rule.on.value}; this record is {record.status.value} "
            "(rendered anyway)"
        )
    if not applies_to(rule, record):
        yield f"rule {rule.id} is switched off or filters this record out: delivery sends nothing"
    if missing := missing_fields(rule, record):
        yield (
            f"the record lacks {', '.join(missing)}, which rule {rule.id} requires: "
            "delivery would cancel this notice"
        )


def format_preview(preview: Preview, format: Format | str) -> str:
    """The preview as the CLI prints it: headers and text, the HTML, the message, or all."""
    headers = "".join(f"{name}: {value}\n" for name, value in preview.headers)
    if format == "text":
        return f"{headers}\n{preview.text}"
    if format == "html":
        return preview.html
    if format == "eml":
        return preview.eml
    if format != "all":
        raise ValueError(f"unknown preview format {format!r}; use one of {', '.join(FORMATS)}")
    rule_line = "=" * 72
    return (
        f"{headers}\n{rule_line}\ntext/plain\n{rule_line}\n{preview.text}\n"
        f"{rule_line}\ntext/html\n{rule_line}\n{preview.html}\n"
    )


def open_in_browser(
    preview: Preview, *, reuse: Path | None = None, is_html: bool = False
) -> tuple[Path, bool]:
    """Open the HTML part in the default browser: the --out file if it is the HTML, else a
    new temporary file (left behind on purpose: the browser reads it after we exit).

    Returns the file and whether a browser took it (a server may have none)."""
    if reuse is not None and is_html:
        path = reuse
    else:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            suffix=".html",
            prefix=f"notifier-{preview.rule.id}-",
            delete=False,
        ) as handle:
            handle.write(preview.html)
            path = Path(handle.name)
    return path, webbrowser.open(path.resolve().as_uri())
