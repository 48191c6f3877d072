"""Rules: which status change calls for which notice (docs/design.md §3). Loading and matching.

A rule file is parsed with pydantic (an edge: operators write these by hand) into a
frozen `Rule`; matching is pure functions over rules and records.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from notifier.core.durations import parse_duration, spoken_duration
from notifier.core.models import OPTIONAL_TEXT_FIELDS, Record, Scope, Status
from notifier.core.toml_files import parse_toml
from notifier.errors import RuleError

# Record fields a rule may require, filter on, or add to its dedup key.
RECORD_FIELDS = ("order_id", "fulfillment_id", *OPTIONAL_TEXT_FIELDS)
# The statuses an order as a whole can reach (docs/design.md §3, "All Fulfillments").
ORDER_STATUSES = frozenset({Status.SHIPPED, Status.DELIVERED})
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Audience(enum.StrEnum):
    """Who a rule's notices go to (the `to` field)."""

    CUSTOMER = "customer"  # the triggering record's email
    OPERATOR = "operator"  # NOTIFIER_OPERATOR_EMAIL


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule file, validated."""

    id: str
    name: str
    on: Status
    scope: Scope
    template: str
    require: tuple[str, ...] = ()
    cancel_if: frozenset[Status] = frozenset()
    enabled: bool = True
    campaigns: frozenset[str] = frozenset()
    match: Mapping[str, frozenset[str]] = field(default_factory=dict)
    key_fields: tuple[str, ...] = ()
    delay: timedelta = timedelta(0)
    max_age: timedelta | None = None
    # Fire when the status has stood this long with no later change (docs/design.md §3).
    stalled_after: timedelta | None = None
    # Who gets the notice: the record's customer, or NOTIFIER_OPERATOR_EMAIL.
    to: Audience = Audience.CUSTOMER
    # Operator rules only: gather the notices of each such interval into one email.
    digest: timedelta | None = None
    source: str = ""


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    name: str
    on: Status
    scope: Scope = Scope.FULFILLMENT
    template: str
    require: list[str] = Field(default_factory=list)
    cancel_if: list[Status] = Field(default_factory=list)
    enabled: bool = True
    campaigns: list[str] = Field(default_factory=list)
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    key_fields: list[str] = Field(default_factory=list)
    delay: timedelta = timedelta(0)
    max_age: timedelta | None = None
    stalled_after: timedelta | None = None
    to: Audience = Audience.CUSTOMER
    digest: timedelta | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return Status.parse(value) if isinstance(value, str) else value

    @field_validator("cancel_if", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [Status.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("delay", "max_age", "stalled_after", "digest", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("stalled_after", "digest")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("give a time longer than 0 (e.g. '3d', '1h')")
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _RULE_ID.fullmatch(value):
            raise ValueError("use lower-case letters, digits, '_', '.' or '-' (at most 64)")
        return value

    @field_validator("require", "key_fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in RECORD_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown record field(s) {unknown}; known: {', '.join(RECORD_FIELDS)}"
            )
        return value

    @field_validator("match")
    @classmethod
    def _match(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        unknown = [name for name in value if name not in RECORD_FIELDS]
        if unknown:
            raise ValueError(f"cannot match on unknown record field(s) {unknown}")
        return value


def parse_rule(text: str, *, source: str) -> Rule:
    """Parse one rule file's text; RuleError names the file and the field."""
    parsed = parse_toml(text, _RuleFile, source=source, error=RuleError)
    if parsed.scope is Scope.ORDER and parsed.on not in ORDER_STATUSES:
        allowed = " or ".join(sorted(s.value for s in ORDER_STATUSES))
        raise RuleError(
            f"{source}: field 'on': an order-scope rule fires when the order reaches {allowed}"
        )
    if parsed.digest is not None and parsed.to is not Audience.OPERATOR:
        raise RuleError(
            f"{source}: field 'digest': only a rule with to = \"operator\" sends digests"
        )
    return Rule(
        id=parsed.id,
        name=parsed.name,
        on=parsed.on,
        scope=parsed.scope,
        template=parsed.template,
        require=tuple(parsed.require),
        cancel_if=frozenset(parsed.cancel_if),
        enabled=parsed.enabled,
        campaigns=frozenset(parsed.campaigns),
        match={k: frozenset([v] if isinstance(v, str) else v) for k, v in parsed.match.items()},
        key_fields=tuple(parsed.key_fields),
        delay=parsed.delay,
        max_age=parsed.max_age,
        stalled_after=parsed.stalled_after,
        to=parsed.to,
        digest=parsed.digest,
        source=source,
    )


def load_rules(directory: Path) -> tuple[Rule, ...]:
    """Load every `*.toml` rule in a folder, sorted by file name; errors name the file."""
    if not directory.is_dir():
        raise RuleError(f"rules folder {directory} does not exist")
    rules = []
    problems = []
    for path in sorted(directory.glob("*.toml")):
        try:
            rules.append(parse_rule(path.read_text(encoding="utf-8"), source=str(path)))
        except RuleError as exc:
            problems.append(str(exc))
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            problems.append(
                f"{rule.source}: field 'id': {rule.id!r} is already used by {seen[rule.id]}"
            )
        seen[rule.id] = rule.source
    if problems:
        raise RuleError("\n".join(problems))
    return tuple(rules)


def operator_problems(rules: Iterable[Rule], operator_email: str | None) -> list[str]:
    """Enabled rules to the operator when no operator address is set: one line each."""
    if operator_email:
        return []
    return [
        f"{rule.source or rule.id}: rule {rule.id!r} sends to the operator, but"
        " NOTIFIER_OPERATOR_EMAIL is not set"
        for rule in rules
        if rule.enabled and rule.to is Audience.OPERATOR
    ]


# --- matching (pure) -----------------------------------------------------------------------


def record_value(record: Record, name: str) -> str | None:
    value = getattr(record, name)
    return None if value is None else str(value)


def applies_to(rule: Rule, record: Record) -> bool:
    """Whether a rule's switches and filters let it fire for this record's change."""
    if not rule.enabled:
        return False
    if rule.campaigns and record.campaign_id not in rule.campaigns:
        return False
    return all(record_value(record, name) in allowed for name, allowed in rule.match.items())


def missing_fields(rule: Rule, record: Record) -> list[str]:
    """The required fields the record lacks (their notice is created cancelled, with the reason)."""
    return [name for name in rule.require if not record_value(record, name)]


def notice_key(rule: Rule, record: Record) -> str:
    """The dedup key: rule id, then the fulfillment or order id, then any fields the rule adds."""
    subject = record.fulfillment_id if rule.scope is Scope.FULFILLMENT else record.order_id
    parts = [rule.id, rule.scope.value, subject]
    parts += [record_value(record, name) or "" for name in rule.key_fields]
    return ":".join(parts)


def rules_on(rules: Iterable[Rule], status: Status, scope: Scope) -> Sequence[Rule]:
    return [rule for rule in rules if rule.on is status and rule.scope is scope]


def describe_trigger(rule: Rule) -> str:
    """What fires a rule, in one line for people (`notifier rules`)."""
    if rule.stalled_after is not None:
        subject = "order" if rule.scope is Scope.ORDER else "fulfillment"
        trigger = f"{subject} {rule.on.value} unchanged for {spoken_duration(rule.stalled_after)}"
    elif rule.scope is Scope.ORDER:
        trigger = f"order reaches {rule.on.value}"
    else:
        trigger = f"fulfillment enters {rule.on.value}"
    if rule.to is Audience.OPERATOR:
        trigger += ", to the operator"
        if rule.digest is not None:
            trigger += f" (one digest per {spoken_duration(rule.digest)})"
    return trigger
