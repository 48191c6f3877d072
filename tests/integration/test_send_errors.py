"""Every send error is classified: a refusing outbox, a failing driver, a transport's bug.

Whatever a transport raises, the notice ends transient, permanent or ambiguous with the
reason in the ledger, never stuck in `sending`, and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from support.cli import notifier_process as notifier
from support.filesystems import Refusal, full_folder, read_only_folder
from support.project import env_for, settings_for, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.cli.root import deliver_and_close
from notifier.core.models import Notice, NoticeStatus
from notifier.core.records import Record, parse_record
from notifier.engine import DeliveryReport, Engine
from notifier.processes.wiring import open_engine
from notifier.transports import MemoryTransport, pipelining

# Each SMTP test twice: against a server offering PIPELINING and one that does not.
pytestmark = pytest.mark.smtp_both_ways

UPS = "1Z999AA10123456784"


def tna(n: int) -> dict[str, Any]:
    """Fulfillment F<n> entering Pending Shipment with a tracking number: one notice."""
    return {
        "order_id": f"O{n}",
        "fulfillment_id": f"F{n}",
        "status": "Pending Shipment",
        "email": f"customer{n}@example.com",
        "first_name": "Jane",
        "tracking_number": UPS,
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }


def records(count: int) -> list[Record]:
    received = datetime.now(UTC)
    return [parse_record(tna(n), received_at=received) for n in range(count)]


def key(n: int) -> str:
    return f"tracking_number_assigned:fulfillment:F{n}"


def deliver(engine: Engine) -> DeliveryReport:
    return asyncio.run(deliver_and_close(engine))


def ledger(engine: Engine) -> dict[str, Notice]:
    return {notice.key: notice for notice in engine.store.notices()}


def inject_os_error(monkeypatch: pytest.MonkeyPatch, code: int) -> Refusal:
    """The last resort: make the transport's file creation fail with this OS error."""

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return Refusal(f"injected {errno.errorcode[code]} (no real mechanism here)", code)


@pytest.fixture
def read_only_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Refusal]:
    """tmp_path/outbox, refusing writes by the first real mechanism that works here."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with read_only_folder(outbox) as refusal:
        # Only where no mount, chattr or (not root) chmod works is the error injected.
        yield refusal or inject_os_error(monkeypatch, errno.EROFS)


@pytest.fixture
def full_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Refusal]:
    """tmp_path/outbox on a small tmpfs filled to the last byte (else an injected ENOSPC)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with full_folder(outbox) as refusal:
        yield refusal or inject_os_error(monkeypatch, errno.ENOSPC)


# --- the file transport -------------------------------------------------------------------


def test_read_only_outbox_leaves_every_notice_retry_with_the_os_error(
    tmp_path: Path, read_only_outbox: Refusal
) -> None:
    """A read-only outbox: every notice `retry` naming the folder and the OS error; none lost."""
    settings = settings_for(tmp_path)
    outbox = settings.outbox_dir
    with open_engine(settings) as engine:
        engine.ingest(records(5))
        report = deliver(engine)
        notices = ledger(engine)
    assert report.counts == Counter({NoticeStatus.RETRY: 5}), read_only_outbox.mechanism
    expected = f"transient: could not write the outbox '{outbox}': {read_only_outbox.error_text}"
    assert {n.reason for n in notices.values()} == {expected}
    assert {n.status for n in notices.values()} == {NoticeStatus.RETRY}
    assert not any(n.ambiguous_attempts for n in notices.values())
    assert not [name for name in os.listdir(outbox) if name.endswith(".eml")]


def test_notices_held_by_a_read_only_outbox_are_sent_once_it_is_writable(
    tmp_path: Path,
) -> None:
    """Once the outbox takes writes again, the next pass after the backoff writes each notice."""
    settings = settings_for(tmp_path)
    outbox = settings.outbox_dir
    outbox.mkdir()
    with open_engine(settings) as engine:
        engine.ingest(records(3))
        with read_only_folder(outbox) as refusal:
            if refusal is None:
                pytest.skip("no way to make a folder read-only for this user here")
            assert deliver(engine).counts == Counter({NoticeStatus.RETRY: 3})
        later = datetime.now(UTC) + timedelta(minutes=5)  # past the first backoff (~1 min)
        engine.clock = lambda: later
        assert deliver(engine).counts == Counter({NoticeStatus.SENT: 3})
    assert len([name for name in os.listdir(outbox) if name.endswith(".eml")]) == 3


def test_full_outbox_leaves_every_notice_retry_and_no_half_written_file(
    tmp_path: Path, full_outbox: Refusal
) -> None:
    """A full file system: every notice `retry` with ENOSPC; no temporary file is left behind."""
    settings = settings_for(tmp_path)
    outbox = settings.outbox_dir
    with open_engine(settings) as engine:
        engine.ingest(records(4))
        report = deliver(engine)
        notices = ledger(engine)
    assert report.counts == Counter({NoticeStatus.RETRY: 4}), full_outbox.mechanism
    expected = f"transient: could not write the outbox '{outbox}': {full_outbox.error_text}"
    assert {n.reason for n in notices.values()} == {expected}
    assert sorted(os.listdir(outbox)) in ([], [".filler"])


# --- the SMTP transport -------------------------------------------------------------------


def test_unexpected_driver_errors_are_classified_by_whether_data_had_started(
    tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver bug before DATA is transient, after DATA ambiguous; the rest are sent."""
    # The faults are injected into the real driver, one call each, against a real server:
    # into aiosmtplib's rcpt() and data(), or, pipelined, where the envelope and the content
    # are written.
    if smtp_sink.pipelining:
        real_envelope, real_content = pipelining.send_envelope, pipelining.send_content

        async def envelope(client: aiosmtplib.SMTP, commands: bytes, recipients: int) -> Any:
            if b"customer1@example.com" in commands:
                raise RuntimeError("driver bug before the data")
            return await real_envelope(client, commands, recipients)

        async def content(client: aiosmtplib.SMTP, message: bytes, *, then: bytes = b"") -> Any:
            response = await real_content(client, message, then=then)
            if b"customer2@example.com" in message:
                raise ValueError("driver bug after the data")
            return response

        monkeypatch.setattr(pipelining, "send_envelope", envelope)
        monkeypatch.setattr(pipelining, "send_content", content)
    else:
        real_rcpt, real_data = aiosmtplib.SMTP.rcpt, aiosmtplib.SMTP.data

        async def rcpt(self: aiosmtplib.SMTP, recipient: str, **kwargs: Any) -> Any:
            if recipient == "customer1@example.com":
                raise RuntimeError("driver bug before the data")
            return await real_rcpt(self, recipient, **kwargs)

        async def data(self: aiosmtplib.SMTP, message: bytes, **kwargs: Any) -> Any:
            response = await real_data(self, message, **kwargs)
            if b"customer2@example.com" in bytes(message):
                raise ValueError("driver bug after the data")
            return response

        monkeypatch.setattr(aiosmtplib.SMTP, "rcpt", rcpt)
        monkeypatch.setattr(aiosmtplib.SMTP, "data", data)
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    with open_engine(settings) as engine:
        engine.ingest(records(5))
        report = deliver(engine)
        notices = ledger(engine)

    assert report.counts == Counter({NoticeStatus.SENT: 3, NoticeStatus.RETRY: 2})
    server = f"{smtp_sink.host}:{smtp_sink.port}"
    before = notices[key(1)]
    assert before.status is NoticeStatus.RETRY and before.ambiguous_attempts == 0
    assert before.reason == (
        f"transient: {server}: unexpected error before the message was sent:"
        " RuntimeError: driver bug before the data"
    )
    after = notices[key(2)]
    assert after.status is NoticeStatus.RETRY and after.ambiguous_attempts == 1
    assert after.reason == (
        f"ambiguous: {server}: unexpected error after the message data began, before the"
        " server confirmed it: ValueError: driver bug after the data"
    )
    assert {n.status for k, n in notices.items() if k not in (key(1), key(2))} == {
        NoticeStatus.SENT
    }
    received = sorted(d.rcpt_tos[0] for d in smtp_sink.deliveries)
    assert received == [f"customer{n}@example.com" for n in (0, 2, 3, 4)]


def test_a_message_without_recipients_is_permanent(smtp_sink: SmtpSink) -> None:
    """A message with no To, Cc or Bcc can never be sent: a permanent error, not a ValueError."""
    from notifier.errors import PermanentSendError
    from notifier.transports import SmtpTransport

    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["Subject"] = "no one to send to"
    message.set_content("text\n")

    async def main() -> None:
        async with SmtpTransport(hostname=smtp_sink.host, port=smtp_sink.port) as transport:
            with pytest.raises(PermanentSendError, match="no To, Cc or Bcc"):
                await transport.send(message)

    asyncio.run(main())
    assert smtp_sink.deliveries == []


# --- the engine's safety net --------------------------------------------------------------


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG])
def test_an_unclassified_transport_error_is_ambiguous_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    """A transport raising a non-SendError: that notice `retry` ambiguous, the rest sent.

    It is logged once at ERROR; the traceback comes with it only at DEBUG.
    """
    transport = MemoryTransport()
    transport.fail_next(KeyError("boom"))
    caplog.set_level(level, logger="notifier.engine")
    with open_engine(settings_for(tmp_path)) as engine:
        engine.transport = transport
        engine.ingest(records(4))
        report = deliver(engine)
        notices = ledger(engine)

    assert report.counts == Counter({NoticeStatus.SENT: 3, NoticeStatus.RETRY: 1})
    assert report.ambiguous == 1
    [failed] = [n for n in notices.values() if n.status is NoticeStatus.RETRY]
    assert failed.reason == "ambiguous: unexpected error from the transport: KeyError: 'boom'"
    assert failed.ambiguous_attempts == 1
    assert len(transport.messages) == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"notice {failed.key}: the transport raised an unclassified KeyError,"
        " counted as ambiguous: 'boom'"
    ]
    assert (errors[0].exc_info is not None) == (level == logging.DEBUG)


# --- `notifier run` end to end ------------------------------------------------------------


def test_run_with_a_read_only_outbox_exits_cleanly_and_leaves_every_notice_retry(
    tmp_path: Path,
) -> None:
    """`notifier run` into a read-only outbox: exit 0, no traceback, each notice retry + reason."""
    settings = settings_for(tmp_path)
    outbox = settings.outbox_dir
    outbox.mkdir()
    env = env_for(settings)
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(tna(n)) + "\n" for n in range(6)))
    with read_only_folder(outbox) as refusal:
        if refusal is None:
            # An error injected into this process would not reach the child process.
            pytest.skip("no way to make a folder read-only for this user here")
        result = notifier("run", str(batch), env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    summary = " ".join(result.stdout.split())
    assert "retry │ 6" in summary and "notifier notices --status retry" in summary

    listed = json.loads(notifier("notices", "--json", env=env).stdout)
    reason = f"transient: could not write the outbox '{outbox}': {refusal.error_text}"
    assert [(n["status"], n["reason"]) for n in listed] == [("retry", reason)] * 6
    table = notifier("notices", "--status", "retry", env=env)
    assert table.returncode == 0
    assert " ".join(table.stdout.split()).count("could not write the outbox") == 6
