"""`notifier feedback import` end to end: real bounce messages written by real MTAs (see
tests/data/bounces/README.md) into a real SQLite ledger holding the notices they bounce, and
VERP through the real SMTP server: the envelope sender carries the notice's token, and a DSN
with nothing of the original in it still finds its notice."""

from __future__ import annotations

import asyncio
import json
import mailbox
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.bounces import SAMPLES, dsn, sample
from support.cli import notifier, tna_record
from support.memory_engine import Clock, tna_key, tracking
from support.project import settings_for, smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink

from notifier.core.feedback import MatchedBy, verp_address, verp_token
from notifier.core.models import NoticeStatus
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.sources.bounces import read_bounce
from notifier.store.sql import SqlStore

# Bounces in the samples and the address each one bounces; a notice was sent to each just
# before the bounce was written, so the intake ties them by address (their Message-IDs are
# other senders').
BOUNCED = {
    "dsn_10.eml": ("anne.person@dom.ain", "bounced"),  # Postfix DSN
    "qmail_01.eml": ("userx@example.de", "bounced"),  # qmail, no DSN
    "exim_01.eml": ("userx@its.example.nl", "bounced"),  # Exim, no DSN
    "yahoo_13.eml": ("bogus-address@example.net", "bounced"),  # Yahoo's own format
    "arf_rfc5965.eml": ("user@example.com", "complained"),  # an abuse report
}
NOT_UNDERSTOOD = ("dumbass_01.eml", "groupwise_03.eml", "qmail_08.eml")


def written_at(name: str) -> datetime:
    events = read_bounce(sample(name), received_at=datetime.now(UTC))
    assert isinstance(events, list) and events
    return events[0].occurred_at


def send_notices_before_the_bounces(settings: Settings) -> dict[str, str]:
    """One notice to each bounced address, sent an hour before its bounce was written."""
    clock = Clock(datetime.now(UTC))
    keys = {}
    with open_engine(settings, clock=clock) as engine:
        for n, (name, (address, _)) in enumerate(sorted(BOUNCED.items()), start=1):
            clock.now = written_at(name) - timedelta(hours=1)
            engine.ingest([tracking(n, at=clock.now, received=clock.now, email=address)])
            report = asyncio.run(engine.deliver_due())
            assert report.counts[NoticeStatus.SENT] == 1
            keys[name] = tna_key(n)
    return keys


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


def test_a_folder_of_real_bounces_suppresses_the_bounced_and_names_what_it_did_not_understand(
    settings: Settings, tmp_path: Path
) -> None:
    """Every sample is read; the notices sent to bounced addresses get the verdict, those
    addresses are suppressed, the other bounces are stored unmatched, and each message not
    understood is named with the reason (exit 1): none lost, no traceback."""
    keys = send_notices_before_the_bounces(settings)
    folder = tmp_path / "bounces"
    shutil.copytree(SAMPLES, folder)

    result = notifier(settings, "feedback", "import", "--json", str(folder))

    assert result.exit_code == 1, result.stdout + result.stderr
    report = result.json()
    assert report["messages"] == len(list(SAMPLES.glob("*.eml")))
    assert {Path(item["where"]).name for item in report["not_understood"]} == set(NOT_UNDERSTOOD)
    assert all(
        "no bounce or complaint report found" in i["reason"] for i in report["not_understood"]
    )
    assert report["matched"] == {"address": len(BOUNCED)}
    assert report["unmatched"] == report["stored"] - len(BOUNCED) > 0
    store = SqlStore(settings.database_url)
    try:
        for name, (_, verdict) in BOUNCED.items():
            notice = store.notice(keys[name])
            assert notice is not None and notice.feedback is not None, name
            assert notice.feedback.verdict == verdict, name
            [stored] = store.feedback_for(keys[name])
            assert stored.matched_by is MatchedBy.ADDRESS
        addresses = [address for address, _ in BOUNCED.values()]
        assert set(store.suppressed(addresses)) == set(addresses)
        # A bounce for an address notifier never mailed is kept, tied to no notice, and
        # does not suppress it (another system's mail, or backscatter).
        assert not store.suppressed(["joem@example.com"])
    finally:
        store.close()


def test_the_summary_names_each_message_not_understood(settings: Settings) -> None:
    send_notices_before_the_bounces(settings)
    files = [str(SAMPLES / name) for name in ("dsn_10.eml", *NOT_UNDERSTOOD)]

    result = notifier(settings, "feedback", "import", *files)

    assert result.exit_code == 1
    for name in NOT_UNDERSTOOD:
        assert f"not understood: {SAMPLES / name}: no bounce or complaint report found" in (
            result.stdout
        )
    assert "suppressed anne.person@dom.ain: dsn bounce-permanent" in result.stdout


def test_importing_the_same_bounces_again_stores_nothing_new(
    settings: Settings, tmp_path: Path
) -> None:
    """Event ids come from the bounces themselves: a second import stores nothing new."""
    files = [str(SAMPLES / name) for name in BOUNCED]
    first = notifier(settings, "feedback", "import", "--json", *files)
    second = notifier(settings, "feedback", "import", "--json", *files)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert (first.json()["stored"], first.json()["duplicates"]) == (len(BOUNCED), 0)
    assert (second.json()["stored"], second.json()["duplicates"]) == (0, len(BOUNCED))
    assert second.json()["suppressed"] == []


def test_an_mbox_is_read_message_by_message_and_positions_are_named(
    settings: Settings, tmp_path: Path
) -> None:
    """An mbox of three: the one that is no bounce is named by its place in the file."""
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for name in ("dsn_10.eml", "qmail_08.eml", "qmail_01.eml"):
        box.add((SAMPLES / name).read_bytes())
    box.close()

    result = notifier(settings, "feedback", "import", "--json", str(path))

    assert result.exit_code == 1
    report = result.json()
    assert (report["messages"], report["stored"]) == (3, 2)
    [missed] = report["not_understood"]
    assert missed["where"] == f"{path}, message 2"
    assert missed["reason"].startswith("no bounce or complaint report found")


def test_a_folder_with_no_mail_in_it_is_said_so(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "cur"
    folder.mkdir()
    (folder / "1764633600.M1P2.host:2,S").write_bytes((SAMPLES / "dsn_10.eml").read_bytes())

    result = notifier(settings, "feedback", "import", "--json", str(folder))

    assert result.exit_code == 1
    assert result.json()["not_understood"] == [
        {"where": str(folder), "reason": "no .eml or mbox files in this folder"}
    ]


def test_a_missing_file_is_a_usage_error_and_nothing_is_imported(
    settings: Settings, tmp_path: Path
) -> None:
    result = notifier(
        settings, "feedback", "import", str(SAMPLES / "dsn_10.eml"), str(tmp_path / "gone.eml")
    )

    assert result.exit_code == 2
    assert f"{tmp_path / 'gone.eml'}: no such file or folder" in result.stderr
    store = SqlStore(settings.database_url)
    try:
        assert store.suppressed(["anne.person@dom.ain"]) == {}
    finally:
        store.close()


# --- VERP through the real SMTP server -----------------------------------------------------


@pytest.fixture
def verp_settings(tmp_path: Path, smtp_sink: SmtpSink) -> Settings:
    return smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, bounce_address="bounces@shop.example"
    )


def test_the_envelope_sender_carries_the_notice_token_and_a_bare_dsn_finds_its_notice(
    verp_settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """MAIL FROM is bounces+<token>@shop.example (From: is still the shop); a DSN sent back
    to that address, with none of the original's headers, is tied to the notice by VERP."""
    records = write_jsonl(tmp_path / "batch.jsonl", [tna_record(1, email="jane@example.com")])
    assert notifier(verp_settings, "run", str(records)).exit_code == 0
    [delivery] = smtp_sink.deliveries
    message_id = str(delivery.message["Message-ID"])
    assert delivery.mail_from == f"bounces+{verp_token(message_id)}@shop.example"
    assert delivery.message["From"] == "Example Store <orders@example.com>"

    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(dsn(to=delivery.mail_from, recipient="someone-else@example.org"))
    result = notifier(verp_settings, "feedback", "import", "--json", str(bounce))

    assert result.exit_code == 0, result.stdout
    assert result.json()["matched"] == {"verp": 1}
    store = SqlStore(verp_settings.database_url)
    try:
        [stored] = store.feedback_for(tna_key(1))
        assert stored.matched_by is MatchedBy.VERP
        notice = store.notice(tna_key(1))
        assert notice is not None and notice.feedback is not None
        assert notice.feedback.verdict == "bounced"
    finally:
        store.close()


def test_a_dsn_returning_the_original_headers_is_tied_by_message_id(
    verp_settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    records = write_jsonl(tmp_path / "batch.jsonl", [tna_record(1, email="jane@example.com")])
    assert notifier(verp_settings, "run", str(records)).exit_code == 0
    [delivery] = smtp_sink.deliveries
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(
        dsn(
            to="postmaster@shop.example",
            recipient="jane@example.com",
            returned=delivery.data,
            headers_only=True,
        )
    )

    result = notifier(verp_settings, "feedback", "import", "--json", str(bounce))

    assert result.exit_code == 0, result.stdout
    assert result.json()["matched"] == {"message-id": 1}
    store = SqlStore(verp_settings.database_url)
    try:
        assert "jane@example.com" in store.suppressed(["jane@example.com"])
    finally:
        store.close()


def test_a_bounce_address_with_a_plus_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, bounce_address="bounces+x@shop.example")
    records = write_jsonl(tmp_path / "batch.jsonl", [tna_record(1)])

    result = notifier(settings, "run", str(records))

    assert result.exit_code == 2
    assert "NOTIFIER_BOUNCE_ADDRESS" in result.stderr


def test_stdin_takes_one_message_or_an_mbox(settings: Settings, tmp_path: Path) -> None:
    """`-` reads one message, or (starting with an mbox `From ` line) several."""
    send_notices_before_the_bounces(settings)
    from support.project import env_for
    from typer.testing import CliRunner

    from notifier.cli import app

    path = tmp_path / "two.mbox"
    box = mailbox.mbox(path)
    for name in ("dsn_10.eml", "qmail_01.eml"):
        box.add((SAMPLES / name).read_bytes())
    box.close()
    runner = CliRunner()
    args = ["feedback", "import", "--json", "-"]

    one = runner.invoke(
        app, args, input=(SAMPLES / "exim_01.eml").read_bytes(), env=env_for(settings)
    )
    two = runner.invoke(app, args, input=path.read_bytes(), env=env_for(settings))

    assert (one.exit_code, two.exit_code) == (0, 0), one.output + two.output
    assert json.loads(one.stdout)["messages"] == 1
    report = json.loads(two.stdout)
    assert (report["messages"], report["stored"]) == (2, 2)
    store = SqlStore(settings.database_url)
    try:
        bounced = ["userx@its.example.nl", "anne.person@dom.ain", "userx@example.de"]
        assert set(store.suppressed(bounced)) == set(bounced)
    finally:
        store.close()


@pytest.mark.parametrize("recipient", ["jose@example.com", "josé@exämple.com"])
def test_the_verp_envelope_holds_for_an_internationalised_address_too(
    smtp_sink: SmtpSink, recipient: str
) -> None:
    """A non-ASCII recipient takes the stdlib (SMTPUTF8) path; its envelope is still the
    notice's bounce address."""
    from notifier.rendering.renderer import RenderedEmail, build_message
    from notifier.transports.smtp import SmtpTransport

    message_id = "<0d9a9f2df44f11a4047acf8bd6f3711d@example.com>"
    bounce = verp_address("bounces@shop.example", message_id)
    message = build_message(
        RenderedEmail(subject="Your parcel", text="Hello\n", html="<p>Hello</p>"),
        sender="Example Store <orders@example.com>",
        recipient=recipient,
        recipient_name="José",
        message_id=message_id,
        date=datetime.now(UTC),
        envelope_from=bounce,
    )

    async def send() -> None:
        async with SmtpTransport(hostname=smtp_sink.host, port=smtp_sink.port) as transport:
            await transport.send(message)

    asyncio.run(send())
    [delivery] = smtp_sink.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == (bounce, (recipient,))
    assert delivery.message["From"] == "Example Store <orders@example.com>"
