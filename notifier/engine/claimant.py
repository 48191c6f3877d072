"""Who holds a claim: claim tokens name the claiming process, so a crash costs no lease wait.

A claimed notice is `sending` under its claimer's token until its lease runs out. When a
worker dies (kill -9, OOM, power), waiting out the lease (5 minutes by default) would hold
up every notice it had claimed. So the token says who claimed: a machine id, the process
id and the process's start time. A claimer on the *same* machine can see whether that
process still runs, and takes a dead one's notices over at once; a holder on another
machine cannot be checked, so its notices wait for the lease, as before.

"Same machine" must be certain, or a live worker's notices would be taken and sent twice:
the machine id hashes the host name, the kernel's boot id (a reboot kills every process)
and the PID namespace (containers on one kernel cannot see each other's processes). The
start time guards against a dead process's pid being reused by a new one.

Token: ``<machine 12 hex>.<pid>.<start ticks>.<nonce 8 hex>`` (at most ~45 characters).
Any token that does not parse (older versions' random tokens) is never taken over early.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Claimant:
    """One claiming process: where it runs, which process it is, and a per-engine nonce."""

    machine: str
    pid: int
    started: str  # process start time in clock ticks after boot; "" where /proc is missing
    nonce: str

    @property
    def token(self) -> str:
        return f"{self.machine}.{self.pid}.{self.started}.{self.nonce}"

    @classmethod
    def parse(cls, token: str) -> Claimant | None:
        parts = token.split(".")
        if len(parts) != 4 or not parts[1].isdigit() or len(parts[0]) != 12:
            return None
        return cls(machine=parts[0], pid=int(parts[1]), started=parts[2], nonce=parts[3])


def this_process() -> Claimant:
    """A fresh claimant for this process (a new nonce each call: one per engine)."""
    pid = os.getpid()
    return Claimant(
        machine=machine_id(), pid=pid, started=_start_ticks(pid) or "", nonce=secrets.token_hex(4)
    )


@cache
def machine_id() -> str:
    parts = [socket.gethostname(), _read(_PROC / "sys/kernel/random/boot_id")]
    try:
        parts.append(str(os.stat(_PROC / "self/ns/pid").st_ino))
    except OSError:
        parts.append("")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=6).hexdigest()


def holder_is_gone(token: str, *, me: Claimant | None = None) -> bool:
    """True only when certain that the process holding this token no longer runs."""
    holder = Claimant.parse(token)
    if holder is None or holder.machine != machine_id():
        return False  # another machine (or an old token): only its lease can tell
    if me is not None and holder.pid == me.pid:
        # This very process: its other engines are alive; an earlier process with our pid
        # (reused) is dead when its start time differs.
        return bool(holder.started) and holder.started != me.started
    return not _running(holder.pid, holder.started)


def _running(pid: int, started: str) -> bool:
    stat = _read(_PROC / str(pid) / "stat")
    if stat:
        # Fields after the command name (which may hold spaces and parentheses).
        fields = stat.rpartition(")")[2].split()
        state, ticks = fields[0], fields[19]
        if state in ("Z", "X"):  # a zombie has exited; only its exit status remains
            return False
        return not started or ticks == started
    # No /proc entry: no /proc at all (macOS, BSD), or hidden (hidepid) for another user's
    # process. Ask the kernel; without a start time a reused pid looks alive, which only
    # means waiting for the lease.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_ticks(pid: int) -> str | None:
    stat = _read(_PROC / str(pid) / "stat")
    if not stat:
        return None
    return stat.rpartition(")")[2].split()[19]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
