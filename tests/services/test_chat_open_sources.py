"""Matrix, XMPP, WhatsApp, Telegram and IRC exports through the real pipeline: every event and
every version is a row in SQL, deletions stay findable, and a re-ingest adds nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from consumers.archiver import ParquetArchiver
from consumers.indexer import OpenSearchIndexer
from consumers.query import run_query
from consumers.runner import SinkRunner
from producers.chat.irc import IrcLogSource
from producers.chat.matrix import MatrixEventsSource
from producers.chat.telegram import TelegramExportSource
from producers.chat.whatsapp import WhatsAppExportSource
from producers.chat.xmpp import XmppFileSource
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.clients import opensearch_client
from strongroom.storage import open_store

CHAT = Path(__file__).resolve().parent.parent / "fixtures" / "chat"
SOURCES = {
    "matrix": lambda: MatrixEventsSource(CHAT / "matrix"),
    "xmpp": lambda: XmppFileSource(CHAT / "xmpp"),
    "whatsapp": lambda: WhatsAppExportSource(CHAT / "whatsapp" / "export", zone=ZoneInfo("Europe/Berlin")),
    "telegram": lambda: TelegramExportSource(CHAT / "telegram", zone=ZoneInfo("Europe/Berlin")),
    "irc": lambda: IrcLogSource(CHAT / "irc", channel="#strongroom"),
}


def _archive(settings) -> None:
    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_version_is_queryable_and_reingest_adds_nothing(settings, name):
    """Each event is one row of `chat`; chat_first/chat_latest show first and last versions; blobs kept."""
    captures = list(SOURCES[name]())
    summary = ingest(settings, "chat", iter(captures))
    assert (summary.read, summary.produced, summary.failed, summary.duplicates) == (len(captures), len(captures), 0, 0)
    _archive(settings)

    _, rows = run_query(settings, "SELECT message_uid, version, event_type, body_text FROM chat")
    assert sorted((r[0], r[1]) for r in rows) == sorted((c.record["message_uid"], c.record["version"]) for c in captures)
    expected = {(c.record["message_uid"], c.record["version"]): c.record for c in captures}
    assert all(expected[(uid, v)]["body_text"] == text and expected[(uid, v)]["event_type"] == kind
               for uid, v, kind, text in rows)

    latest = dict(run_query(settings, "SELECT message_uid, version FROM chat_latest")[1])
    first = dict(run_query(settings, "SELECT message_uid, version FROM chat_first")[1])
    for uid in latest:
        versions = [v for (u, v), r in expected.items() if u == uid and r["event_type"] != "reaction"]
        assert (first[uid], latest[uid]) == (min(versions), max(versions))

    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    for capture in captures:
        assert blobs.get(capture.record["raw_sha256"]) == capture.raw
        for digest, data in capture.blobs.items():
            assert blobs.get(digest) == data

    again = ingest(settings, "chat", iter(SOURCES[name]()))
    assert (again.read, again.produced, again.duplicates) == (len(captures), 0, len(captures))


def test_deleted_messages_stay_found_and_shown_as_deleted(settings):
    """A Matrix redaction and an XMPP retraction: SQL shows them deleted with the time; search finds the text."""
    for source in (MatrixEventsSource(CHAT / "matrix"), XmppFileSource(CHAT / "xmpp" / "stream.xml")):
        ingest(settings, "chat", iter(source))
    _archive(settings)
    _, rows = run_query(settings, """SELECT platform, body_text, is_deleted, epoch(deleted_at)::BIGINT FROM chat_latest
        WHERE is_deleted ORDER BY platform, deleted_at""")
    at = lambda iso: int(datetime.fromisoformat(iso).timestamp())  # noqa: E731
    assert rows == [
        ("matrix", "Das Passwort ist hunter2", True, at("2026-11-02T09:11:00+00:00")),
        ("xmpp", "Falsche Nachricht, Kontonummer 1234", True, at("2026-11-02T09:05:00+00:00")),
        ("xmpp", "Standup in 5 Minuten", True, at("2026-11-02T09:12:00+00:00")),
    ]
    SinkRunner(settings, OpenSearchIndexer(settings), settings.group("indexer")).run(until_idle=True)
    client = opensearch_client(settings)
    client.indices.refresh(index=f"{settings.namespace}-*")
    found = client.search(index=f"{settings.namespace}-chat-*", body={
        "query": {"match": {"body_text": "hunter2"}}, "sort": [{"version": "asc"}]})["hits"]["hits"]
    assert [(h["_source"]["event_type"], h["_source"]["version"]) for h in found] == [("created", 1), ("deleted", 2)]
