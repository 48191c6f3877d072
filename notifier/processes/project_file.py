"""`notifier.toml`: scheduled jobs and quiet hours. Read once at the entry point, passed down.

The file is `NOTIFIER_CONFIG`, else `./notifier.toml` when it exists; without one, jobs
come from the environment alone (NOTIFIER_DROP_DIR, NOTIFIER_KONNEKTIVE_*). Relative
paths in the file are relative to the file's folder. Secrets belong in the environment:
NOTIFIER_KONNEKTIVE_PASSWORD fills in any Konnektive job without a `password`; a `mailbox`
job's credentials come from NOTIFIER_MAILBOX_USERNAME / NOTIFIER_MAILBOX_PASSWORD, or from
the variables its `username_env` / `password_env` name.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from notifier.core.durations import format_duration, parse_duration
from notifier.core.quiet_hours import QuietHours, QuietWindow, parse_time_of_day
from notifier.errors import ConfigError
from notifier.settings import Settings
from notifier.sources.bounces.mailbox import MailboxOptions
from notifier.sources.dropfolder import DropFolderOptions
from notifier.sources.konnektive import KonnektiveOptions

DEFAULT_CONFIG = Path("notifier.toml")
# The scheduler's own delivery sweep is listed beside the configured jobs.
RESERVED_JOB_NAMES = frozenset({"sweep"})
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
JobKind = Literal["dropfolder", "konnektive", "mailbox"]
JobOptions = DropFolderOptions | KonnektiveOptions | MailboxOptions
# pydantic names the kind in an error's location; the operator wrote the job's name.
_JOB_KINDS = frozenset({"dropfolder", "konnektive", "mailbox"})
DEFAULT_MAILBOX_USERNAME_ENV = "NOTIFIER_MAILBOX_USERNAME"
DEFAULT_MAILBOX_PASSWORD_ENV = "NOTIFIER_MAILBOX_PASSWORD"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One scheduled job: what it runs and when (exactly one of interval / cron)."""

    name: str
    kind: JobKind
    options: JobOptions
    interval: timedelta | None = None
    cron: str | None = None

    @property
    def when(self) -> str:
        if self.interval is not None:
            return f"every {format_duration(self.interval)}"
        return f"cron {self.cron}"


@dataclass(frozen=True, slots=True)
class ProjectFile:
    """notifier.toml's contents (jobs, quiet hours), read once at start."""

    jobs: tuple[JobSpec, ...] = ()
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    # Cron expressions are read in this zone.
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # A run missed by at most this much (busy loop, suspend, restart) still runs, once.
    misfire_grace: timedelta = timedelta(hours=1)
    # How often the delivery worker is nudged even when nothing woke it.
    sweep_interval: timedelta = timedelta(seconds=30)
    source: Path | None = None


# --- the file's shape (pydantic: operators write it by hand) -------------------------------


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str | int | float) else value


def _zone(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. 'America/New_York')") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class _Window(_Strict):
    enabled: bool = True
    timezone: ZoneInfo | None = None
    start: str | None = None
    end: str | None = None

    _zone = field_validator("timezone", mode="before")(_zone)

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time_of_day(value)
        return value


class _QuietHours(_Window):
    campaigns: dict[str, _Window] = Field(default_factory=dict)


class _Job(_Strict):
    interval: timedelta | None = None
    cron: str | None = None
    enabled: bool = True

    _duration = field_validator("interval", mode="before")(_duration)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(value)  # ValueError names the bad field
        return value


class _DropJob(_Job):
    kind: Literal["dropfolder"]
    path: Path
    min_age: timedelta = timedelta(seconds=5)

    _min_age = field_validator("min_age", mode="before")(_duration)


class _KonnektiveJob(_Job):
    kind: Literal["konnektive"]
    base_url: str = "https://api.konnektive.com"
    login_id: str
    password: str | None = None
    timezone: ZoneInfo = Field(default_factory=lambda: ZoneInfo("UTC"))
    overlap: timedelta = timedelta(hours=1)
    initial_lookback: timedelta = timedelta(days=1)
    timeout: timedelta = timedelta(seconds=30)
    attempts: int = Field(default=3, ge=1, le=10)
    retry_wait: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(minutes=30)
    results_per_page: int = Field(default=200, ge=1, le=200)

    _zone = field_validator("timezone", mode="before")(_zone)
    _durations = field_validator(
        "overlap", "initial_lookback", "timeout", "retry_wait", "max_backoff", mode="before"
    )(_duration)


class _MailboxJob(_Job):
    kind: Literal["mailbox"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Path | None = None
    username: str | None = None
    username_env: str = DEFAULT_MAILBOX_USERNAME_ENV
    password_env: str = DEFAULT_MAILBOX_PASSWORD_ENV
    folder: str = Field(default="INBOX", min_length=1)
    processed_folder: str = Field(default="notifier-processed", min_length=1)
    unparsed_folder: str = Field(default="notifier-unparsed", min_length=1)
    timeout: timedelta = timedelta(seconds=30)
    batch: int = Field(default=50, ge=1, le=1000)

    _timeout = field_validator("timeout", mode="before")(_duration)


class _Schedule(_Strict):
    timezone: ZoneInfo = Field(default_factory=lambda: ZoneInfo("UTC"))
    misfire_grace_time: timedelta = timedelta(hours=1)
    sweep_interval: timedelta = timedelta(seconds=30)

    _zone = field_validator("timezone", mode="before")(_zone)
    _durations = field_validator("misfire_grace_time", "sweep_interval", mode="before")(_duration)


class _File(_Strict):
    schedule: _Schedule = Field(default_factory=_Schedule)
    quiet_hours: _QuietHours | None = None
    jobs: dict[
        str, Annotated[_DropJob | _KonnektiveJob | _MailboxJob, Field(discriminator="kind")]
    ] = Field(default_factory=dict)


# --- loading ---------------------------------------------------------------------------------


def config_path(settings: Settings) -> Path | None:
    if settings.config is not None:
        if not settings.config.is_file():
            raise ConfigError(f"NOTIFIER_CONFIG: {settings.config} does not exist")
        return settings.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_project_file(settings: Settings) -> ProjectFile:
    """The config file (if any) plus the environment's jobs; ConfigError names the field."""
    path = config_path(settings)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_project_file(data, settings=settings, source=path)


def parse_project_file(
    data: dict[str, Any], *, settings: Settings, source: Path | None = None
) -> ProjectFile:
    where = str(source) if source is not None else "settings"
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p not in _JOB_KINDS)}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
    base = source.parent if source is not None else Path()
    jobs = [
        _job_spec(name, job, base=base, settings=settings, where=where)
        for name, job in parsed.jobs.items()
        if job.enabled
    ]
    jobs += _environment_jobs(settings, taken={job.name for job in jobs})
    return ProjectFile(
        jobs=tuple(jobs),
        quiet_hours=_quiet_hours(parsed.quiet_hours, where),
        timezone=parsed.schedule.timezone,
        misfire_grace=parsed.schedule.misfire_grace_time,
        sweep_interval=parsed.schedule.sweep_interval,
        source=source,
    )


def _job_spec(
    name: str,
    job: _DropJob | _KonnektiveJob | _MailboxJob,
    *,
    base: Path,
    settings: Settings,
    where: str,
) -> JobSpec:
    if not _JOB_NAME.fullmatch(name) or name in RESERVED_JOB_NAMES:
        raise ConfigError(
            f"{where}: jobs.{name}: use letters, digits, '_', '.' or '-' for a job name"
            f" (not {', '.join(sorted(RESERVED_JOB_NAMES))})"
        )
    if (job.interval is None) == (job.cron is None):
        raise ConfigError(f"{where}: jobs.{name}: give exactly one of 'interval' or 'cron'")
    if job.interval is not None and job.interval <= timedelta(0):
        raise ConfigError(f"{where}: jobs.{name}.interval: must be positive")
    options: JobOptions
    if isinstance(job, _DropJob):
        options = DropFolderOptions(path=base / job.path, min_age=job.min_age)
    elif isinstance(job, _MailboxJob):
        options = _mailbox_options(job, base=base, settings=settings, where=f"{where}: jobs.{name}")
    else:
        password = job.password or (
            settings.konnektive_password.get_secret_value()
            if settings.konnektive_password
            else None
        )
        if not password:
            raise ConfigError(
                f"{where}: jobs.{name}: no password (set NOTIFIER_KONNEKTIVE_PASSWORD)"
            )
        options = KonnektiveOptions(
            base_url=job.base_url,
            login_id=job.login_id,
            password=password,
            timezone=job.timezone,
            overlap=job.overlap,
            initial_lookback=job.initial_lookback,
            timeout=job.timeout.total_seconds(),
            attempts=job.attempts,
            retry_wait=job.retry_wait,
            max_backoff=job.max_backoff,
            results_per_page=job.results_per_page,
        )
    return JobSpec(name=name, kind=job.kind, options=options, interval=job.interval, cron=job.cron)


def _mailbox_options(
    job: _MailboxJob, *, base: Path, settings: Settings, where: str
) -> MailboxOptions:
    """The job's mailbox with its credentials, read here once: from the variables the job
    names, where it names its own, else from the settings (NOTIFIER_MAILBOX_*)."""
    username = job.username or _credential(
        job.username_env, DEFAULT_MAILBOX_USERNAME_ENV, settings.mailbox_username
    )
    secret = settings.mailbox_password.get_secret_value() if settings.mailbox_password else None
    password = _credential(job.password_env, DEFAULT_MAILBOX_PASSWORD_ENV, secret)
    if not username or not password:
        missing = job.username_env if not username else job.password_env
        raise ConfigError(
            f"{where}: no mailbox {'username' if not username else 'password'} (set {missing})"
        )
    ca_file = base / job.ca_file if job.ca_file is not None else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{where}.ca_file: {ca_file} does not exist")
    try:
        return MailboxOptions(
            host=job.host,
            port=job.port,
            tls=job.tls,
            ca_file=ca_file,
            username=username,
            password=password,
            folder=job.folder,
            processed_folder=job.processed_folder,
            unparsed_folder=job.unparsed_folder,
            timeout=job.timeout.total_seconds(),
            batch=job.batch,
            bounce_address=settings.bounce_address or None,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _credential(variable: str, default_variable: str, from_settings: str | None) -> str | None:
    if variable == default_variable:
        return from_settings
    return os.environ.get(variable) or None


def _environment_jobs(settings: Settings, *, taken: set[str]) -> list[JobSpec]:
    jobs = []
    if settings.drop_dir is not None and "dropfolder" not in taken:
        jobs.append(
            JobSpec(
                name="dropfolder",
                kind="dropfolder",
                options=DropFolderOptions(path=settings.drop_dir),
                interval=parse_duration(settings.drop_interval),
            )
        )
    if settings.konnektive_login_id and "konnektive" not in taken:
        if settings.konnektive_password is None:
            raise ConfigError(
                "NOTIFIER_KONNEKTIVE_LOGIN_ID is set but NOTIFIER_KONNEKTIVE_PASSWORD is not"
            )
        jobs.append(
            JobSpec(
                name="konnektive",
                kind="konnektive",
                options=KonnektiveOptions(
                    base_url=settings.konnektive_url,
                    login_id=settings.konnektive_login_id,
                    password=settings.konnektive_password.get_secret_value(),
                    timezone=_zone_setting(settings.konnektive_timezone),
                ),
                interval=parse_duration(settings.konnektive_interval),
            )
        )
    return jobs


def _zone_setting(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"NOTIFIER_KONNEKTIVE_TIMEZONE: unknown time zone {name!r}") from None


def _quiet_hours(section: _QuietHours | None, where: str) -> QuietHours:
    if section is None:
        return QuietHours()
    default = _window(section, None, f"{where}: quiet_hours")
    campaigns = {
        campaign: _window(window, section, f"{where}: quiet_hours.campaigns.{campaign}")
        for campaign, window in section.campaigns.items()
    }
    return QuietHours(default=default, campaigns=campaigns)


def _window(window: _Window, parent: _Window | None, where: str) -> QuietWindow | None:
    """A campaign's window inherits the default's time zone and times it does not set."""
    if not window.enabled:
        return None
    tz = window.timezone or (parent.timezone if parent else None)
    start = window.start or (parent.start if parent else None)
    end = window.end or (parent.end if parent else None)
    if start is None and end is None and parent is None:
        return None
    if tz is None or start is None or end is None:
        raise ConfigError(f"{where}: quiet hours need 'timezone', 'start' and 'end'")
    try:
        return QuietWindow(tz=tz, start=parse_time_of_day(start), end=parse_time_of_day(end))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
