"""Exchange journal reports and SMTP envelopes turned into records, without a server."""

from __future__ import annotations

import base64
import hashlib

import pytest

from producers.email.journal import is_journal_report, read_report
from producers.email.smtp import Users, capture_of
from strongroom.errors import InputError

ORIGINAL = (b"From: Ann <ann@contoso.example>\r\nTo: list@contoso.example\r\nSubject: Plan\r\n"
            b"Message-ID: <plan-1@contoso.example>\r\nDate: Mon, 16 Nov 2026 08:00:00 +0000\r\n\r\n"
            b"The plan.\r\n--not-a-boundary\r\n")


def report(body_lines: list[str], original: bytes | None = ORIGINAL, encoding: str | None = None,
           linesep: str = "\r\n", nested: bool = False) -> bytes:
    nl = linesep
    text = nl.join(body_lines) + nl
    parts = [f"Content-Type: text/plain; charset=us-ascii{nl}{nl}{text}".encode()]
    if original is not None:
        cte = f"Content-Transfer-Encoding: {encoding}{nl}" if encoding else ""
        payload = base64.encodebytes(original) if encoding == "base64" else original
        parts.append(f"Content-Type: message/rfc822{nl}{cte}{nl}".encode() + payload)
    if nested:
        inner = b"".join(b"--inner" + nl.encode() + p + nl.encode() for p in parts) + b"--inner--" + nl.encode()
        parts = [f"Content-Type: multipart/mixed; boundary=inner{nl}{nl}".encode() + inner]
    head = (f"From: journal@contoso.example{nl}To: archive@vault.example{nl}X-MS-Journal-Report: {nl}"
            f"Content-Type: multipart/mixed;{nl} boundary=\"outer\"{nl}{nl}preamble{nl}").encode()
    return head + b"".join(b"--outer" + nl.encode() + p + nl.encode() for p in parts) + b"--outer--" + nl.encode()


LINES = ["Sender: ann@contoso.example", "Subject: Plan", "Message-Id: <plan-1@contoso.example>",
         "To: bob@contoso.example, Expanded: list@contoso.example", "Cc: Carol@Contoso.example",
         "Bcc: <dave@fabrikam.example>", "Recipient: erin@fabrikam.example, Forwarded: frank@contoso.example"]


@pytest.mark.parametrize("encoding, linesep, nested", [
    (None, "\r\n", False), ("base64", "\r\n", False), ("8bit", "\n", False), (None, "\r\n", True)])
def test_report_yields_the_original_bytes_and_recipients(encoding, linesep, nested):
    """The original comes out byte for byte (base64 undone, either line ending, nested once); the
    report's lines give the sender and each recipient with its role."""
    original = ORIGINAL.replace(b"\r\n", linesep.encode())
    raw = report(LINES, original, encoding, linesep, nested)
    assert is_journal_report(raw)
    found = read_report(raw)
    assert found.original == original
    assert found.sender == "ann@contoso.example"
    assert found.recipients == [("to", "bob@contoso.example"), ("cc", "carol@contoso.example"),
                                ("bcc", "dave@fabrikam.example"), ("envelope", "erin@fabrikam.example")]


def test_journal_capture_is_the_original_with_the_report_kept():
    """The record is the original's (same message_uid as a plain copy), with envelope and bcc
    recipients from the report, flag journal-report and the report as an attachment blob."""
    raw = report(LINES)
    capture = capture_of(raw, "journal@contoso.example", ["archive@vault.example"], "smtp://127.0.0.1:2525")
    plain = capture_of(ORIGINAL, "ann@contoso.example", ["list@contoso.example"], "smtp://127.0.0.1:2525")
    rec = capture.record
    assert capture.raw == ORIGINAL and rec["raw_sha256"] == hashlib.sha256(ORIGINAL).hexdigest()
    assert rec["message_uid"] == plain.record["message_uid"]
    assert rec["envelope_sender"] == "ann@contoso.example" and "journal-report" in rec["flags"]
    roles = [(r["role"], r["address"]) for r in rec["recipients"]]
    assert ("bcc", "dave@fabrikam.example") in roles
    assert [a for role, a in roles if role == "envelope"] == [
        "bob@contoso.example", "carol@contoso.example", "dave@fabrikam.example", "erin@fabrikam.example"]
    kept = rec["attachments"][-1]
    assert kept["name"] == "journal-report.eml" and capture.blobs[kept["sha256"]] == raw
    assert {"name": "X-Strongroom-Journal-Envelope",
            "value": "MAIL FROM:<journal@contoso.example> RCPT TO:<archive@vault.example>"} in rec["headers"]


def test_report_without_original_is_kept_whole_and_flagged():
    """A report with nothing attached is not dropped: the report itself is the record, flagged."""
    raw = report(LINES, original=None)
    capture = capture_of(raw, "journal@contoso.example", ["archive@vault.example"], "smtp://h:1")
    assert capture.raw == raw
    assert capture.record["flags"][-2:] == ["journal-report", "journal-report-without-original"]


def test_plain_message_keeps_its_envelope():
    """MAIL FROM becomes envelope_sender (none for the null sender), each RCPT TO one envelope recipient."""
    capture = capture_of(ORIGINAL, "", ["Bob@contoso.example", "bob@contoso.example", "hidden@fabrikam.example"], "smtp://h:1")
    rec = capture.record
    assert rec["envelope_sender"] is None and rec["source"] == "smtp://h:1" and rec["source_position"] is None
    assert [r["address"] for r in rec["recipients"] if r["role"] == "envelope"] == [
        "bob@contoso.example", "hidden@fabrikam.example"]
    assert not is_journal_report(ORIGINAL)


def test_auth_file_plain_and_pbkdf2(tmp_path):
    """Users from an auth file: plain secrets and PBKDF2-SHA256 hashes check; a malformed line is refused."""
    digest = hashlib.pbkdf2_hmac("sha256", b"pw2", b"salt", 1000).hex()
    path = tmp_path / "users"
    path.write_text(f"# comment\nrelay:pw1\nexchange:{{PBKDF2-SHA256}}1000${b'salt'.hex()}${digest}\n")
    users = Users(path)
    assert users.check("relay", "pw1") and users.check("exchange", "pw2")
    assert not users.check("relay", "pw2") and not users.check("exchange", "pw1") and not users.check("nobody", "")
    path.write_text("no separator here\n")
    with pytest.raises(InputError, match="expected user:password"):
        Users(path)
