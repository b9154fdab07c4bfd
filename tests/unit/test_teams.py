"""TeamsSource on tests/fixtures/chat/teams: a Graph page, JSON lines of chat messages, a PascalCase tenant export."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from producers.capture import Capture
from producers.chat.html_text import html_to_text
from producers.chat.teams import TeamsSource
from schemas.records import chat_uid
from strongroom.errors import InputError
from tests.conftest import assert_fits_schema

FIXTURE = Path(__file__).parent.parent / "fixtures" / "chat" / "teams"
TEAM = "7f1e2d3c-4b5a-4968-8776-655443322110"
CHANNEL = "19:deals0c0ffee@thread.tacv2"
TENANT_FILE = "tenant-export/messages_00c0ffee-1111-4222-8333-444455556666.json"


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return {c.position: c for c in TeamsSource(FIXTURE)}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_every_event_is_accounted_for(captures: dict[str, Capture]) -> None:
    """11 messages, 2 broken lines: 11 created, 2 edits, 3 deletions, 6 reactions (one taken back), 2 quarantined."""
    assert Counter((c.record["event_type"], c.record["parse_status"]) for c in captures.values()) == {
        ("created", "ok"): 11, ("edited", "ok"): 2, ("deleted", "ok"): 3, ("reaction", "ok"): 6,
        ("created", "quarantined"): 2}
    assert len({(c.record["message_uid"], c.record["version"]) for c in captures.values()}) == len(captures)
    assert_fits_schema(captures.values())


def test_edited_message_html_mentions_and_subject(captures: dict[str, Capture]) -> None:
    """lastEditedDateTime: v1 without text (flagged), the edit with the HTML read as text, 7-digit fractions read."""
    first = captures["channel-page.json#0"].record
    edit = captures["channel-page.json#0/edited"].record
    assert first["message_uid"] == chat_uid("teams", TEAM, CHANNEL, "1793692800000")
    assert (first["body_text"], first["flags"]) == (None, ["original-text-unavailable"])
    assert edit["body_text"] == "Quarterly numbers für Zoë & José Álvarez — 数字 final?"
    assert edit["event_at"] == datetime(2026, 11, 3, 8, 5, 30, 123456, tzinfo=timezone.utc)
    assert edit["version"] == 2 + 330 and edit["sent_at"] == first["sent_at"] == _utc("2026-11-03T08:00:00")
    assert (edit["subject"], edit["headers"]) == ("Q4 close", [{"name": "teams.importance", "value": "high"},
                                                               {"name": "teams.messagetype", "value": "message"}])
    assert [(r["role"], r["address"]) for r in edit["recipients"]] == [("mention", "jose@contoso.example")]
    assert edit["sender"] == {"user_id": "a1b2c3d4-0000-4000-8000-00000000a11c", "name": "Alice Archer",
                              "address": "alice.archer@northwind.example"}


def test_reactions_have_their_own_time_and_person(captures: dict[str, Capture]) -> None:
    """Each reaction: its type as text, the reacting user (resolved by usersList.json) as sender, its time;
    one taken back (messageHistory) is its add and its removal, the same one listed twice is one."""
    reactions = sorted((c.record["event_at"], c.record["body_text"], c.record["sender"]["address"], c.record["flags"])
                       for p, c in captures.items() if p.startswith("channel-page.json#0/reaction/"))
    assert reactions == [(_utc("2026-11-03T08:01:00"), "like", "jose@contoso.example", []),
                         (_utc("2026-11-03T08:02:00"), "heart", "zoe.mueller@northwind.example", []),
                         (_utc("2026-11-03T08:03:00"), "laugh", "zoe.mueller@northwind.example", []),
                         (_utc("2026-11-03T08:04:00"), "laugh", "zoe.mueller@northwind.example", ["reaction-removed"])]


def test_replies_nested_or_by_reply_to_id_point_at_the_root(captures: dict[str, Capture]) -> None:
    """A nested reply and a replyToId reply both carry the root's thread and uid and the thread-reply flag."""
    root = captures["channel-page.json#0"].record["message_uid"]
    for position in ("channel-page.json#0/replies/0", "channel-page.json#1", f"{TENANT_FILE}#1"):
        record = captures[position].record
        assert "thread-reply" in record["flags"]
        if position.startswith("channel"):
            assert (record["thread_id"], record["parent_uid"]) == ("1793692800000", root)
    assert captures["channel-page.json#0/replies/0"].record["body_text"] == "Ja, alles final. 👍"


def test_reference_attachment_is_a_link(captures: dict[str, Capture]) -> None:
    """A reference attachment keeps name, type guessed from the name, and contentUrl; the bytes are not in the export."""
    assert captures["channel-page.json#1"].record["attachments"] == [{
        "name": "forecast.xlsx", "content_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "size": None, "sha256": None, "url": "https://northwind.sharepoint.com/sites/Deals/Shared Documents/forecast.xlsx",
        "text": None}]


def test_soft_deleted_message_keeps_its_text_and_deletion_time(captures: dict[str, Capture]) -> None:
    """deletedDateTime with the body still exported: created with the text, deleted at that time with the same text."""
    created, deleted = captures["channel-page.json#2"].record, captures["channel-page.json#2/deleted"].record
    assert created["body_text"] == deleted["body_text"] == "Bitte löschen: Nebenabrede mit Contoso"
    assert (deleted["event_at"], deleted["version"]) == (_utc("2026-11-03T09:00:00"), 2 + 3300)


def test_deleted_without_body_says_the_text_is_unavailable(captures: dict[str, Capture]) -> None:
    """A deleted chat message exported with an empty body: both records flagged original-text-unavailable."""
    for position in ("chats.jsonl:3#0", "chats.jsonl:3#0/deleted"):
        record = captures[position].record
        assert record["body_text"] is None and "original-text-unavailable" in record["flags"]


def test_bots_and_system_events(captures: dict[str, Capture]) -> None:
    """from.application is a bot; a systemEventMessage reads as its event and is attributed to its initiator."""
    bot = captures["channel-page.json#3"].record
    assert (bot["sender"]["name"], bot["flags"], bot["body_text"]) == ("Deal Bot", ["bot"], "Deal Contoso moved to closing")
    system = captures["channel-page.json#4"].record
    assert (system["body_text"], system["flags"]) == ("membersAdded: Zoë Müller", ["system"])
    assert system["sender"]["address"] == "alice.archer@northwind.example"


def test_chat_members_seen_writing_are_recipients(captures: dict[str, Capture]) -> None:
    """In a 1:1 chat the other person seen in it is a member recipient, so 'X to Y' is answerable."""
    record = captures["chats.jsonl:1#0"].record
    assert record["workspace"] is None and record["conversation_id"] == "19:alice_zoe@unq.gbl.spaces"
    assert [(r["role"], r["address"]) for r in record["recipients"]] == [("member", "zoe.mueller@northwind.example")]


def test_broken_lines_are_quarantined_with_their_bytes(captures: dict[str, Capture]) -> None:
    """A cut-off line and a message without id are quarantined, each naming its line."""
    cut, no_id = captures["chats.jsonl:4"], captures["chats.jsonl:5#0"]
    assert cut.quarantined and cut.raw.startswith(b'{"id": "1793700180000"')
    assert cut.record["parse_error"].startswith("chats.jsonl line 4 is not JSON")
    assert no_id.quarantined and no_id.record["parse_error"] == "chats.jsonl:5#0: message has no id"
    assert no_id.record["sent_at"] == _utc("2026-11-03T10:04:00")


def test_pascal_case_tenant_export_reads_like_graph(captures: dict[str, Capture]) -> None:
    """The tenant export: channel name from channels_*.json, edited and deleted events, reaction, address from Mail."""
    created = captures[f"{TENANT_FILE}#0"].record
    assert (created["channel"], created["subject"], created["body_text"]) == ("Général", "Pricing", None)
    deleted = captures[f"{TENANT_FILE}#0/deleted"].record
    assert deleted["body_text"] == "Prix révisé: 11,5 M€ (était 10,5)"
    assert deleted["event_at"] == _utc("2026-11-04T09:00:00")
    assert captures[f"{TENANT_FILE}#0/edited"].record["version"] < deleted["version"]


def test_raw_is_the_exported_object(captures: dict[str, Capture]) -> None:
    """Every event of a message keeps the canonical JSON of the exported object, original key case included."""
    exported = json.loads((FIXTURE / TENANT_FILE).read_text("utf-8"))[0]
    canonical = json.dumps(exported, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert {c.raw for p, c in captures.items() if p.startswith(f"{TENANT_FILE}#0")} == {canonical}


def test_single_object_page_array_and_users_option(tmp_path: Path) -> None:
    """A file with one message object reads, and --users resolves an address the message does not carry."""
    page = json.loads((FIXTURE / "channel-page.json").read_text("utf-8"))
    (tmp_path / "one.json").write_text(json.dumps(page["value"][3]), "utf-8")
    (tmp_path / "users.json").write_text("[]", "utf-8")
    assert [c.record["event_type"] for c in TeamsSource(tmp_path / "one.json")] == ["created"]
    users = tmp_path / "people.json"
    users.write_text(json.dumps({"value": [{"id": "b07-dea1", "displayName": "Deal Bot", "mail": "bot@northwind.example"}]}))
    message = dict(page["value"][0], reactions=[], lastEditedDateTime=None)
    (tmp_path / "two.json").write_text(json.dumps([message]), "utf-8")
    people = TeamsSource(tmp_path / "two.json", users=users).people
    assert people["b07-dea1"] == ("Deal Bot", "bot@northwind.example")


def test_cut_off_json_file_is_quarantined_whole(tmp_path: Path) -> None:
    """A pretty-printed file cut short is one quarantined item, not one per line."""
    (tmp_path / "cut.json").write_text('{\n "value": [\n  {"id": "1"', "utf-8")
    found = list(TeamsSource(tmp_path))
    assert len(found) == 1 and found[0].quarantined and found[0].position == "cut.json"


def test_missing_path_and_empty_folder_are_refused(tmp_path: Path) -> None:
    """A path that does not exist, or a folder without message files, is an InputError."""
    with pytest.raises(InputError, match="does not exist"):
        TeamsSource(tmp_path / "nowhere")
    with pytest.raises(InputError, match="holds no Teams message files"):
        TeamsSource(tmp_path)


def test_html_to_text_reads_blocks_entities_and_emoji() -> None:
    """Blocks become lines, entities decode, emoji become their alt text, scripts vanish."""
    html = '<div>Hallo&nbsp;<b>Zoë</b><br>zweite Zeile <emoji alt="👍"></emoji><customemoji alt="tick"></customemoji></div><script>x()</script>'
    assert html_to_text(html) == "Hallo Zoë\nzweite Zeile 👍:tick:"
