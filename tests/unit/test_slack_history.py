"""SlackExportSource on tests/fixtures/chat/slack: threads, edits, deletions, reactions, files, bots, joins."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from producers.capture import Capture
from producers.chat.slack import SlackExportSource
from schemas.records import chat_uid, sha256_hex
from tests.conftest import assert_fits_schema

EXPORT = Path(__file__).parent.parent / "fixtures" / "chat" / "slack"
TEAM = "T0NORTH"
BASE = 1793606400  # 2026-11-02T08:00:00Z, the fixture's clock


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return {c.position: c for c in SlackExportSource(EXPORT)}


def _at(seconds: int, micros: int = 0) -> datetime:
    return datetime.fromtimestamp(BASE + seconds, timezone.utc).replace(microsecond=micros)


def test_every_event_is_accounted_for(captures: dict[str, Capture]) -> None:
    """24 events from 15 entries; two repeat what an edit event already said, so 22 distinct (uid, version)."""
    assert Counter(c.record["event_type"] for c in captures.values()) == {
        "created": 14, "edited": 3, "deleted": 3, "reaction": 4}
    assert not any(c.quarantined for c in captures.values())
    assert len({(c.record["message_uid"], c.record["version"]) for c in captures.values()}) == 22
    assert_fits_schema(captures.values())


def test_edit_keeps_both_versions_but_never_invents_the_first_text(captures: dict[str, Capture]) -> None:
    """An `edited` message: v1 has no text and says so; the edit has the exported text, its time and a version by time."""
    first, edit = captures["deals/2026-11-02.json#2"].record, captures["deals/2026-11-02.json#2/edited"].record
    assert first["message_uid"] == edit["message_uid"] == chat_uid("slack", TEAM, "C10DEALS", f"{BASE + 700}.000200")
    assert (first["version"], first["body_text"], first["event_at"]) == (1, None, None)
    assert "original-text-unavailable" in first["flags"]
    assert edit["body_text"] == "Ja — nach Rücksprache mit Zoë: 11,5 Mio. €"
    # 59.9998 s after sending: 2 + 59 whole seconds.
    assert (edit["version"], edit["event_at"], edit["sent_at"]) == (2 + 59, _at(760), first["sent_at"])
    assert "original-text-unavailable" not in edit["flags"]


def test_message_changed_supplies_the_text_before_the_edit(captures: dict[str, Capture]) -> None:
    """A message_changed event of the same day gives the edited message its first text; both items agree."""
    for position in ("deals/2026-11-02.json#5", "deals/2026-11-02.json#6"):
        assert captures[position].record["body_text"] == "Price is 10.5m"
        assert captures[position].record["flags"] == []
        assert captures[position + "/edited"].record["body_text"] == "Price is 11.5m"
    assert captures["deals/2026-11-02.json#5/edited"].record["version"] == \
        captures["deals/2026-11-02.json#6/edited"].record["version"] == 62


def test_message_deleted_keeps_the_last_text_and_the_deletion_time(captures: dict[str, Capture]) -> None:
    """message_deleted: created from previous_message, then deleted at the event's ts with the same text, same sent_at."""
    created = captures["D20ALZO/2026-11-02.json#2"].record
    deleted = captures["D20ALZO/2026-11-02.json#2/deleted"].record
    assert created["message_uid"] == deleted["message_uid"] == chat_uid("slack", TEAM, "D20ALZO", f"{BASE + 4200}.000003")
    assert deleted["body_text"] == created["body_text"] == "Delete after reading: side letter 机密 for Contoso"
    assert (deleted["event_type"], deleted["event_at"], deleted["sent_at"]) == ("deleted", _at(4500, 4), _at(4200, 3))
    assert deleted["sender"]["address"] == "alice.archer@northwind.example"


def test_deletion_of_a_message_not_in_the_export_is_kept(captures: dict[str, Capture]) -> None:
    """A message_deleted without previous_message is one deleted record flagged original-missing, at the item's position."""
    record = captures["D20ALZO/2026-11-02.json#3"].record
    assert (record["event_type"], record["body_text"], record["event_at"]) == ("deleted", None, _at(4600, 6))
    assert record["flags"] == ["original-missing"]


def test_tombstone_is_a_deleted_thread_root_without_text_or_time(captures: dict[str, Capture]) -> None:
    """A tombstone: created and deleted, no text, the deletion time unknown; its reply still points at it."""
    created, deleted = captures["deals/2026-11-02.json#7"].record, captures["deals/2026-11-02.json#7/deleted"].record
    assert created["body_text"] is None and deleted["body_text"] is None
    assert deleted["event_at"] is None and set(deleted["flags"]) == {"original-text-unavailable", "time-unknown"}
    assert created["sender"]["user_id"] is None  # USLACKBOT wrote the tombstone, not the author
    assert captures["deals/2026-11-02.json#8"].record["parent_uid"] == created["message_uid"]


def test_each_reaction_user_is_an_event(captures: dict[str, Capture]) -> None:
    """Each (reaction, user) is a reaction record: the reaction as text, the reacting user as sender, the author as 'to'."""
    root = captures["deals/2026-11-02.json#1"].record
    reactions = [c.record for p, c in captures.items() if p.startswith("deals/2026-11-02.json#1/reaction/")]
    assert sorted((r["body_text"], r["sender"]["user_id"]) for r in reactions) == [
        ("eyes", "U02JOSE"), ("eyes", "U04ZOE"), ("white_check_mark", "U02JOSE")]
    for record in reactions:
        assert record["message_uid"] == root["message_uid"] and record["sent_at"] == root["sent_at"]
        assert record["event_at"] is None and record["flags"] == ["time-unknown"]
        assert record["version"] >= 1 << 30
        assert [r["user_id"] for r in record["recipients"]] == ["U01ALICE"]


def test_thread_replies_bots_and_system_messages_are_flagged(captures: dict[str, Capture]) -> None:
    """thread-reply on replies, bot on bot_message, system on joins and leaves; the root is none of these."""
    flags = {p: c.record["flags"] for p, c in captures.items()}
    assert flags["deals/2026-11-02.json#1"] == []
    assert flags["deals/2026-11-02.json#3"] == ["thread-reply"]
    assert flags["deals/2026-11-02.json#4"] == ["bot"]
    assert flags["deals/2026-11-02.json#0"] == flags["deals/2026-11-02.json#9"] == ["system"]


def test_file_bytes_in_the_export_become_blobs(captures: dict[str, Capture]) -> None:
    """A file saved beside the messages is stored as a blob with its hash; one only linked keeps its url."""
    capture = captures["deals/2026-11-02.json#3"]
    data = (EXPORT / "C10DEALS" / "attachments" / "F10TERM-term-sheet.txt").read_bytes()
    saved, linked = capture.record["attachments"]
    assert (saved["name"], saved["sha256"], saved["size"]) == ("term-sheet.txt", sha256_hex(data), len(data))
    assert capture.blobs == {sha256_hex(data): data}
    assert (linked["name"], linked["sha256"], linked["size"]) == ("signed.pdf", None, 90210)
    assert linked["url"].endswith("/signed.pdf")


def test_direct_and_group_messages_name_every_member(captures: dict[str, Capture]) -> None:
    """In a DM the other member is a 'member' recipient with the address from users.json; in a group DM, every other."""
    dm = captures["D20ALZO/2026-11-02.json#0"].record
    assert [(r["role"], r["address"]) for r in dm["recipients"]] == [("member", "zoe.mueller@northwind.example")]
    group = captures["mpdm-alice--jose--zoe-1/2026-11-02.json#0"].record
    assert {r["address"] for r in group["recipients"]} == {"alice.archer@northwind.example", "zoe.mueller@northwind.example"}
    channel = captures["deals/2026-11-02.json#1"].record
    assert [r["role"] for r in channel["recipients"]] == ["mention"]


def test_reread_gives_the_same_events() -> None:
    """Two passes give the same uids, versions and raws: a re-ingest adds nothing."""
    first = [(c.record["message_uid"], c.record["version"], c.raw) for c in SlackExportSource(EXPORT)]
    assert first == [(c.record["message_uid"], c.record["version"], c.raw) for c in SlackExportSource(EXPORT)]


def test_garbled_edit_time_keeps_the_message_with_the_edit_time_unknown(tmp_path: Path) -> None:
    """An `edited` whose ts is not a Slack timestamp still yields both versions; the edit's time is unknown."""
    import shutil

    from producers.chat.snapshot import TIMELESS_EDIT

    export = Path(shutil.copytree(EXPORT, tmp_path / "export"))
    (export / "deals" / "2026-11-09.json").write_text(
        '[{"user": "U01ALICE", "text": "v2", "ts": "1794211200.000001", "edited": {"user": "U01ALICE", "ts": "soon"}}]')
    found = [c.record for c in SlackExportSource(export) if c.position.startswith("deals/2026-11-09.json")]
    assert [(r["event_type"], r["version"], r["body_text"], r["event_at"], r["flags"]) for r in found] == [
        ("created", 1, None, None, ["original-text-unavailable"]), ("edited", TIMELESS_EDIT, "v2", None, ["time-unknown"])]
