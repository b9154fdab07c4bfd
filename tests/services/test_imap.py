"""`strongroom ingest imap` against a real Dovecot started by the test, on the real services."""

from __future__ import annotations

import json
import subprocess

import pytest

from consumers.archiver import ParquetArchiver
from consumers.query import run_query
from consumers.runner import SinkRunner
from strongroom.storage import open_store
from tests.services.mailservers import STRONGROOM, Dovecot, free_port, settings_env

USERS = {"alice": "alice-secret", "bob": "bob-app-password"}


@pytest.fixture
def dovecot():
    with Dovecot(USERS) as server:
        yield server


def message(n: int, to: str = "alice@northwind.example") -> bytes:
    return (f"From: Zoe Mueller <zoe@northwind.example>\r\nTo: {to}\r\nSubject: Status {n}\r\n"
            f"Date: Wed, 18 Nov 2026 10:{n:02d}:00 +0000\r\nMessage-ID: <imap-{n}@northwind.example>\r\n\r\n"
            f"Status report number {n}.\r\n").encode()


def pull(settings, dovecot: Dovecot, user: str, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = settings_env(settings) | {"IMAP_PASSWORD": password or USERS[user]}
    args = args or ("--plain", "--port", str(dovecot.port))
    return subprocess.run([*STRONGROOM, "ingest", "imap", "--host", "127.0.0.1", *args, "--user", user,
                           "--password-env", "IMAP_PASSWORD"], env=env, capture_output=True, text=True, timeout=300)


def counts(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    return line.split(" (")[0]


def archive(settings) -> None:
    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)


def test_first_incremental_and_uidvalidity_runs(settings, dovecot):
    """All, then nothing, then exactly the 2 new (in batches of 2, each checkpointed); a renumbered
    folder is read again without doubling; \\Seen stays unset."""
    settings = settings.model_copy(update={"imap": settings.imap.model_copy(update={"batch_messages": 2})})
    imap = dovecot.client("alice", USERS["alice"])
    imap.create_folder("Projects")
    for n in range(3):
        imap.append("INBOX", message(n))
    imap.append("Projects", message(3))

    assert counts(pull(settings, dovecot, "alice")) == "email: read 4, produced 4, duplicates 0, quarantined 0, failed 0"
    assert counts(pull(settings, dovecot, "alice")) == "email: read 0, produced 0, duplicates 0, quarantined 0, failed 0"
    imap.append("INBOX", message(4))
    imap.append("INBOX", message(5))
    assert counts(pull(settings, dovecot, "alice")) == "email: read 2, produced 2, duplicates 0, quarantined 0, failed 0"
    imap_uidvalidity = imap.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    flags = imap.get_flags(imap.search("ALL"))
    assert len(flags) == 5 and not any(b"\\Seen" in f for f in flags.values()), flags

    old = imap.folder_status("Projects", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    imap.delete_folder("Projects")
    imap.create_folder("Projects")
    imap.append("Projects", message(3))
    assert imap.folder_status("Projects", ["UIDVALIDITY"])[b"UIDVALIDITY"] != old
    imap.logout()
    result = pull(settings, dovecot, "alice", "--plain", "--port", str(dovecot.port), "--folder", "Projects")
    assert counts(result) == "email: read 1, produced 0, duplicates 1, quarantined 0, failed 0"

    store = open_store(settings.storage)
    keys = sorted(store.list(f"{settings.namespace}/checkpoints/imap/"))
    assert [k.rsplit("/", 1)[1] for k in keys] == ["INBOX.json", "Projects.json"]
    inbox = json.loads(store.get(keys[0]))
    assert inbox["last_uid"] == 5 and inbox["uidvalidity"] == imap_uidvalidity
    archive(settings)
    _, found = run_query(settings, "SELECT workspace, source, source_position FROM email ORDER BY message_id")
    assert len(found) == 6
    assert found[0] == ("alice@127.0.0.1/INBOX", f"imap://alice@127.0.0.1:{dovecot.port}/INBOX", found[0][2])
    assert found[3][0] == "alice@127.0.0.1/Projects"
    assert run_query(settings, "SELECT count(*) FROM arrivals")[1] == [(6,)]


def test_same_message_in_two_mailboxes_is_one_email_and_two_arrivals(settings, dovecot):
    """Alice and Bob both hold one message: one email row, and an arrival for each mailbox."""
    shared = message(7, to="alice@northwind.example, bob@northwind.example")
    for user in ("alice", "bob"):
        imap = dovecot.client(user, USERS[user])
        imap.append("INBOX", shared)
        imap.logout()
    assert counts(pull(settings, dovecot, "alice")) == "email: read 1, produced 1, duplicates 0, quarantined 0, failed 0"
    assert counts(pull(settings, dovecot, "bob")) == "email: read 1, produced 1, duplicates 0, arrivals 1, quarantined 0, failed 0"
    archive(settings)
    assert run_query(settings, "SELECT count(*) FROM email")[1] == [(1,)]
    _, mailboxes = run_query(settings, "SELECT mailbox, repeated FROM arrivals ORDER BY mailbox")
    assert mailboxes == [("alice@127.0.0.1/INBOX", False), ("bob@127.0.0.1/INBOX", True)]


def test_tls_starttls_and_refusals(settings, dovecot):
    """Implicit TLS and STARTTLS verify the server against --ca-file; an unknown certificate, a wrong
    password, a missing folder or Kafka down each end in one line and a non-zero exit, with
    nothing captured and no checkpoint moved."""
    imap = dovecot.client("alice", USERS["alice"])
    imap.append("INBOX", message(8))
    imap.logout()

    untrusted = pull(settings, dovecot, "alice", "--tls", "--port", str(dovecot.tls_port))
    assert untrusted.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    assert len(untrusted.stderr.strip().splitlines()) == 1
    refused = pull(settings, dovecot, "alice", "--plain", "--port", str(dovecot.port), password="wrong")
    assert refused.returncode == 2 and "login as alice" in refused.stderr, refused.stderr
    missing = pull(settings, dovecot, "alice", "--plain", "--port", str(dovecot.port), "--folder", "Nope")
    assert missing.returncode == 2 and "'Nope'" in missing.stderr, missing.stderr
    down = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})})
    no_kafka = pull(down, dovecot, "alice")
    assert no_kafka.returncode == 3 and "cannot reach Kafka" in no_kafka.stderr, no_kafka.stderr
    assert list(open_store(settings.storage).list(f"{settings.namespace}/checkpoints/")) == []

    tls = pull(settings, dovecot, "alice", "--tls", "--port", str(dovecot.tls_port), "--ca-file", str(dovecot.cert))
    assert counts(tls) == "email: read 1, produced 1, duplicates 0, quarantined 0, failed 0"
    starttls = pull(settings, dovecot, "alice", "--starttls", "--port", str(dovecot.port), "--ca-file", str(dovecot.cert))
    assert counts(starttls) == "email: read 0, produced 0, duplicates 0, quarantined 0, failed 0"
