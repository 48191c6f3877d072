"""A transport that writes each message to a folder as an ``.eml`` file.

Its errors are translated here, once (:func:`_outbox_errors`): the file system refusing
a write (full, read-only, no permission, gone) is transient — nothing was written, and
the notice waits in ``retry`` until the operator fixes the folder; a message that cannot
name a file (no or an over-long Message-ID) is permanent — no retry can change it.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from pathlib import Path

from notifier.core.mime import WireMessage
from notifier.errors import PermanentSendError, TransientSendError
from notifier.transports.protocol import BeforeData

_ADDRESS_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Bcc")

# Leaves headroom under the usual 255-byte name limit for ".eml" and the temp-file affixes.
_MAX_STEM_BYTES = 200


class FileTransport:
    """Writes one RFC 5322 file per message, named after its Message-ID.

    The name comes from the Message-ID alone, so a resend after a crash replaces
    the earlier file instead of adding a second one. Each file is written to a
    temporary name and renamed into place: a reader never sees half a message.
    Bcc is kept: the file is a record of the message, not a delivery.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path_for(self, message: EmailMessage, /) -> Path:
        """The file that ``message`` is (or would be) written to."""
        message_id = message.get("Message-ID")
        if message_id is None or not str(message_id).strip("<> \t"):
            raise ValueError("a message needs a Message-ID to be written to a file")
        return self.directory / f"{_file_stem(str(message_id))}.eml"

    async def send(self, message: EmailMessage, /, *, before_data: BeforeData | None = None) -> str:
        if before_data is not None:
            await before_data()  # outside the OS-error mapping: what it raises passes through
        with _outbox_errors(self.directory):
            target = self.path_for(message)
            if isinstance(message, WireMessage) and message.wire:
                data = message.wire  # the very bytes the SMTP transport would send
            else:
                policy = (
                    email.policy.SMTPUTF8 if _has_non_ascii_address(message) else email.policy.SMTP
                )
                data = message.as_bytes(policy=policy)
            await asyncio.to_thread(_write_atomically, target, data)
        return f"written to the outbox as {target.name}"

    async def close(self) -> None:
        pass


@contextmanager
def _outbox_errors(directory: Path) -> Iterator[None]:
    """The one place where this transport's failures become send errors.

    Every OS error is transient, even one after the rename (the directory's fsync): a
    retry rewrites the same file name, so it can never leave a second copy.
    """
    try:
        yield
    except OSError as exc:
        raise TransientSendError(
            f"could not write the outbox '{directory}': {_os_error(exc)}"
        ) from exc
    except ValueError as exc:
        raise PermanentSendError(f"cannot write the message to the outbox: {exc}") from exc


def _os_error(exc: OSError) -> str:
    # "[Errno 28] No space left on device", without the temporary file's name: the
    # folder is what the operator has to fix, and it is already in the message.
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc) or type(exc).__name__


def _file_stem(message_id: str) -> str:
    ident = message_id.strip().removeprefix("<").removesuffix(">")
    # Percent-escaping (rather than replacing with "_") keeps distinct Message-IDs
    # on distinct files, so one notice can never overwrite another's.
    stem = urllib.parse.quote(ident, safe="@+=")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]  # no hidden files, no "..": the name stays inside the folder
    if len(stem.encode()) > _MAX_STEM_BYTES:
        raise ValueError(f"Message-ID {message_id!r} is too long to name a file")
    return stem


def _has_non_ascii_address(message: EmailMessage) -> bool:
    # RFC 2047 encoded words are not allowed inside an address, so a message with
    # a non-ASCII mailbox has to be written as UTF-8 (RFC 6532) to stay readable.
    for name in _ADDRESS_HEADERS:
        for header in message.get_all(name, []):
            if isinstance(header, AddressHeader):
                if any(not address.addr_spec.isascii() for address in header.addresses):
                    return True
            elif not str(header).isascii():
                return True
    return False


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # The dot prefix and .tmp suffix keep half-written files out of "*.eml" globs.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk (POSIX);
    # other systems cannot open a directory for fsync and need not.
    if os.name != "posix":
        return
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
