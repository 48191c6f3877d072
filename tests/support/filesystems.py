"""Folders the file system really refuses to write: read-only, full.

Tests run as root in CI, and root ignores permission bits, so ``chmod 0555`` alone
is not a read-only folder there. Each helper tries the real mechanisms in turn (a
read-only bind mount, the immutable attribute, a small tmpfs), checks that a write
is really refused, and undoes whatever it did on the way out, even when the test
fails. When nothing works it yields None: the caller then injects the OS error
itself, and says so.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Refusal:
    """How the folder was made to refuse writes, and the OS error a write gets."""

    mechanism: str
    code: int

    @property
    def error_text(self) -> str:
        """The error as notifier reports it: ``[Errno 30] Read-only file system``."""
        return f"[Errno {self.code}] {os.strerror(self.code)}"


def _run(*command: str) -> bool:
    if shutil.which(command[0]) is None:
        return False
    result = subprocess.run(command, capture_output=True, check=False, timeout=30)
    return result.returncode == 0


def _write_refused(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return True
    probe.unlink()
    return False


def _unmount(folder: Path) -> None:
    # A lazy unmount as the fallback: a test that failed may still hold a file open.
    if not _run("umount", str(folder)):
        _run("umount", "-l", str(folder))


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Refusal | None]:
    """Make the existing ``folder`` refuse every write for the block, then writable again."""
    if _run("mount", "--bind", str(folder), str(folder)):
        try:
            if _run("mount", "-o", "remount,ro,bind", str(folder)) and _write_refused(folder):
                yield Refusal("read-only bind mount", errno.EROFS)
                return
        finally:
            _unmount(folder)
    if _run("chattr", "+i", str(folder)):
        try:
            if _write_refused(folder):
                yield Refusal("immutable attribute (chattr +i)", errno.EPERM)
                return
        finally:
            _run("chattr", "-i", str(folder))
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            if _write_refused(folder):
                yield Refusal("chmod 0555", errno.EACCES)
                return
        finally:
            folder.chmod(mode)
    yield None


@contextmanager
def full_folder(folder: Path, *, size: str = "256k") -> Iterator[Refusal | None]:
    """Mount a small tmpfs on the existing ``folder`` and fill it to the last byte."""
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        yield None
        return
    try:
        _fill(folder / ".filler")
        yield Refusal(f"tmpfs of {size}, filled", errno.ENOSPC)
    finally:
        _unmount(folder)


def _fill(path: Path) -> None:
    block = b"\0" * 4096
    with path.open("wb", buffering=0) as filler:
        try:
            while True:
                filler.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    # What a 4 KiB block could not take, single bytes might: take those too.
    with path.open("ab", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0")
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
