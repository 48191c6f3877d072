"""A counting SMTP sink in its own process, so benchmarks do not share a core's GIL with it.

python -m bench.sink PORTFILE     # writes the port it listens on, then serves until killed
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd takes pipelined commands but does not say so; real relays do.
        session.host_name = hostname
        *extensions, last = responses
        return [*extensions, "250-PIPELINING", last]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


async def serve(port_file: Path) -> None:
    handler = Counter()
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, hostname="bench.sink")

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    port_file.write_text(str(port))  # noqa: ASYNC240 - once, before serving
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
