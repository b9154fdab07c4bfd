"""Mail servers the tests start themselves: strongroom's SMTP journal, Dovecot, Postfix.

Each runs as a subprocess with a configuration of its own under a temporary directory, on a
free port of 127.0.0.1, and is stopped at the end; the system's daemons are never touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from strongroom.config import Settings

REPO = Path(__file__).resolve().parents[2]
STRONGROOM = [str(Path(sys.executable).parent / "strongroom")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30.0, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}\n{detail}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `strongroom` subprocess the same settings as `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM")}
    env.update({
        "STRONGROOM_NAMESPACE": settings.namespace,
        "STRONGROOM_STORAGE_URL": settings.storage.url,
        "STRONGROOM__KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "STRONGROOM__SMTP__DELIVERY_TIMEOUT_SECONDS": str(settings.smtp.delivery_timeout_seconds),
        "STRONGROOM__IMAP__BATCH_MESSAGES": str(settings.imap.batch_messages),
        "PYTHONPATH": str(REPO),
    })
    return env


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with `openssl req`; returns (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class JournalServer:
    """`strongroom serve smtp` as a subprocess; `port` once it listens; `stop()` sends SIGTERM."""

    def __init__(self, settings: Settings, workdir: Path, *extra: str, port: int = 0):
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"smtp-{time.monotonic_ns()}.log"
        self.handle = open(self.log, "w")
        self.process = subprocess.Popen([*STRONGROOM, "serve", "smtp", "--port", str(port), *extra], cwd=workdir,
                                        env=settings_env(settings), stdout=subprocess.PIPE, stderr=self.handle,
                                        text=True)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise AssertionError(f"smtp server did not start: {line}{self.log.read_text()}")
        self.port = int(line.rsplit(":", 1)[1].split()[0])

    def stop(self) -> tuple[int, str]:
        """SIGTERM; returns the exit code and what it printed (stdout and log)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=120)
        self.handle.close()
        return self.process.returncode, out + self.log.read_text()

    def __enter__(self) -> JournalServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def _world_readable_dir(prefix: str) -> Path:
    """A directory the servers' unprivileged users can enter (pytest's tmp_path is 0700 to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


class Dovecot:
    """Dovecot IMAP with users in a passwd-file and Maildirs of its own; plain IMAP on `port`,
    IMAPS on `tls_port` with a self-signed certificate (`cert`). Mail is owned by the system
    user `dovecot`'s uid, since Dovecot refuses to access mail as root."""

    def __init__(self, users: dict[str, str]):
        self.root = _world_readable_dir("sr-dovecot-")
        self.port, self.tls_port = free_port(), free_port()
        self.cert, key = self_signed_cert(self.root)
        owner = pwd.getpwnam("dovecot")
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        (self.root / "run").mkdir()
        mail = self.root / "mail"
        mail.mkdir()
        os.chown(mail, self.uid, self.gid)
        (self.root / "users").write_text("".join(
            f"{user}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{mail}/{user}\n" for user, password in users.items()))
        self.log = self.root / "dovecot.log"
        self.config = self.root / "dovecot.conf"
        self.config.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
info_log_path = {self.log}
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:~/Maildir
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{key}
ssl_dh = </usr/share/dovecot/dh.pem
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = {self.root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
        (self.root / "state").mkdir()
        self.process = subprocess.Popen(["dovecot", "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "stderr.log", "w"))
        wait_for_port(self.port, process=self.process, log=self.root / "stderr.log")
        wait_for_port(self.tls_port, process=self.process, log=self.log)

    def client(self, user: str, password: str):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        client.login(user, password)
        return client

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


_POSTFIX_SERVICES = """\
{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A Postfix of its own (`postfix -c DIR start-fg`): accepts mail from 127.0.0.1 on `port` and
    relays all of it to `relay_port` (the journal), adding `always_bcc` as one more recipient."""

    def __init__(self, relay_port: int, always_bcc: str):
        self.root = _world_readable_dir("sr-postfix-")
        self.port = free_port()
        self.config = self.root / "etc"
        self.config.mkdir()
        self.log = self.root / "postfix.log"
        (self.config / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {self.root}/queue
data_directory = {self.root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.strongroom.test
mydomain = strongroom.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
always_bcc = {always_bcc}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {self.log}
maillog_file_prefixes = {self.root}
""")
        (self.config / "master.cf").write_text(_POSTFIX_SERVICES.format(port=f"127.0.0.1:{self.port}"))
        # The queue's top belongs to root, the data directory to mail_owner; `start-fg` makes the rest.
        (self.root / "queue").mkdir(mode=0o755)
        (self.root / "data").mkdir(mode=0o700)
        owner = pwd.getpwnam("postfix")
        os.chown(self.root / "data", owner.pw_uid, owner.pw_gid)
        self.process = subprocess.Popen(["postfix", "-c", str(self.config), "start-fg"], stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "stderr.log", "w"))
        wait_for_port(self.port, process=self.process, log=self.root / "stderr.log")

    def flush(self) -> None:
        """Retry every deferred message now (`postqueue -f`), instead of after the backoff."""
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], check=True, capture_output=True, timeout=60)

    def wait_for_log(self, text: str, seconds: float = 90.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if text in log:
                return log
            time.sleep(0.2)
        raise AssertionError(f"postfix never logged {text!r}:\n{log[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            subprocess.run(["postfix", "-c", str(self.config), "stop"], capture_output=True, timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
