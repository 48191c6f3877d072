"""Sending over SMTP with aiosmtplib, through a small pool of reused connections.

Every driver error is translated here, once, into the project's three outcomes:

- ``TransientSendError``: the message was not accepted, and trying again later can
  help (4xx replies, refused, reset or timed-out connections, session set-up failures,
  530 replies);
- ``PermanentSendError``: the message was refused for good (5xx replies to MAIL,
  RCPT or DATA, except 530 "authentication/TLS required"; an address the server
  cannot take);
- ``AmbiguousSendError``: the connection died after the message data was handed
  over, so it may or may not have been accepted.

Whatever else escapes (a driver or library bug, a closed transport) is classified at
the one edge, :meth:`SmtpTransport.send`, by how far the message got: before DATA it is
transient (nothing can have arrived), from DATA on it is ambiguous (a retry might
deliver a second copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.generator
import email.policy
import io
import re
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.utils import getaddresses
from types import TracebackType
from typing import Literal

import aiosmtplib

from notifier.core.mime import WireMessage
from notifier.errors import (
    AmbiguousSendError,
    PermanentSendError,
    SendError,
    TransientSendError,
)
from notifier.transports import pipelining
from notifier.transports.protocol import BeforeData

TlsMode = Literal["none", "starttls", "tls"]

_RETRY_HINT = re.compile(
    r"\b(?:try(?:\s+again)?|retry)\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_AUTH_OR_TLS_REQUIRED = 530
_COMPLETED = 250
_RECIPIENT_ACCEPTED = (250, 251)  # 251: "user not local; will forward"


class SmtpTransport:
    """Sends messages to one SMTP server over at most ``connections`` reused connections.

    Connections are opened on demand and kept open between sends. One that fails is
    dropped (the next send opens a fresh one); one whose transaction was merely
    refused is reset with RSET and reused. Any number of tasks may call :meth:`send`
    at once: each waits for a free connection.

    A send is all or nothing: if any recipient is refused, no data is sent to the
    others, so a retry can never deliver a second copy to anyone.

    A server that offers PIPELINING gets MAIL, the RCPTs and DATA in one write and their
    replies are read in order (:mod:`notifier.transports.pipelining`): two round trips a
    message instead of four, with the same bytes on the wire and the same outcomes.

    And while other sends wait for a connection, a message's content is written with the
    envelope of the first of them after its final "." (RFC 2920: the next transaction's
    commands may follow the end of data): once this content is accepted, the connection
    and its place in the pool pass to that send, which reads its envelope's replies as
    they come. If the content is refused or the connection fails, the connection is
    closed (the server may be inside the next send's DATA) and the next send gets the
    place alone and sends on another connection: nothing of its own content went. The
    server's work a message is then one read fewer (bench/delivery.py's sink: ~6% less).
    """

    def __init__(
        self,
        *,
        hostname: str,
        port: int,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        connections: int = 4,
        timeout: float = 30.0,
        validate_certs: bool = True,
    ) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'tls', not {tls!r}")
        if connections < 1:
            raise ValueError(f"connections must be at least 1, not {connections}")
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.hostname = hostname
        self.port = port
        self.tls: TlsMode = tls
        self.connections = connections
        self.timeout = timeout
        self._username = username
        self._password = password
        self._validate_certs = validate_certs
        # Resolved by the first connection, then reused: getfqdn() can be slow.
        self._local_hostname: str | None = None
        # Places in the pool: a send holds one from before its connection to its end, or
        # passes it on with the connection to the send it chained (_transact_pipelined).
        self._free = connections
        self._waiting: deque[_Waiter] = deque()  # sends waiting for a place, first come first
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"SmtpTransport(hostname={self.hostname!r}, port={self.port}, tls={self.tls!r})"

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, message: EmailMessage, /, *, before_data: BeforeData | None = None) -> str:
        """The server's reply to DATA (e.g. "250 2.0.0 Ok: queued as 4XyZ")."""
        progress = _Progress(before_data)
        try:
            return await self._send(message, progress)
        except SendError:
            raise
        except _BeforeDataFailed as failed:
            raise failed.error from None  # the caller's own error, as it raised it
        except Exception as exc:
            raise _unforeseen(exc, self._server, data_started=progress.data_started) from exc

    async def _send(self, message: EmailMessage, progress: _Progress) -> str:
        if self._closed:
            raise TransientSendError(f"{self._server}: the SMTP transport is closed")
        sender, recipients = _envelope(message)
        chained = await self._take_place(message, sender, recipients)
        try:
            if chained is not None:
                try:
                    return await self._send_on(
                        chained, message, sender, recipients, progress, envelope_written=True
                    )
                except _StaleConnection:
                    pass  # gone before its envelope was answered: nothing went, go again
                client, reused = await self._connect(), False
            else:
                client, reused = await self._checkout()
            try:
                return await self._send_on(client, message, sender, recipients, progress)
            except _StaleConnection as exc:
                if not reused:
                    raise TransientSendError(f"{self._server}: connection lost") from exc
            # An idle connection the server had quietly closed: nothing was sent
            # on it, so one go on a fresh connection is safe.
            try:
                return await self._send_on(
                    await self._connect(), message, sender, recipients, progress
                )
            except _StaleConnection as exc:
                raise TransientSendError(f"{self._server}: connection lost") from exc
        finally:
            if progress.successor is None:
                self._give_place()

    async def _take_place(
        self, message: EmailMessage, sender: str, recipients: list[str]
    ) -> aiosmtplib.SMTP | None:
        """A place in the pool, first come first served; with a connection when a send
        before this one chained its envelope (it is written there, its replies unread)."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return None
        waiter = _Waiter(message, sender, recipients, asyncio.get_running_loop().create_future())
        future = waiter.future
        self._waiting.append(waiter)
        try:
            return await future
        except asyncio.CancelledError:
            if future.cancelled():
                with contextlib.suppress(ValueError):  # not there once a send chained it
                    self._waiting.remove(waiter)
            else:  # given a place as it was cancelled: this send gives it back
                chained = future.result()
                if chained is not None:
                    chained.close()  # the server waits inside this send's DATA
                self._give_place()
            raise

    def _give_place(self) -> None:
        """A send's end: its place goes to the first send still waiting, else back."""
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def _chain_next(self, client: aiosmtplib.SMTP) -> tuple[_Waiter, bytes] | None:
        """The first send waiting for a place, taken out of the queue to be chained on this
        connection, with its envelope's commands; None if none waits (or its envelope is one
        that goes its own way: SMTPUTF8, or an address that cannot go)."""
        while self._waiting:
            waiter = self._waiting[0]
            if waiter.future.done():
                self._waiting.popleft()
                continue
            commands = self._chained_commands(client, waiter)
            if commands is None:
                return None
            self._waiting.popleft()
            return waiter, commands
        return None

    def _chained_commands(self, client: aiosmtplib.SMTP, waiter: _Waiter) -> bytes | None:
        """MAIL, RCPT and DATA for the waiting send, as _transact would write them."""
        if not all(address.isascii() for address in (waiter.sender, *waiter.recipients)):
            return None
        eight_bit = client.supports_extension("8bitmime")
        try:
            data = _flatten(waiter.message, utf8=False, eight_bit=eight_bit)
            options = _mail_options(client, data, eight_bit=eight_bit, utf8=False)
            return _envelope_commands(waiter.sender, waiter.recipients, options, "ascii")
        except (PermanentSendError, ValueError, UnicodeError):
            # Its own send says why, as it would unchained; never this send's failure.
            return None

    async def close(self) -> None:
        """QUIT every idle connection; connections in use are closed when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client in idle))

    async def _send_on(
        self,
        client: aiosmtplib.SMTP,
        message: EmailMessage,
        sender: str,
        recipients: list[str],
        progress: _Progress,
        *,
        envelope_written: bool = False,
    ) -> str:
        try:
            reply = await self._transact(
                client, message, sender, recipients, progress, envelope_written=envelope_written
            )
        except AmbiguousSendError:
            client.close()
            raise
        except (SendError, _BeforeDataFailed):
            # Refused, or the caller stopped the send before DATA: the envelope is open on a
            # live connection; RSET makes it clean for the next send.
            await self._after_refusal(client)
            raise
        except BaseException:
            # Cancelled or failed mid-command: the session state is unknown.
            client.close()
            raise
        if progress.successor is None:
            await self._checkin(client)
        return reply

    @property
    def _server(self) -> str:
        return f"{self.hostname}:{self.port}"

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        if self._closed:
            raise TransientSendError(
                f"{self._server}: the SMTP transport was closed while this send waited"
            )
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
            client.close()
        return await self._connect(), False

    async def _checkin(self, client: aiosmtplib.SMTP) -> None:
        if self._closed:
            await _quit(client)
        elif client.is_connected:
            self._idle.append(client)
        else:
            client.close()

    async def _after_refusal(self, client: aiosmtplib.SMTP) -> None:
        # A refused transaction leaves a live connection in the middle of an
        # envelope; RSET makes it clean for the next send. Anything else (or a
        # failed RSET) means its state is unknown, so it is dropped.
        if not client.is_connected:
            client.close()
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
            return
        except BaseException:
            client.close()
            raise
        await self._checkin(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            username=self._username,
            password=self._password,
            local_hostname=self._local_hostname,
            timeout=self.timeout,
            use_tls=self.tls == "tls",
            # "none" means none: aiosmtplib would otherwise upgrade opportunistically.
            start_tls=self.tls == "starttls",
            validate_certs=self._validate_certs,
        )
        try:
            await client.connect()
            # The extensions (SMTPUTF8, 8BITMIME, SIZE) decide how the message is sent.
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:
                        raise
                    await client.helo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            # A refusal before any message is named (banner, EHLO, STARTTLS, AUTH)
            # says nothing about the message or its recipient: even a 5xx here is a
            # server or configuration problem, so it must not fail the notice for good.
            raise TransientSendError(
                f"{self._server}: session set-up refused: {exc.code} {exc.message}",
                code=exc.code,
                retry_after=_retry_after(exc.message),
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise TransientSendError(f"{self._server}: cannot connect: {exc}") from exc
        except BaseException:
            client.close()
            raise
        self._local_hostname = client.local_hostname
        pipelining.keep_replies(client)
        return client

    async def _transact(
        self,
        client: aiosmtplib.SMTP,
        message: EmailMessage,
        sender: str,
        recipients: list[str],
        progress: _Progress,
        *,
        envelope_written: bool = False,
    ) -> str:
        utf8 = not all(address.isascii() for address in (sender, *recipients))
        if utf8 and not client.supports_extension("smtputf8"):
            raise PermanentSendError(
                f"the envelope of {message.get('Message-ID', 'the message')} has a non-ASCII "
                f"address and the server {self._server} does not offer SMTPUTF8"
            )
        eight_bit = client.supports_extension("8bitmime")
        data = _flatten(message, utf8=utf8, eight_bit=eight_bit)
        options = _mail_options(client, data, eight_bit=eight_bit, utf8=utf8)
        encoding = "utf-8" if utf8 else "ascii"
        if client.supports_extension("pipelining"):
            return await self._transact_pipelined(
                client, data, sender, recipients, options, encoding, progress, envelope_written
            )

        try:
            try:
                await client.mail(sender, options=options, encoding=encoding)
            except aiosmtplib.SMTPServerDisconnected as exc:
                raise _StaleConnection from exc
            except ValueError as exc:
                raise PermanentSendError(f"cannot send from {sender!r}: {exc}") from exc
            await self._recipients(client, recipients, encoding)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(f"MAIL FROM:<{sender}>", exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientSendError(
                f"{self._server}: connection failed before the message was sent: {exc}"
            ) from exc

        if progress.before_data is not None:
            try:
                await progress.before_data()
            except Exception as exc:
                raise _BeforeDataFailed(exc) from exc
        progress.data_started = True
        with _awaiting_verdict(self._server):
            reply = await client.data(data)
        return f"{reply.code} {reply.message}"

    async def _recipients(
        self, client: aiosmtplib.SMTP, recipients: Sequence[str], encoding: str
    ) -> None:
        refusals: list[tuple[str, int, str]] = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refusals.append((recipient, exc.code, exc.message))
                if not client.is_connected:
                    break
            except ValueError as exc:
                raise PermanentSendError(f"cannot send to {recipient!r}: {exc}") from exc
        if refusals:
            raise _recipients_refused(refusals)

    async def _transact_pipelined(
        self,
        client: aiosmtplib.SMTP,
        data: bytes,
        sender: str,
        recipients: Sequence[str],
        options: list[str],
        encoding: str,
        progress: _Progress,
        envelope_written: bool = False,
    ) -> str:
        """The transaction of :meth:`_transact` in two round trips: MAIL, RCPT and DATA in one
        write, their replies read in order; then, only if all were accepted and DATA got 354,
        the send mark and the content. With `envelope_written` the envelope already went,
        chained after the content before it on this connection: only its replies are read."""
        if envelope_written:
            replies = await pipelining.read_envelope(client, len(recipients))
        else:
            commands = _envelope_commands(sender, recipients, options, encoding)
            replies = await pipelining.send_envelope(client, commands, len(recipients))
        if replies.mail is None and isinstance(replies.lost, aiosmtplib.SMTPServerDisconnected):
            # Gone before it answered anything (an idle connection the server had closed):
            # no content went, so one go on a fresh connection is safe.
            raise _StaleConnection from replies.lost
        error = self._envelope_refusal(replies, sender, recipients)
        if error is not None:
            if replies.data is not None and replies.data.code == pipelining.READY_FOR_DATA:
                # Some servers answer DATA with 354 even when the envelope was refused: the
                # server now waits for content, and a connection closed before the final "."
                # drops the transaction. Nothing may go, not even to an accepted recipient.
                client.close()
            raise error from replies.lost

        if progress.before_data is not None:
            try:
                await progress.before_data()
            except Exception as exc:
                # The server is inside DATA: closing without the final "." is the only way
                # out that cannot deliver the message (an RSET would be taken as content).
                client.close()
                raise _BeforeDataFailed(exc) from exc
        progress.data_started = True
        chain = self._chain_next(client)
        successor, then = chain if chain is not None else (None, b"")
        progress.successor = successor
        accepted = False
        try:
            with _awaiting_verdict(self._server):
                reply = await pipelining.send_content(client, data, then=then)
            accepted = reply.code == _COMPLETED
        finally:
            if successor is not None:
                self._hand_on(client, successor, with_connection=accepted)
        if reply.code != _COMPLETED:
            # A reply, even a late one, is an answer: the message was not taken.
            raise _refused("DATA", reply.code, reply.message)
        return f"{reply.code} {reply.message}"

    def _hand_on(
        self, client: aiosmtplib.SMTP, successor: _Waiter, *, with_connection: bool
    ) -> None:
        """This send's place (and, after an accepted content, its connection, the chained
        envelope's replies unread) to the send it chained. Otherwise the connection is
        closed: the server may be inside that send's DATA, where nothing else is safe."""
        future = successor.future
        keep = with_connection and client.is_connected and not future.done()
        if not keep:
            client.close()
        if future.done():  # the chained send was cancelled meanwhile
            self._give_place()
        else:
            future.set_result(client if keep else None)

    def _envelope_refusal(
        self, replies: pipelining.EnvelopeReplies, sender: str, recipients: Sequence[str]
    ) -> SendError | None:
        """Why the content must not go, in the terms of the unpipelined transaction: a
        refused MAIL, else the recipients' refusals (all or nothing), else a lost connection,
        else a DATA not answered with 354."""
        if replies.mail is not None and replies.mail.code != _COMPLETED:
            return _refused(f"MAIL FROM:<{sender}>", replies.mail.code, replies.mail.message)
        refusals = [
            (recipient, reply.code, reply.message)
            for recipient, reply in zip(recipients, replies.recipients, strict=False)
            if reply.code not in _RECIPIENT_ACCEPTED
        ]
        if refusals:
            return _recipients_refused(refusals)
        if replies.lost is not None or replies.data is None:
            return TransientSendError(
                f"{self._server}: connection failed before the message was sent: {replies.lost}"
            )
        if replies.data.code != pipelining.READY_FOR_DATA:
            return _refused("DATA", replies.data.code, replies.data.message)
        return None


def _recipients_refused(refusals: Sequence[tuple[str, int, str]]) -> SendError:
    # All or nothing: one recipient refused for good fails the whole send.
    worst = next(((r, c, m) for r, c, m in refusals if c >= 500), refusals[0])
    recipient, code, text = worst
    error = _refused(f"RCPT TO:<{recipient}>", code, text, recipient=True)
    if len(refusals) > 1:
        others = "; ".join(f"<{r}> {c} {m}" for r, c, m in refusals if (r, c, m) != worst)
        error = type(error)(
            f"{error} (also refused: {others})",
            code=error.code,
            retry_after=error.retry_after,
            recipient_refused=True,
        )
    return error


class _StaleConnection(Exception):
    """The connection was gone before the transaction began."""


@dataclass(slots=True)
class _Progress:
    """How far one send got: mutable, because the edge reads it after an error unwinds."""

    before_data: BeforeData | None = None
    data_started: bool = False
    # The send this one chained (its envelope went with this content): its place passes on.
    successor: _Waiter | None = None


@dataclass(slots=True, eq=False)
class _Waiter:
    """A send waiting for a place in the pool; `future` gets the place (and, if chained, the
    connection its envelope went on)."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    future: asyncio.Future[aiosmtplib.SMTP | None]


def _envelope_commands(
    sender: str, recipients: Sequence[str], options: Sequence[str], encoding: str
) -> bytes:
    """MAIL FROM, the RCPTs and DATA in one piece (pipelining.envelope_commands);
    PermanentSendError for an address that cannot go."""
    try:
        mail_from = pipelining.mailbox(sender, encoding)
    except ValueError as exc:
        raise PermanentSendError(f"cannot send from {sender!r}: {exc}") from exc
    rcpt_to: list[bytes] = []
    for recipient in recipients:
        try:
            rcpt_to.append(pipelining.mailbox(recipient, encoding))
        except ValueError as exc:
            raise PermanentSendError(f"cannot send to {recipient!r}: {exc}") from exc
    return pipelining.envelope_commands(mail_from, rcpt_to, options)


def _mail_options(
    client: aiosmtplib.SMTP, data: bytes, *, eight_bit: bool, utf8: bool
) -> list[str]:
    """MAIL FROM's parameters for this message on this connection."""
    options: list[str] = []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(data)}")
    if eight_bit:
        options.append("BODY=8BITMIME")
    if utf8:
        options.append("SMTPUTF8")
    return options


class _BeforeDataFailed(Exception):
    """The caller's before_data hook raised: carried through the transport untranslated."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _unforeseen(exc: Exception, server: str, *, data_started: bool) -> SendError:
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if data_started:
        # Some or all of the data may have reached the server, and it may have taken the
        # message: only an ambiguous outcome bounds how many copies a retry can deliver.
        return AmbiguousSendError(
            f"{server}: unexpected error after the message data began, before the server"
            f" confirmed it: {what}"
        )
    return TransientSendError(f"{server}: unexpected error before the message was sent: {what}")


@contextmanager
def _awaiting_verdict(server: str) -> Iterator[None]:
    """Around the content going out and the server's verdict on it (both ways of sending):
    a reply, even a late one, is an answer, so the message was not taken; anything else
    leaves unknown whether it was."""
    try:
        yield
    except aiosmtplib.SMTPResponseException as exc:
        raise _refused("DATA", exc.code, exc.message) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise AmbiguousSendError(
            f"{server}: connection failed after the message data was sent, "
            f"before the server confirmed it: {exc}"
        ) from exc


def _refused(command: str, code: int, text: str, *, recipient: bool = False) -> SendError:
    detail = f"{command} refused: {code} {text}"
    if 400 <= code < 500:
        return TransientSendError(detail, code=code, retry_after=_retry_after(text))
    if code == _AUTH_OR_TLS_REQUIRED:
        # Our session lacks AUTH or STARTTLS (RFC 4954, RFC 3207): a settings
        # problem, so the message must not be failed, nor its address suppressed.
        return TransientSendError(f"{detail} (check the SMTP tls/username settings)", code=code)
    if 500 <= code < 600:
        return PermanentSendError(detail, code=code, recipient_refused=recipient)
    # Not a reply SMTP allows here: the session is confused, not the message refused.
    return TransientSendError(f"{command}: unexpected reply {code} {text}", code=code)


def _retry_after(text: str) -> float | None:
    match = _RETRY_HINT.search(text)
    if match is None:
        return None
    return float(match[1]) * _UNIT_SECONDS[match[2][0].lower()]


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    if isinstance(message, WireMessage) and message.envelope_from and message.envelope_to:
        return message.envelope_from, list(message.envelope_to)
    senders = _addresses(message, "Sender") or _addresses(message, "From")
    if not senders:
        raise PermanentSendError("the message has no From address")
    recipients = _addresses(message, "To", "Cc", "Bcc")
    if not recipients:
        raise PermanentSendError("the message has no To, Cc or Bcc address")
    return senders[0], list(dict.fromkeys(recipients))


def _addresses(message: EmailMessage, *names: str) -> list[str]:
    found: list[str] = []
    for name in names:
        for header in message.get_all(name, []):
            if isinstance(header, AddressHeader):
                found.extend(address.addr_spec for address in header.addresses)
            else:
                found.extend(address for _, address in getaddresses([str(header)]))
    return [address for address in found if address and address != "<>"]


def _flatten(message: EmailMessage, *, utf8: bool, eight_bit: bool) -> bytes:
    if isinstance(message, WireMessage) and message.wire and "Bcc" not in message:
        return message.wire  # written at compose time: ASCII, 7-bit, CRLF
    outgoing = copy.copy(message)
    # Bcc recipients are in the envelope; the header would tell everyone about them.
    del outgoing["Bcc"]
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if not eight_bit:
        # 8-bit bodies are re-encoded (quoted-printable or base64) for servers without 8BITMIME.
        policy = policy.clone(cte_type="7bit")
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer, policy=policy).flatten(outgoing)
    return buffer.getvalue()


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        client.close()
