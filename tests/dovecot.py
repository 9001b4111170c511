"""A throw-away Dovecot IMAP server (Debian's dovecot-imapd) for the mailbox tests: loopback, free ports,
a self-signed certificate for IMAPS and STARTTLS, users in a passwd-file, Maildir storage.

Runs as root (mail owned by uid 65534: Dovecot refuses uid 0) or as any user (everything runs as that user).
The folder is made with mkdtemp and opened to others, not pytest's tmp_path: as root, Dovecot's auth process
(user dovecot) must read the users file, and /tmp/pytest-of-root is 0700.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BINARY = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "s3cret-pass"


def available() -> bool:
    return os.path.exists(BINARY) and shutil.which("openssl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"dovecot did not open port {port}")


@dataclass
class Dovecot:
    folder: Path
    port: int  # IMAP with STARTTLS
    ssl_port: int  # IMAPS
    process: subprocess.Popen[bytes]
    owner: str  # uid:gid of the mail files, as the passwd-file gives it
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _free: list[str] = field(default_factory=list)

    def new_user(self) -> str:
        """A user with a mailbox no one else uses. Users are added to the passwd-file sixteen at a time: Dovecot
        reads the file again when it changes, but looks at most once a second, so each addition waits that out."""
        if not self._free:
            self._free = [f"user{next(self._numbers)}" for _ in range(16)]
            with (self.folder / "users").open("a") as users:
                users.writelines(_passwd_line(name, self.owner, self.folder) for name in self._free)
            time.sleep(1.1)
        return self._free.pop(0)

    @property
    def cafile(self) -> Path:
        return self.folder / "cert.pem"

    def url(self, user: str, mailbox: str = "INBOX", *, starttls: bool = False) -> str:
        if starttls:
            return f"imap://{user}:{PASSWORD}@127.0.0.1:{self.port}/{mailbox}?cafile={self.cafile}"
        return f"imaps://{user}:{PASSWORD}@127.0.0.1:{self.ssl_port}/{mailbox}?cafile={self.cafile}"

    def client(self, user: str) -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL(
            "127.0.0.1", self.ssl_port, ssl_context=ssl.create_default_context(cafile=str(self.cafile))
        )
        conn.login(user, PASSWORD)
        return conn

    def deliver(self, user: str, raw: bytes, mailbox: str = "INBOX") -> None:
        """Put a message in a user's folder, as the mail server's delivery would."""
        conn = self.client(user)
        try:
            typ, data = conn.append(mailbox, "", None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def count(self, user: str, mailbox: str) -> int:
        """Messages in a user's folder (-1 when the folder does not exist)."""
        conn = self.client(user)
        try:
            typ, data = conn.select(f'"{mailbox}"', readonly=True)
            return int(data[0] or 0) if typ == "OK" else -1
        finally:
            conn.logout()

    def stop(self) -> None:
        self.process.terminate()  # the master stops its children, then exits (1-3 s); SIGKILL leaves them
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _passwd_line(user: str, owner: str, folder: Path) -> str:
    return f"{user}:{{PLAIN}}{PASSWORD}:{owner}::{folder}/mail/{user}\n"


def start() -> Dovecot:
    """A Dovecot with no users yet: each test takes one of its own with ``new_user()``."""
    folder = Path(tempfile.mkdtemp(prefix="surveybot-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir()
    port, ssl_port = _free_port(), _free_port()
    if os.geteuid() == 0:
        internal, login, owner = "dovecot", "dovenull", "65534:65534"
    else:
        internal = login = pwd.getpwuid(os.getuid()).pw_name
        owner = ":"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"),
            *("-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    (folder / "key.pem").chmod(0o644)
    (folder / "users").write_text("")
    conf = folder / "dovecot.conf"
    conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = surveybot-test-{port}
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = 1
ssl = yes
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {folder}/users
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
service anvil {{
  chroot =
}}
""")
    if os.geteuid() == 0:
        os.chown(folder / "mail", 65534, 65534)
    process = subprocess.Popen([BINARY, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        _wait_port(ssl_port)
    except RuntimeError:
        process.kill()
        log = folder / "dovecot.log"
        raise RuntimeError(log.read_text() if log.exists() else "dovecot did not start") from None
    return Dovecot(folder, port, ssl_port, process, owner)
