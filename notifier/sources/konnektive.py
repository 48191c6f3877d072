"""Konnektive CRM's order query as a polled source of fulfillment status changes.

Each poll asks `GET {base_url}/order/query/` for orders updated in a date window
(`dateRangeType=dateUpdated`, `startDate`/`endDate` as m/d/Y in the CRM's time zone),
page by page until a short page. Every fulfillment of every order becomes one record, with
`order_fulfillment_ids` from the whole order so order-level rules know every parcel.

The window starts at the previous successful poll minus an overlap (the API counts whole
days, and an order updated at a boundary must never be missed); what is read twice is
absorbed by record dedup: an unchanged order yields the same records (same
`dateUpdated`), which are duplicates. The cursor (time of the last successful poll) lives
in the store, so a restart resumes where it stopped.

Time zone: Konnektive writes local times without an offset (`dateUpdated` as
"Y-m-d H:i:s", dates as m/d/Y). They are read in `timezone`, the CRM account's zone.

The password travels as a query parameter (the API's design); it is never logged: our
errors name the path only, and httpx's request log lines are redacted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx

from notifier.core.future_dated import TIMEZONE_HINT, job_source
from notifier.core.models import Record
from notifier.core.records import RecordInvalid, Rejection, parse_record
from notifier.engine import Clock, Engine, utc_now
from notifier.errors import NotifierError
from notifier.sources.crm_fields import RMA_NUMBER, RMA_SPELLINGS, first_present

log = logging.getLogger("notifier.konnektive")

EMPTY_ANSWER = "No orders matching those parameters could be found"
QUERY_PATH = "/order/query/"
_CRM_FORMATS = ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y")


class KonnektiveError(NotifierError):
    """The CRM's order query failed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class KonnektiveOptions:
    base_url: str
    login_id: str
    password: str = field(repr=False)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Re-read this much before the last successful poll (whole days, in practice: see above).
    overlap: timedelta = timedelta(hours=1)
    # On the very first poll, look back this far (rules' max_age keeps old news quiet).
    initial_lookback: timedelta = timedelta(days=1)
    timeout: float = 30.0
    results_per_page: int = 200
    # Attempts per page for timeouts, HTTP errors and malformed answers, waiting
    # retry_wait, then twice that, ... between them.
    attempts: int = 3
    retry_wait: timedelta = timedelta(seconds=2)
    # After a failed poll, later scheduled polls are skipped for 1, 2, 4 ... minutes, up to this.
    max_backoff: timedelta = timedelta(minutes=30)
    max_pages: int = 10_000


class CursorStore(Protocol):
    def cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str, *, now: datetime) -> None: ...


@dataclass(slots=True)
class PollReport:
    start_date: date | None = None
    end_date: date | None = None
    pages: int = 0
    orders: int = 0
    accepted: int = 0
    duplicates: int = 0
    notices_created: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    skipped: str | None = None  # why this poll did not run (backing off)


# --- pure parts ------------------------------------------------------------------------


def crm_time(text: Any, tz: ZoneInfo) -> datetime | None:
    """A Konnektive local time ("Y-m-d H:i:s" or m/d/Y, optionally with a time) in UTC."""
    if not isinstance(text, str) or not text.strip():
        return None
    for fmt in _CRM_FORMATS:
        try:
            naive = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=tz).astimezone(UTC)
    return None


def query_window(
    cursor: datetime | None, *, now: datetime, options: KonnektiveOptions
) -> tuple[date, date]:
    """The (startDate, endDate) to ask for: from the last poll minus the overlap, to today."""
    start = cursor - options.overlap if cursor is not None else now - options.initial_lookback
    start = min(start, now)
    return start.astimezone(options.timezone).date(), now.astimezone(options.timezone).date()


def order_records(
    order: Mapping[str, Any], *, tz: ZoneInfo, received_at: datetime, source: str
) -> Iterator[Record | Rejection]:
    """One record per fulfillment of a Konnektive order, or a Rejection saying why not."""
    order_id = order.get("orderId") if isinstance(order, Mapping) else None
    fulfillments = order.get("fulfillments") if isinstance(order, Mapping) else None
    if fulfillments is None or fulfillments == []:
        return  # not yet sent to a fulfillment house: nothing to tell the customer
    if not isinstance(fulfillments, list):
        yield Rejection(source, f"order {order_id}", "'fulfillments' is not a list")
        return
    ids = [f.get("fulfillmentId") for f in fulfillments if isinstance(f, Mapping)]
    # Konnektive has no per-fulfillment change time; the order's dateUpdated orders changes
    # correctly (dateShipped is only a date and would make later changes look stale).
    updated = order.get("dateUpdated")
    occurred = crm_time(updated, tz)
    if updated and occurred is None:
        log.warning("order %s: unreadable dateUpdated %r; using the poll time", order_id, updated)
    for index, fulfillment in enumerate(fulfillments):
        location = f"order {order_id} fulfillment {index}"
        if not isinstance(fulfillment, Mapping):
            yield Rejection(source, location, "a fulfillment is not a JSON object")
            continue
        data = {
            "orderId": order_id,
            "fulfillmentId": fulfillment.get("fulfillmentId"),
            "fulfillmentStatus": fulfillment.get("status"),
            "emailAddress": order.get("emailAddress"),
            "firstName": order.get("firstName"),
            "lastName": order.get("lastName"),
            "campaignId": order.get("campaignId"),
            "trackingNumber": fulfillment.get("trackingNumber"),
            "shipCarrier": fulfillment.get("shipCarrier"),
            "shipMethod": fulfillment.get("shipMethod"),
            "dateShipped": fulfillment.get("dateShipped"),
            "dateDelivered": fulfillment.get("dateDelivered"),
            RMA_NUMBER: rma_number(fulfillment, order),
            "order_fulfillment_ids": [i for i in ids if i not in (None, "")],
            "occurred_at": occurred.isoformat() if occurred else None,
        }
        try:
            yield parse_record(
                {k: v for k, v in data.items() if v not in (None, "")}, received_at=received_at
            )
        except RecordInvalid as exc:
            yield Rejection(source, location, str(exc))


def rma_number(fulfillment: Mapping[str, Any], order: Mapping[str, Any]) -> str | None:
    """A return's number, on the fulfillment or (a one-parcel RMA) the order; the CRM may
    write it as a JSON number, templates get text."""
    found = first_present(fulfillment, order, names=RMA_SPELLINGS)
    return None if found is None else str(found)


# --- the poller ---------------------------------------------------------------------------


class KonnektivePoller:
    """Polls the order query and ingests what it finds; one instance per configured job."""

    def __init__(
        self,
        options: KonnektiveOptions,
        *,
        name: str = "konnektive",
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options
        self.name = name
        self.cursor_name = f"konnektive:{name}"
        self.clock = clock
        self.sleep = sleep
        self.client = httpx.Client(
            base_url=options.base_url.rstrip("/"),
            timeout=options.timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.failures = 0
        self.not_before: datetime | None = None

    def close(self) -> None:
        self.client.close()

    def poll(self, engine: Engine, store: CursorStore) -> PollReport:
        """One poll: every page of the window, ingested page by page; then the cursor moves."""
        now = self.clock()
        if self.not_before is not None and now < self.not_before:
            return PollReport(skipped=f"backing off until {self.not_before.isoformat()}")
        try:
            report = self._poll(engine, store, now)
        except KonnektiveError as exc:
            self.failures += 1
            wait = min(timedelta(minutes=2 ** (self.failures - 1)), self.options.max_backoff)
            self.not_before = now + wait
            log.error(
                "konnektive %s: poll failed (%d in a row), next try after %s: %s",
                self.name,
                self.failures,
                self.not_before.isoformat(),
                exc,
            )
            raise
        self.failures = 0
        self.not_before = None
        return report

    def _poll(self, engine: Engine, store: CursorStore, now: datetime) -> PollReport:
        saved = store.cursor(self.cursor_name)
        cursor = datetime.fromisoformat(saved) if saved else None
        start, end = query_window(cursor, now=now, options=self.options)
        report = PollReport(start_date=start, end_date=end)
        per_page = self.options.results_per_page
        for page in range(1, self.options.max_pages + 1):
            orders = self.fetch_page(start, end, page)
            report.pages += 1
            report.orders += len(orders)
            self._ingest(engine, orders, page, report)
            if len(orders) < per_page:
                break
        else:
            raise KonnektiveError(f"more than {self.options.max_pages} pages; stopped")
        # Only a complete window moves the cursor: a failure re-reads it all next time.
        store.set_cursor(self.cursor_name, now.isoformat(), now=now)
        log.info(
            "konnektive %s: %s-%s: %d page(s), %d order(s), %d record(s) (%d duplicate), "
            "%d rejected, %d notice(s) created",
            self.name,
            start,
            end,
            report.pages,
            report.orders,
            report.accepted,
            report.duplicates,
            len(report.rejections),
            report.notices_created,
        )
        return report

    def _ingest(self, engine: Engine, orders: Sequence[Any], page: int, report: PollReport) -> None:
        received_at = self.clock()
        records: list[Record] = []
        refused: list[Rejection] = []
        for order in orders:
            for item in order_records(
                order if isinstance(order, Mapping) else {},
                tz=self.options.timezone,
                received_at=received_at,
                source=f"konnektive page {page}",
            ):
                if isinstance(item, Rejection):
                    log.warning("konnektive %s: rejected: %s", self.name, item)
                    refused.append(item)
                else:
                    records.append(item)
        report.rejections.extend(refused)
        ingest = engine.ingest(records, source=job_source(self.name, hint=TIMEZONE_HINT))
        engine.note_rejections(refused)
        report.accepted += ingest.accepted
        report.duplicates += ingest.duplicates
        report.notices_created += ingest.notices_created

    def fetch_page(self, start: date, end: date, page: int) -> list[Any]:
        """One page of orders; retries timeouts and garbled answers, not the CRM's refusals."""
        wait = self.options.retry_wait.total_seconds()
        for attempt in range(1, self.options.attempts + 1):
            try:
                return self._fetch_once(start, end, page)
            except KonnektiveError as exc:
                if not exc.retryable or attempt == self.options.attempts:
                    raise
                log.warning(
                    "konnektive %s: page %d, attempt %d failed (%s); again in %.1f s",
                    self.name,
                    page,
                    attempt,
                    exc,
                    wait,
                )
                self.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")

    def _fetch_once(self, start: date, end: date, page: int) -> list[Any]:
        params = {
            "loginId": self.options.login_id,
            "password": self.options.password,
            "dateRangeType": "dateUpdated",
            "startDate": start.strftime("%m/%d/%Y"),
            "endDate": end.strftime("%m/%d/%Y"),
            "resultsPerPage": str(self.options.results_per_page),
            "page": str(page),
        }
        where = f"{QUERY_PATH} page {page}"
        try:
            response = self.client.get(QUERY_PATH, params=params)
        except httpx.TimeoutException:
            # Our own message, `from None`: httpx's would carry the URL, password included.
            raise KonnektiveError(f"{where}: no answer within {self.options.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise KonnektiveError(f"{where}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise KonnektiveError(f"{where}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise KonnektiveError(f"{where}: the answer is not JSON") from None
        return _orders_from(body, where)


def _orders_from(body: Any, where: str) -> list[Any]:
    if not isinstance(body, dict):
        raise KonnektiveError(f"{where}: unexpected answer (not a JSON object)")
    result = body.get("result")
    message = body.get("message")
    if result == "ERROR":
        if isinstance(message, str) and message.strip() == EMPTY_ANSWER:
            return []
        # Bad credentials, a blocked IP, bad parameters: retrying in seconds will not help.
        raise KonnektiveError(f"{where}: the CRM refused: {message}", retryable=False)
    if result != "SUCCESS" or not isinstance(message, dict):
        raise KonnektiveError(f"{where}: unexpected answer (result {result!r})")
    data = message.get("data")
    if not isinstance(data, list):
        raise KonnektiveError(f"{where}: unexpected answer (message.data is not a list)")
    return data


# --- never log the password ---------------------------------------------------------------

_SECRET_PARAM = re.compile(r"(password=)[^&\s\"']*", re.IGNORECASE)


class RedactPasswords(logging.Filter):
    """Blank `password=` query values in log lines (httpx logs each request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "password=" in message.lower():
            record.msg = _SECRET_PARAM.sub(r"\1***", message)
            record.args = ()
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPasswords) for f in logger.filters):
            logger.addFilter(RedactPasswords())


_install_redaction()
