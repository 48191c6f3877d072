"""The `mailbox` job against a real IMAP server (dovecot, started by the test, over TLS with
a certificate the test made): each bounce stored once and moved to the processed folder, the
unreadable moved aside, a second run handling nothing; VERP, Message-ID and address matches
from one mailbox; a crash's leftovers stored once; bad credentials and an untrusted
certificate refused with the reason, nothing moved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bounces import SAMPLES, dsn
from support.cli import notifier
from support.dovecot import PASSWORD, USER, Dovecot, unavailable_reason
from support.memory_engine import tna_key, tracking
from support.project import settings_for

from notifier.core.feedback import MatchedBy, verp_address
from notifier.core.models import NoticeStatus
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store.sql import SqlStore

BOUNCE_ADDRESS = "bounces@shop.example"
PROCESSED, UNPARSED = "notifier-processed", "notifier-unparsed"


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[Dovecot]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Dovecot(tmp_path) as server:
        yield server


def job_settings(tmp_path: Path, imap: Dovecot, **job: str | int) -> Settings:
    """Settings whose notifier.toml has one `mailbox` job, `bounces`, on this server."""
    fields = {"host": imap.host, "port": imap.port, "ca_file": str(imap.ca_file), **job}
    lines = "".join(
        f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str) else f"{k} = {v}\n"
        for k, v in fields.items()
    )
    config = tmp_path / "notifier.toml"
    config.write_text(f'[jobs.bounces]\nkind = "mailbox"\ninterval = "5m"\n{lines}')
    return settings_for(
        tmp_path,
        config=config,
        bounce_address=BOUNCE_ADDRESS,
        mailbox_username=USER,
        mailbox_password=PASSWORD,
    )


def send(settings: Settings, *addresses: str) -> list[str]:
    """One notice to each address, sent now (file transport); their Message-IDs."""
    with open_engine(settings) as engine:
        engine.ingest([tracking(n, email=a) for n, a in enumerate(addresses, start=1)])
        report = asyncio.run(engine.deliver_due())
        assert report.counts[NoticeStatus.SENT] == len(addresses)
        notices = [engine.store.notice(tna_key(n)) for n in range(1, len(addresses) + 1)]
    return [n.message_id for n in notices if n is not None and n.message_id]


def sent_bytes(settings: Settings, message_id: str) -> bytes:
    [path] = [p for p in settings.outbox_dir.glob("*.eml") if message_id.strip("<>") in p.name]
    return path.read_bytes()


def test_each_bounce_is_stored_once_and_moved_and_a_second_run_handles_nothing(
    tmp_path: Path, imap: Dovecot
) -> None:
    settings = job_settings(tmp_path, imap)
    jane_id, bob_id = send(settings, "jane@example.com", "bob@example.com")
    imap.append(
        # The original's headers come back: tied by Message-ID.
        dsn(
            to=BOUNCE_ADDRESS,
            recipient="jane@example.com",
            returned=sent_bytes(settings, jane_id),
            headers_only=True,
        ),
        # Nothing of the original, but sent to the notice's VERP address: tied by the token.
        dsn(to=verp_address(BOUNCE_ADDRESS, bob_id), recipient="bob@example.com"),
        # A real qmail bounce for an address notifier never mailed: stored, unmatched.
        (SAMPLES / "qmail_01.eml").read_bytes(),
        # An auto-reply, no bounce: set aside, not deleted.
        (SAMPLES / "qmail_08.eml").read_bytes(),
    )

    first = notifier(settings, "schedule", "run", "bounces")

    assert first.exit_code == 0, first.stdout + first.stderr
    assert (
        "job bounces: 4 message(s): 3 event(s), 3 new (2 tied to a notice, 1 not),"
        " 2 address(es) suppressed, 1 not understood (set aside)"
    ) in first.stdout
    assert imap.uids("INBOX") == []
    assert len(imap.uids(PROCESSED)) == 3
    assert imap.subjects(UNPARSED) == ["Auto reply"]
    store = SqlStore(settings.database_url)
    try:
        [jane] = store.feedback_for(tna_key(1))
        [bob] = store.feedback_for(tna_key(2))
        assert (jane.matched_by, bob.matched_by) == (MatchedBy.MESSAGE_ID, MatchedBy.VERP)
        for key in (tna_key(1), tna_key(2)):
            notice = store.notice(key)
            assert notice is not None and notice.feedback is not None
            assert notice.feedback.verdict == "bounced"
        bounced = ["jane@example.com", "bob@example.com"]
        assert set(store.suppressed(bounced)) == set(bounced)
        # The third bounce is for mail notifier never sent: kept, unmatched, not suppressing.
        assert not store.suppressed(["userx@example.de"])
        rates_before = store.feedback_rates(since=jane.received_at.replace(year=2000))
    finally:
        store.close()

    second = notifier(settings, "schedule", "run", "bounces")

    assert second.exit_code == 0, second.stdout + second.stderr
    assert "job bounces: no messages" in second.stdout
    assert (len(imap.uids(PROCESSED)), len(imap.uids(UNPARSED))) == (3, 1)
    store = SqlStore(settings.database_url)
    try:
        assert store.feedback_rates(since=jane.received_at.replace(year=2000)) == rates_before
        assert len(store.feedback_for(tna_key(1))) == 1
    finally:
        store.close()


def test_a_message_a_crash_left_in_the_inbox_is_stored_once(tmp_path: Path, imap: Dovecot) -> None:
    """Stored, then the process died before the move: the next run finds it again, stores
    nothing new, and moves it."""
    settings = job_settings(tmp_path, imap)
    [jane_id] = send(settings, "jane@example.com")
    bounce = dsn(to=verp_address(BOUNCE_ADDRESS, jane_id), recipient="jane@example.com")
    imap.append(bounce)
    assert notifier(settings, "schedule", "run", "bounces").exit_code == 0
    imap.append(bounce)  # the same message, as a crash before the move would leave it

    again = notifier(settings, "schedule", "run", "bounces")

    assert again.exit_code == 0
    assert imap.uids("INBOX") == []
    assert len(imap.uids(PROCESSED)) == 2
    store = SqlStore(settings.database_url)
    try:
        assert len(store.feedback_for(tna_key(1))) == 1
    finally:
        store.close()


def test_a_wrong_password_is_refused_naming_the_mailbox_and_nothing_moves(
    tmp_path: Path, imap: Dovecot
) -> None:
    settings = job_settings(tmp_path, imap).model_copy(update={"mailbox_password": None})
    config = settings.config
    assert config is not None
    settings = settings_for(
        tmp_path, config=config, mailbox_username=USER, mailbox_password="wrong"
    )
    imap.append((SAMPLES / "qmail_01.eml").read_bytes())

    result = notifier(settings, "schedule", "run", "bounces")

    assert result.exit_code == 2
    assert f"mailbox {USER}@{imap.host}:{imap.port}" in result.stderr
    assert "MailboxLoginError" in result.stderr or "AUTHENTICATIONFAILED" in result.stderr
    assert len(imap.uids("INBOX")) == 1


def test_a_server_certificate_nobody_trusts_is_refused(tmp_path: Path, imap: Dovecot) -> None:
    settings = job_settings(tmp_path, imap)
    assert settings.config is not None
    text = settings.config.read_text()
    settings.config.write_text(
        "\n".join(line for line in text.splitlines() if "ca_file" not in line)
    )
    imap.append((SAMPLES / "qmail_01.eml").read_bytes())

    result = notifier(settings, "schedule", "run", "bounces")

    assert result.exit_code == 2
    assert "the server's certificate is not trusted" in result.stderr
    assert "set ca_file" in result.stderr
    assert len(imap.uids("INBOX")) == 1
