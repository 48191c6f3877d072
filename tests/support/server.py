"""`notifier serve` as a real child process on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

from notifier.settings import Settings
from support.project import ROOT, env_for
from support.waiting import wait_until

_LISTENING = "notifier serve listening on "


class ServeProcess:
    """Starts `python -m notifier serve --port 0`, learns its URL from stderr, stops it."""

    def __init__(
        self,
        settings: Settings,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = [sys.executable, "-m", "notifier", "serve", "--port", "0", *args]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
        self.env = {**clean, **env_for(settings), "PYTHONPATH": str(ROOT), **(env or {})}
        self.cwd = cwd
        self.lines: list[str] = []
        self.url = ""
        self._listening = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self._drainer: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> ServeProcess:
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        proc = self.proc
        wait_until(lambda: self._listening.is_set() or proc.poll() is not None, timeout=timeout)
        if not self._listening.is_set():
            raise RuntimeError("notifier serve did not start:\n" + self.output)
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith(_LISTENING):
                self.url = line[len(_LISTENING) :].strip()
                self._listening.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs; release its pipe."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self._drainer is not None:
            self._drainer.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
