"""A long-running delivery process, like `notifier serve` without its HTTP side.

Runs the DeliveryWorker (what `serve` runs) on the configured store until SIGTERM, so the
kill tests can SIGKILL a long-lived worker while new notices keep arriving.

    NOTIFIER_…=… python tests/support/worker_loop.py
"""

from __future__ import annotations

import asyncio
import signal

from notifier.settings import load_settings
from notifier.wiring import open_engine
from notifier.worker import DeliveryWorker


async def main() -> None:
    settings = load_settings()
    with open_engine(settings) as engine:
        worker = DeliveryWorker(engine, poll_interval=0.05)
        worker.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
