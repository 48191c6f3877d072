"""deliver, retry, resend, suppress, notices, as an operator runs them: real SQLite and SMTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import reliability
from support.cli import notifier, tna_key, tna_record, write_records
from support.project import smtp_settings
from support.smtp_sink import SmtpSink

from notifier.cli import root as cli
from notifier.core.models import NoticeStatus
from notifier.settings import Settings
from notifier.store.sql import SqlStore


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink) -> Settings:
    return smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)


def ledger(settings: Settings) -> dict[str, dict[str, object]]:
    result = notifier(settings, "notices", "--json")
    assert result.exit_code == 0, result.stderr
    return {n["key"]: n for n in result.json()}


def run(settings: Settings, tmp_path: Path, records: list[dict[str, object]]) -> None:
    batch = write_records(tmp_path / f"batch-{len(list(tmp_path.iterdir()))}.jsonl", records)
    result = notifier(settings, "run", str(batch))
    assert result.exit_code == 0, result.stderr


def test_suppress_add_list_remove(settings: Settings) -> None:
    """Addresses are suppressed case-insensitively with a reason, listed, and removed again."""
    added = notifier(
        settings, "suppress", "add", "Ann@Example.com", "bo@example.com", "--reason", "asked us"
    )
    assert added.exit_code == 0, added.stderr
    assert "2 address(es) suppressed" in added.stdout
    again = notifier(settings, "suppress", "add", "ann@example.com")
    assert "already suppressed (asked us)" in again.stderr
    listed = notifier(settings, "suppress", "list", "--json").json()
    assert [(s["address"], s["reason"]) for s in listed] == [
        ("ann@example.com", "asked us"),
        ("bo@example.com", "asked us"),
    ]
    removed = notifier(settings, "suppress", "remove", "ANN@example.com", "zed@example.com")
    assert removed.exit_code == 0
    assert "1 address(es) no longer suppressed" in removed.stdout
    assert "zed@example.com: was not suppressed" in removed.stderr
    assert "bo@example.com" in notifier(settings, "suppress", "list").stdout
    bad = notifier(settings, "suppress", "add", "not an address")
    assert bad.exit_code == 2 and "not an email address" in bad.stderr


def test_notice_to_suppressed_address_is_cancelled_with_the_reason(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """A notice to a suppressed address is cancelled at send time, naming the suppression."""
    notifier(settings, "suppress", "add", "ann@example.com", "--reason", "customer asked")
    run(settings, tmp_path, [tna_record(1, email="Ann@example.com"), tna_record(2)])
    notices = ledger(settings)
    assert notices[tna_key(1)]["status"] == "cancelled"
    assert notices[tna_key(1)]["reason"] == "address suppressed: customer asked"
    assert notices[tna_key(2)]["status"] == "sent"
    assert [d.rcpt_tos for d in smtp_sink.deliveries] == [("customer2@example.com",)]


def test_hard_bounce_fails_suppresses_and_cancels_later_notices(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """550 at RCPT: failed with the reply, address suppressed, a later notice to it cancelled."""
    smtp_sink.reply_with(
        "550 5.1.1 <gone@example.com>: no such user",
        stage="rcpt",
        times=None,
        recipient="gone@example.com",
    )
    run(settings, tmp_path, [tna_record(1, email="gone@example.com")])
    first = ledger(settings)[tna_key(1)]
    assert first["status"] == "failed"
    assert first["reason"] == (
        "permanent: RCPT TO:<gone@example.com> refused: 550 5.1.1 <gone@example.com>: no such user"
    )
    listed = notifier(settings, "suppress", "list", "--json").json()
    assert [s["address"] for s in listed] == ["gone@example.com"]
    assert listed[0]["reason"].startswith("hard bounce: ")
    run(settings, tmp_path, [tna_record(2, email="gone@example.com")])
    later = ledger(settings)[tna_key(2)]
    assert later["status"] == "cancelled" and "hard bounce" in str(later["reason"])
    assert smtp_sink.messages == []
    reliability.report(
        "550 at RCPT (hard bounce)",
        injects="550 5.1.1 for one address",
        runs=1,
        notices=2,
        sent=0,
        duplicated=0,
        lost=0,
        notes="first failed with the reply, address suppressed, the later one cancelled"
        " (none sent, by design)",
    )


def test_451_is_retried_on_a_later_pass(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """451 on the first try: retry with backoff; `retry KEY` + `deliver` send it once."""
    smtp_sink.reply_with("451 4.3.0 mailbox busy", stage="rcpt")
    run(settings, tmp_path, [tna_record(1)])
    notice = ledger(settings)[tna_key(1)]
    assert notice["status"] == "retry" and str(notice["reason"]).startswith("transient: ")
    assert "451 4.3.0 mailbox busy" in str(notice["reason"])
    early = notifier(settings, "deliver")
    assert early.exit_code == 0 and smtp_sink.messages == []  # the backoff: not due yet
    assert "1 notice(s) waiting (pending or retry), next due" in early.stdout
    made = notifier(settings, "retry", tna_key(1))
    assert made.exit_code == 0 and "1 notice(s) due now" in made.stdout
    delivered = notifier(settings, "deliver")
    assert delivered.exit_code == 0
    assert "sent" in delivered.stdout
    assert ledger(settings)[tna_key(1)]["status"] == "sent"
    assert len(smtp_sink.messages) == 1
    reliability.report(
        "451 on the first try",
        injects="451 4.3.0 at RCPT once",
        runs=1,
        notices=1,
        sent=1,
        duplicated=0,
        lost=0,
        notes="retry with backoff; `retry KEY` + `deliver` sent it",
    )


def test_421_greeting_is_transient(settings: Settings, tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """A server answering 421 at connect leaves the notices in retry; `retry --all` recovers."""
    smtp_sink.reply_with("421 4.3.2 shutting down", stage="connect", times=None)
    run(settings, tmp_path, [tna_record(1), tna_record(2)])
    assert {n["status"] for n in ledger(settings).values()} == {"retry"}
    smtp_sink.clear_faults()
    assert "2 notice(s) due now" in notifier(settings, "retry", "--all").stdout
    one = notifier(settings, "deliver", "--limit", "1")
    assert one.exit_code == 0 and len(smtp_sink.messages) == 1
    assert "1 notice(s) waiting (pending or retry)" in one.stdout
    assert notifier(settings, "deliver").exit_code == 0
    assert {n["status"] for n in ledger(settings).values()} == {"sent"}
    assert len(smtp_sink.messages) == 2
    reliability.report(
        "421 at connect",
        injects="421 greeting on every connection, then cleared",
        runs=1,
        notices=2,
        sent=2,
        duplicated=0,
        lost=0,
        notes="both waited in retry; `retry --all` + `deliver` sent them",
    )


def test_retry_explains_what_it_cannot_do(settings: Settings, tmp_path: Path) -> None:
    """retry needs keys or --all; unknown keys and sent notices are named, with a hint."""
    run(settings, tmp_path, [tna_record(1)])
    assert notifier(settings, "retry").exit_code == 2
    assert notifier(settings, "retry", "--all", tna_key(1)).exit_code == 2
    result = notifier(settings, "retry", "nope", tna_key(1))
    assert result.exit_code == 1
    assert "nope: no such notice" in result.stderr
    assert f"{tna_key(1)}: is sent, not retry or failed" in result.stderr
    assert "resend KEY --force" in result.stderr
    assert "0 notice(s) due now" in result.stdout


def test_resend_needs_force_and_sends_a_new_message_id(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """resend refuses without --force; with it, a new notice KEY#resend-N with a new Message-ID."""
    run(settings, tmp_path, [tna_record(1)])
    refused = notifier(settings, "resend", tna_key(1))
    assert refused.exit_code == 2 and "add --force" in refused.stderr
    assert len(smtp_sink.messages) == 1
    done = notifier(settings, "resend", tna_key(1), "--force")
    assert done.exit_code == 0, done.stderr
    assert f"as {tna_key(1)}#resend-1" in done.stdout
    again = notifier(settings, "resend", f"{tna_key(1)}#resend-1", "--force")
    assert f"as {tna_key(1)}#resend-2" in again.stdout
    first, second, third = smtp_sink.messages
    assert first["Subject"] == second["Subject"] == third["Subject"]
    assert len({first["Message-ID"], second["Message-ID"], third["Message-ID"]}) == 3
    notices = ledger(settings)
    assert notices[f"{tna_key(1)}#resend-1"]["status"] == "sent"
    assert notices[f"{tna_key(1)}#resend-2"]["message_id"] == third["Message-ID"]
    assert notices[tna_key(1)]["message_id"] == first["Message-ID"]
    missing = notifier(settings, "resend", "nope", "--force")
    assert missing.exit_code == 2 and "no notice with key 'nope'" in missing.stderr


def test_resend_of_an_unsent_notice_is_refused(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """A notice still waiting to retry cannot be resent (it would arrive twice): use retry."""
    smtp_sink.reply_with("451 4.3.0 later", stage="rcpt")
    run(settings, tmp_path, [tna_record(1)])
    result = notifier(settings, "resend", tna_key(1), "--force")
    assert result.exit_code == 2 and "is retry, not sent or failed" in result.stderr
    assert smtp_sink.messages == []


def test_resend_to_a_suppressed_address_is_cancelled(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Even forced, a resend goes through the same checks: a suppressed address cancels it."""
    run(settings, tmp_path, [tna_record(1)])
    notifier(settings, "suppress", "add", "customer1@example.com", "--reason", "unsubscribed")
    result = notifier(settings, "resend", tna_key(1), "--force")
    assert result.exit_code == 1
    assert "cancelled: address suppressed: unsubscribed" in result.stderr
    assert len(smtp_sink.messages) == 1


def test_ambiguous_delivery_is_marked_retried_once_then_failed(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection lost after DATA: `ambiguous` in notices, same Message-ID again, then failed."""
    smtp_sink.drop_connection_after_data(keep=True)
    run(settings, tmp_path, [tna_record(1)])
    notice = ledger(settings)[tna_key(1)]
    assert notice["status"] == "retry" and notice["ambiguous_attempts"] == 1
    assert str(notice["reason"]).startswith("ambiguous: ")
    monkeypatch.setattr(cli.out, "width", 250)  # one table row per line
    assert "retry ambiguous x1" in notifier(settings, "notices").stdout
    smtp_sink.drop_connection_after_data(keep=True)
    notifier(settings, "retry", tna_key(1))
    notifier(settings, "deliver")
    failed = ledger(settings)[tna_key(1)]
    assert failed["status"] == "failed" and failed["ambiguous_attempts"] == 2
    assert "delivery ambiguous twice (may have arrived)" in str(failed["reason"])
    first, second = smtp_sink.messages
    assert first["Message-ID"] == second["Message-ID"]
    reliability.report(
        "connection dropped after DATA",
        injects="the server keeps the message but drops the connection before replying, twice",
        runs=1,
        notices=1,
        sent=1,
        duplicated=1,
        lost=0,
        notes="retried once with the same Message-ID, then failed 'may have arrived';"
        " no third automatic try (the operator's `retry` then sent a third copy, by choice)",
    )
    # The operator decides: retry sends it once more, with the same Message-ID still.
    notifier(settings, "retry", tna_key(1))
    notifier(settings, "deliver")
    assert ledger(settings)[tna_key(1)]["status"] == "sent"
    assert len({m["Message-ID"] for m in smtp_sink.messages}) == 1


def test_deliver_on_an_empty_ledger_says_so(settings: Settings) -> None:
    """deliver with nothing due exits 0 with an all-zero summary."""
    result = notifier(settings, "deliver")
    assert result.exit_code == 0
    assert "notifier deliver" in result.stdout and "waiting" not in result.stdout


def test_store_counts_match_the_cli(settings: Settings, tmp_path: Path) -> None:
    """What notices --json says is what the store holds."""
    run(settings, tmp_path, [tna_record(1), tna_record(2)])
    store = SqlStore(settings.database_url)
    try:
        assert store.notice_counts() == {NoticeStatus.SENT: 2}
    finally:
        store.close()
    assert {n["status"] for n in ledger(settings).values()} == {"sent"}


def test_show_prints_a_notices_whole_story(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """After a refusal, a retry and a send: the rule, the record, every step, the copy kept."""
    smtp_sink.reply_with("554 5.7.1 message refused by policy", stage="data")
    run(settings, tmp_path, [tna_record(7, first_name="[bold]Eve[/bold]")])
    assert notifier(settings, "retry", tna_key(7)).exit_code == 0
    assert notifier(settings, "deliver").exit_code == 0
    shown = notifier(settings, "show", tna_key(7))
    assert shown.exit_code == 0, shown.stderr
    text = shown.stdout
    assert "tracking_number_assigned" in text and "O7" in text
    assert "[bold]Eve[/bold]" in text  # customer data printed as it is, never as markup
    for step in ("Record received", "Notice created", "Failed", "Retry requested", "Sent"):
        assert step in text, step
    assert "554 5.7.1" in text and "cli:" in text
    assert "kept" in text and "not kept" not in text


def test_show_of_an_unknown_key_says_so(settings: Settings) -> None:
    """A key that is not in the ledger: exit 2 and where to look."""
    shown = notifier(settings, "show", "no:such:key")
    assert shown.exit_code == 2 and "no notice with key" in shown.stderr
