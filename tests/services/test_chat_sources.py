"""Slack, Teams and Mattermost exports through the real pipeline: every version in SQL, deletions found by search.

One namespace takes the three chat fixtures and one email, is archived and indexed, and then
answers what a reviewer asks: each version of a message, the message as first sent and as last
seen, a deleted message by its words with the time of deletion, and everything one person said
to another in mail and chat, by address, in one query.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from consumers.archiver import ParquetArchiver
from consumers.indexer import OpenSearchIndexer
from consumers.query import run_query
from consumers.runner import SinkRunner
from consumers.search import search
from producers.chat.mattermost import MattermostSource
from producers.chat.slack import SlackExportSource
from producers.chat.teams import TeamsSource
from producers.email import captures as email_captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.storage import open_store

CHAT = Path(__file__).resolve().parent.parent / "fixtures" / "chat"
ALICE, ZOE = "alice.archer@northwind.example", "zoe.mueller@northwind.example"
# (read, produced) per source: Slack repeats two events (an edit told twice), Teams and Mattermost
# each hold two broken items, quarantined and kept.
EXPECTED = {"slack": (24, 22), "teams": (24, 24), "mattermost": (16, 16)}


def _sources() -> dict:
    return {"slack": lambda: SlackExportSource(CHAT / "slack"), "teams": lambda: TeamsSource(CHAT / "teams"),
            "mattermost": lambda: MattermostSource(CHAT / "mattermost")}


def _mail(path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "Alice Archer <Alice.Archer@Northwind.example>"
    msg["To"] = "Zoë Müller <zoe.mueller@northwind.example>"
    msg["Subject"] = "Contoso pricing"
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc))
    msg["Message-ID"] = "<contoso-pricing@northwind.example>"
    msg.set_content("Zoë, pricing attached in the deal room.\n")
    path.write_bytes(b"From alice@northwind.example Mon Nov  2 07:30:00 2026\n" + msg.as_bytes() + b"\n")


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """One namespace holding the three chat fixtures and one email, archived and indexed."""
    import uuid

    from strongroom.config import load_settings

    root = tmp_path_factory.mktemp("chat-sources")
    settings = load_settings(environ={}, namespace="t" + uuid.uuid4().hex[:10],
                             storage={"url": str(root / "storage")})
    summaries = {name: ingest(settings, "chat", iter(make())) for name, make in _sources().items()}
    _mail(root / "mail.mbox")
    ingest(settings, "email", email_captures(root / "mail.mbox"))
    for sink in (ParquetArchiver(settings), OpenSearchIndexer(settings)):
        SinkRunner(settings, sink, settings.group(sink.name)).run(until_idle=True)
    return settings, summaries


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, timezone.utc).isoformat()


def _rows(settings, sql: str) -> list[tuple]:
    return run_query(settings, sql)[1]


def test_every_event_is_archived_once(archived) -> None:
    """Per platform, the archive holds exactly the distinct events produced, counted by event type."""
    settings, summaries = archived
    assert {n: (s.read, s.produced) for n, s in summaries.items()} == EXPECTED
    assert summaries["slack"].duplicates == 2
    rows = _rows(settings, """SELECT platform, event_type, count(*) FROM chat WHERE parse_status = 'ok'
                              GROUP BY ALL ORDER BY ALL""")
    assert rows == [
        ("mattermost", "created", 8), ("mattermost", "deleted", 1), ("mattermost", "edited", 2), ("mattermost", "reaction", 3),
        ("slack", "created", 13), ("slack", "deleted", 3), ("slack", "edited", 2), ("slack", "reaction", 4),
        ("teams", "created", 11), ("teams", "deleted", 3), ("teams", "edited", 2), ("teams", "reaction", 6)]
    assert _rows(settings, "SELECT count(*) FROM chat WHERE parse_status = 'quarantined'") == [(4,)]


def test_every_version_and_the_first_and_last_view(archived) -> None:
    """An edited Slack reply: both versions in `chat`; chat_first has no text (and says why), chat_latest the edit."""
    settings, _ = archived
    uid = _rows(settings, "SELECT message_uid FROM chat WHERE body_text LIKE 'Ja — nach Rücksprache%' AND platform = 'slack'")[0][0]
    versions = _rows(settings, f"""SELECT version, event_type, body_text, event_at IS NOT NULL, epoch_us(sent_at)
                                   FROM chat WHERE message_uid = '{uid}' ORDER BY version""")
    assert [v[:4] for v in versions] == [(1, "created", None, False),
                                         (61, "edited", "Ja — nach Rücksprache mit Zoë: 11,5 Mio. €", True)]
    assert versions[0][4] == versions[1][4]  # every version keeps the original send time
    first = _rows(settings, f"SELECT version, body_text, flags FROM chat_first WHERE message_uid = '{uid}'")
    assert first == [(1, None, ["thread-reply", "original-text-unavailable"])]
    latest = _rows(settings, f"SELECT version, body_text, is_deleted FROM chat_latest WHERE message_uid = '{uid}'")
    assert latest == [(61, "Ja — nach Rücksprache mit Zoë: 11,5 Mio. €", False)]


def test_deleted_messages_are_latest_as_deleted_with_their_time(archived) -> None:
    """chat_latest shows each deleted message as deleted, at its deletion time, with the last text it had."""
    settings, _ = archived
    # epoch_us: reading a TIMESTAMPTZ into Python would need pytz, which the project does not carry.
    rows = _rows(settings, """SELECT platform, body_text, epoch_us(deleted_at) FROM chat_latest
                              WHERE is_deleted AND body_text IS NOT NULL ORDER BY deleted_at""")
    assert [(p, t, _iso(d)) for p, t, d in rows] == [
        ("slack", "Delete after reading: side letter 机密 for Contoso", "2026-11-02T09:15:00.000004+00:00"),
        ("teams", "Bitte löschen: Nebenabrede mit Contoso", "2026-11-03T09:00:00+00:00"),
        ("teams", "Prix révisé: 11,5 M€ (était 10,5)", "2026-11-04T09:00:00+00:00"),
        ("mattermost", "Bitte löschen: Nebenabrede mit Contoso", "2026-11-05T09:15:00+00:00")]


def test_search_finds_a_deleted_message_and_shows_it_deleted(archived) -> None:
    """Searching the words of deleted messages returns their deleted versions with event_type and deletion time."""
    settings, _ = archived
    columns, hits = search(settings, "Nebenabrede", kind="chat")
    found = sorted((row[columns.index("event_type")], row[columns.index("event_at")]) for row in hits)
    assert found == [("created", None), ("created", None),
                     ("deleted", "2026-11-03T09:00:00+00:00"), ("deleted", "2026-11-05T09:15:00+00:00")]


def test_everything_alice_said_to_zoe_in_mail_and_chat(archived) -> None:
    """One query by address over `communications`: the email, and Alice's direct messages to Zoë on all three platforms."""
    settings, _ = archived
    rows = _rows(settings, f"""
        SELECT kind, platform, event_type, coalesce(subject, body_text) FROM communications
        WHERE sender.address = '{ALICE}' AND list_contains([r.address FOR r IN recipients], '{ZOE}')
          AND event_type <> 'reaction' ORDER BY sent_at, version""")
    assert rows == [
        ("email", "email", "created", "Contoso pricing"),
        ("chat", "slack", "created", "Zoë, the Contoso numbers are final: 11.5m. Keep it between us."),
        ("chat", "slack", "created", "Delete after reading: side letter 机密 for Contoso"),
        ("chat", "slack", "deleted", "Delete after reading: side letter 机密 for Contoso"),
        ("chat", "teams", "created", "Zoë, Contoso final 11.5m — nichts an José."),
        ("chat", "mattermost", "created", "Zoë, Contoso final 11.5m. Nichts an José.")]


def test_files_and_originals_are_in_the_blob_store(archived) -> None:
    """Saved attachment bytes and each event's raw original (the exported JSON object) are retrievable."""
    settings, _ = archived
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    for path in (CHAT / "slack" / "C10DEALS" / "attachments" / "F10TERM-term-sheet.txt",
                 next((CHAT / "mattermost" / "data").rglob("term-sheet.txt"))):
        data = path.read_bytes()
        assert blobs.get(hashlib.sha256(data).hexdigest()) == data
    (raw_sha,), = _rows(settings, "SELECT raw_sha256 FROM chat WHERE platform = 'teams' AND event_type = 'deleted' "
                                  "AND body_text LIKE 'Prix%'")
    assert json.loads(blobs.get(raw_sha))["DeletedDateTime"] == "2026-11-04T09:00:00+00:00"


def test_reingest_adds_nothing(archived) -> None:
    """A second ingest of each export reports every event as a duplicate and produces nothing."""
    settings, _ = archived
    for name, make in _sources().items():
        again = ingest(settings, "chat", iter(make()))
        assert (again.produced, again.duplicates) == (0, EXPECTED[name][0]), name
