"""SMTP journaling on the real services: `strongroom serve smtp` as a subprocess, mail sent with
smtplib and Debian's swaks (and relayed by a real Postfix), then archived and queried."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from consumers.archiver import ParquetArchiver
from consumers.query import run_query
from consumers.runner import SinkRunner
from strongroom.blobs import BlobStore
from strongroom.storage import open_store
from tests.conftest import consume
from tests.services.mailservers import JournalServer, Postfix, free_port, self_signed_cert

FROM = "zoe.mueller@northwind.example"
TO, CC, BCC = "ops@northwind.example", "audit@northwind.example", "compliance-shadow@northwind.example"


def message(n: int, subject: str = "Quarterly figures") -> bytes:
    """A message as a sender would submit it: CRLF lines, one starting with a dot (SMTP stuffs it)."""
    return (f"From: Zoe Mueller <{FROM}>\r\nTo: {TO}\r\nCc: {CC}\r\nSubject: {subject} {n}\r\n"
            f"Date: Tue, 17 Nov 2026 09:{n:02d}:00 +0100\r\nMessage-ID: <journal-{n}@northwind.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Figures for Q{n}, see attached.\r\n.a line that starts with a dot\r\n").encode()


def send(port: int, raw: bytes, sender: str, recipients: list[str]) -> tuple[int, bytes]:
    """One SMTP transaction; returns the server's answer to the message data."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("client.test")
        assert client.mail(sender)[0] == 250
        for rcpt in recipients:
            assert client.rcpt(rcpt)[0] == 250
        return client.data(raw)


def archive(settings) -> int:
    sink = ParquetArchiver(settings)
    SinkRunner(settings, sink, settings.group("archiver")).run(until_idle=True)
    return sink.rows_written


def rows(settings, sql: str) -> list[tuple]:
    return run_query(settings, sql)[1]


def test_envelope_keeps_bcc_from_smtplib_and_swaks(settings, tmp_path):
    """A BCC-only recipient (RCPT TO only) ends up an envelope recipient of the archived row, from
    smtplib and from swaks; the raw blob is the data as sent; SIGTERM ends the server with 0."""
    first, second = message(1), message(2)
    with JournalServer(settings, tmp_path / "smtp") as server:
        code, answer = send(server.port, first, FROM, [TO, CC, BCC])
        assert code == 250 and b"archived" in answer
        (tmp_path / "second.eml").write_bytes(second)
        swaks = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(server.port), "--from", FROM,
                                "--to", f"{TO},{BCC}", "--data", f"@{tmp_path / 'second.eml'}", "--helo", "swaks.test"],
                               capture_output=True, text=True, timeout=120)
        assert swaks.returncode == 0, swaks.stdout + swaks.stderr
        assert "250 2.0.0 Captured" in swaks.stdout
        exit_code, output = server.stop()
    assert exit_code == 0 and "email: read 2, produced 2, duplicates 0" in output, output

    assert archive(settings) == 2
    found = rows(settings, """SELECT message_id, envelope_sender, source, source_position,
        [r.address FOR r IN recipients IF r.role = 'envelope'], [r.address FOR r IN recipients IF r.role = 'bcc'],
        raw_sha256 FROM email ORDER BY message_id""")
    assert [(r[0], r[1], r[3], sorted(r[4]), r[5]) for r in found] == [
        ("journal-1@northwind.example", FROM, None, sorted([TO, CC, BCC]), []),
        ("journal-2@northwind.example", FROM, None, sorted([TO, BCC]), [])]
    assert all(r[2] == f"smtp://127.0.0.1:{server.port}" for r in found)
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    assert blobs.get(found[0][6]) == first
    # swaks ends the data with CRLF "." CRLF even after a final CRLF: that empty line was sent.
    assert blobs.get(found[1][6]) == second + b"\r\n"


def journal_report(original: bytes, recipients: dict[str, list[str]], boundary: str = "JOURNAL-REPORT-1") -> bytes:
    """An Exchange-style journal report: a text part listing the envelope, the original attached."""
    lines = [f"Sender: {FROM}", "Subject: Quarterly figures 7", "Message-Id: <journal-7@northwind.example>"]
    lines += [f"{role}: {address}" for role, addresses in recipients.items() for address in addresses]
    return (f"From: Microsoft Exchange Journaling <journaling@northwind.example>\r\nTo: archive@journal.example\r\n"
            f"Subject: Quarterly figures 7\r\nX-MS-Journal-Report:\r\nMessage-ID: <report-7@northwind.example>\r\n"
            f"Date: Tue, 17 Nov 2026 09:08:00 +0100\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + "\r\n".join(lines) + "\r\n"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").encode() + original + (
            f"\r\n--{boundary}--\r\n").encode()


def test_exchange_journal_report_records_the_original_with_its_recipients(settings, tmp_path):
    """A journal report becomes the original's record: its own bytes as raw, the report's To/Cc/Bcc
    as envelope recipients (Bcc also as bcc), flag journal-report, the report kept as an attachment."""
    original = message(7)
    report = journal_report(original, {"To": [TO], "Cc": [CC], "Bcc": [BCC, "Legal@Northwind.example"]})
    with JournalServer(settings, tmp_path / "smtp") as server:
        code, answer = send(server.port, report, "journaling@northwind.example", ["archive@journal.example"])
        assert code == 250, answer
        assert server.stop()[0] == 0
    assert archive(settings) == 1
    (uid, message_id, raw_sha, envelope_sender, envelope, bcc, flags, attachments), = rows(settings, """
        SELECT message_uid, message_id, raw_sha256, envelope_sender,
               [r.address FOR r IN recipients IF r.role = 'envelope'], [r.address FOR r IN recipients IF r.role = 'bcc'],
               flags, attachments FROM email""")
    assert message_id == "journal-7@northwind.example" and envelope_sender == FROM
    assert raw_sha == hashlib.sha256(original).hexdigest()
    assert sorted(envelope) == sorted([TO, CC, BCC, "legal@northwind.example"])
    assert sorted(bcc) == sorted([BCC, "legal@northwind.example"])
    assert "journal-report" in flags
    kept = [a for a in attachments if a["name"] == "journal-report.eml"]
    assert len(kept) == 1 and kept[0]["sha256"] == hashlib.sha256(report).hexdigest()
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    assert blobs.get(raw_sha) == original and blobs.get(kept[0]["sha256"]) == report

    # The same original sent plainly later (say, the sender's own copy) is the same message.
    with JournalServer(settings, tmp_path / "smtp") as server:
        assert send(server.port, original, FROM, [TO])[0] == 250
        assert server.stop()[0] == 0
    archive(settings)
    assert rows(settings, "SELECT count(*) FROM email") == [(1,)]
    assert rows(settings, "SELECT count(*), count(DISTINCT message_uid) FROM arrivals") == [(2, 1)]
    assert rows(settings, "SELECT message_uid FROM arrivals")[0][0] == uid


def test_broker_down_answers_451_and_the_retry_is_captured_once(settings, tmp_path):
    """With Kafka unreachable the server answers 4xx (the sender keeps the message), also to a
    message in progress when SIGTERM comes; sent again to a server with the real broker, the
    message is captured, and only once."""
    raw = message(9)
    down = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}),
        "smtp": settings.smtp.model_copy(update={"delivery_timeout_seconds": 3.0})})
    with JournalServer(down, tmp_path / "down") as server:
        code, answer = send(server.port, raw, FROM, [TO, BCC])
        assert 400 <= code < 500 and answer.startswith(b"4.3.0"), (code, answer)
        # SIGTERM while a message waits for Kafka: it is still answered (4xx), and the exit is clean.
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(send, server.port, message(10), FROM, [TO])
            time.sleep(1.0)
            exit_code, output = server.stop()
            code, answer = pending.result()
        assert 400 <= code < 500, (code, answer)
    assert exit_code == 0, output

    with JournalServer(settings, tmp_path / "up") as server:
        code, answer = send(server.port, raw, FROM, [TO, BCC])
        assert code == 250 and b"archived" in answer
        code, answer = send(server.port, raw, FROM, [TO, BCC])  # a sender's retry after a lost answer
        assert code == 250 and b"duplicate" in answer
        assert server.stop()[0] == 0
    assert len(consume(settings, settings.topic("email"), "count", 2, seconds=10)) == 1
    assert archive(settings) == 1
    assert rows(settings, "SELECT message_id FROM email") == [("journal-9@northwind.example",)]


def test_postfix_relay_with_always_bcc_survives_a_broker_outage(settings, tmp_path):
    """A real Postfix relays everything to the journal and adds always_bcc: while Kafka is down the
    journal answers 451 and Postfix keeps the message queued; once the journal is back on the real
    broker the queued message is delivered and captured once, BCC and always_bcc in its envelope."""
    port = free_port()
    down = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}),
        "smtp": settings.smtp.model_copy(update={"delivery_timeout_seconds": 3.0})})
    raw = message(11)
    with Postfix(relay_port=port, always_bcc="journal@archive.test") as postfix:
        with JournalServer(down, tmp_path / "down", port=port) as server:
            with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as client:
                assert client.sendmail(FROM, [TO, CC, BCC], raw) == {}
            postfix.wait_for_log("451 4.3.0")
            log = postfix.wait_for_log("status=deferred")
            assert "status=sent" not in log
            assert server.stop()[0] == 0
        with JournalServer(settings, tmp_path / "up", port=port) as server:
            postfix.flush()
            postfix.wait_for_log("status=sent")
            exit_code, output = server.stop()
    assert exit_code == 0 and "email: read 1, produced 1" in output, output
    assert archive(settings) == 1
    (message_id, sender, envelope, raw_sha), = rows(settings, """SELECT message_id, envelope_sender,
        [r.address FOR r IN recipients IF r.role = 'envelope'], raw_sha256 FROM email""")
    assert (message_id, sender) == ("journal-11@northwind.example", FROM)
    assert sorted(envelope) == sorted([TO, CC, BCC, "journal@archive.test"])
    relayed = BlobStore(open_store(settings.storage), settings.namespace).get(raw_sha)
    assert relayed.startswith(b"Received: from ") and relayed.endswith(raw.split(b"\r\n\r\n", 1)[1])


def test_starttls_auth_and_concurrent_sessions(settings, tmp_path):
    """With --tls-cert/--auth-file the journal takes mail only after STARTTLS and AUTH (PLAIN and
    LOGIN, plain and PBKDF2 secrets); a 3 MB line is taken, not bounced; a dozen sessions
    delivering at once are each answered 250."""
    cert, key = self_signed_cert(tmp_path)
    salt = b"strongroom-test-salt"
    hashed = hashlib.pbkdf2_hmac("sha256", b"exchange-pw", salt, 10_000).hex()
    users = tmp_path / "users"
    users.write_text(f"# journal senders\npostfix:relay-pw\nexchange:{{PBKDF2-SHA256}}10000${salt.hex()}${hashed}\n")
    tls = ssl.create_default_context(cafile=str(cert))
    with JournalServer(settings, tmp_path / "smtp", "--tls-cert", str(cert), "--tls-key", str(key),
                       "--auth-file", str(users)) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
            client.ehlo("client.test")
            assert client.mail(FROM)[0] == 530  # no AUTH yet
            client.starttls(context=tls)
            client.ehlo("client.test")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("postfix", "wrong")
            client.login("exchange", "exchange-pw")
            assert client.sendmail(FROM, [TO, BCC], message(20)) == {}
            # base64 without folds, as some mailers send it: one 3 MB line
            unfolded = message(22).replace(b"see attached.", b"x" * 3_000_000)
            assert client.sendmail(FROM, [TO], unfolded) == {}
        with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
            client.starttls(context=tls)
            client.ehlo("client.test")
            client.user, client.password = "postfix", "relay-pw"
            assert client.auth("LOGIN", client.auth_login)[0] == 235
            assert client.sendmail(FROM, [TO], message(21)) == {}

        def deliver(n: int) -> int:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=120) as client:
                client.starttls(context=tls)
                client.login("postfix", "relay-pw")
                client.ehlo("client.test")
                client.mail(FROM)
                client.rcpt(TO)
                return client.data(message(n))[0]

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(deliver, range(30, 42))) == [250] * 12
        exit_code, output = server.stop()
    assert exit_code == 0 and "email: read 15, produced 15, duplicates 0" in output, output
    assert archive(settings) == 15
