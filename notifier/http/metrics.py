"""Prometheus metrics: the engine's Observer plus what the HTTP edge sees.

Each `Metrics` has its own registry (no process-global state), so several apps — tests,
a benchmark — can live in one process. Notices by status and the due-queue depth are read
from the store at scrape time: the ledger is the truth, and other instances write to it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from notifier.core.feedback import FEEDBACK_WINDOW, FeedbackRates
from notifier.core.models import NoticeStatus
from notifier.engine.reports import IngestReport
from notifier.store.base import Store

log = logging.getLogger("notifier.http.metrics")

# `*_created` timestamps double the exposition and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _LedgerCollector:
    """Notices by status and the due-queue depth, read from the store at each scrape."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("notifier_store_up", "1 if the store answered this scrape")
        try:
            now = self.clock()
            counts = self.store.notice_counts()
            due = self.store.due_count(now=now)
            rates = self.store.feedback_rates(since=now - FEEDBACK_WINDOW)
        except Exception:  # a scrape must answer even when the store does not
            log.exception("metrics: could not read the store")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily(
            "notifier_notices", "Notices in the ledger by status", labels=["status"]
        )
        for status in NoticeStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        yield by_status
        queue = GaugeMetricFamily(
            "notifier_due_notices", "Notices due now and not yet claimed (the delivery queue)"
        )
        queue.add_metric([], due)
        yield queue
        yield from _feedback_metrics(rates)


def _feedback_metrics(rates: FeedbackRates) -> Iterator[Metric]:
    """Bounce and complaint rates of the last 7 days, overall (`campaign="all"`) and per
    campaign (`"none"`: notices without one): what Gmail's and Yahoo's limits are judged on."""
    sent = GaugeMetricFamily(
        "notifier_sent_7d", "Notices sent in the last 7 days", labels=["campaign"]
    )
    bounce = GaugeMetricFamily(
        "notifier_bounce_rate_7d",
        "Share of the last 7 days' sent notices that bounced permanently",
        labels=["campaign"],
    )
    complaint = GaugeMetricFamily(
        "notifier_complaint_rate_7d",
        "Share of the last 7 days' sent notices reported as spam (keep under 0.001)",
        labels=["campaign"],
    )
    groups = [("all", rates.overall)] + [
        ("none" if campaign is None else campaign, rate)
        for campaign, rate in sorted(rates.by_campaign.items(), key=lambda kv: kv[0] or "")
    ]
    for label, rate in groups:
        sent.add_metric([label], rate.sent)
        bounce.add_metric([label], rate.bounce_rate)
        complaint.add_metric([label], rate.complaint_rate)
    yield from (sent, bounce, complaint)


class Metrics:
    """The engine's Observer, the webhook's counters, and the text exposition of both."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.records = Counter(
            "notifier_records",
            "Status-change records received, by outcome (stale ones are also accepted)",
            ["outcome"],
            registry=self.registry,
        )
        # Created up front (so each shows 0 before its first record) and counted into
        # directly: ingestion counts every group commit.
        self._accepted, self._duplicates, self._stale, self._rejected = (
            self.records.labels(outcome)
            for outcome in ("accepted", "duplicate", "stale", "rejected")
        )
        self.future_dated = Counter(
            "notifier_future_dated_records",
            "Records dated later than received by more than the tolerance, taken as received"
            " now, by source (a wrong `timezone` or a fast clock at the sender)",
            ["source"],
            registry=self.registry,
        )
        self.notices_created = Counter(
            "notifier_notices_created", "Notices created by ingestion", registry=self.registry
        )
        self.sends = Counter(
            "notifier_deliveries",
            "Delivery attempts, by how they ended",
            ["status"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "notifier_send_seconds",
            "Time from a claimed notice to its recorded outcome (render, SMTP, ledger)",
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.ambiguous = Counter(
            "notifier_ambiguous_deliveries",
            "Deliveries that died after DATA (may have arrived)",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "notifier_http_requests",
            "HTTP requests answered, by route and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "notifier_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        # Each request counts into the children of its (route, code): looked up once each,
        # not through labels() (a lock and a tuple of strings) on every request.
        self._http_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def watch_store(self, store: Store, clock: Callable[[], datetime]) -> None:
        """Expose the ledger's notice counts and due-queue depth (read at scrape time)."""
        self.registry.register(_LedgerCollector(store, clock))

    # --- engine Observer ------------------------------------------------------------------

    def ingested(self, report: IngestReport) -> None:
        self._accepted.inc(report.accepted)
        self._duplicates.inc(report.duplicates)
        self._stale.inc(report.stale)
        self.notices_created.inc(report.notices_created)
        for source, counted in report.future_dated.items():
            self.future_dated.labels(source).inc(counted.count)

    def completed(self, status: NoticeStatus, *, seconds: float, ambiguous: bool) -> None:
        self.sends.labels(status.value).inc()
        self.send_seconds.observe(seconds)
        if ambiguous:
            self.ambiguous.inc()

    # --- edge -----------------------------------------------------------------------------

    def rejected(self, count: int) -> None:
        self._rejected.inc(count)

    def request(self, route: str, code: int, seconds: float) -> None:
        children = self._http_children.get((route, code))
        if children is None:
            children = self._http_children[(route, code)] = (
                self.http_requests.labels(route, str(code)),
                self.http_seconds.labels(route),
            )
        requests, latency = children
        requests.inc()
        latency.observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
