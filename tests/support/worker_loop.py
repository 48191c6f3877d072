"""A long-running delivery process, like `notifier serve` without its HTTP side.

Runs the DeliveryWorker (what `serve` runs) on the configured store until SIGTERM, under the
same lifecycle as `serve`, so the kill tests can SIGKILL a long-lived worker while new
notices keep arriving.

    NOTIFIER_…=… python tests/support/worker_loop.py
"""

from __future__ import annotations

import asyncio

from notifier.engine.worker import DeliveryWorker
from notifier.processes.lifecycle import run_until_stopped
from notifier.processes.wiring import open_engine
from notifier.settings import load_settings


async def main() -> None:
    settings = load_settings()
    with open_engine(settings) as engine:
        worker = DeliveryWorker(engine, poll_interval=0.05)
        await run_until_stopped(engine, worker, grace=settings.shutdown_grace)


if __name__ == "__main__":
    asyncio.run(main())
