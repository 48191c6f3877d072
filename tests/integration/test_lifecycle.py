"""SIGTERM mid-batch, for each long-running command: `serve`, `worker` and `schedule`.

Each runs as a real child process on a real SQLite ledger, sending to a real SMTP server
slowed down so that sends are in flight when the signal arrives. The sends in flight finish
(each message reaches the server once and is recorded sent), the other claimed notices are
released (pending, unclaimed, unattempted), and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.ledger import engine_on, tracking_records
from support.project import ROOT, env_for, smtp_settings
from support.smtp_sink import SmtpSink
from support.webhook import SECRET

from notifier.core.models import NoticeStatus
from notifier.settings import Settings
from notifier.store.sql import SqlStore

NOTICES = 12
CONNECTIONS = 2  # at most two sends in flight; the claimed batch holds all twelve


def notifier_process(settings: Settings, *args: str, cwd: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "notifier", *args],
        cwd=cwd,
        env={**clean, **env_for(settings), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


COMMANDS = {
    "worker": ("worker",),
    "serve": ("serve", "--port", "0"),
    "schedule": ("schedule",),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sigterm_mid_batch_finishes_the_sends_in_flight_and_releases_the_rest(
    command: str, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """SIGTERM while sends are in flight: they reach the server once and are recorded sent;
    every other claimed notice is pending again with no claim; exit 0."""
    (tmp_path / "drop").mkdir()
    (tmp_path / "notifier.toml").write_text(
        '[jobs.house]\nkind = "dropfolder"\npath = "drop"\ninterval = "1m"\n'
    )
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        smtp_connections=CONNECTIONS,
        webhook_secret=SECRET,
        config=tmp_path / "notifier.toml",
    )
    store = SqlStore(settings.database_url)
    try:
        engine_on(store).ingest(tracking_records(NOTICES))
        smtp_sink.slow_down(1.0)
        child = notifier_process(settings, *COMMANDS[command], cwd=tmp_path)
        try:
            smtp_sink.wait_for_data(CONNECTIONS, timeout=30)
            in_flight = smtp_sink.data_begun
            assert smtp_sink.deliveries == []  # none answered yet: the batch is in hand
            child.send_signal(signal.SIGTERM)
            _, errors = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode == 0, errors

        notices = store.notices()
        by_status = Counter(notice.status for notice in notices)
        delivered = Counter(rcpt for d in smtp_sink.deliveries for rcpt in d.rcpt_tos)
        sent = {n.recipient for n in notices if n.status is NoticeStatus.SENT}
        # The sends in flight at the signal finished, once each; no other send was started.
        assert len(delivered) == in_flight == smtp_sink.data_begun
        assert set(delivered) == sent and set(delivered.values()) == {1}
        # The rest of the claimed batch is due again for the next worker, untouched.
        assert by_status == {
            NoticeStatus.SENT: in_flight,
            NoticeStatus.PENDING: NOTICES - in_flight,
        }
        for notice in notices:
            assert notice.claim_token is None, notice
            if notice.status is NoticeStatus.PENDING:
                assert notice.attempts == 0, notice
    finally:
        store.close()
