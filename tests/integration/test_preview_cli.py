"""`notifier preview`, `notifier carrier` and `notifier check` as a user runs them."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from support.project import ROOT, RULES, env_for, settings_for, write_jsonl
from typer.testing import CliRunner

from notifier.cli import app
from notifier.core.rules import load_rules

RECORD = {
    "order_id": "KN-3141",
    "fulfillment_id": "F-1",
    "status": "Pending Shipment",
    "email": "maria.gonzalez@example.com",
    "first_name": "Maria",
    "last_name": "Gonzalez",
    "tracking_number": "9400 1112 0620 6406 2607 87",
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


class Cli(Protocol):
    def __call__(self, *args: str, stdin: str | None = None, **overrides: object) -> Run: ...


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI in-process (a process per call is slow), in tmp_path, with settings on tmp files.

    The settings come from the environment exactly as for a user, no store exists yet."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, stdin: str | None = None, **overrides: object) -> Run:
        with monkeypatch.context() as patch:
            for name, value in env_for(settings_for(tmp_path, **overrides)).items():
                patch.setenv(name, value)
            result = CliRunner().invoke(app, list(args), input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


def notifier_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `python -m notifier` in a child process, for the end-to-end check."""
    env = {**os.environ, **env_for(settings_for(tmp_path))}
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_preview_text_shows_customer_and_tracking(tmp_path: Path) -> None:
    """--format text prints headers and the text part with the name and tracking number;
    nothing is sent and no store is created."""
    record = tmp_path / "rec.json"
    record.write_text(json.dumps(RECORD), encoding="utf-8")
    result = notifier_process(
        tmp_path, "preview", "tracking_number_assigned", "--record", str(record), "--format", "text"
    )
    assert result.returncode == 0, result.stderr
    assert "To: Maria Gonzalez <maria.gonzalez@example.com>" in result.stdout
    assert "Hi Maria," in result.stdout
    assert "9400111206206406260787" in result.stdout
    assert "tLabels=9400111206206406260787" in result.stdout
    assert not (tmp_path / "notifier.db").exists()
    assert not (tmp_path / "outbox").exists()


def test_preview_eml_is_multipart_text_and_html(tmp_path: Path, cli: Cli) -> None:
    """--format eml prints a message that parses as multipart/alternative text + HTML."""
    result = cli("preview", "all_fulfillments", "--format", "eml")
    assert result.returncode == 0, result.stderr
    message = email.message_from_string(result.stdout, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "Track parcel" in html.get_content()
    assert message["Subject"] == "Your Example Store order KN-10482 has shipped (2 parcels)"


def test_preview_an_order_from_jsonl_on_stdin(tmp_path: Path, cli: Cli) -> None:
    """Several records (an order's fulfillments) on stdin render one order email."""
    ids = ["F-1", "F-2"]
    lines = [
        {**RECORD, "status": "Shipped", "order_fulfillment_ids": ids},
        {
            **RECORD,
            "fulfillment_id": "F-2",
            "status": "Shipped",
            "tracking_number": "1Z999AA10123456784",
            "order_fulfillment_ids": ids,
        },
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = cli("preview", "all_fulfillments", "--record", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Subject: Your Example Store order KN-3141 has shipped (2 parcels)" in result.stdout
    assert "Parcel 2 of 2" in result.stdout and "tracknum=1Z999AA10123456784" in result.stdout


def test_preview_csv_with_campaign_and_out_file(tmp_path: Path, cli: Cli) -> None:
    """A CSV record, --campaign and --out: the file holds the output, the campaign its sender."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "12").mkdir()
    (templates / "12" / "campaign.toml").write_text(
        'mail_from = "Maple & Pine <orders@mapleandpine.example>"\nstore_name = "Maple & Pine"\n'
    )
    csv = tmp_path / "rec.csv"
    csv.write_text(
        "orderId,fulfillmentId,fulfillmentStatus,emailAddress,firstName,trackingNumber\n"
        "KN-9,F-9,PENDING_SHIPMENT,lee@example.com,Lee,1Z999AA10123456784\n",
        encoding="utf-8",
    )
    out = tmp_path / "preview.txt"
    result = cli(
        "preview",
        "tracking_number_assigned",
        "--record",
        str(csv),
        "--campaign",
        "12",
        "--format",
        "all",
        "--out",
        str(out),
        templates_dir=templates,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    written = out.read_text(encoding="utf-8")
    assert "From: Maple & Pine <orders@mapleandpine.example>" in written
    assert "Subject: Your Maple & Pine order KN-9 has a tracking number" in written
    assert "text/plain" in written and "<!DOCTYPE html>" in written


def test_preview_undefined_variable_names_file_line_and_variable(tmp_path: Path, cli: Cli) -> None:
    """A template typo exits 1 naming the file, the line and the variable."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    body = templates / "tracking_number_assigned" / "body.txt"
    lines = body.read_text(encoding="utf-8").splitlines()
    lines[2] = "Good news: your order {{ order.number }} is packed."
    body.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("preview", "tracking_number_assigned", templates_dir=templates)
    assert result.returncode == 1
    assert f"{body}, line 3" in result.stderr
    assert "{{ order.number }}" in result.stderr and "'number'" in result.stderr
    assert result.stdout == ""


def test_preview_unknown_rule_lists_known_rules(tmp_path: Path, cli: Cli) -> None:
    """An unknown rule exits 2 and lists the rules there are."""
    result = cli("preview", "tracking")
    assert result.returncode == 2
    known = ", ".join(sorted(rule.id for rule in load_rules(RULES)))
    assert f"no rule 'tracking'; known rules: {known}" in result.stderr
    assert "tracking_number_assigned" in known


def test_preview_rejected_record_says_where_and_why(tmp_path: Path, cli: Cli) -> None:
    """A bad record in the file exits 1 with its line and reason; nothing is rendered."""
    path = write_jsonl(tmp_path / "rec.jsonl", [RECORD, {**RECORD, "status": "Teleported"}])
    result = cli("preview", "tracking_number_assigned", "--record", str(path))
    assert result.returncode == 1
    assert "line 2" in result.stderr and "Teleported" in result.stderr
    assert result.stdout == ""


def test_preview_notes_a_record_the_rule_would_not_send(tmp_path: Path, cli: Cli) -> None:
    """A record without the email the rule requires renders, with a note on stderr."""
    record = tmp_path / "rec.json"
    record.write_text(json.dumps({k: v for k, v in RECORD.items() if k != "email"}))
    result = cli("preview", "tracking_number_assigned", "--record", str(record))
    assert result.returncode == 0, result.stderr
    assert "lacks email" in result.stderr and "delivery would cancel this notice" in result.stderr


# --- carrier ------------------------------------------------------------------------------


def test_carrier_prints_name_number_and_link(tmp_path: Path, cli: Cli) -> None:
    """A spaced-out UPS number prints UPS, the normalised number and its tracking page."""
    result = cli("carrier", "1z 999aa1 0123 4567 84")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "carrier   UPS  (detected from the number's format and check digit)",
        "number    1Z999AA10123456784",
        "tracking  https://www.ups.com/track?tracknum=1Z999AA10123456784",
    ]


def test_carrier_declared_wins_and_says_so(tmp_path: Path, cli: Cli) -> None:
    """--carrier wins as it does in delivery; a disagreeing check digit is noted."""
    result = cli("carrier", "1Z999AA10123456784", "--carrier", "FEDEX_GROUND")
    assert result.returncode == 0, result.stderr
    assert "carrier   FedEx  (declared)" in result.stdout
    assert "tracking  https://www.fedex.com/fedextrack/?trknbr=1Z999AA10123456784" in result.stdout
    assert "check digit say UPS" in result.stderr


def test_carrier_unrecognised_exits_1(tmp_path: Path, cli: Cli) -> None:
    """A number no carrier's format and check digit accepts exits 1 and says so."""
    result = cli("carrier", "1Z999AA10123456785")
    assert result.returncode == 1
    assert "not recognised" in result.stderr
    assert result.stdout == ""


# --- check --------------------------------------------------------------------------------


def test_check_passes_on_the_project_templates(tmp_path: Path, cli: Cli) -> None:
    """The shipped rules and templates check clean, every combination counted."""
    result = cli("check")
    assert result.returncode == 0, result.stderr
    count = len(load_rules(RULES))  # one combination per rule: the project has no campaigns
    assert count >= 5
    assert f"{count} rule/template combination(s) render cleanly" in result.stdout


def test_check_reports_every_problem_at_once(tmp_path: Path, cli: Cli) -> None:
    """A templates folder with seven problems in different places reports all, exit 1."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    tna = templates / "tracking_number_assigned"
    # 1 + 2: two broken parts of one template (a syntax error, an undefined variable).
    (tna / "subject.txt").write_text("Order {{ order.id }\n")
    (tna / "body.txt").write_text("Hi {{ customer.first_name }},\n\n{{ shipment.eta }}\n")
    # 3: an HTML part that is no standalone document (no doctype/head, an unclosed div).
    (templates / "all_fulfillments" / "body.html").write_text(
        "<html><body><div><p>{{ order.id }}</p></body></html>\n"
    )
    # 4: campaign 12 overrides with an undefined variable in its own body.html.
    override = templates / "12" / "tracking_number_assigned"
    override.mkdir(parents=True)
    (override / "body.html").write_text(
        '{% extends "_layouts/base.html" %}\n{% block content %}\n{{ campaign.slogan }}\n'
        "{% endblock %}\n"
    )
    # 5: a campaign folder overriding a template no rule uses (a typo: never rendered).
    (templates / "12" / "tracking_number_asigned").mkdir()
    # 6: a broken campaign file.
    (templates / "15").mkdir()
    (templates / "15" / "campaign.toml").write_text('mail_from = "no address"\n')
    # 7: a rule whose template folder does not exist.
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "delivered.toml").write_text(
        'id = "delivered"\nname = "Delivered"\non = "Delivered"\nscope = "fulfillment"\n'
        'template = "delivered_notice"\n'
    )

    result = cli("check", templates_dir=templates, rules_dir=rules)
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("✗")]
    text = "\n".join(problems)
    assert f"{tna / 'subject.txt'}, line 1: syntax error" in text
    assert f"{tna / 'body.txt'}, line 3" in text and "'shipment' is undefined" in text
    assert "no <!DOCTYPE html> declaration" in text and "<head> appears 0 times" in text
    assert "<div> is not closed" in text
    assert f"rule tracking_number_assigned (campaign 12): {override / 'body.html'}, line 3" in text
    assert "tracking_number_asigned: overrides no rule's template" in text
    assert f"{templates / '15' / 'campaign.toml'}: key 'mail_from'" in text
    # The broken shared parts are reported for the default and for each campaign.
    assert "rule tracking_number_assigned (campaign 15):" in text
    assert (
        "rule delivered: template 'delivered_notice' has no subject.txt, body.txt, body.html"
        in (text)
    )
    assert f"{len(problems)} problem(s) found" in result.stderr
