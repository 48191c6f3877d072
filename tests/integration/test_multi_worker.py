"""Four `notifier worker` processes on one PostgreSQL ledger, one SIGKILLed mid-way.

Every notice ends `sent` exactly once in the ledger, and reaches the SMTP server; the dead
worker's claims are finished by the others once its lease runs out. The only notices the
server may see twice are the few the dead worker had handed to SMTP but not yet recorded —
at-most-once-in-flight — and those are sent again only after the retry backoff (an
ambiguous attempt), with the same Message-ID.

The default run uses 600 notices; `NOTIFIER_SOAK_NOTICES=10000` (make soak) the full size.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.ledger import engine_on, tracking_records
from support.project import ROOT, env_for, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus, message_id_for
from notifier.processes.wiring import engine_config
from notifier.store.sql import SqlStore

NOTICES = int(os.environ.get("NOTIFIER_SOAK_NOTICES", "600"))
WORKERS = 4
LEASE_SECONDS = 5
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)

# Generous: on a busy 2-core machine four workers deliver ~100 notices/s in all.
BUDGET_SECONDS = 60 + NOTICES // 20

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(BUDGET_SECONDS + 30)]


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "notifier", "worker", "--until-idle"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_id(process: subprocess.Popen[str]) -> str:
    """The id a worker announces on start: the claim token it writes into the ledger."""
    assert process.stderr is not None
    banner = process.stderr.readline()
    assert banner.startswith("notifier worker "), banner
    return banner.split()[2]


def claimed_by(store: SqlStore, token: str) -> set[str]:
    return {n.key for n in store.notices(status=NoticeStatus.SENDING) if n.claim_token == token}


def test_four_workers_one_killed_deliver_every_notice_once(
    tmp_path: Path, smtp_sink: SmtpSink, pg_url: str
) -> None:
    """4 worker processes, one SIGKILLed mid-way: every notice sent once, its claims taken over."""
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, database_url=pg_url, lease_seconds=LEASE_SECONDS
    )
    store = SqlStore(pg_url)
    workers: list[subprocess.Popen[str]] = []
    try:
        keys = engine_on(store).ingest(tracking_records(NOTICES)).created_keys
        assert len(keys) == NOTICES
        workers = [start_worker(env_for(settings)) for _ in range(WORKERS)]
        victim, victim_id = workers[0], worker_id(workers[0])

        # Mid-way, and while the victim holds a batch: that batch is what must be taken over.
        # SIGSTOP first freezes it, so the claims it holds can be read before it dies.
        deadline = time.monotonic() + 60
        orphaned: set[str] = set()
        while not orphaned:
            assert time.monotonic() < deadline, "the victim never held a claim mid-way"
            time.sleep(0.02)
            if len(smtp_sink.deliveries) < NOTICES // 4:
                continue
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.2)  # a commit already on its way to the server lands first
            orphaned = claimed_by(store, victim_id)
            if not orphaned:
                victim.send_signal(signal.SIGCONT)
        # Those it had handed to SMTP (send marked): they may have arrived.
        cut_off = {key for key in orphaned if (n := store.notice(key)) and n.send_started_at}
        victim.send_signal(signal.SIGKILL)
        victim.communicate()

        for process in workers[1:]:
            assert worker_id(process)
            out, errors = process.communicate(timeout=BUDGET_SECONDS)
            assert process.returncode == 0, errors
            assert "worker stopped:" in out

        # Cut off mid-send, each is one ambiguous attempt waiting for its backoff; the rest
        # of the dead worker's batch was sent by the others once the lease ran out.
        waiting = {NoticeStatus.RETRY: len(cut_off)} if cut_off else {}
        assert store.notice_counts() == {NoticeStatus.SENT: NOTICES - len(cut_off), **waiting}
        for key in cut_off:
            notice = store.notice(key)
            assert notice is not None and notice.ambiguous_attempts == 1
        # The backoff ends (as `notifier retry` would end it): a last worker sends them.
        assert store.make_due(cut_off, now=datetime.now(UTC)) == len(cut_off)
        last = start_worker(env_for(settings))
        workers.append(last)
        assert worker_id(last)
        _, errors = last.communicate(timeout=BUDGET_SECONDS)
        assert last.returncode == 0, errors

        assert store.notice_counts() == {NoticeStatus.SENT: NOTICES}
        for key in orphaned:
            notice = store.notice(key)
            assert notice is not None and notice.status is NoticeStatus.SENT
            assert notice.attempts == 2  # the dead worker's try, and the survivor's
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.communicate()
        store.close()

    domain = engine_config(settings).branding.message_id_domain
    expected = {message_id_for(key, domain): key for key in keys}
    received = Counter(
        match.group(1).decode()
        for delivery in smtp_sink.deliveries
        if (match := _MESSAGE_ID.search(delivery.data))
    )
    assert received.keys() == expected.keys()  # every notice reached the server
    resent = {expected[message_id] for message_id, n in received.items() if n > 1}
    # Only the dead worker's in-flight notices may have been handed to SMTP twice, and at most
    # twice: it died after the server accepted them, before it could record that.
    assert resent <= cut_off
    assert max(received.values()) <= 2
    assert len(smtp_sink.deliveries) == NOTICES + len(resent)
    print(  # shown with -s (make soak)
        f"\n{NOTICES} notices, {WORKERS} workers: the killed one held {len(orphaned)} claims,"
        f" {len(resent)} of them had reached the server before it died (resent, same Message-ID)"
    )
