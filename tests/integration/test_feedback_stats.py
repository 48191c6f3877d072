"""Feedback where the operator reads it: `notifier notices` shows the verdict beside `sent`,
`notifier feedback stats` and /metrics the bounce and complaint rates (real SQLite ledger,
real CLI, the real metrics exposition)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from support.cli import notifier
from support.project import ROOT, settings_for

from notifier.core.feedback import FeedbackEvent, FeedbackKind
from notifier.http.metrics import Metrics
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.settings import Settings

BATCH = ROOT / "examples" / "batch.jsonl"


def sent_batch(tmp_path: Path) -> Settings:
    settings = settings_for(tmp_path)
    # The example batch has a few bad lines on purpose: exit 1, the rest sent.
    assert notifier(settings, "run", str(BATCH)).exit_code == 1
    return settings


def report(settings: Settings, verdicts: list[FeedbackKind]) -> list[str]:
    """One event of each verdict for the first sent notices, in order; their keys."""
    with open_engine(settings) as engine:
        sent = [n for n in engine.store.notices() if n.message_id][: len(verdicts)]
        assert len(sent) == len(verdicts)
        events = [
            FeedbackEvent(
                provider="ses",
                event_id=f"e{i}",
                kind=kind,
                occurred_at=datetime.now(UTC),
                recipient=notice.recipient,
                message_id=notice.message_id,
            )
            for i, (notice, kind) in enumerate(zip(sent, verdicts, strict=True))
        ]
        feedback_intake(settings, engine).take(events)
        return [n.key for n in sent]


def test_notices_show_the_providers_verdict_beside_sent(tmp_path: Path) -> None:
    settings = sent_batch(tmp_path)
    bounced, delivered = report(settings, [FeedbackKind.BOUNCE_PERMANENT, FeedbackKind.DELIVERED])
    listed = {n["key"]: n for n in notifier(settings, "notices", "--json").json()}
    assert listed[bounced]["feedback"] == "bounced"
    assert listed[delivered]["feedback"] == "delivered"
    assert sum(1 for n in listed.values() if n["feedback"] is None) == len(listed) - 2
    table = notifier(settings, "notices").stdout
    assert "sent bounced" in table and "sent delivered" in table


def test_feedback_stats_give_the_rates_and_warn_over_the_complaint_limit(
    tmp_path: Path,
) -> None:
    settings = sent_batch(tmp_path)
    sent = notifier(settings, "notices", "--status", "sent", "--json").json()
    report(settings, [FeedbackKind.BOUNCE_PERMANENT, FeedbackKind.COMPLAINT])
    stats = notifier(settings, "feedback", "stats", "--json").json()
    assert stats["overall"]["sent"] == len(sent)
    assert stats["overall"]["bounced"] == 1 and stats["overall"]["complaints"] == 1
    assert stats["overall"]["complaint_rate"] == 1 / len(sent)
    assert stats["complaint_warning"] is True
    shown = notifier(settings, "feedback", "stats")
    assert shown.exit_code == 0
    assert f"{1 / len(sent):.2%}" in shown.stdout and "warning: the complaint rate" in shown.stdout


def test_feedback_stats_on_a_quiet_ledger_do_not_warn(tmp_path: Path) -> None:
    settings = sent_batch(tmp_path)
    report(settings, [FeedbackKind.DELIVERED])
    shown = notifier(settings, "feedback", "stats")
    assert shown.exit_code == 0 and "warning" not in shown.stdout


def test_metrics_expose_the_rates_of_the_last_seven_days(tmp_path: Path) -> None:
    settings = sent_batch(tmp_path)
    report(settings, [FeedbackKind.BOUNCE_PERMANENT])
    metrics = Metrics()
    with open_engine(settings) as engine:
        sent = sum(1 for n in engine.store.notices() if n.message_id)
        metrics.watch_store(engine.store, engine.clock)
        text = metrics.exposition().decode()
    assert f'notifier_sent_7d{{campaign="all"}} {float(sent)}' in text
    assert f'notifier_bounce_rate_7d{{campaign="all"}} {1 / sent}' in text
    assert 'notifier_complaint_rate_7d{campaign="all"} 0.0' in text
