"""Benchmark: the scheduled sources' overhead over a plain ingest of the same records.

    python -m bench.scheduled_sources [N]

Baseline (same process, same machine, fresh SQLite file each): `engine.ingest` of N
already-parsed records. Measured: `read_path` + `engine.ingest` (parsing, which the drop
folder adds to), the drop folder processing a JSONL file of the same N records (read,
parse, ingest, move), and the Konnektive poller reading them as N one-fulfillment orders
from a local HTTP server, 200 per page. Reported as ratios to the baseline.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench import bench_settings
from notifier.core.records import Record, read_path
from notifier.engine import Engine
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.sources.dropfolder import DropFolder, DropFolderOptions
from notifier.sources.konnektive import KonnektiveOptions, KonnektivePoller


def settings(folder: Path) -> Settings:
    return bench_settings(folder)


def timed(run: Callable[[Engine, Path], int], n: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    try:
        with open_engine(settings(folder)) as engine:
            started = time.perf_counter()
            ingested = run(engine, folder)
            elapsed = time.perf_counter() - started
            asyncio.run(engine.transport.close())
        assert ingested == n, (ingested, n)
        return elapsed
    finally:
        shutil.rmtree(folder)


def change(i: int) -> dict[str, Any]:
    return {
        "order_id": f"O-{i}",
        "fulfillment_id": f"F-{i}",
        "status": "Pending",
        "email": "c@example.com",
        "occurred_at": "2026-11-27T10:00:00Z",
    }


def main(n: int) -> None:
    source = Path(tempfile.mkdtemp(prefix="notifier-bench-src-"))
    data = source / "batch.jsonl"
    data.write_text("".join(json.dumps(change(i)) + "\n" for i in range(n)))
    parsed = [r for r in read_path(data, received_at=datetime.now(UTC)) if isinstance(r, Record)]

    def baseline(engine: Engine, folder: Path) -> int:
        return engine.ingest(parsed).accepted

    def parse_and_ingest(engine: Engine, folder: Path) -> int:
        records = (
            r for r in read_path(data, received_at=datetime.now(UTC)) if isinstance(r, Record)
        )
        return engine.ingest(records).accepted

    def dropfolder(engine: Engine, folder: Path) -> int:
        drop = folder / "drop"
        drop.mkdir()
        shutil.copy(data, drop / "batch.jsonl")
        options = DropFolderOptions(path=drop, min_age=timedelta(0))
        return sum(o.accepted for o in DropFolder(options).run(engine))

    orders = [
        {
            "orderId": f"O-{i}",
            "emailAddress": "c@example.com",
            "dateUpdated": "2026-11-27 10:00:00",
            "fulfillments": [{"fulfillmentId": f"F-{i}", "status": "PENDING"}],
        }
        for i in range(n)
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            params = parse_qs(urlsplit(self.path).query)
            per_page, page = int(params["resultsPerPage"][0]), int(params["page"][0])
            chunk = orders[(page - 1) * per_page : page * per_page]
            body = (
                {"result": "SUCCESS", "message": {"data": chunk}}
                if chunk
                else {
                    "result": "ERROR",
                    "message": "No orders matching those parameters could be found",
                }
            )
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def konnektive(engine: Engine, folder: Path) -> int:
        options = KonnektiveOptions(
            base_url=f"http://127.0.0.1:{server.server_address[1]}", login_id="u", password="p"
        )
        poller = KonnektivePoller(options)
        try:
            return poller.poll(engine, engine.store).accepted
        finally:
            poller.close()

    try:
        base = min(timed(baseline, n) for _ in range(3))
        parse = min(timed(parse_and_ingest, n) for _ in range(3))
        drop = min(timed(dropfolder, n) for _ in range(3))
        crm = min(timed(konnektive, n) for _ in range(3))
    finally:
        server.shutdown()
        shutil.rmtree(source)
    rows = [
        ("baseline engine.ingest", base),
        ("read_path + engine.ingest", parse),
        ("drop folder (read+move)", drop),
        ("konnektive (HTTP, 200/page)", crm),
    ]
    print(f"records: {n:,} (best of 3 each, fresh SQLite file per run)")
    for label, seconds in rows:
        print(f"{label:28} {seconds:7.3f} s {n / seconds:9,.0f} records/s {seconds / base:5.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
