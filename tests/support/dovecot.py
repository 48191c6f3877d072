"""A real IMAP server for a test: Debian's dovecot, started in the foreground on 127.0.0.1 and
a free port, implicit TLS with a certificate the test makes, one user whose maildir lives in
a temporary folder. Messages go in through IMAP APPEND, as a mail server would deliver them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from imap_tools import MailBox

from support.certificates import self_signed
from support.waiting import wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "b0unce-s3cret"


def unavailable_reason() -> str | None:
    """Why no dovecot can be started here, or None."""
    if not os.access(DOVECOT, os.X_OK):
        return "dovecot is not installed (Debian: apt-get install dovecot-imapd)"
    if os.geteuid() == 0:
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"dovecot runs as root here but its system user {user!r} does not exist"
    return None


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid around the (possibly faked) clock."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, common_name="127.0.0.1", ends=timedelta(days=7), ip="127.0.0.1")
    cert_file, key_file = folder / "imap-cert.pem", folder / "imap-key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Dovecot:
    """`with Dovecot(tmp_path) as imap:` a started server; `imap.ca_file` is its certificate."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.ca_file, self._key_file = _certificate(folder)
        self._proc: subprocess.Popen[bytes] | None = None
        # Root may not own a mailbox (dovecot refuses uid 0): the mail then belongs to the
        # dovecot user, in a folder that user can reach (a test's tmp_path is root's alone).
        self._mail_owner = pwd.getpwnam("dovecot") if os.geteuid() == 0 else None
        self.mail_dir = Path(tempfile.mkdtemp(prefix="notifier-imap-"))
        self._run_dir: Path | None = None
        if self._mail_owner is not None:
            os.chown(self.mail_dir, self._mail_owner.pw_uid, self._mail_owner.pw_gid)

    def _config(self) -> Path:
        # Its sockets live here: a unix socket's path may be 107 bytes at most, which a
        # test's tmp_path under a parallel run's base folder can already pass.
        run = self._run_dir = Path(tempfile.mkdtemp(prefix="notifier-dovecot-"))
        (self.folder / "dovecot-state").mkdir()
        # Beside the mail, where dovecot's auth process (its own user, under root) can read it.
        passwd = self.mail_dir / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        if self._mail_owner is not None:
            os.chown(passwd, self._mail_owner.pw_uid, self._mail_owner.pw_gid)
        if self._mail_owner is not None:
            internal, login = "dovecot", "dovenull"
            uid, gid = self._mail_owner.pw_uid, self._mail_owner.pw_gid
        else:
            internal = login = pwd.getpwuid(os.getuid()).pw_name
            uid, gid = os.getuid(), os.getgid()
        config = self.folder / "dovecot.conf"
        config.write_text(
            f"""\
base_dir = {run}
state_dir = {self.folder / "dovecot-state"}
log_path = {self.folder / "dovecot.log"}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.ca_file}
ssl_key = <{self._key_file}
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_dir}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
        )
        return config

    def start(self, timeout: float = 20.0) -> Dovecot:
        config = self._config()
        # A faked clock (make test-clock) is the test's, not the server's.
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                return True
            with socket.socket() as probe:
                return probe.connect_ex((self.host, self.port)) == 0

        wait_until(listening, timeout=timeout, interval=0.05)
        if self._proc.poll() is not None:
            raise RuntimeError(f"dovecot did not start: {self.log()}")
        return self

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if self._proc is not None and self._proc.poll() is not None and self._proc.stderr:
            text += self._proc.stderr.read().decode(errors="replace")
        return text

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        shutil.rmtree(self.mail_dir, ignore_errors=True)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self) -> MailBox:
        """A logged-in IMAP client (implicit TLS, trusting only this server's certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return MailBox(self.host, self.port, ssl_context=context, timeout=10).login(USER, PASSWORD)

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        with self.client() as box:
            for message in messages:
                box.append(message, folder)

    def uids(self, folder: str) -> list[str]:
        """The messages in `folder` ([] when it does not exist)."""
        with self.client() as box:
            if not box.folder.exists(folder):
                return []
            box.folder.set(folder)
            return box.uids()

    def subjects(self, folder: str) -> list[str]:
        with self.client() as box:
            box.folder.set(folder)
            return [m.subject for m in box.fetch(mark_seen=False)]
