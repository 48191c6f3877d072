"""notifier.toml: jobs, schedule defaults and quiet hours; errors name the field."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.errors import ConfigError
from notifier.processes.project_file import load_project_file, parse_project_file
from notifier.settings import Settings
from notifier.sources.dropfolder import DropFolderOptions
from notifier.sources.konnektive import KonnektiveOptions

EXAMPLE = """
[schedule]
timezone = "America/New_York"
misfire_grace_time = "30m"

[quiet_hours]
timezone = "America/New_York"
start = "21:00"
end = "08:00"

[quiet_hours.campaigns.12]
start = "23:00"
[quiet_hours.campaigns.15]
enabled = false

[jobs.warehouse]
kind = "dropfolder"
path = "drop"
interval = "1m"
min_age = "10s"

[jobs.crm]
kind = "konnektive"
cron = "*/15 * * * *"
login_id = "api-user"
timezone = "America/Los_Angeles"
overlap = "2h"
"""


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_example_file_parses_into_jobs_and_quiet_hours(tmp_path: Path) -> None:
    """Both job kinds, the schedule zone, and campaign quiet hours inheriting the default."""
    config_file = tmp_path / "notifier.toml"
    config_file.write_text(EXAMPLE)
    config = load_project_file(settings(config=config_file, konnektive_password="s3cret"))
    warehouse, crm = config.jobs
    assert warehouse.name == "warehouse" and warehouse.interval == timedelta(minutes=1)
    assert warehouse.options == DropFolderOptions(
        path=tmp_path / "drop", min_age=timedelta(seconds=10)
    )
    assert crm.cron == "*/15 * * * *" and crm.interval is None
    assert isinstance(crm.options, KonnektiveOptions)
    assert crm.options.password == "s3cret" and crm.options.overlap == timedelta(hours=2)
    assert "s3cret" not in repr(crm.options)
    assert config.misfire_grace == timedelta(minutes=30)
    due = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # 23:00 New York
    assert config.quiet_hours(due, None) == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert config.quiet_hours(due, "12") == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    early = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 22:00: quiet by default, not for 12
    assert config.quiet_hours(early, "12") == early
    assert config.quiet_hours(due, "15") == due


def test_no_file_and_no_environment_means_no_jobs_and_no_quiet_hours() -> None:
    """Off by default."""
    config = parse_project_file({}, settings=settings())
    assert config.jobs == () and not config.quiet_hours.enabled


def test_environment_alone_defines_jobs() -> None:
    """NOTIFIER_DROP_DIR and NOTIFIER_KONNEKTIVE_* make the two jobs without a file."""
    config = parse_project_file(
        {},
        settings=settings(drop_dir=Path("in"), konnektive_login_id="u", konnektive_password="p"),
    )
    assert [(j.name, j.interval) for j in config.jobs] == [
        ("dropfolder", timedelta(minutes=1)),
        ("konnektive", timedelta(minutes=15)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[jobs.a]\nkind = "dropfolder"\npath = "x"\n', "exactly one of 'interval' or 'cron'"),
        ('[jobs.a]\nkind = "dropfolder"\npath = "x"\ncron = "61 * * * *"\n', "jobs.a.cron"),
        ('[jobs.a]\nkind = "ftp"\ninterval = "1m"\n', "jobs.a"),
        ('[jobs.a]\nkind = "dropfolder"\ninterval = "soon"\npath = "x"\n', "not a duration"),
        ('[jobs.a]\nkind = "konnektive"\ninterval = "1m"\nlogin_id = "u"\n', "no password"),
        ('[quiet_hours]\ntimezone = "Mars/Base"\nstart = "21:00"\nend = "8:00"\n', "Mars/Base"),
        ('[quiet_hours]\ntimezone = "UTC"\nstart = "21:00"\n', "need 'timezone', 'start'"),
        ('[quite_hours]\nstart = "21:00"\n', "quite_hours"),
        ('[jobs.sweep]\nkind = "dropfolder"\npath = "x"\ninterval = "1m"\n', "jobs.sweep"),
    ],
)
def test_mistakes_are_config_errors_naming_the_field(text: str, message: str) -> None:
    """Each mistake is one ConfigError that says where."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_project_file(tomllib.loads(text), settings=settings())


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    """NOTIFIER_CONFIG pointing nowhere is an error, not silently no jobs."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_project_file(settings(config=tmp_path / "missing.toml"))


def test_the_documented_example_file_parses() -> None:
    """examples/notifier.toml (the README's example) is a valid config."""
    example = Path(__file__).resolve().parents[2] / "examples" / "notifier.toml"
    config = load_project_file(
        settings(
            config=example, konnektive_password="p", mailbox_username="u", mailbox_password="p"
        )
    )
    assert [(j.name, j.kind) for j in config.jobs] == [
        ("warehouse", "dropfolder"),
        ("konnektive", "konnektive"),
        ("bounces", "mailbox"),
    ]
    assert config.quiet_hours.window_for("15") is None
    west = config.quiet_hours.window_for("12")
    assert west is not None and str(west.tz) == "America/Los_Angeles"
