"""What the pages read from the ledger and do to it, in one place: the search form over
the read-side queries (notifier.store.queries), and the operator actions
(notifier.engine.operator, the code the CLI's commands run) with the suppression forms,
each told who acted. Blocking calls, except resend: routes run them off the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from notifier.core.models import NoticeStatus
from notifier.engine import Engine, operator
from notifier.errors import NotifierError
from notifier.http.console.render import notice_path
from notifier.store.queries import ConsoleQueries, NoticePage, NoticeQuery

PAGE_SIZE = 25
# Far past any real ledger (25 million notices), and below what an offset can hold.
MAX_PAGE_NUMBER = 1_000_000


@dataclass(frozen=True, slots=True)
class Search:
    """The search form's fields, as given (checked by `from_params`)."""

    q: str = ""
    status: str = ""
    rule: str = ""
    campaign: str = ""
    created_from: str = ""
    created_to: str = ""
    page: int = 1

    def params(self) -> dict[str, str]:
        """The fields as the form and the links spell them."""
        return {
            "q": self.q,
            "status": self.status,
            "rule": self.rule,
            "campaign": self.campaign,
            "from": self.created_from,
            "to": self.created_to,
        }


class SearchInvalid(ValueError):
    """A search field that cannot be used, named."""


def search_from(params: Any) -> Search:
    """The search from a request's query parameters; SearchInvalid names a bad field."""
    status = (params.get("status") or "").strip()
    if status and status not in {s.value for s in NoticeStatus}:
        raise SearchInvalid(
            f"status {status!r} is not one of {', '.join(s.value for s in NoticeStatus)}"
        )
    for name in ("from", "to"):
        value = (params.get(name) or "").strip()
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise SearchInvalid(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
    page_text = (params.get("page") or "1").strip()
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE_NUMBER:
        raise SearchInvalid(f"page {page_text!r} is not a page number (1 to {MAX_PAGE_NUMBER:,})")
    for name in ("q", "rule", "campaign"):
        if not storable(params.get(name) or ""):
            raise SearchInvalid(f"{name} holds a NUL character, which nothing in the ledger has")
    return Search(
        q=(params.get("q") or "").strip(),
        status=status,
        rule=(params.get("rule") or "").strip(),
        campaign=(params.get("campaign") or "").strip(),
        created_from=(params.get("from") or "").strip(),
        created_to=(params.get("to") or "").strip(),
        page=int(page_text),
    )


def day_start(text: str) -> datetime | None:
    return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC) if text else None


def day_end(text: str) -> datetime | None:
    """The end of that day: a date range's `to` includes the whole day (the last day
    there is: no end at all)."""
    start = day_start(text)
    if start is None or start.date() == date.max:
        return None
    return start + timedelta(days=1)


def storable(text: str) -> bool:
    """Text a lookup may be given: PostgreSQL refuses NUL in text parameters, and no key,
    id or address in the ledger holds one."""
    return "\x00" not in text


def search_notices(queries: ConsoleQueries, search: Search) -> NoticePage:
    return queries.search_notices(
        NoticeQuery(
            q=search.q or None,
            status=NoticeStatus(search.status) if search.status else None,
            rule_id=search.rule or None,
            campaign_id=search.campaign or None,
            created_from=day_start(search.created_from),
            created_to=day_end(search.created_to),
            limit=PAGE_SIZE,
            offset=(search.page - 1) * PAGE_SIZE,
        )
    )


def retry(engine: Engine, key: str, *, actor: str) -> str:
    """Make a notice in retry or failed due now; what happened, in a sentence."""
    outcome = operator.retry(engine.store, [key], actor=actor, now=engine.clock())
    if outcome.problems:
        raise NotifierError(outcome.problems[0])
    if not outcome.count:
        raise NotifierError(f"{key} changed meanwhile and was not retried: reload the page")
    said = f"{key} is due now: the same email (same Message-ID) goes out in a moment."
    for _, address, why in outcome.suppressed:
        said += f" Note: {address} is suppressed ({why}), so it will be cancelled."
    return said


async def resend(engine: Engine, key: str, *, actor: str) -> str:
    """A new copy of a sent or failed notice, as a new notice due now (the worker sends it;
    the request does not wait for the mail server); its key."""
    return await operator.add_resend(engine, key, actor=actor)


@dataclass(frozen=True, slots=True)
class AddressForm:
    """The suppress and unsuppress forms, as posted: the address, the notice whose page
    they came from (if any: its timeline shows the action), and the page to go back to."""

    address: str
    key: str | None
    back: str


def address_form(form: Mapping[str, str]) -> AddressForm:
    """Both forms' fields; without `back`, the notice's page, else the suppression list."""
    key = form.get("key") or None
    return AddressForm(
        address=form.get("address", "").strip(),
        key=key,
        back=form.get("back") or (notice_path(key) if key else "/console/suppressions"),
    )


def suppress(engine: Engine, address: str, *, reason: str, actor: str, key: str | None) -> str:
    outcome = operator.suppress(
        engine.store, [address], reason=reason, actor=actor, now=engine.clock(), key=key
    )
    if not outcome.added:
        why = next(iter(outcome.already.values()), "")
        return f"{address} was already suppressed ({why})."
    return f"{address} is suppressed: notices to it are cancelled until it is unsuppressed."


def unsuppress(engine: Engine, address: str, *, actor: str, key: str | None) -> str:
    removed = operator.unsuppress(engine.store, [address], actor=actor, now=engine.clock(), key=key)
    if not removed:
        return f"{address} was not suppressed."
    return f"{address} is no longer suppressed (notices already cancelled stay cancelled)."
