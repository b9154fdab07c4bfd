"""`strongroom export` on the real services, local storage and S3: originals byte for byte, mbox, production.

One corpus is ingested and archived once per storage (module fixture `archived`): mail with mixed
CRLF/LF, 8-bit bytes, trailing whitespace, "From " lines in bodies, no final newline, an attachment,
a message that cannot be parsed (quarantined), and a chat export with edits, a deletion and a
reaction. Expected hashes are computed from the input files, never from the records.
"""

from __future__ import annotations

import csv
import hashlib
import json
import mailbox
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from consumers.export import export, select
from consumers import mboxrd
from producers.chat.jsonl import ChatJsonlSource
from producers.email import captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.config import load_settings
from strongroom.errors import InputError, IntegrityError
from strongroom.storage import open_store
from tests.services.test_pipeline import PDF, archive

STRONGROOM = Path(sys.executable).with_name("strongroom")

MAIL = {
    "a-crlf-mixed.eml": (
        b"From: =?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@northwind.example>\r\n"
        b"To: Ops <ops@northwind.example>, jose@contoso.example\r\n"
        b"Cc: audit@northwind.example\r\n"
        b"Subject: mixed line endings \t \r\n"
        b"Date: Mon, 02 Nov 2026 08:00:00 +0100\r\n"
        b"Message-ID: <mixed-1@northwind.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"Gr\xfc\xdfe aus K\xf6ln   \r\n"
        b"From the desk of the CFO\n"
        b">From a quoted line\r\n"
        b">>From twice quoted \n"
        b"trailing tab\t\n\n\n"
        b"no final newline"),
    "b-attachment.eml": (
        b"From: Amelie Dubois <amelie@northwind.example>\n"
        b"To: zoe@northwind.example\n"
        b"Bcc: legal@northwind.example\n"
        b"Subject: =?utf-8?b?UmFwcG9ydCDigJQgR3LDvMOfZQ==?=\n"
        b"Date: Tue, 03 Nov 2026 09:30:00 +0000\n"
        b"Message-ID: <attach-1@northwind.example>\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=\"XX\"\n\n"
        b"--XX\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n\n"
        b"Voil\xc3\xa0 le rapport.  \n"
        b"From here on it is figures.\n\n"
        b"--XX\n"
        b"Content-Type: application/pdf; name=\"Bericht.pdf\"\n"
        b"Content-Disposition: attachment; filename=\"Bericht.pdf\"\n"
        b"Content-Transfer-Encoding: base64\n\n"
        + __import__("base64").encodebytes(PDF) +
        b"--XX--\n  \n\n"),
    "c-broken.eml": b"\x00\x01\x02 this is not a mail message \xff\xfe\r\n\n\x89PNG garbage\nFrom nowhere\n",
}
CHAT_LINES = [
    b'{"platform": "teams", "workspace": "contoso", "channel": "19:fin", "channel_name": "Finance", "message_id": "m1", '
    b'"sent_at": "2026-11-04T09:00:00Z", "sender": {"id": "u-ana", "name": "Ana Lima", "email": "ana@contoso.example"}, '
    b'"text": "Numbers attached, please check."}',
    b'{"platform": "teams", "workspace": "contoso", "channel": "19:fin", "message_id": "m2", "thread_id": "m1", '
    b'"sent_at": "2026-11-04T09:01:00Z", "sender": {"id": "u-ben", "name": "Ben Okafor"}, "text": "Checked \xf0\x9f\x91\x8d"}',
    b'{"platform": "teams", "workspace": "contoso", "channel": "19:fin", "message_id": "m1", "event_type": "edited", '
    b'"version": 2, "sent_at": "2026-11-04T09:00:00Z", "edited_at": "2026-11-04T09:05:00Z", "sender": {"id": "u-ana"}, '
    b'"text": "Numbers attached, please check by noon."}',
    b'{"platform": "teams", "workspace": "contoso", "channel": "19:fin", "message_id": "m2", "event_type": "deleted", '
    b'"version": 2, "sent_at": "2026-11-04T09:01:00Z", "sender": {"id": "u-ben"}}',
    b'{"platform": "teams", "workspace": "contoso", "channel": "19:fin", "message_id": "m1", "event_type": "reaction", '
    b'"version": 3, "sent_at": "2026-11-04T09:00:00Z", "sender": {"id": "u-ben"}, "text": "+1"}  ',
]
COPY = b"Received: from journal.northwind.example by archive; Mon, 02 Nov 2026 08:00:05 +0100\r\n" + MAIL["a-crlf-mixed.eml"]
EMAILS = len(MAIL)
CHAT_EVENTS = len(CHAT_LINES)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=["local", "s3"])
def archived(request, tmp_path_factory, services):
    """The corpus ingested and archived once per storage; maps of input hashes by message."""
    base = tmp_path_factory.mktemp(f"export-{request.param}")
    namespace = "t" + uuid.uuid4().hex[:10]
    url = str(base / "storage") if request.param == "local" else f"s3://strongroom/tests/{namespace}"
    settings = load_settings(environ={}, namespace=namespace, storage={"url": url})
    maildir = base / "mail"
    maildir.mkdir()
    for name, data in MAIL.items():
        (maildir / name).write_bytes(data)
    chat = base / "chat.jsonl"
    # Mixed line endings in the export too: the original of a line is its bytes without the ending.
    chat.write_bytes(b"".join(line + (b"\r\n" if i % 2 else b"\n") for i, line in enumerate(CHAT_LINES)))
    mail = ingest(settings, "email", captures(maildir), base / "mail.report")
    assert (mail.produced, mail.quarantined) == (EMAILS, 1)
    # The same message held elsewhere, with a trace header of its own: archived once, its copy an arrival.
    journal = base / "journal"
    journal.mkdir()
    (journal / "copy.eml").write_bytes(COPY)
    assert ingest(settings, "email", captures(journal)).arrivals == 1
    ingest(settings, "chat", iter(ChatJsonlSource(chat)), base / "chat.report")
    assert archive(settings).rows_written == EMAILS + 1 + CHAT_EVENTS
    email_by_uid = {r["message_uid"]: sha((maildir / r["position"]).read_bytes()) for r in _report(base / "mail.report")}
    uid_of = {r["position"]: r["message_uid"] for r in _report(base / "mail.report")}
    chat_by_line = {int(r["position"]): r["message_uid"] for r in _report(base / "chat.report")}
    # chat-jsonl positions are 1-based line numbers; versions follow the lines above.
    versions = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}
    chat_raws = {(chat_by_line[n], versions[n]): sha(CHAT_LINES[n - 1]) for n in chat_by_line}
    return {"settings": settings, "base": base, "email": email_by_uid, "chat": chat_raws, "uid_of": uid_of,
            "env": {**os.environ, "STRONGROOM_NAMESPACE": namespace, "STRONGROOM_STORAGE_URL": url}}


def cli(archived, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(STRONGROOM), *args], env=archived["env"], capture_output=True, text=True, timeout=300)


def sums_check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)


def test_eml_export_returns_every_original_byte_for_byte(archived, tmp_path):
    """Each exported .eml and chat original hashes to its input bytes, quarantined mail included; SHA256SUMS checks."""
    out = tmp_path / "eml"
    summary = export(archived["settings"], select(archived["settings"], query="SELECT message_uid FROM communications;"), out)
    assert (summary.messages, summary.versions) == (EMAILS + 2, EMAILS + CHAT_EVENTS)
    for uid, expected in archived["email"].items():
        assert sha((out / "originals" / f"{uid}.eml").read_bytes()) == expected
    for (uid, version), expected in archived["chat"].items():
        assert sha((out / "originals" / "chat" / f"{uid}.v{version}.raw").read_bytes()) == expected
    assert sums_check(out).returncode == 0
    manifest = json.loads((out / "export-manifest.json").read_text(encoding="utf-8"))
    assert {m["message_uid"]: m["raw_sha256"] for m in manifest["messages"] if m["kind"] == "email"} == archived["email"]
    assert [m["parse_status"] for m in manifest["messages"] if m["message_uid"] == archived["uid_of"]["c-broken.eml"]] \
        == ["quarantined"]
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed == {p.relative_to(out).as_posix(): sha(p.read_bytes()) for p in out.rglob("*")
                      if p.is_file() and p.name not in ("SHA256SUMS", "export-manifest.json")}
    assert not list(tmp_path.glob(".eml.incomplete-*"))
    (copy,) = manifest["copies"]
    assert copy["message_uid"] == archived["uid_of"]["a-crlf-mixed.eml"] and copy["arrivals"][0]["source_position"] == "copy.eml"
    assert sha((out / copy["path"]).read_bytes()) == sha(COPY) != archived["email"][copy["message_uid"]]


def test_mbox_export_recovers_each_original_exactly(archived, tmp_path):
    """The mbox holds each mail once (mailbox module agrees) and mboxrd-unescaping at the manifest offsets gives the input bytes."""
    out = tmp_path / "mbox"
    export(archived["settings"], select(archived["settings"], where="kind = 'email'"), out, "mbox")
    data = (out / "messages.mbox").read_bytes()
    assert len(mailbox.mbox(str(out / "messages.mbox"))) == EMAILS
    manifest = json.loads((out / "export-manifest.json").read_text(encoding="utf-8"))
    recovered = {m["message_uid"]: sha(mboxrd.recover(data, m["mbox_offset"], m["mbox_length"], m["mbox_appended_newline"]))
                 for m in manifest["messages"]}
    assert recovered == archived["email"]
    assert b"\n>From the desk" in data and b"\n>>From a quoted" in data and b"\n>>>From twice" in data
    assert sums_check(out).returncode == 0


def test_production_checks_with_sha256sum_and_a_csv_reader(archived, tmp_path):
    """A production via the CLI: sha256sum -c passes, one CSV row per document with the right people, tampering shows."""
    out = tmp_path / "prod"
    done = cli(archived, "export", "--query", "SELECT message_uid FROM communications", "--out", str(out),
               "--format", "production", "--docid-prefix", "ACME")
    assert done.returncode == 0, done.stderr
    assert "export (production): 5 messages (8 versions), 9 documents" in done.stdout
    checked = sums_check(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with open(out / "loadfile.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # 3 mails + 1 attachment + 5 chat events
    assert len(rows) == EMAILS + 1 + CHAT_EVENTS
    assert [r["DOCID"] for r in rows] == [f"ACME-{i:06d}" for i in range(1, len(rows) + 1)]
    by_uid = {(r["MESSAGE_UID"], r["KIND"]): r for r in rows}
    mixed = by_uid[(archived["uid_of"]["a-crlf-mixed.eml"], "email")]
    assert (mixed["CUSTODIAN"], mixed["FROM"]) == ("zoe@northwind.example", "Zoë Müller <zoe@northwind.example>")
    assert mixed["TO"] == "Ops <ops@northwind.example>; jose@contoso.example" and mixed["CC"] == "audit@northwind.example"
    with_pdf = by_uid[(archived["uid_of"]["b-attachment.eml"], "email")]
    assert with_pdf["BCC"] == "legal@northwind.example" and with_pdf["SUBJECT"] == "Rapport — Grüße"
    pdf = by_uid[(archived["uid_of"]["b-attachment.eml"], "attachment")]
    assert (pdf["PARENT_DOCID"], pdf["FILENAME"], pdf["SHA256"]) == (with_pdf["DOCID"], "Bericht.pdf", sha(PDF))
    assert (out / pdf["NATIVEPATH"]).read_bytes() == PDF
    for row in rows:  # every native is where the load file says, with the hash it says
        assert sha((out / row["NATIVEPATH"]).read_bytes()) == row["SHA256"]
        assert hashlib.md5((out / row["NATIVEPATH"]).read_bytes()).hexdigest() == row["MD5HASH"]
    assert sha((out / mixed["NATIVEPATH"]).read_bytes()) == archived["email"][mixed["MESSAGE_UID"]]
    chat = [r for r in rows if r["KIND"] == "chat"]
    assert sorted((r["EVENT"], r["CUSTODIAN"]) for r in chat) == [
        ("created", "ana@contoso.example"), ("created", "u-ben"), ("deleted", "u-ben"), ("edited", "ana@contoso.example"),
        ("reaction", "u-ben")]
    assert {r["FROM"] for r in chat if r["EVENT"] in ("created", "edited") and r["MESSAGEID"] == "m1"} == {
        "Ana Lima <ana@contoso.example>"}
    assert {r["CHANNEL"] for r in chat} == {"Finance"} and {r["CONVERSATION"] for r in chat} == {"19:fin"}
    transcript = json.loads(next((out / "transcripts").glob("Finance-*.json")).read_text(encoding="utf-8"))
    first, second = transcript["messages"]
    assert [(v["event_type"], v["text"]) for v in first["versions"]] == [
        ("created", "Numbers attached, please check."), ("edited", "Numbers attached, please check by noon.")]
    assert first["versions"][1]["at"] == "2026-11-04T09:05:00+00:00" and first["reactions"][0]["text"] == "+1"
    assert second["deleted_at"] is not None and second["thread_id"] == "m1"
    assert "please check by noon" in next((out / "transcripts").glob("Finance-*.html")).read_text(encoding="utf-8")
    assert list((out / "manifests").rglob("*.json")) and (out / "README.txt").is_file()

    (out / pdf["NATIVEPATH"]).write_bytes(PDF + b"tampered")
    tampered = sums_check(out)
    assert tampered.returncode == 1 and f"{pdf['NATIVEPATH']}: FAILED" in tampered.stdout


def test_bad_selections_are_one_line_errors(archived, tmp_path):
    """No rows, broken SQL, no message_uid column, an unknown uid, a used --out, two selections: exit 2, one line."""
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    cases = [
        (["--where", "subject = 'no such subject'"], "matches no archived message"),
        (["--query", "SELEC message_uid FROM email"], "selection failed"),
        (["--query", "SELECT subject FROM email"], "no message_uid column"),
        (["--query", "SELECT message_uid FROM email WHERE subject::INTEGER > 0"], "selection failed: Conversion Error"),
        (["--message-uid", "em-does-not-exist"], "no archived message has message_uid em-does-not-exist"),
        (["--where", "kind = 'email'", "--out", str(used)], "is not an empty folder"),
        (["--where", "kind = 'email'", "--query", "SELECT 1"], "exactly one of"),
    ]
    for args, message in cases:
        out = [] if "--out" in args else ["--out", str(tmp_path / "x")]
        done = cli(archived, "export", *args, *out)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (used / "keep.txt").read_text() == "mine" and not (tmp_path / "x").exists()


def test_an_altered_or_missing_original_stops_the_export(archived, tmp_path):
    """An original whose blob was altered, then removed, is an IntegrityError naming the message; nothing is left at --out."""
    settings = archived["settings"]
    uid = archived["uid_of"]["c-broken.eml"]
    raw = MAIL["c-broken.eml"]
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    key = blobs.key(sha(raw))
    selection = select(settings, message_uids=[uid])
    try:
        blobs.store.put(key, raw + b"x")
        with pytest.raises(IntegrityError, match=f"message {uid} version 1.*does not match"):
            export(settings, selection, tmp_path / "altered")
        blobs.store.delete(key)
        done = cli(archived, "export", "--message-uid", uid, "--out", str(tmp_path / "missing"))
        assert done.returncode == 5 and f"message {uid} version 1 (original): blob" in done.stderr
        assert "missing" in done.stderr
    finally:
        blobs.store.put(key, raw)
    assert not (tmp_path / "altered").exists() and not (tmp_path / "missing").exists()
    assert not [p for p in tmp_path.iterdir() if "incomplete" in p.name]
    export(settings, selection, tmp_path / "restored")
    assert sha((tmp_path / "restored" / "originals" / f"{uid}.eml").read_bytes()) == archived["email"][uid]
    with pytest.raises(InputError):
        select(settings)


def test_a_legal_hold_case_is_produced_and_the_export_audited(archived, tmp_path):
    """hold create, then export --case: a production of the custodian's mail; the audit log pins its SHA256SUMS."""
    created = cli(archived, "hold", "create", "zoe-matter", "--custodian", "zoe@northwind.example",
                  "--reason", "litigation notice 2026-11")
    assert created.returncode == 0, created.stderr
    out = tmp_path / "case"
    done = cli(archived, "export", "--case", "zoe-matter", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sums_check(out).returncode == 0
    with open(out / "loadfile.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    emails = [r for r in rows if r["KIND"] == "email" and not r["PARENT_DOCID"]]
    assert emails and all("zoe@northwind.example" in (r["FROM"] + r["TO"] + r["CC"] + r["BCC"]).lower() for r in emails)
    log = cli(archived, "audit-log", "--format", "json")
    entries = json.loads(log.stdout)
    exported = [e for e in entries if e["action"] == "export" and e["what"]["value"] == "zoe-matter"]
    assert len(exported) == 1
    assert exported[0]["what"]["sha256sums"] == hashlib.sha256((out / "SHA256SUMS").read_bytes()).hexdigest()
    assert cli(archived, "audit-log", "--verify").returncode == 0
