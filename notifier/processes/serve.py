"""`notifier serve`: the webhook app under uvicorn, with the delivery worker in-process.

It runs under notifier.processes.lifecycle like `worker` and `schedule`: on SIGTERM (or Ctrl-C)
uvicorn stops accepting connections and answers the requests in flight, the scheduler (if
any) finishes its running jobs, the worker finishes its sends in flight; the claims still
held are released and the process exits 0. Nothing answered 202 is lost: it was committed
before the answer, and the next start (or another instance) delivers what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import APIRouter

from notifier.engine import Engine
from notifier.engine.feedback import FeedbackIntake
from notifier.engine.worker import DeliveryWorker
from notifier.http.feedback import FeedbackConfig, feedback_router
from notifier.http.metrics import Metrics
from notifier.http.webhook import WebhookConfig, create_app
from notifier.processes.lifecycle import Service, run_until_stopped
from notifier.processes.project_file import ProjectFile
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.processes.worker import delivery_worker_for
from notifier.settings import Settings

log = logging.getLogger("notifier.processes.serve")


class HttpServer(uvicorn.Server):
    """uvicorn as a service of notifier.processes.lifecycle.

    It installs no signal handlers of its own: the lifecycle owns SIGTERM/SIGINT and tells
    it `should_exit`, so uvicorn's graceful shutdown (in-flight requests answered) is kept
    and the process exits 0 instead of dying of the re-raised signal. It announces where it
    listens once it does.
    """

    def __init__(self, config: uvicorn.Config, *, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self.announce = announce
        self._listening = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        if self.started:
            for server in self.servers:
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    self.announce(f"http://{host}:{port}")
            self._listening.set()

    async def start(self) -> None:
        """Listen; OSError if uvicorn could not (it logged why, e.g. the port is taken)."""
        self._serving = asyncio.create_task(self._serve_or_fail(), name="notifier-http")
        listening = asyncio.ensure_future(self._listening.wait())
        await asyncio.wait([self._serving, listening], return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if not self.started:
            await self._serving  # raises why it did not start

    async def _serve_or_fail(self) -> None:
        try:
            await self.serve()
        except SystemExit:  # how uvicorn reports a failed start-up
            raise OSError(f"could not serve on {self.config.host}:{self.config.port}") from None
        if not self.started:
            raise OSError(f"could not serve on {self.config.host}:{self.config.port}")

    async def stop(self) -> None:
        """Stop accepting, answer the requests in hand; cancelled: drop them."""
        self.should_exit = True
        if self._serving is None:
            return
        try:
            await asyncio.shield(self._serving)
        finally:
            if not self._serving.done():
                self.force_exit = True
                self._serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._serving


@dataclass(frozen=True, slots=True)
class Extras:
    """What other features add to the server: routes (e.g. /preview) and services run
    beside it (e.g. the scheduler). Built from the process's engine and worker."""

    routers: Sequence[APIRouter] = ()
    services: Sequence[Service] = ()


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    insecure: bool = False,
    announce: Callable[[str], None] = print,
    project_file: ProjectFile | None = None,
    extras: Callable[[Engine, DeliveryWorker], Extras] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. Raises ConfigError (before listening) on bad settings."""
    # Refuse bad settings before opening anything.
    WebhookConfig.from_settings(settings, insecure=insecure)
    FeedbackConfig.from_settings(settings)
    metrics = Metrics()
    with open_engine(settings, project_file=project_file, observer=metrics) as engine:
        worker = delivery_worker_for(engine, settings)
        added = extras(engine, worker) if extras is not None else Extras()
        app = create_app(
            settings=settings,
            engine=engine,
            wake=worker.wake,
            routers=added.routers,
            metrics=metrics,
            insecure=insecure,
        )
        config = http_config(app, host=host, port=port, grace=settings.shutdown_grace)
        server = HttpServer(config, announce=announce)
        asyncio.run(
            run_until_stopped(
                engine,
                worker,
                grace=settings.shutdown_grace,
                services=[*added.services, server],
            )
        )


def http_config(app: object, *, host: str, port: int, grace: float) -> uvicorn.Config:
    """uvicorn's settings for `serve` (and the benchmark's bare endpoint, to compare alike)."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        # uvicorn's access log prints query strings: postback tokens, customer addresses.
        access_log=False,
        log_config=None,
        lifespan="on",
        # Requests get the whole grace; the lifecycle cancels what outlives it.
        timeout_graceful_shutdown=max(1, round(grace)),
        server_header=False,
    )


def standard_extras(
    settings: Settings, project_file: ProjectFile
) -> Callable[[Engine, DeliveryWorker], Extras]:
    """What `notifier serve` adds to the webhook: the delivery-feedback webhooks (each off
    until its provider's settings are given), the notices API and the console's pages (when
    NOTIFIER_CONSOLE_TOKEN is set), the /preview page (when NOTIFIER_PREVIEW_TOKEN is) and the
    scheduler (when notifier.toml or the environment defines jobs). All come from what the
    entry point read once, at start."""

    def build(engine: Engine, worker: DeliveryWorker) -> Extras:
        # One intake for every way feedback comes in: the webhooks and the mailbox jobs.
        intake = feedback_intake(settings, engine)
        routers = [feedback_router_for(settings, engine, intake)]
        from notifier.http.notices_api import notices_api_from_settings

        # The notices API (/v1/notices), when NOTIFIER_CONSOLE_TOKEN is set.
        if (api := notices_api_from_settings(engine, settings, wake=worker.wake)) is not None:
            routers.append(api)
        if settings.preview_token is not None and settings.preview_token.get_secret_value():
            from notifier.http.preview import preview_router
            from notifier.rendering.setup import make_composer

            routers.append(
                preview_router(
                    composer=make_composer(settings),
                    rules=engine.rules,
                    token=settings.preview_token.get_secret_value(),
                )
            )
        from notifier.http.console import console_from_settings

        # The console's pages (/console), with the same token.
        if (console := console_from_settings(engine, settings, wake=worker.wake)) is not None:
            routers.append(console)
        if not project_file.jobs:
            return Extras(routers=routers)
        from notifier.processes.scheduler import ScheduledJobs

        jobs = ScheduledJobs(
            project_file,
            engine=engine,
            wake=worker.wake,
            feedback=intake,
        )
        return Extras(routers=routers, services=[jobs])

    return build


def feedback_router_for(settings: Settings, engine: Engine, intake: FeedbackIntake) -> APIRouter:
    """POST /v1/feedback/{ses,postmark,sendgrid,mailgun} on the engine's clock, into `intake`
    (processes.wiring.feedback_intake: the one the scheduled jobs share)."""
    return feedback_router(
        FeedbackConfig.from_settings(settings), intake=intake, clock=engine.clock
    )
