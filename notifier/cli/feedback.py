"""`notifier feedback`: what the mail providers reported after the handoff.

`stats` shows the bounce and complaint rates of the notices sent in the last days, overall
and per campaign; the events themselves arrive through the provider webhooks, `feedback
import` and the `mailbox` job, all into notifier.engine.feedback.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from notifier.cli.root import app, out, settings
from notifier.core.feedback import COMPLAINT_WARNING_RATE, FeedbackRate, FeedbackRates
from notifier.engine.reports import utc_now

feedback_app = typer.Typer(
    no_args_is_help=True,
    help="Delivery feedback: bounces, complaints and deliveries the providers reported.",
)
app.add_typer(feedback_app, name="feedback")


def _rate_json(rate: FeedbackRate) -> dict[str, float | int]:
    return {
        "sent": rate.sent,
        "delivered": rate.delivered,
        "bounced": rate.bounced,
        "soft_bounced": rate.soft_bounced,
        "complaints": rate.complaints,
        "bounce_rate": rate.bounce_rate,
        "complaint_rate": rate.complaint_rate,
    }


def _rows(rates: FeedbackRates) -> list[tuple[str, FeedbackRate]]:
    by_campaign = sorted(rates.by_campaign.items(), key=lambda kv: (kv[0] is not None, kv[0]))
    rows = [("all", rates.overall)]
    if len(by_campaign) > 1 or (by_campaign and by_campaign[0][0] is not None):
        rows += [(f"campaign {c}" if c else "no campaign", rate) for c, rate in by_campaign]
    return rows


@feedback_app.command("stats")
def stats(
    days: Annotated[
        int, typer.Option(min=1, help="The window: notices sent in the last N days.")
    ] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Bounce and complaint rates of the notices sent in the last DAYS days (default 7)."""
    from notifier.store.sql import SqlStore

    config = settings()
    store = SqlStore(config.database_url)
    try:
        rates = store.feedback_rates(since=utc_now() - timedelta(days=days))
    finally:
        store.close()
    warning = rates.overall.complaint_rate > COMPLAINT_WARNING_RATE
    if as_json:
        document = {
            "since": rates.since.isoformat(),
            "overall": _rate_json(rates.overall),
            "campaigns": {c or "": _rate_json(r) for c, r in rates.by_campaign.items()},
            "complaint_warning": warning,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    table = Table(title=f"Sent in the last {days} day(s)", title_justify="left")
    for column in (
        "",
        "sent",
        "delivered",
        "bounced",
        "bounce rate",
        "complaints",
        "complaint rate",
    ):
        table.add_column(column, justify="left" if not column else "right")
    for label, rate in _rows(rates):
        table.add_row(
            label,
            str(rate.sent),
            str(rate.delivered),
            f"{rate.bounced} (+{rate.soft_bounced} soft)",
            f"{rate.bounce_rate:.2%}",
            str(rate.complaints),
            f"{rate.complaint_rate:.2%}",
        )
    out.print(table)
    if warning:
        out.print(
            f"[bold yellow]warning:[/] the complaint rate is {rates.overall.complaint_rate:.2%},"
            f" over {COMPLAINT_WARNING_RATE:.1%}: Gmail and Yahoo start refusing bulk mail at"
            " 0.3%; find the rule or campaign the complaints come from (per campaign above)."
        )
