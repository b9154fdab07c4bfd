"""TelegramExportSource against a hand-written Telegram Desktop export (tests/fixtures/chat/telegram)."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from producers.chat import canonical_json
from producers.chat.telegram import TelegramExportSource
from schemas.records import chat_uid, sha256_hex
from strongroom.errors import InputError
from tests.chat_checks import check_event_model, kinds, same_output

EXPORT = Path(__file__).parent.parent / "fixtures" / "chat" / "telegram"
BERLIN = ZoneInfo("Europe/Berlin")


def _records():
    return {(c.record["channel"], c.position): c for c in TelegramExportSource(EXPORT, zone=BERLIN)}


def test_every_message_is_accounted_for_with_exact_counts():
    """8 message items in 2 chats: 6 created, 1 edited, 2 reactions (one message), 1 quarantined."""
    captures = list(TelegramExportSource(EXPORT, zone=BERLIN))
    assert kinds(captures) == {"created": 6, "edited": 1, "reaction": 2, "quarantined": 1}
    check_event_model(captures)
    doc = json.loads((EXPORT / "result.json").read_text())
    items = [m for chat in doc["chats"]["list"] for m in chat["messages"]]
    assert {c.raw for c in captures} == {canonical_json(m).encode() for m in items}


def test_edited_message_is_version_two_with_the_final_text():
    """An export holds only the last text: an edited event, sent_at the original date, event_at the edit."""
    edited = _records()[("Projekt Ü", "chats.list#0.messages#1")].record
    assert (edited["event_type"], edited["version"], edited["flags"]) == ("edited", 2, ["original-missing"])
    assert edited["body_text"] == "Wichtig: Termin am Freitag, Details hier (https://example.org/termin)"
    assert edited["sent_at"].isoformat() == "2026-11-02T09:01:00+00:00"
    assert edited["event_at"].isoformat() == "2026-11-02T09:09:00+00:00"
    assert edited["parent_uid"] == chat_uid("telegram", None, "4711", "1")
    assert edited["sender"] == {"user_id": "user102", "name": "Bob 東京", "address": None}


def test_reactions_service_messages_and_media():
    """Reactions by their reactors in time order; service lines are system; photos are stored, missing files linked."""
    records = _records()
    reactions = [c.record for (chat, pos), c in records.items() if pos.startswith("chats.list#0.messages#5.reactions")]
    assert [(r["version"], r["sender"]["name"], r["body_text"], r["event_at"].isoformat()) for r in
            sorted(reactions, key=lambda r: r["version"])] == [
        (2, "Bob 東京", "👍", "2026-11-02T09:06:00+00:00"), (3, "Carol", "👍", "2026-11-02T09:07:00+00:00")]
    service = records[("Projekt Ü", "chats.list#0.messages#2")].record
    assert (service["flags"], service["body_text"], service["sender"]["user_id"]) == (["system"], "invite_members Carol", "user101")
    photo = records[("Projekt Ü", "chats.list#0.messages#3")]
    data = (EXPORT / "photos" / "photo_1@02-11-2026_10-03-00.jpg").read_bytes()
    assert photo.record["attachments"][0]["sha256"] == sha256_hex(data) and photo.blobs == {sha256_hex(data): data}
    missing = records[("Projekt Ü", "chats.list#0.messages#4")].record["attachments"][0]
    assert (missing["name"], missing["content_type"], missing["size"], missing["sha256"]) == ("Bericht.pdf", "application/pdf", 48213, None)


def test_chats_keep_their_own_identities_and_reads_repeat():
    """Message 1 of two chats are two messages; a second read is identical."""
    records = _records()
    first = records[("Projekt Ü", "chats.list#0.messages#0")].record["message_uid"]
    other = records[("Bob 東京", "chats.list#1.messages#0")].record["message_uid"]
    assert first != other
    assert same_output(list(TelegramExportSource(EXPORT)), list(TelegramExportSource(EXPORT)))


def test_single_chat_export_and_bad_files(tmp_path):
    """A one-chat export is read; a file that is not an export is refused with one line."""
    doc = json.loads((EXPORT / "result.json").read_text())["chats"]["list"][1]
    (tmp_path / "result.json").write_text(json.dumps(doc))
    assert kinds(list(TelegramExportSource(tmp_path))) == {"created": 1, "quarantined": 1}
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(InputError):
        TelegramExportSource(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError):
        TelegramExportSource(tmp_path / "broken.json")
