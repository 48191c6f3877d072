"""`notifier notices`: what the ledger holds, as a table or as JSON."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from notifier.cli.root import app, out, settings
from notifier.core.models import Notice, NoticeStatus


def notice_json(notice: Notice) -> dict[str, Any]:
    return {
        "key": notice.key,
        "rule": notice.rule_id,
        "order_id": notice.order_id,
        "fulfillment_id": notice.fulfillment_id,
        "recipient": notice.recipient,
        "status": notice.status.value,
        "attempts": notice.attempts,
        "ambiguous_attempts": notice.ambiguous_attempts,
        "message_id": notice.message_id,
        "created_at": notice.created_at.isoformat(),
        "sent_at": notice.sent_at.isoformat() if notice.sent_at else None,
        "feedback": notice.feedback.verdict if notice.feedback else None,
        "due_at": notice.due_at.isoformat(),
        "reason": notice.reason,
    }


# The providers' verdict beside `sent` (notifier.core.feedback): bad news in red.
_VERDICT_STYLES = {"bounced": "red", "complained": "red", "soft-bounced": "yellow"}


def _verdict(notice: Notice) -> str:
    if notice.feedback is None:
        return ""
    verdict = notice.feedback.verdict
    return f" [{_VERDICT_STYLES.get(verdict, 'green')}]{verdict}[/]"


@app.command()
def notices(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array instead of a table.")
    ] = False,
    status: Annotated[
        NoticeStatus | None, typer.Option(help="Only notices in this status.")
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only this order's notices.")] = None,
) -> None:
    """List the notices in the ledger."""
    from notifier.store.sql import SqlStore

    config = settings()
    store = SqlStore(config.database_url)
    try:
        found = store.notices(status=status, order_id=order)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(
            json.dumps([notice_json(n) for n in found], indent=2, ensure_ascii=False) + "\n"
        )
        return
    table = Table(title=f"{len(found)} notice(s)", title_justify="left")
    for column in ("key", "status", "recipient", "attempts", "created", "sent", "reason"):
        table.add_column(column, overflow="fold")
    styles = {NoticeStatus.SENT: "green", NoticeStatus.FAILED: "red", NoticeStatus.RETRY: "yellow"}
    for notice in found:
        # Ambiguous: a connection died after the message data went out; it may have arrived.
        ambiguous = f" [magenta]ambiguous x{notice.ambiguous_attempts}[/]"
        table.add_row(
            notice.key,
            f"[{styles.get(notice.status, 'default')}]{notice.status.value}[/]"
            + (ambiguous if notice.ambiguous_attempts else "")
            + _verdict(notice),
            notice.recipient or "-",
            str(notice.attempts),
            notice.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            notice.sent_at.strftime("%Y-%m-%d %H:%M:%S") if notice.sent_at else "-",
            notice.reason or "",
        )
    out.print(table)
