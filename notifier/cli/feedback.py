"""`notifier feedback`: what the mail providers reported after the handoff.

`stats` shows the bounce and complaint rates of the notices sent in the last days, overall
and per campaign; the events themselves arrive through the provider webhooks, `feedback
import` and the `mailbox` job, all into notifier.engine.feedback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from notifier.cli.root import EXIT_REJECTED, app, fail, out, settings
from notifier.core.feedback import COMPLAINT_WARNING_RATE, FeedbackRate, FeedbackRates
from notifier.engine.reports import utc_now

if TYPE_CHECKING:
    from notifier.sources.bounces.importing import ImportReport

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


@feedback_app.command(
    "import",
    epilog="Exit codes: 0 every message understood; 1 some were not (each is listed, with"
    " where it is and why; the rest are imported all the same); 2 a file that does not exist,"
    " or a configuration error.",
)
def import_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Bounce messages: .eml files (one message each), mbox files, folders of"
            " them, or - for one message or an mbox on stdin.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Read bounce messages (DSNs, abuse reports, other MTAs' bounces) into the ledger: each
    tied to its notice, stored once, the bounced or complaining addresses suppressed."""
    from notifier.processes.wiring import feedback_intake, open_engine
    from notifier.sources.bounces.files import Found, messages_from_stream, messages_in
    from notifier.sources.bounces.importing import import_bounces

    missing = [s for s in sources if s != "-" and not Path(s).exists()]
    if missing:
        raise fail(f"{missing[0]}: no such file or folder")
    config = settings()

    def found() -> Iterator[Found]:
        for source in sources:
            if source == "-":
                yield from messages_from_stream(sys.stdin.buffer)
            else:
                yield from messages_in(Path(source))

    with open_engine(config) as engine:
        report = import_bounces(
            found(),
            feedback_intake(config, engine),
            received_at=engine.clock(),
            bounce_address=config.bounce_address,
        )
    if as_json:
        sys.stdout.write(json.dumps(_import_json(report), indent=2) + "\n")
    else:
        _print_import(report)
    if report.not_understood:
        raise typer.Exit(EXIT_REJECTED)


def _import_json(report: ImportReport) -> dict[str, object]:
    return {
        "messages": report.messages,
        "events": report.events,
        **report.feedback.as_json(),
        "suppressed": [
            {"address": address, "reason": reason} for address, reason in report.feedback.suppressed
        ],
        "not_understood": [{"where": where, "reason": why} for where, why in report.not_understood],
    }


def _print_import(report: ImportReport) -> None:
    feedback = report.feedback
    table = Table(title="notifier feedback import", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    ways = ", ".join(f"{how.value} {n}" for how, n in sorted(feedback.matched.items()) if n)
    matched = f"{sum(feedback.matched.values())}" + (f" ({ways})" if ways else "")
    rows = [
        ("messages read", str(report.messages)),
        ("not understood", str(len(report.not_understood))),
        ("events", str(report.events)),
        ("stored", str(feedback.stored)),
        ("already stored", str(feedback.duplicates)),
        ("matched to a notice", matched),
        ("unmatched", str(feedback.unmatched)),
        ("addresses suppressed", str(len(feedback.suppressed))),
    ]
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)
    for address, reason in feedback.suppressed:
        out.print(f"suppressed {address}: {reason}", highlight=False, markup=False, soft_wrap=True)
    for where, why in report.not_understood:
        out.print(f"not understood: {where}: {why}", highlight=False, markup=False, soft_wrap=True)
