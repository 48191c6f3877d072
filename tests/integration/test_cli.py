"""The `notifier` command end to end, as an operator runs it: real processes, files, SMTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import notifier_process as notifier
from support.ledger import audit_rows
from support.project import ROOT, env_for, settings_for, smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink

UPS = "1Z999AA10123456784"


def lifecycle(order: str, fid: str, email: str = "jane@example.com") -> list[dict[str, Any]]:
    base = {"order_id": order, "fulfillment_id": fid, "email": email, "first_name": "Jane"}
    return [
        {**base, "status": "Pending", "occurred_at": "2026-11-20T10:00:00Z"},
        {
            **base,
            "status": "Pending Shipment",
            "occurred_at": "2026-11-21T10:00:00Z",
            "tracking_number": UPS,
        },
        {
            **base,
            "status": "Shipped",
            "occurred_at": "2026-11-22T10:00:00Z",
            "tracking_number": UPS,
        },
    ]


def test_run_sends_and_reports_and_exit_codes(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """`run` delivers, prints the summary, reports bad lines on stderr and exits 1 for them."""
    env = env_for(smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port))
    batch = tmp_path / "batch.jsonl"
    write_jsonl(batch, lifecycle("O1", "F1"))
    with batch.open("a") as f:
        f.write('{"order_id": "O2", "fulfillment_id": "F2", "status": "Teleported"}\n')
    result = notifier("run", str(batch), env=env)
    assert result.returncode == 1, result.stderr
    assert f"{batch} line 4: unknown status 'Teleported'" in result.stderr
    assert "notices created" in result.stdout and "sent" in result.stdout
    assert len(smtp_sink.messages) == 2

    clean = tmp_path / "clean.jsonl"
    write_jsonl(clean, lifecycle("O3", "F3"))
    assert notifier("run", str(clean), env=env).returncode == 0
    assert len(smtp_sink.messages) == 4


def test_run_reads_stdin_and_csv(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """`run -` reads records from standard input; CSV files work the same way."""
    env = env_for(smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port))
    stdin = "".join(json.dumps(r) + "\n" for r in lifecycle("O1", "F1"))
    assert notifier("run", "-", env=env, stdin=stdin).returncode == 0
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text(
        "orderId,fulfillmentId,fulfillmentStatus,emailAddress,trackingNumber,occurred_at\n"
        f"O9,F9,Shipped,csv@example.com,{UPS},2026-11-22T10:00:00Z\n"
    )
    assert notifier("run", str(csv_file), env=env).returncode == 0
    assert sorted(d.rcpt_tos[0] for d in smtp_sink.deliveries) == [
        "csv@example.com",
        "jane@example.com",
        "jane@example.com",
    ]


def test_usage_and_configuration_errors_exit_2(tmp_path: Path) -> None:
    """A missing file, bad settings or a broken rule exit 2 with a readable message."""
    env = env_for(settings_for(tmp_path))
    missing = notifier("run", str(tmp_path / "nope.jsonl"), env=env)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_setting = notifier("run", "-", env={**env, "NOTIFIER_TRANSPORT": "pigeon"}, stdin="")
    assert bad_setting.returncode == 2 and "NOTIFIER_TRANSPORT" in bad_setting.stderr
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "broken.toml").write_text('id = "x"\nname = "X"\non = "Shiped"\ntemplate = "t"\n')
    broken = notifier("run", "-", env={**env, "NOTIFIER_RULES_DIR": str(rules)}, stdin="")
    assert broken.returncode == 2
    assert "broken.toml" in broken.stderr and "field 'on'" in broken.stderr


def test_notices_json_lists_the_ledger(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """`notices --json` gives every documented field; filters by status and order work."""
    env = env_for(smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port))
    batch = write_jsonl(tmp_path / "b.jsonl", lifecycle("O1", "F1") + lifecycle("O2", "F2"))
    notifier("run", str(batch), env=env)
    listed = json.loads(notifier("notices", "--json", env=env).stdout)
    assert len(listed) == 4
    assert set(listed[0]) >= {
        "key", "rule", "order_id", "fulfillment_id", "recipient", "status",
        "attempts", "message_id", "created_at", "sent_at", "reason",
    }  # fmt: skip
    assert {n["status"] for n in listed} == {"sent"}
    assert all(n["message_id"].startswith("<") for n in listed)
    only_o2 = json.loads(notifier("notices", "--json", "--order", "O2", env=env).stdout)
    assert {n["order_id"] for n in only_o2} == {"O2"}
    assert json.loads(notifier("notices", "--json", "--status", "failed", env=env).stdout) == []
    table = notifier("notices", env=env)
    assert table.returncode == 0 and "all_fulfillments:order:O1" in table.stdout


def test_check_passes_on_the_shipped_rules_and_fails_on_a_broken_template(tmp_path: Path) -> None:
    """`check` renders every rule; a missing variable is reported with file and line."""
    env = env_for(settings_for(tmp_path))
    ok = notifier("check", env=env)
    assert ok.returncode == 0, ok.stderr
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(ROOT / "templates", templates)
    (templates / "all_fulfillments" / "body.txt").write_text("Hi {{ customer.nickname }}\n")
    bad = notifier("check", env={**env, "NOTIFIER_TEMPLATES_DIR": str(templates)})
    assert bad.returncode == 1
    assert "all_fulfillments/body.txt, line 1" in bad.stderr and "nickname" in bad.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    """`db upgrade` creates the schema on a new database and is idempotent."""
    env = env_for(settings_for(tmp_path))
    first = notifier("db", "upgrade", env=env)
    assert first.returncode == 0 and "revision" in first.stdout
    assert notifier("db", "upgrade", env=env).returncode == 0
    assert (tmp_path / "notifier.db").exists()


def test_file_transport_is_the_zero_setup_default(tmp_path: Path) -> None:
    """With no SMTP settings, each notice is written once as an .eml in the outbox."""
    env = env_for(settings_for(tmp_path))
    batch = write_jsonl(tmp_path / "b.jsonl", lifecycle("O1", "F1"))
    assert notifier("run", str(batch), env=env).returncode == 0
    assert notifier("run", str(batch), env=env).returncode == 0
    emls = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(emls) == 2
    assert b"multipart/alternative" in emls[0].read_bytes()


@pytest.mark.slow
def test_two_processes_same_batch_one_sqlite_file(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """Two `run` processes on the same batch and the same SQLite file send each email once."""
    env = env_for(smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port))
    records: list[dict[str, Any]] = []
    for n in range(150):
        records += lifecycle(f"O{n}", f"F{n}", email=f"c{n}@example.com")
    batch = write_jsonl(tmp_path / "b.jsonl", records)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")} | env
    command = [sys.executable, "-m", "notifier", "run", str(batch)]
    procs = [
        subprocess.Popen(
            command, env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()
    smtp_sink.wait_for(300, timeout=10)
    ids = [m["Message-ID"] for m in smtp_sink.messages]
    assert len(ids) == 300 and len(set(ids)) == 300


def test_every_accepted_record_is_kept_as_received(tmp_path: Path) -> None:
    """The audit trail holds each accepted line exactly as received, stale ones included."""
    env = env_for(settings_for(tmp_path))
    records = [
        *lifecycle("O1", "F1"),
        {**lifecycle("O1", "F1")[0], "occurred_at": "2026-11-19T10:00:00Z"},
    ]
    batch = write_jsonl(tmp_path / "b.jsonl", records)
    assert notifier("run", str(batch), env=env).returncode == 0
    rows = audit_rows(f"sqlite:///{tmp_path / 'notifier.db'}")
    assert [row.payload for row in rows] == batch.read_text().splitlines()
    assert [row.outcome for row in rows] == ["applied", "applied", "applied", "stale"]


def test_rules_lists_every_rule_with_its_trigger_template_and_ledger_counts(
    tmp_path: Path,
) -> None:
    """`notifier rules` shows enabled and disabled rules alike, what fires each, and its
    notices in the ledger by status, as a table and as JSON."""
    env = env_for(settings_for(tmp_path))
    batch = write_jsonl(tmp_path / "batch.jsonl", lifecycle("KN-1", "F-1"))
    assert notifier("run", str(batch), env=env).returncode == 0

    table = notifier("rules", env=env)
    assert table.returncode == 0, table.stderr
    assert "fulfillment enters Pending Shipment" in table.stdout
    assert "order reaches Shipped" in table.stdout
    assert "fulfillment enters RMA Pending" in table.stdout

    listed = notifier("rules", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rules = {rule["id"]: rule for rule in json.loads(listed.stdout)}
    # Every rule file of the project, enabled or not.
    assert set(rules) == {path.stem for path in (ROOT / "rules").glob("*.toml")}
    assert {"delivered", "awaiting_carrier_pickup", "stalled_parcels_operator"} <= set(rules)
    tna = rules["tracking_number_assigned"]
    assert (tna["enabled"], tna["template"]) == (True, "tracking_number_assigned")
    assert tna["notices"]["sent"] == 1 and tna["notices"]["failed"] == 0
    assert rules["all_fulfillments"]["notices"]["sent"] == 1
    delivered = rules["delivered"]
    assert delivered["enabled"] is False
    assert delivered["fires_when"] == "fulfillment enters Delivered"
    assert sum(delivered["notices"].values()) == 0


def test_the_example_batchs_rejected_lines_are_noted_for_the_console(tmp_path: Path) -> None:
    """`notifier run` tells the operator which lines it refused, and notes them in the
    ledger for the console's "needs attention" (where and why)."""
    from datetime import UTC, datetime

    from notifier.store.overview import read_overview
    from notifier.store.sql import SqlStore

    settings = settings_for(tmp_path)
    batch = ROOT / "examples" / "batch.jsonl"
    result = notifier("run", str(batch), env=env_for(settings), cwd=tmp_path)
    assert result.returncode == 1  # the example has bad lines on purpose
    store = SqlStore(settings.database_url)
    try:
        rejected = read_overview(store, now=datetime.now(UTC)).attention.rejected
    finally:
        store.close()
    told = [line for line in result.stderr.splitlines() if line.startswith("rejected: ")]
    assert rejected.total == len(told) == 2
    assert {f"rejected: {r.source} {r.location}: {r.reason}" for r in rejected.items} == set(told)
