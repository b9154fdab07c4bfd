"""Retention on the real services: a warehouse of known mail and chat across years, a policy
("keep chat 5 years, mail 7, legal 10") and holds; plan counts exact, apply purges exactly those,
held messages untouched, verify complete afterwards, blobs and index documents gone, shared blobs kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from consumers import holds
from consumers.judgement import as_of_time
from consumers.policy import load_policy
from consumers.query import run_query
from consumers.retention import plan
from consumers.verify import Verifier
from producers.chat.jsonl import ChatJsonlSource
from producers.email.mime import parse_email
from producers.ingest import ingest
from strongroom import audit
from strongroom.blobs import BlobStore
from strongroom.storage import open_store
from tests.services.test_pipeline import archive, count_docs, index

AS_OF = "2026-12-01"
SHARED_PDF = b"%PDF-1.4\n% the contract, attached to three mails\n" + bytes(range(200))
ONLY_PDF = b"%PDF-1.4\n% attached once, to a mail that expires\n" + bytes(range(100))
POLICY = """
[default]
keep = "7y"

[[rule]]
name = "chat"
kind = "chat"
keep = "5y"

[[rule]]
name = "mail"
kind = "email"
keep = "7y"

[[rule]]
name = "legal"
participant_domain = ["legal.example", "*.legal.example"]
keep = "10y"

[[rule]]
name = "random-chatter"
channel = "random"
keep = "90d"
"""

# (name, sent, from, to, attachment)
MAILS = [
    ("e1", "2018-06-01T09:00:00+00:00", "alice@northwind.example", "bob@northwind.example", SHARED_PDF),
    ("e2", "2019-03-01T09:00:00+00:00", "carol@northwind.example", "dave@contoso.example", SHARED_PDF),
    ("e3", "2020-01-15T09:00:00+00:00", "alice@northwind.example", "bob@northwind.example", SHARED_PDF),
    ("e4", "2018-09-01T09:00:00+00:00", "erin@northwind.example", "counsel@legal.example", None),
    ("e5", "2019-05-05T09:00:00+00:00", "frank@northwind.example", "bob@northwind.example", None),
    ("e6", "2019-02-01T09:00:00+00:00", "frank@northwind.example", "bob@northwind.example", ONLY_PDF),
    ("e7", "2019-07-01T09:00:00+00:00", "gina@northwind.example", "bob@northwind.example", None),
    ("e8", "2026-11-25T09:00:00+00:00", "alice@northwind.example", "bob@northwind.example", None),
    ("e9", "2018-06-01T15:00:00+00:00", "erin@northwind.example", "counsel@legal.example", None),
]
# (message id, version, channel, sent, sender email)
CHATS = [
    ("c1", 1, "general", "2020-06-01T10:00:00Z", "alice@northwind.example"),
    ("c1", 2, "general", "2020-06-01T10:00:00Z", "alice@northwind.example"),
    ("c2", 1, "general", "2021-06-01T10:00:00Z", "alice@northwind.example"),
    ("c3", 1, "general", "2022-01-10T10:00:00Z", "bob@northwind.example"),
    ("c4", 1, "random", "2021-03-01T10:00:00Z", "frank@northwind.example"),
    ("c5", 1, "random", "2026-11-20T10:00:00Z", "bob@northwind.example"),
    ("c6", 1, "general", "2026-06-01T10:00:00Z", "bob@northwind.example"),
    ("c7", 1, "general", "2021-06-01T11:00:00Z", "frank@northwind.example"),
]


def _mail(name: str, sent: str, sender: str, to: str, pdf: bytes | None, trace: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"mail {name}"
    msg["Date"] = format_datetime(datetime.fromisoformat(sent))
    msg["Message-ID"] = f"<{name}@northwind.example>"
    msg.set_content(f"This is mail {name}.\n")
    if pdf:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="contract.pdf")
    return (trace.encode() if trace else b"") + msg.as_bytes()


def _captures():
    for name, sent, sender, to, pdf in MAILS:
        yield parse_email(_mail(name, sent, sender, to, pdf), source="journal.mbox", position=name)
    # A second copy of e7, from bob's mailbox: an `arrival` row of the same message, its own raw blob.
    copy = parse_email(_mail("e7", MAILS[6][1], MAILS[6][2], MAILS[6][3], None,
                             "Received: from mx.northwind.example; Mon, 1 Jul 2019 09:00:05 +0000\n"),
                       source="imap://bob", position="INBOX/7")
    copy.record["workspace"] = "bob@northwind.example"
    yield copy


def _chat_file(path: Path) -> Path:
    lines = []
    for mid, version, channel, sent, email in CHATS:
        line = {"platform": "teams", "workspace": "northwind", "channel": channel, "message_id": mid,
                "sent_at": sent, "sender": {"id": email.split("@")[0], "email": email}, "text": f"chat {mid} v{version}"}
        if version > 1:
            line.update(event_type="edited", version=version, text=f"chat {mid} edited")
        lines.append(json.dumps(line))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def storage_settings(request, settings, s3_settings):
    """Local storage, or the local S3 server for the tests that purge (parametrized indirectly)."""
    return s3_settings if getattr(request, "param", "local") == "s3" else settings


both_stores = pytest.mark.parametrize("storage_settings", ["local", "s3"], indirect=True)


@pytest.fixture
def warehouse(storage_settings, tmp_path):
    """9 mails (one with an arrival copy) and 8 chat events (one edit), archived and indexed.

    One partition per topic, so messages of one day share a file and a purge must rewrite it
    (e1 goes, e9 stays; c2 goes, c7 is held)."""
    settings = storage_settings.model_copy(update={"kafka": storage_settings.kafka.model_copy(update={"partitions": 1})})
    assert ingest(settings, "email", _captures()).produced == 10
    assert ingest(settings, "chat", iter(ChatJsonlSource(_chat_file(tmp_path / "chat.jsonl")))).produced == 8
    archive(settings)
    index(settings)
    (tmp_path / "policy.toml").write_text(POLICY)
    return settings


def strongroom(settings, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command line, in the test's namespace and storage, as the compliance officer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM")} | (env or {})
    env.update(STRONGROOM_NAMESPACE=settings.namespace, STRONGROOM_STORAGE_URL=settings.storage.url,
               STRONGROOM__RETENTION__IDENTITY="officer@northwind.example")
    return subprocess.run([sys.executable, "-m", "strongroom.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def uids(settings, where: str = "true") -> set[str]:
    return {r[0] for r in run_query(settings, f"SELECT message_uid FROM communications WHERE {where}")[1]}


def by_subject(settings) -> dict[str, str]:
    rows = run_query(settings, "SELECT subject, message_uid FROM email")[1]
    return {s.split()[-1]: u for s, u in rows}


def _holds(settings) -> None:
    holds.create(settings, "acme", ["Frank@Northwind.example"], "2019-03-01", None, None,
                 "Acme v. Northwind: preserve Frank's mail and chat", "officer")
    holds.create(settings, "old-matter", ["alice@northwind.example"], "2021-01-01", None, None, "settled case", "officer")
    holds.release(settings, "old-matter", "settled in 2025", "officer")


def test_plan_counts_exactly_what_expires(warehouse, tmp_path):
    """Mail 7y, chat 5y, legal 10y; an active hold keeps Frank's since March 2019, a released one keeps nothing."""
    _holds(warehouse)
    policy, _sha = load_policy(tmp_path / "policy.toml")
    result = plan(warehouse, policy, as_of_time(AS_OF))
    assert result.by_rule_day == [
        ("chat", "2020-06-01", 1, 2, 0), ("chat", "2021-03-01", 0, 0, 1), ("chat", "2021-06-01", 1, 1, 1),
        ("mail", "2018-06-01", 1, 1, 0), ("mail", "2019-02-01", 1, 1, 0), ("mail", "2019-03-01", 1, 1, 0),
        ("mail", "2019-05-05", 0, 0, 1), ("mail", "2019-07-01", 1, 2, 0)]
    assert result.totals == {"chat": {"messages": 7, "expired": 4, "held": 2, "purge": 2},
                             "legal": {"messages": 2, "expired": 0, "held": 0, "purge": 0},
                             "mail": {"messages": 7, "expired": 5, "held": 1, "purge": 4}}
    assert result.holds == ["acme"]


@both_stores
def test_apply_purges_exactly_the_expired_and_keeps_the_held(warehouse, tmp_path):
    """After apply: the warehouse, blobs and index lose exactly the purged messages; verify is complete."""
    _holds(warehouse)
    store = open_store(warehouse.storage)
    blobs = BlobStore(store, warehouse.namespace)
    mails = by_subject(warehouse)
    raw = dict(run_query(warehouse, "SELECT message_uid, list(raw_sha256) FROM email_log GROUP BY 1")[1])
    assert len(raw[mails["e7"]]) == 2  # the journal copy and bob's mailbox copy
    shared = parse_email(_mail("e1", *MAILS[0][1:]), source="x", position="x").record["attachments"][0]["sha256"]
    only = parse_email(_mail("e6", *MAILS[5][1:]), source="x", position="x").record["attachments"][0]["sha256"]
    before = uids(warehouse)
    assert len(before) == 16 and count_docs(warehouse) == 17  # 9 mails, 7 chats (+1 edit) indexed

    result = strongroom(warehouse, "retention", "apply", "--policy", str(tmp_path / "policy.toml"),
                        "--as-of", AS_OF, "--yes", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["messages"], report["rows"], report["held_kept"]) == (6, 8, 3)
    assert (report["files_rewritten"], report["files_removed"]) == (2, 4)  # rewritten: 2018-06-01 mail, 2021-06-01 chat

    purged = {mails[n] for n in ("e1", "e2", "e6", "e7")}
    gone_chat = before - uids(warehouse) - purged
    assert before - uids(warehouse) == purged | gone_chat and len(gone_chat) == 2
    left = {s for s, u in by_subject(warehouse).items()}
    assert left == {"e3", "e4", "e5", "e8", "e9"}
    assert {r[0] for r in run_query(warehouse, "SELECT body_text FROM chat")[1]} == {
        "chat c3 v1", "chat c4 v1", "chat c5 v1", "chat c6 v1", "chat c7 v1"}
    assert run_query(warehouse, "SELECT count(*) FROM email_log")[1][0][0] == 5  # the arrival row went too

    for name in ("e1", "e2", "e6", "e7"):
        assert not any(store.exists(blobs.key(sha)) for sha in raw[mails[name]]), name
    for name in ("e3", "e4", "e5", "e8", "e9"):
        assert all(store.exists(blobs.key(sha)) for sha in raw[mails[name]]), name
    assert store.exists(blobs.key(shared)), "the attachment e3 still has must stay"
    assert not store.exists(blobs.key(only)), "the attachment only e6 had must go"
    assert report["blobs_kept_shared"] == 1

    # Purged documents deleted by id; the hot window (90 days before 2026-12-01) dropped the rest older.
    assert report["documents_deleted"] == 7  # e1 e2 e6 e7 (arrival copies are not indexed), c1 v1 v2, c2
    assert count_docs(warehouse) == 2  # e8 and c5
    findings = Verifier(warehouse).run()
    assert findings.complete, findings.findings
    assert sum(p.purged for p in findings.partitions) == 8
    assert all(p.lag == 0 for p in findings.partitions)

    # Purging again finds nothing more to do.
    again = strongroom(warehouse, "retention", "apply", "--policy", str(tmp_path / "policy.toml"),
                       "--as-of", AS_OF, "--yes", "--format", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["messages"] == 0
    actions = [e["action"] for e in audit.entries(warehouse)]
    assert actions.count("retention.apply") == 2 and "retention.purge" in actions

    # Years later, the hold released: the files purged once (e9's, c7's) are purged again.
    holds.release(warehouse, "acme", "case closed", "officer")
    later = strongroom(warehouse, "retention", "apply", "--policy", str(tmp_path / "policy.toml"),
                       "--as-of", "2029-01-01", "--yes", "--format", "json")
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["messages"] == 7  # e3 e4 e5 e9, c3 c4 c7
    assert set(by_subject(warehouse)) == {"e8"}
    assert {r[0] for r in run_query(warehouse, "SELECT body_text FROM chat")[1]} == {"chat c5 v1", "chat c6 v1"}
    findings = Verifier(warehouse).run()
    assert findings.complete, findings.findings
    assert sum(p.purged for p in findings.partitions) == 15


@both_stores
def test_verify_after_purge_still_detects_tampering(warehouse, tmp_path):
    """A purge record edited by hand, and a rewritten file removed, are each named by verify."""
    result = strongroom(warehouse, "retention", "apply", "--policy", str(tmp_path / "policy.toml"),
                        "--as-of", AS_OF, "--yes")
    assert result.returncode == 0, result.stderr
    store = open_store(warehouse.storage)
    records = sorted(k for k in store.list(f"{warehouse.namespace}/purges/") if k.endswith(".json"))
    rewritten = sorted(k for k in store.list(f"{warehouse.namespace}/warehouse/") if ".purge" in k)
    assert records and rewritten
    record = json.loads(store.get(records[0]))
    record["who"] = "somebody else"
    store.put(records[0], json.dumps(record, sort_keys=True, indent=1).encode())
    store.delete(rewritten[0])
    found = {(f.problem, f.where) for f in Verifier(warehouse).run(check_index=False).findings}
    assert ("purge", records[0]) in found
    assert ("missing_file", rewritten[0]) in found


def test_a_crashed_purge_is_finished_or_undone(settings):
    """In-flight markers: before its purge record, the new files go; after it, the old files go."""
    from consumers.retention import recover

    store = open_store(settings.storage)
    base = f"{settings.namespace}/purges/{settings.namespace}.email/0/"
    store.put_new(f"{settings.namespace}/warehouse/email/date=2020-01-01/new.purge00000001.parquet", b"new")
    store.put_new(f"{settings.namespace}/warehouse/email/date=2020-01-01/old.parquet", b"old")
    store.put(base + "_pending.json", json.dumps({"record": base + "00000001.json", "new": [
        f"{settings.namespace}/warehouse/email/date=2020-01-01/new.purge00000001.parquet"], "old": [
        f"{settings.namespace}/warehouse/email/date=2020-01-01/old.parquet"]}).encode())
    assert recover(settings, store) == [f"{settings.namespace}/warehouse/email/date=2020-01-01/new.purge00000001.parquet"]
    store.put_new(base + "00000001.json", b"{}")  # now the record had landed before the crash
    store.put(base + "_pending.json", json.dumps({"record": base + "00000001.json", "new": [], "old": [
        f"{settings.namespace}/warehouse/email/date=2020-01-01/old.parquet"]}).encode())
    assert recover(settings, store) == [f"{settings.namespace}/warehouse/email/date=2020-01-01/old.parquet"]
    assert sorted(store.list(f"{settings.namespace}/")) == [base + "00000001.json"]


def test_policy_check_explains_the_rule_and_the_hold(warehouse, tmp_path):
    """A chat in #random matches two rules; the longer (chat 5y) applies; Frank's hold keeps it."""
    _holds(warehouse)
    uid = run_query(warehouse, "SELECT message_uid FROM chat WHERE body_text = 'chat c4 v1'")[1][0][0]
    result = strongroom(warehouse, "policy", "check", "--policy", str(tmp_path / "policy.toml"),
                        "--message-uid", uid, "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)
    assert item["applies"] == "chat" and item["expired"] is True and item["held_by"] == ["acme"]
    assert [r["rule"] for r in item["rules"] if r["matches"]] == ["chat", "random-chatter"]
    assert "most protective of 2 matching rules" in item["why"]
    text = strongroom(warehouse, "policy", "check", "--policy", str(tmp_path / "policy.toml"),
                      "--query", "SELECT message_uid FROM email WHERE subject = 'mail e4'", "--as-of", AS_OF)
    assert "applies: legal" in text.stdout and "participant_domain = legal.example" in text.stdout, text.stdout


def test_holds_are_versioned_and_listed(warehouse):
    """create and release write new versions with who and why; list shows the state; case_selection selects."""
    result = strongroom(warehouse, "hold", "create", "acme", "--custodian", "frank@northwind.example",
                        "--custodian", "alice@northwind.example", "--since", "2019-03-01", "--reason", "Acme v. Northwind")
    assert result.returncode == 0, result.stderr
    assert "hold acme created by officer@northwind.example: 7 messages held" in result.stdout
    # Frank since March 2019: e5, c4, c7; Alice since then: e3, e8, c1, c2 (both only ever send here).
    selected = {r[0] for r in run_query(warehouse, holds.case_selection(warehouse, "acme"))[1]}
    assert len(selected) == 7
    assert strongroom(warehouse, "hold", "release", "acme", "--reason", "settled").returncode == 0
    again = strongroom(warehouse, "hold", "release", "acme", "--reason", "twice")
    assert again.returncode == 2 and "already released" in again.stderr
    listed = json.loads(strongroom(warehouse, "hold", "list", "--format", "json").stdout)
    assert [(h["name"], h["state"], h["version"], h["who"]) for h in listed] == [
        ("acme", "released", 2, "officer@northwind.example")]
    store = open_store(warehouse.storage)
    assert len([k for k in store.list(f"{warehouse.namespace}/holds/acme/")]) == 2


def test_a_hold_by_query(warehouse):
    """--query narrows a hold to the messages an SQL returns; SQL without message_uid is refused."""
    result = strongroom(warehouse, "hold", "create", "e4-only", "--query",
                        "SELECT message_uid FROM email WHERE subject = 'mail e4'", "--reason", "one mail")
    assert result.returncode == 0 and ": 1 messages held" in result.stdout, result.stderr
    bad = strongroom(warehouse, "hold", "create", "bad", "--query", "SELECT subject FROM email", "--reason", "r")
    assert bad.returncode == 2 and "must return a message_uid column" in bad.stderr
    assert [h.name for h in holds.all_holds(warehouse)] == ["e4-only"]
