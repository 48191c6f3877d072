"""`notifier serve`: the webhook app under uvicorn, with the delivery worker in-process.

SIGTERM (or Ctrl-C): uvicorn stops accepting connections and lets in-flight requests
finish; the app's lifespan then lets the worker finish its in-flight sends and releases
any claim still held; the process exits 0. Nothing answered 202 is lost: it was committed
before the answer, and the next start (or another instance) delivers what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import APIRouter

from notifier.engine import Engine
from notifier.gc_tuning import settle_after_startup
from notifier.metrics import Metrics
from notifier.settings import Settings
from notifier.webhook import Hook, WebhookConfig, create_app
from notifier.wiring import open_engine
from notifier.worker import DeliveryWorker
from notifier.worker_process import delivery_worker_for

log = logging.getLogger("notifier.serve")

# How long uvicorn waits for open requests after SIGTERM before cancelling them.
REQUEST_GRACE_SECONDS = 30


class GracefulServer(uvicorn.Server):
    """uvicorn, except that a graceful stop on SIGTERM/SIGINT exits 0.

    uvicorn re-raises the signal after shutting down, so the process would die of it
    (exit 143) even though every request and send was finished; supervisors read that as
    a crash.
    """

    def __init__(self, config: uvicorn.Config, *, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self.announce = announce

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        if self.started:
            settle_after_startup()
            for server in self.servers:
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    self.announce(f"http://{host}:{port}")


@dataclass(frozen=True, slots=True)
class Extras:
    """What other features add to the server: routes (e.g. /preview), lifespan hooks
    (e.g. start and stop a scheduler). Built from the process's engine and worker."""

    routers: Sequence[APIRouter] = ()
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    insecure: bool = False,
    announce: Callable[[str], None] = print,
    extras: Callable[[Engine, DeliveryWorker], Extras] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. Raises ConfigError (before listening) on bad settings."""
    WebhookConfig.from_settings(settings, insecure=insecure)  # refuse before opening anything
    metrics = Metrics()
    with open_engine(settings, observer=metrics) as engine:
        worker = delivery_worker_for(engine, settings)
        added = extras(engine, worker) if extras is not None else Extras()
        app = create_app(
            settings=settings,
            engine=engine,
            worker=worker,
            routers=added.routers,
            on_startup=added.on_startup,
            on_shutdown=added.on_shutdown,
            metrics=metrics,
            insecure=insecure,
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            # uvicorn's access log prints query strings: postback tokens, customer addresses.
            access_log=False,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=REQUEST_GRACE_SECONDS,
            server_header=False,
        )
        server = GracefulServer(config, announce=announce)
        server.run()
        if not server.started:
            # e.g. the port is taken: uvicorn logged why; make it an error, not exit 0.
            raise OSError(f"could not serve on {host}:{port}")


def standard_extras(settings: Settings) -> Callable[[Engine, DeliveryWorker], Extras]:
    """What `notifier serve` adds to the webhook: the /preview page (when
    NOTIFIER_PREVIEW_TOKEN is set) and the scheduler (when notifier.toml or the
    environment defines jobs). Both are read from the settings once, at start."""
    from notifier.config_file import load_config

    config = load_config(settings)

    def build(engine: Engine, worker: DeliveryWorker) -> Extras:
        routers = []
        if settings.preview_token is not None and settings.preview_token.get_secret_value():
            from notifier.preview_web import preview_router
            from notifier.wiring import make_composer

            routers.append(
                preview_router(
                    composer=make_composer(settings),
                    rules=engine.rules,
                    token=settings.preview_token.get_secret_value(),
                )
            )
        if not config.jobs:
            return Extras(routers=routers)
        from notifier.scheduler import NotifierScheduler, build_scheduler

        running: list[NotifierScheduler] = []

        async def start() -> None:
            running.append(build_scheduler(config, engine=engine, wake=worker.wake))

        async def stop() -> None:
            for scheduler in running:
                await scheduler.aclose()

        return Extras(routers=routers, on_startup=[start], on_shutdown=[stop])

    return build
