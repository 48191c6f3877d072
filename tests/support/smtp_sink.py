"""A real SMTP server (aiosmtpd) on 127.0.0.1, in a background thread, with fault injection.

    with SmtpSink() as sink:
        sink.reply_with("451 4.3.0 try again later", stage="rcpt")
        ...  # send to sink.host, sink.port
        assert sink.messages[0]["Subject"] == "..."

aiosmtpd's own ``Controller`` cannot listen on port 0 (it connects to its port to
check it started) and cannot start again once stopped, and a restart on the same
port is what an outage test needs; so the sink runs its own event loop and server.
"""

from __future__ import annotations

import asyncio
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import Parser
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, Envelope, Session

from support.waiting import wait_until

Stage = Literal["connect", "mail", "rcpt", "data"]
_STAGES = ("connect", "mail", "rcpt", "data")
_DROP = "drop"


@dataclass(frozen=True)
class Delivery:
    """One message the sink accepted, with its envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    data: bytes
    message: EmailMessage


@dataclass
class _Fault:
    reply: str
    stage: str
    remaining: int | None
    recipient: str | None
    keep: bool = False


class SmtpSink:
    """An SMTP server that records what it receives and fails on request.

    ``host`` and ``port`` are fixed at the first :meth:`start` (port 0 picks a free
    one) and kept across :meth:`stop` / :meth:`start`, so a client sees an outage
    and a recovery on the same address.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", smtputf8: bool = True, pipelining: bool = True
    ) -> None:
        self.host = host
        self.port = 0
        self.smtputf8 = smtputf8
        """Whether EHLO offers SMTPUTF8; applies to connections opened after a change."""
        self.pipelining = pipelining
        """Whether EHLO offers PIPELINING (aiosmtpd handles pipelined commands, but does not
        say so by itself); applies to EHLOs after a change."""
        self.reads: list[bytes] = []
        """Every chunk of bytes the sink read from its clients, in order: one write of the
        client's usually arrives as one chunk, which tells pipelined commands apart."""
        self.connections_opened = 0
        """Connections accepted since the sink was made."""
        self.quits = 0
        """QUIT commands received since the sink was made."""
        self.data_begun = 0
        """DATA commands received (each message's content is being sent) since made."""
        self.data_seconds = 0.0
        """How long the sink takes over each message's content before replying."""
        self._deliveries: list[Delivery] = []
        self._faults: list[_Fault] = []
        self._live: set[_SinkSMTP] = set()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.running:
            self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = 5.0) -> None:
        """Listen (again); returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("the sink is already running")
        loop = asyncio.new_event_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()
        thread = threading.Thread(
            target=self._serve, args=(loop, ready, started), name="smtp-sink", daemon=True
        )
        thread.start()
        if not wait_until(ready.is_set, timeout=timeout):
            raise TimeoutError("the SMTP sink did not start")
        if started[0] is not None:
            thread.join()
            raise started[0]
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        """Stop listening and drop every open connection, like a server going down."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("the sink is not running")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = self._thread = None

    def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: threading.Event,
        started: list[BaseException | None],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: _SinkSMTP(self, loop), self.host, self.port)
            )
        except BaseException as exc:
            started.append(exc)
            loop.close()
            asyncio.set_event_loop(None)
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        started.append(None)
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for protocol in list(self._live):
                if protocol.transport is not None:
                    protocol.transport.close()
            loop.run_until_complete(server.wait_closed())
            # Let connection_lost run and the session tasks finish before the loop
            # closes, so no transport or task is left to warn about.
            loop.run_until_complete(asyncio.sleep(0.01))
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)

    # --- what arrived ------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    @property
    def messages(self) -> list[EmailMessage]:
        """The parsed messages received, oldest first."""
        return [delivery.message for delivery in self.deliveries]

    @property
    def connections_open(self) -> int:
        """Connections open right now."""
        with self._cond:
            return len(self._live)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived; return all of them."""

        def arrived() -> bool:
            with self._cond:
                return len(self._deliveries) >= count

        if not wait_until(arrived, timeout=timeout):
            raise TimeoutError(
                f"expected {count} messages within {timeout}s, got {len(self._deliveries)}"
            )
        with self._cond:
            return [delivery.message for delivery in self._deliveries]

    def wait_for_data(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` DATA commands arrived (replied to or not)."""

        def begun() -> bool:
            with self._cond:
                return self.data_begun >= count

        # Polled (support.waiting): a timed thread wait never times out under make test-clock.
        if not wait_until(begun, timeout=timeout):
            raise TimeoutError(f"expected {count} DATA within {timeout}s, got {self.data_begun}")

    # --- fault injection ---------------------------------------------------

    def slow_down(self, seconds: float) -> None:
        """Take ``seconds`` over each message's content before replying: sends stay in flight."""
        self.data_seconds = seconds

    def reply_with(
        self,
        reply: str,
        *,
        stage: Stage = "rcpt",
        times: int | None = 1,
        recipient: str | None = None,
    ) -> None:
        """Answer the next ``times`` commands of ``stage`` with ``reply`` (``None``: until cleared).

        ``stage`` is "connect" (the greeting, after which the connection is closed),
        "mail", "rcpt" or "data" (the reply after the message content). With
        ``recipient``, only that RCPT (or a DATA whose envelope includes it) is hit.
        """
        code = reply[:3]
        if not (code.isdigit() and reply[3:4] in (" ", "")):
            raise ValueError(f"a reply starts with a three-digit code: {reply!r}")
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}, not {stage!r}")
        if recipient is not None and stage not in ("rcpt", "data"):
            raise ValueError("recipient applies to the rcpt and data stages only")
        self._add_fault(_Fault(reply, stage, times, recipient))

    def drop_connection_at_mail(self, times: int | None = 1) -> None:
        """Close the connection, without replying, when the next MAIL arrives: to a client,
        a pooled connection the server had closed while it sat idle."""
        self._add_fault(_Fault(_DROP, "mail", times, None))

    def drop_connection_after_data(self, times: int | None = 1, *, keep: bool = False) -> None:
        """Read the next message's content, then close the connection without replying.

        With ``keep``, the message is recorded as received first: the client cannot
        tell the two cases apart, which is the point.
        """
        self._add_fault(_Fault(_DROP, "data", times, None, keep=keep))

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError(f"times must be at least 1, not {fault.remaining}")
        with self._cond:
            self._faults.append(fault)

    def _take_fault(self, stage: str, recipients: tuple[str, ...] = ()) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.stage != stage:
                    continue
                if fault.recipient is not None and fault.recipient not in recipients:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    # --- called from the server thread -------------------------------------

    def _opened(self, protocol: _SinkSMTP) -> None:
        with self._cond:
            self.connections_opened += 1
            self._live.add(protocol)

    def _closed(self, protocol: _SinkSMTP) -> None:
        with self._cond:
            self._live.discard(protocol)

    def _read(self, data: bytes) -> None:
        with self._cond:
            self.reads.append(data)

    def _record(self, envelope: Envelope) -> None:
        data = envelope.original_content or b""
        message = _parse(data)
        delivery = Delivery(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            data=data,
            message=message,
        )
        with self._cond:
            self._deliveries.append(delivery)
            self._cond.notify_all()

    # aiosmtpd handler hooks

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves it to a handler that has this hook
        if not self.pipelining:
            return responses
        *extensions, last = responses
        return [*extensions, "250-PIPELINING", last]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        fault = self._take_fault("mail")
        if fault is not None and fault.reply == _DROP:
            assert server.transport is not None
            server.transport.close()
            return "250 OK: never sent"  # the transport is already closing
        if fault is not None:
            return fault.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self._take_fault("rcpt", (address,))
        if fault is not None:
            return fault.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._cond:
            self.data_begun += 1
            self._cond.notify_all()
        if self.data_seconds:
            await asyncio.sleep(self.data_seconds)
        fault = self._take_fault("data", tuple(envelope.rcpt_tos))
        if fault is None or fault.keep:
            self._record(envelope)
        if fault is None:
            return "250 OK: queued"
        if fault.reply == _DROP:
            assert server.transport is not None
            server.transport.close()
            # Nothing reaches the client: the transport is already closing.
            return "250 OK: never sent"
        return fault.reply

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._cond:
            self.quits += 1
        return "221 Bye"


def _parse(data: bytes) -> EmailMessage:
    # Local line endings, as a mail store would keep them, so that text parts
    # compare equal to what was written (Delivery.data keeps the wire form).
    head, blank, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
    # BytesParser reads headers as ASCII; SMTPUTF8 messages carry UTF-8 headers
    # (RFC 6532). The body is decoded the way BytesParser does it.
    text = (
        head.decode("utf-8", "surrogateescape")
        + blank.decode()
        + body.decode("ascii", "surrogateescape")
    )
    return Parser(policy=email.policy.default).parsestr(text)


class _SinkSMTP(SMTP):
    """aiosmtpd's server protocol, reporting its connections to the sink."""

    def __init__(self, sink: SmtpSink, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            sink,
            loop=loop,
            hostname="sink.test",  # skips a getfqdn() per connection
            ident="notifier test sink",
            enable_SMTPUTF8=sink.smtputf8,
            timeout=30,
        )
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sink._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sink._closed(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self._sink._read(data)
        super().data_received(data)

    async def _handle_client(self) -> Any:
        fault = self._sink._take_fault("connect")
        if fault is None:
            return await super()._handle_client()
        await self.push(fault.reply)
        assert self.transport is not None
        self.transport.close()
        return None
