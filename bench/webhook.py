"""Benchmark: `notifier serve` ingestion vs a bare FastAPI endpoint under the same server.

    python -m bench.webhook [--seconds 5] [--connections 16] [--paced-seconds 10]

Each server runs in its own child process (uvicorn, the same settings: one worker, no
access log); the load comes from this process over 127.0.0.1 with a minimal HTTP/1.1
keep-alive client, so the client costs little next to the server. One record per request,
each a new fulfillment, signed. Two record kinds:

- `ingest`: a Pending status (no rule fires): the cost of authenticating, parsing and
  durably committing a record;
- `notify`: a Pending Shipment with tracking: each request also creates a notice that the
  in-process worker renders and delivers (file transport) while the load goes on.

Reported: requests/s and p50/p99 latency at full load (closed loop), their ratio to the
bare endpoint, and p99 at a paced 200 requests/s (open loop: latency counted from each
request's scheduled time, so a stall cannot hide). Not a test: numbers go in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import ROOT, bench_settings

SECRET = "bench-secret"
PATH = "/v1/status-changes"


# --- the servers (child processes) ----------------------------------------------------------


def serve_bare() -> None:
    """A FastAPI endpoint that does no work, under the same uvicorn settings as serve."""
    from fastapi import FastAPI

    from notifier.processes.gc_tuning import settle_after_startup
    from notifier.processes.serve import HttpServer, http_config

    app = FastAPI()

    @app.post(PATH, status_code=202)
    async def bare() -> dict[str, int]:
        return {"accepted": 1, "duplicates": 0, "stale": 0}

    config = http_config(app, host="127.0.0.1", port=0, grace=25)
    # The collector settings `notifier serve` takes through its lifecycle, for a fair match.
    settle_after_startup()
    HttpServer(config, announce=_announce).run()


def serve_webhook(folder: Path) -> None:
    """The real `notifier serve` path on a fresh SQLite ledger (file transport)."""
    from notifier.processes.serve import serve

    settings = bench_settings(folder, webhook_secret=SECRET)
    serve(settings, host="127.0.0.1", port=0, announce=_announce)


def _announce(url: str) -> None:
    print(url, flush=True)


# --- the load ---------------------------------------------------------------------------


def request_bytes(n: int, kind: str, stamp: int) -> bytes:
    from notifier.http.signing import sign

    record: dict[str, str] = {
        "order_id": f"B-{n}",
        "fulfillment_id": f"BF-{n}",
        "status": "Pending",
        "email": f"c{n}@example.com",
    }
    if kind == "notify":
        record.update(status="Pending Shipment", tracking_number="1Z999AA10123456784")
    body = json.dumps(record).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Notifier-Signature: {sign(body, SECRET, stamp)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float = 0.0  # seconds of server CPU (all threads) in the measured window

    @property
    def cpu_per_request_us(self) -> float:
        return self.server_cpu / max(self.requests, 1) * 1e6

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    port: int, requests: list[bytes], connections: int, seconds: float, warmup: float, pid: int
) -> Result:
    """`connections` clients back to back for `seconds` (after `warmup`)."""
    feed = iter(requests)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    cpu: list[float] = []

    async def sample_cpu() -> None:
        await asyncio.sleep(warmup)
        cpu.append(cpu_seconds(pid))

    async def client() -> None:
        nonlocal errors
        conn = await Connection.open(port)
        try:
            while (now := time.perf_counter()) < stop_at:
                request = next(feed)
                status = await conn.exchange(request)
                if now >= measure_from:
                    latencies.append(time.perf_counter() - now)
                    errors += status != 202
        finally:
            conn.close()

    await asyncio.gather(sample_cpu(), *(client() for _ in range(connections)))
    cpu.append(cpu_seconds(pid))
    return Result(len(latencies), seconds, latencies, errors, server_cpu=cpu[1] - cpu[0])


async def paced(port: int, requests: list[bytes], rate: float, seconds: float) -> Result:
    """Open loop: request i is due at start + i/rate; latency counts from when it was due."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = await pool.get()
        try:
            errors += await conn.exchange(requests[i]) != 202
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(one(i) for i in range(total)))
    while not pool.empty():
        pool.get_nowait().close()
    return Result(total, seconds, latencies, errors)


# --- orchestration ------------------------------------------------------------------------


class Child:
    """A server child process; its first stdout line is its URL."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("NOTIFIER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook", *args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().strip()
        if not url:
            raise RuntimeError("server did not start")
        self.port = int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def measure(
    args: argparse.Namespace,
    loop_server: tuple[str, ...],
    paced_server: tuple[str, ...],
    *,
    kind: str,
) -> tuple[Result, Result]:
    stamp = int(time.time())
    record_kind = "notify" if kind == "notify" else "ingest"
    paced_count = int(args.rate * args.paced_seconds)
    if kind == "bare":  # the bare endpoint ignores the body: one request, sent again and again
        loop_bodies = [request_bytes(0, record_kind, stamp)] * 200_000
        paced_bodies = loop_bodies[:paced_count]
    else:  # a new fulfillment per request, so none is a duplicate
        loop_bodies = [request_bytes(n, record_kind, stamp) for n in range(100_000)]
        paced_bodies = [request_bytes(-n - 1, record_kind, stamp) for n in range(paced_count)]
    child = Child(*loop_server)
    try:
        full = asyncio.run(
            closed_loop(
                child.port,
                loop_bodies,
                args.connections,
                args.seconds,
                args.warmup,
                child.proc.pid,
            )
        )
    finally:
        child.stop()
    # A fresh server for the paced run: steady state, not the full-load run's backlog.
    child = Child(*paced_server)
    try:
        steady = asyncio.run(paced(child.port, paced_bodies, args.rate, args.paced_seconds))
    finally:
        child.stop()
    return full, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0, help="paced requests/s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--kinds", default="ingest,notify", help="record kinds to run (ingest, notify)"
    )
    parser.add_argument("--serve", choices=["bare", "webhook"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare()
        return
    if args.serve == "webhook":
        serve_webhook(Path(args.dir))
        return

    # Rounds interleave the servers so that a machine busy with other work hurts all alike;
    # each figure is the median over the rounds. CPU per request is the steadiest figure.
    kinds = ["bare", *args.kinds.split(",")]
    runs: dict[str, list[tuple[Result, Result]]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            if kind == "bare":
                bare = ("--serve", "bare")
                runs[kind].append(measure(args, bare, bare, kind="bare"))
                continue
            with (
                tempfile.TemporaryDirectory(prefix="notifier-bench-") as loop_folder,
                tempfile.TemporaryDirectory(prefix="notifier-bench-") as paced_folder,
            ):
                serve = ("--serve", "webhook", "--dir")
                runs[kind].append(
                    measure(args, (*serve, loop_folder), (*serve, paced_folder), kind=kind)
                )
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[tuple[Result, Result]]]) -> None:
    def median(kind: str, figure: Callable[[Result, Result], float]) -> float:
        return statistics.median(figure(full, steady) for full, steady in runs[kind])

    names = {
        "bare": "bare FastAPI endpoint",
        "ingest": "notifier serve (ingest)",
        "notify": "notifier serve (notify)",
    }
    bare_rate = median("bare", lambda full, _: full.rate)
    bare_cpu = median("bare", lambda full, _: full.cpu_per_request_us)
    print(
        f"one record per request; {args.connections} connections, {args.seconds:.0f} s after"
        f" {args.warmup:.0f} s warm-up; paced: {args.rate:.0f} req/s for"
        f" {args.paced_seconds:.0f} s; median of {args.rounds} interleaved round(s)"
    )
    header = (
        f"{'server':26} {'req/s':>7} {'ratio':>6} {'CPU/req':>8} {'ratio':>6} {'p50':>6}"
        f" {'p99':>6} | {'paced p50':>9} {'p99':>6} | {'non-202':>7}"
    )
    print(header)
    print("-" * len(header))
    for kind in runs:
        rate = median(kind, lambda full, _: full.rate)
        cpu = median(kind, lambda full, _: full.cpu_per_request_us)
        errors = sum(full.errors + steady.errors for full, steady in runs[kind])
        print(
            f"{names[kind]:26} {rate:7.0f} {rate / bare_rate:6.2f} {cpu:6.0f}us"
            f" {bare_cpu / cpu:6.2f} {median(kind, lambda f, _: f.percentile(50)):6.1f}"
            f" {median(kind, lambda f, _: f.percentile(99)):6.1f} |"
            f" {median(kind, lambda _, s: s.percentile(50)):9.1f}"
            f" {median(kind, lambda _, s: s.percentile(99)):6.1f} | {errors:7d}"
        )
    print("latencies in ms; the CPU 'ratio' is bare's CPU per request over this server's:")
    print("the requests/s ratio the two would show on an otherwise idle machine")


if __name__ == "__main__":
    main()
