"""Bounce messages from files: one message per `.eml`, any number in an mbox, folders of both.

A file is an mbox when its name ends in `.mbox` (or `.mbx`), or when it is not an `.eml` and
its first line is an mbox `From ` line; anything else is one message. A folder yields its
`.eml` and mbox files, in name order (not its subfolders). Each message comes with where it
was found (`file`, or `file, message N` in an mbox), so the operator can find the one that
was not understood.
"""

from __future__ import annotations

import email
import mailbox
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO

MBOX_SUFFIXES = frozenset({".mbox", ".mbx"})
MESSAGE_SUFFIX = ".eml"


@dataclass(frozen=True, slots=True)
class Found:
    """One message read from a file, or why that file (or message) could not be read."""

    where: str
    message: Message | None
    problem: str | None = None


def messages_in(path: Path) -> Iterator[Found]:
    """The messages of a file or a folder named on the command line."""
    if path.is_dir():
        files = [c for c in sorted(path.iterdir()) if c.is_file() and _holds_mail(c)]
        if not files:
            # Said, not passed over: a Maildir's cur/ or a folder of .txt files reads as nothing.
            yield Found(str(path), None, "no .eml or mbox files in this folder")
        for child in files:
            yield from _messages_of_file(child)
        return
    yield from _messages_of_file(path)


def messages_from_stream(stream: BinaryIO, *, where: str = "<stdin>") -> Iterator[Found]:
    """One message, or an mbox, from a stream (standard input)."""
    data = stream.read()
    if not data.startswith(b"From "):
        yield Found(where, email.message_from_bytes(data))
        return
    # The stdlib reads an mbox from a file only: spool it, read it, remove it.
    handle, spooled = tempfile.mkstemp(suffix=".mbox")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        yield from _mbox_messages(Path(spooled), where)
    finally:
        os.unlink(spooled)


def _holds_mail(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == MESSAGE_SUFFIX or suffix in MBOX_SUFFIXES:
        return True
    return not path.name.startswith(".") and _starts_like_mbox(path)


def _messages_of_file(path: Path) -> Iterator[Found]:
    where = str(path)
    try:
        suffix = path.suffix.lower()
        is_mbox = suffix in MBOX_SUFFIXES or (suffix != MESSAGE_SUFFIX and _starts_like_mbox(path))
        if not is_mbox:
            yield Found(where, email.message_from_bytes(path.read_bytes()))
            return
    except OSError as exc:
        yield Found(where, None, f"cannot read it: {exc.strerror or exc}")
        return
    yield from _mbox_messages(path, where)


def _mbox_messages(path: Path, where: str) -> Iterator[Found]:
    try:
        box = mailbox.mbox(path, factory=None, create=False)
        keys = box.keys()
    except (OSError, mailbox.Error) as exc:
        yield Found(where, None, f"cannot read it as an mbox: {exc}")
        return
    try:
        for number, key in enumerate(keys, start=1):
            place = f"{where}, message {number}"
            try:
                data = box.get_bytes(key)
            except (OSError, mailbox.Error) as exc:
                yield Found(place, None, f"cannot read it: {exc}")
                continue
            yield Found(place, email.message_from_bytes(data))
    finally:
        box.close()


def _starts_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(5) == b"From "
    except OSError:
        return False
