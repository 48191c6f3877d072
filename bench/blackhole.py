"""A minimal SMTP server that accepts every message and keeps none: a benchmark's far end.

On a small machine the SMTP server shares the CPUs with what is measured. aiosmtpd (the
real server the tests use) spends about as much CPU per message as a notifier worker
does, so a benchmark of several workers would mostly measure it. This one speaks just
enough SMTP for aiosmtplib -- EHLO/HELO, MAIL, RCPT, DATA with dot-terminated content,
RSET, NOOP, QUIT -- and answers at once, so nearly all the CPU goes to the workers. It
offers PIPELINING: every command of one read is answered, in order, in one write.
"""

from __future__ import annotations

import asyncio

_EHLO = b"250-blackhole\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 SIZE 52428800\r\n"
_END_OF_DATA = b"\r\n.\r\n"


class BlackholeSession(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.in_data = False
        self.messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 blackhole ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                end = self.buffer.find(_END_OF_DATA)
                if end < 0:
                    # Keep only what could still be the start of the terminator.
                    self.buffer = self.buffer[-4:]
                    break
                self.buffer = self.buffer[end + len(_END_OF_DATA) :]
                self.in_data = False
                self.messages += 1
                replies.append(b"250 OK: accepted\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                break
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(_EHLO)
            elif verb == b"DATA":
                self.in_data = True
                # The content starts on a new line: a CRLF in front lets the terminator of
                # an empty message (".\r\n" at once) match like any other.
                self.buffer = b"\r\n" + self.buffer
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 Bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP: all fine
                replies.append(b"250 OK\r\n")
        if replies:
            self.transport.write(b"".join(replies))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BlackholeSession, host, port)
    async with server:
        await server.serve_forever()


def run(port: int, host: str = "127.0.0.1") -> None:
    """Serve until the process is stopped (the target of a benchmark's sink process)."""
    asyncio.run(serve(host, port))
