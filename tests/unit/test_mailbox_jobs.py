"""`mailbox` jobs in notifier.toml: the bounce mailbox's options, its credentials from the
environment, and every mistake refused naming the job and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from notifier.errors import ConfigError
from notifier.processes.project_file import parse_project_file
from notifier.settings import Settings
from notifier.sources.bounces.mailbox import MailboxOptions

JOB = """
[jobs.bounces]
kind = "mailbox"
interval = "5m"
host = "imap.shop.example"
"""


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def options(extra: str = "", *, source: Path | None = None, **values: Any) -> MailboxOptions:
    credentials = {"mailbox_username": "bounces", "mailbox_password": "s3cret", **values}
    parsed = parse_project_file(
        tomllib.loads(JOB + extra), settings=settings(**credentials), source=source
    )
    [job] = parsed.jobs
    assert job.kind == "mailbox"
    assert isinstance(job.options, MailboxOptions)
    return job.options


def test_a_mailbox_job_defaults_to_implicit_tls_and_the_standard_folders() -> None:
    got = options(bounce_address="bounces@shop.example")

    assert (got.host, got.port_number, got.tls) == ("imap.shop.example", 993, "tls")
    assert (got.folder, got.processed_folder, got.unparsed_folder) == (
        "INBOX",
        "notifier-processed",
        "notifier-unparsed",
    )
    assert (got.username, got.password) == ("bounces", "s3cret")
    assert got.bounce_address == "bounces@shop.example"
    assert "s3cret" not in repr(got)


def test_starttls_defaults_to_port_143() -> None:
    assert options('tls = "starttls"\n').port_number == 143


def test_credentials_come_from_the_variables_the_job_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_IMAP_USER", "fbl")
    monkeypatch.setenv("SHOP_IMAP_PASSWORD", "other")

    got = options('username_env = "SHOP_IMAP_USER"\npassword_env = "SHOP_IMAP_PASSWORD"\n')

    assert (got.username, got.password) == ("fbl", "other")


def test_a_missing_password_names_the_variable_to_set() -> None:
    with pytest.raises(
        ConfigError, match=r"jobs\.bounces: no mailbox password \(set NOTIFIER_MAILBOX_PASSWORD\)"
    ):
        options(mailbox_password=None)


def test_plain_imap_is_refused_except_to_a_loopback_address() -> None:
    with pytest.raises(ConfigError, match=r"jobs\.bounces: .*allowed only to a loopback address"):
        options('tls = "none"\n')
    loopback = tomllib.loads(JOB.replace("imap.shop.example", "127.0.0.1") + 'tls = "none"\n')
    [job] = parse_project_file(
        loopback, settings=settings(mailbox_username="u", mailbox_password="p")
    ).jobs
    assert isinstance(job.options, MailboxOptions) and job.options.tls == "none"


def test_a_ca_file_is_relative_to_the_config_file_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "imap-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    source = tmp_path / "notifier.toml"

    assert options('ca_file = "imap-ca.pem"\n', source=source).ca_file == tmp_path / "imap-ca.pem"
    with pytest.raises(ConfigError, match=r"jobs\.bounces\.ca_file: .*gone\.pem does not exist"):
        options('ca_file = "gone.pem"\n', source=source)


def test_the_processed_folder_must_not_be_the_one_read() -> None:
    with pytest.raises(ConfigError, match=r"jobs\.bounces: .*must differ"):
        options('processed_folder = "INBOX"\n')


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('tls = "ssl"\n', "bounces.tls"),
        ("batch = 0\n", "bounces.batch"),
        ("hots = 1\n", "bounces.hots"),
    ],
)
def test_a_bad_field_is_refused_naming_it(extra: str, field: str) -> None:
    with pytest.raises(ConfigError, match=f"jobs.{field}"):
        options(extra)
