"""The Konnektive order-query poller against a real local HTTP server speaking its shapes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.konnektive_server import EMPTY, KonnektiveServer, Reply, success
from support.project import settings_for, smtp_settings, switched_on
from support.smtp_sink import SmtpSink

from notifier.engine import Engine
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.sources.konnektive import KonnektiveError, KonnektiveOptions, KonnektivePoller

PASSWORD = "s3cr3t-Pa55word"
NY = ZoneInfo("America/New_York")
START = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 in New York
UPS = "1Z999AA10123456784"
FEDEX = "449044304137821"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def order(oid: str, updated: str, *fulfillments: dict[str, Any]) -> dict[str, Any]:
    return {
        "orderId": oid,
        "emailAddress": "jane@example.com",
        "firstName": "Jane",
        "lastName": "Doe",
        "campaignId": 12,
        "dateUpdated": updated,
        "fulfillments": list(fulfillments),
    }


def ful(fid: str, status: str, tracking: str = "", carrier: str | None = None) -> dict[str, Any]:
    return {
        "fulfillmentId": fid,
        "status": status,
        "trackingNumber": tracking,
        "shipCarrier": carrier,
        "dateShipped": "11/27/2026" if status == "SHIPPED" else "",
        "dateCreated": "11/26/2026",
        "shipMethod": "Ground",
    }


def paged(orders: list[dict[str, Any]]) -> Callable[[dict[str, str]], Reply]:
    """Serve `orders` page by page; past the end, the CRM's empty-result ERROR."""

    def respond(params: dict[str, str]) -> Reply:
        per_page, page = int(params["resultsPerPage"]), int(params["page"])
        chunk = orders[(page - 1) * per_page : page * per_page]
        return success(chunk) if chunk else Reply(EMPTY)

    return respond


def options(server: KonnektiveServer, **overrides: Any) -> KonnektiveOptions:
    values: dict[str, Any] = {
        "base_url": server.url,
        "login_id": "api-user",
        "password": PASSWORD,
        "timezone": NY,
        "results_per_page": 2,
        "timeout": 2.0,
        "retry_wait": timedelta(seconds=0.5),
    }
    values.update(overrides)
    return KonnektiveOptions(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def make_engine(settings: Settings, clock: Clock) -> Iterator[Engine]:
    with open_engine(settings) as engine:
        engine.clock = clock
        try:
            yield engine
        finally:
            asyncio.run(engine.transport.close())


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    yield from make_engine(settings_for(tmp_path), clock)


def sent_subjects(sink: SmtpSink) -> list[str]:
    return sorted(str(m["Subject"]) for m in sink.messages)


def test_two_fulfillment_order_across_polls_and_pages_sends_each_notice_once(
    tmp_path: Path, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """Tracking for each parcel, then All Fulfillments once; re-read windows send nothing twice."""
    fillers = [order(f"K-{n}", "2026-11-27 08:00:00", ful(f"KF-{n}", "PENDING")) for n in (1, 2)]
    script: dict[str, list[dict[str, Any]]] = {"orders": []}

    def respond(params: dict[str, str]) -> Reply:
        return paged(script["orders"])(params)

    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    created: list[int] = []

    async def scenario(engine: Engine, poller: KonnektivePoller) -> None:
        """Each step: change what the CRM answers, poll (in a thread, as the scheduler does)."""
        steps = [
            # F1 has its tracking number, F2 is still with the house; the order is on page 2.
            order(
                "O-1",
                "2026-11-27 09:00:00",
                ful("F1", "PENDING_SHIPMENT", UPS, "UPS"),
                ful("F2", "PENDING"),
            ),
            None,  # the overlap window returns the same, unchanged order
            # F1 shipped, F2 got its tracking number.
            order(
                "O-1",
                "2026-11-27 10:20:00",
                ful("F1", "SHIPPED", UPS, "UPS"),
                ful("F2", "PENDING_SHIPMENT", FEDEX, "FedEx"),
            ),
            # Both shipped: the whole order has shipped.
            order(
                "O-1",
                "2026-11-27 10:40:00",
                ful("F1", "SHIPPED", UPS, "UPS"),
                ful("F2", "SHIPPED", FEDEX, "FedEx"),
            ),
            None,  # the order shows up again in the next window
        ]
        try:
            for step in steps:
                if step is not None:
                    script["orders"] = [*fillers, step]
                report = await asyncio.to_thread(poller.poll, engine, engine.store)
                created.append(report.notices_created)
                await engine.deliver_due()
                clock.advance(minutes=15)
        finally:
            await engine.transport.close()

    with KonnektiveServer(respond) as server, open_engine(settings) as engine:
        engine.clock = clock
        poller = KonnektivePoller(options(server), name="crm", clock=clock, sleep=lambda s: None)
        asyncio.run(scenario(engine, poller))
        poller.close()
        pages = [r["page"] for r in server.requests]
        keys = sorted(n.key for n in engine.store.notices())

    assert created == [1, 0, 1, 1, 0]
    assert pages == ["1", "2"] * 5  # page 2 is short (1 order): the poll stops there
    assert keys == [
        "all_fulfillments:order:O-1",
        "tracking_number_assigned:fulfillment:F1",
        "tracking_number_assigned:fulfillment:F2",
    ]
    assert len(smtp_sink.messages) == 3
    assert len({m["Message-ID"] for m in smtp_sink.messages}) == 3
    shipped = next(m for m in smtp_sink.messages if UPS in m.as_string() and FEDEX in m.as_string())
    assert "jane@example.com" in str(shipped["To"])


def test_requests_carry_the_documented_parameters_and_the_cursor_moves(
    engine: Engine, clock: Clock
) -> None:
    """loginId, dateRangeType=dateUpdated, m/d/Y dates in the CRM's zone; then overlap window."""
    orders = [order(f"O-{n}", "2026-11-27 09:00:00", ful(f"F-{n}", "PENDING")) for n in range(5)]
    with KonnektiveServer(paged(orders)) as server:
        poller = KonnektivePoller(options(server), name="crm", clock=clock)
        first = poller.poll(engine, engine.store)
        clock.advance(days=1, hours=3)  # 13:00 New York next day
        second = poller.poll(engine, engine.store)
        poller.close()
    assert (first.pages, first.orders, first.accepted) == (3, 5, 5)
    assert second.duplicates == 5 and second.notices_created == 0
    request = server.requests[0]
    assert server.paths[0] == "/order/query/"
    assert request == {
        "loginId": "api-user",
        "password": PASSWORD,
        "dateRangeType": "dateUpdated",
        "startDate": "11/26/2026",  # first poll: one day back
        "endDate": "11/27/2026",
        "resultsPerPage": "2",
        "page": "1",
    }
    # The second window starts at the first poll minus the overlap (10:00 - 1h, Nov 27).
    assert (server.requests[3]["startDate"], server.requests[3]["endDate"]) == (
        "11/27/2026",
        "11/28/2026",
    )
    assert engine.store.cursor("konnektive:crm") == clock.now.isoformat()


def test_the_empty_answer_is_an_empty_window_not_an_error(engine: Engine, clock: Clock) -> None:
    """ "No orders matching those parameters could be found" means nothing new; the cursor moves."""
    with KonnektiveServer(lambda params: Reply(EMPTY)) as server:
        poller = KonnektivePoller(options(server), clock=clock)
        report = poller.poll(engine, engine.store)
        poller.close()
    assert (report.pages, report.orders) == (1, 0)
    assert engine.store.cursor("konnektive:konnektive") == START.isoformat()


def test_an_auth_error_fails_at_once_backs_off_and_never_logs_the_password(
    engine: Engine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other ERROR is an error: no retries, no cursor move, the next polls wait; no secret."""
    caplog.set_level(logging.DEBUG)
    refusal = Reply({"result": "ERROR", "message": "Invalid login credentials"})
    with KonnektiveServer(lambda params: refusal) as server:
        poller = KonnektivePoller(options(server), name="crm", clock=clock)
        with pytest.raises(KonnektiveError, match="Invalid login credentials") as failure:
            poller.poll(engine, engine.store)
        assert len(server.requests) == 1
        clock.advance(seconds=30)
        assert poller.poll(engine, engine.store).skipped is not None  # backing off: no request
        assert len(server.requests) == 1
        clock.advance(minutes=1)
        with pytest.raises(KonnektiveError):
            poller.poll(engine, engine.store)
        assert len(server.requests) == 2
        poller.close()
    assert engine.store.cursor("konnektive:crm") is None
    assert PASSWORD not in str(failure.value)
    assert "HTTP Request" in caplog.text  # httpx did log the request line ...
    assert PASSWORD not in caplog.text  # ... with the password blanked


def test_malformed_json_is_retried_then_succeeds(engine: Engine, clock: Clock) -> None:
    """A garbled answer is retried after a wait; the next good answer is used."""
    answers = iter([Reply(raw=b"<html>502 Bad Gateway"), Reply(raw=b'{"result": "SUC')])
    good = success([order("O-1", "2026-11-27 09:00:00", ful("F-1", "PENDING"))])
    waits: list[float] = []
    with KonnektiveServer(lambda params: next(answers, good)) as server:
        poller = KonnektivePoller(options(server), clock=clock, sleep=waits.append)
        report = poller.poll(engine, engine.store)
        poller.close()
    assert report.accepted == 1 and len(server.requests) == 3
    assert waits == [0.5, 1.0]  # backing off: doubling waits


def test_malformed_json_every_time_is_an_error_after_the_attempts(
    engine: Engine, clock: Clock
) -> None:
    """After `attempts` garbled answers the poll fails, naming the page, and the cursor stays."""
    with KonnektiveServer(lambda params: Reply(raw=b"not json")) as server:
        poller = KonnektivePoller(options(server), clock=clock, sleep=lambda s: None)
        with pytest.raises(KonnektiveError, match=r"/order/query/ page 1: the answer is not JSON"):
            poller.poll(engine, engine.store)
        poller.close()
    assert len(server.requests) == 3
    assert engine.store.cursor("konnektive:konnektive") is None


def test_a_timeout_is_retried_and_then_reported(engine: Engine, clock: Clock) -> None:
    """A server slower than the timeout: each attempt gives up in time; the error says so."""
    with KonnektiveServer(lambda params: Reply(EMPTY, delay=1.0)) as server:
        poller = KonnektivePoller(
            options(server, timeout=0.2, attempts=2), clock=clock, sleep=lambda s: None
        )
        with pytest.raises(KonnektiveError, match=r"no answer within 0.2 s") as failure:
            poller.poll(engine, engine.store)
        poller.close()
    assert len(server.requests) == 2
    assert PASSWORD not in str(failure.value)


def test_a_failure_on_a_later_page_keeps_the_window_for_next_time(
    engine: Engine, clock: Clock
) -> None:
    """Page 1 ingested, page 2 fails: the cursor stays, the next poll re-reads it all (dedup)."""
    orders = [order(f"O-{n}", "2026-11-27 09:00:00", ful(f"F-{n}", "PENDING")) for n in range(3)]
    broken = {"on": True}

    def respond(params: dict[str, str]) -> Reply:
        if params["page"] == "2" and broken["on"]:
            return Reply({"oops": True}, status=503)
        return paged(orders)(params)

    with KonnektiveServer(respond) as server:
        poller = KonnektivePoller(options(server), clock=clock, sleep=lambda s: None)
        with pytest.raises(KonnektiveError, match="HTTP 503"):
            poller.poll(engine, engine.store)
        assert engine.store.cursor("konnektive:konnektive") is None
        broken["on"] = False
        clock.advance(minutes=5)
        report = poller.poll(engine, engine.store)
        poller.close()
    assert (report.accepted, report.duplicates) == (1, 2)  # accepted: new records only


def test_the_scheduler_runs_a_konnektive_job_and_keeps_its_backoff(
    tmp_path: Path, clock: Clock
) -> None:
    """A configured konnektive job polls through the scheduler; its poller persists between runs."""
    from notifier.processes.project_file import JobSpec, ProjectFile
    from notifier.processes.scheduler import build_scheduler

    orders = [
        order("O-1", "2026-11-27 09:00:00", ful("F1", "PENDING_SHIPMENT", UPS, "UPS")),
    ]
    with KonnektiveServer(paged(orders)) as server, open_engine(settings_for(tmp_path)) as engine:
        engine.clock = clock
        spec = JobSpec(
            name="crm", kind="konnektive", options=options(server), interval=timedelta(minutes=15)
        )
        scheduler = build_scheduler(
            ProjectFile(jobs=(spec,)), engine=engine, wake=lambda: None, start=False
        )
        assert scheduler.run_job(spec) == 1
        clock.advance(minutes=15)
        assert scheduler.run_job(spec) == 0  # the same order again: a duplicate
        asyncio.run(scheduler.aclose())
        assert engine.store.cursor("konnektive:crm") == clock.now.isoformat()
        asyncio.run(engine.transport.close())
    assert len(server.requests) == 2


def test_delivered_and_rma_orders_send_the_built_in_emails_once(
    tmp_path: Path, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """With Delivered and Return started switched on, a polled Delivered fulfillment sends
    its date and an RMA Pending one its RMA number; the re-read window sends nothing twice."""
    rules = switched_on(tmp_path, "delivered", "return_started")
    delivered = {**ful("DF-1", "DELIVERED", UPS, "UPS"), "dateDelivered": "11/26/2026"}
    returning = {**ful("RF-1", "RMA_PENDING"), "rmaNumber": "RMA-5521"}
    orders = [
        order("D-1", "2026-11-27 09:00:00", delivered),
        order("R-1", "2026-11-27 09:05:00", returning),
    ]
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, rules_dir=rules)

    async def poll_twice(engine: Engine, poller: KonnektivePoller) -> None:
        try:
            for _ in range(2):
                await asyncio.to_thread(poller.poll, engine, engine.store)
                await engine.deliver_due()
                clock.advance(minutes=15)
        finally:
            await engine.transport.close()

    with KonnektiveServer(paged(orders)) as server, open_engine(settings) as engine:
        engine.clock = clock
        poller = KonnektivePoller(options(server), clock=clock)
        asyncio.run(poll_twice(engine, poller))
        poller.close()

    subjects = sent_subjects(smtp_sink)
    assert subjects == [
        "Your Example Store order D-1 has been delivered",
        "Your Example Store order D-1 has shipped",
        "Your return for Example Store order R-1 (RMA RMA-5521)",
    ]
    bodies = {str(m["Subject"]): m.get_body(("plain",)) for m in smtp_sink.messages}
    delivered_text = bodies["Your Example Store order D-1 has been delivered"]
    assert delivered_text is not None
    assert "was delivered on November 26, 2026" in delivered_text.get_content()
