"""SlackExportSource against a small hand-written export in tests/fixtures/slack."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import Capture
from producers.chat.slack import SlackExportSource
from schemas.records import chat_uid, sha256_hex
from strongroom.errors import InputError
from tests.conftest import assert_fits_schema

EXPORT = Path(__file__).parent.parent / "fixtures" / "slack"
TEAM = "T0STRONG"


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return {c.position: c for c in SlackExportSource(EXPORT)}


def _header(capture: Capture, name: str) -> str | None:
    values = [h["value"] for h in capture.record["headers"] if h["name"] == name]
    return values[0] if values else None


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _copy_export(tmp_path: Path, name: str = "export") -> Path:
    return Path(shutil.copytree(EXPORT, tmp_path / name))


def test_every_message_and_broken_item_is_yielded_in_order() -> None:
    """Each day-file entry, and the broken day file, yields its events, by channel, day, then index."""
    positions = [c.position for c in SlackExportSource(EXPORT)]
    assert positions == [
        "general/2024-03-01.json#0", "general/2024-03-01.json#1", "general/2024-03-01.json#1/reaction/+1/U02JOSE",
        "general/2024-03-01.json#2", "general/2024-03-01.json#2/edited",
        "general/2024-03-01.json#3", "general/2024-03-01.json#4", "general/2024-03-02.json",
        "random/2024-03-01.json#0", "random/2024-03-01.json#1", "random/2024-03-01.json#2",
        "random/2024-03-01.json#3", "random/2024-03-01.json#4",
    ]


def test_message_identity_time_and_place(captures: dict[str, Capture]) -> None:
    """A message's uid, ids, channel and microsecond-exact UTC time come from the export."""
    record = captures["general/2024-03-01.json#1"].record
    assert record["message_uid"] == chat_uid("slack", TEAM, "C01GENERAL", "1709283600.123456")
    assert record["message_id"] == "1709283600.123456"
    assert record["sent_at"] == datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
    assert (record["kind"], record["platform"], record["workspace"]) == ("chat", "slack", TEAM)
    assert (record["conversation_id"], record["channel"]) == ("C01GENERAL", "general")
    assert (record["event_type"], record["version"], record["parse_status"]) == ("created", 1, "ok")
    assert record["source"] == str(EXPORT) and record["source_position"] == "general/2024-03-01.json#1"


def test_markup_is_rendered_and_mentions_become_recipients(captures: dict[str, Capture]) -> None:
    """Channel links, labelled links, entities and user mentions read as a person sees them."""
    record = captures["general/2024-03-01.json#1"].record
    assert record["body_text"] == (
        "Release plan for #random, see the plan (https://example.com/plan?a=1&b=2) & ask @José Grüßer")
    assert record["recipients"] == [
        {"role": "mention", "user_id": "U02JOSE", "name": "José Grüßer", "address": "jose@example.com"}]
    assert record["sender"] == {"user_id": "U01ALICE", "name": "Alice Archer", "address": "alice.archer@example.com"}


def test_thread_parent_has_no_thread_id_and_keeps_reactions(captures: dict[str, Capture]) -> None:
    """A thread's root message (thread_ts == ts) is not its own reply; its reactions are kept as compact JSON."""
    record = captures["general/2024-03-01.json#1"].record
    assert record["thread_id"] is None and record["parent_uid"] is None
    assert _header(captures["general/2024-03-01.json#1"], "slack.reactions") == (
        '[{"count":1,"name":"+1","users":["U02JOSE"]}]')


def test_thread_reply_points_at_its_root_and_keeps_edit_and_non_ascii(captures: dict[str, Capture]) -> None:
    """A reply carries thread_id and the root's uid; non-ASCII text (on the edited version) and the edit marker survive."""
    capture = captures["general/2024-03-01.json#2"]
    record = capture.record
    assert record["thread_id"] == "1709283600.123456"
    assert record["parent_uid"] == captures["general/2024-03-01.json#1"].record["message_uid"]
    assert record["body_text"] is None and "original-text-unavailable" in record["flags"]
    assert captures["general/2024-03-01.json#2/edited"].record["body_text"] == "Grüße 東京 — danke @Alice Archer!"
    assert _header(capture, "slack.edited") == '{"ts":"1709283800.000000","user":"U02JOSE"}'
    assert record["sender"]["name"] == "José Grüßer"


def test_raw_is_the_canonical_json_of_the_exported_object(captures: dict[str, Capture]) -> None:
    """raw is the canonical JSON of exactly the exported message, UTF-8 unescaped, and its hash and size match."""
    exported = json.loads((EXPORT / "general" / "2024-03-01.json").read_text("utf-8"))[2]
    capture = captures["general/2024-03-01.json#2"]
    assert capture.raw == _canonical(exported)
    assert "東京".encode() in capture.raw
    assert capture.record["raw_sha256"] == sha256_hex(capture.raw)
    assert capture.record["raw_size"] == len(capture.raw)
    assert capture.path == str(EXPORT) and capture.blobs == {}


def test_join_subtype_is_kept_as_header(captures: dict[str, Capture]) -> None:
    """A channel_join keeps its subtype as header slack.subtype and reads as a sentence."""
    capture = captures["general/2024-03-01.json#0"]
    assert _header(capture, "slack.subtype") == "channel_join"
    assert capture.record["body_text"] == "@Alice Archer has joined the channel"


def test_bot_message_resolves_the_bot_and_keeps_attachment_text(captures: dict[str, Capture]) -> None:
    """A bot post is attributed to its bot user and its attachment text becomes searchable body text."""
    record = captures["general/2024-03-01.json#3"].record
    assert record["sender"] == {"user_id": "U03BOT", "name": "deploybot", "address": None}
    assert record["body_text"] == "Deploy finished\nv1.2 is live on https://prod.example.com"


def test_shared_file_becomes_a_link_attachment(captures: dict[str, Capture]) -> None:
    """A file in "files" becomes an attachment with name, type, size and url but no blob hash."""
    assert captures["general/2024-03-01.json#4"].record["attachments"] == [{
        "name": "q1-report.pdf", "content_type": "application/pdf", "size": 48213, "sha256": None,
        "url": "https://files.slack.com/files-pri/T0STRONG-F01REPORT/q1-report.pdf", "text": None}]


def test_legacy_file_comment_uses_comment_author_and_file(captures: dict[str, Capture]) -> None:
    """Pre-2019 file_comment messages have no user: the author comes from comment.user and the singular file is kept."""
    record = captures["random/2024-03-01.json#1"].record
    assert record["sender"]["user_id"] == "U02JOSE"
    assert [a["name"] for a in record["attachments"]] == ["notes.txt"]
    assert record["body_text"].startswith("@José Grüßer commented on @Alice Archer’s file notes (https://")


def test_special_mention_and_unknown_user(captures: dict[str, Capture]) -> None:
    """<!here> reads as @here, and a user missing from users.json is named from the message's user_profile."""
    assert captures["random/2024-03-01.json#0"].record["body_text"] == "Hello @here"
    sender = captures["random/2024-03-01.json#4"].record["sender"]
    assert sender == {"user_id": "U09GUEST", "name": "Guest Person", "address": None}


def test_broken_day_file_is_quarantined_whole(captures: dict[str, Capture]) -> None:
    """A day file that is not JSON becomes one quarantined capture holding its bytes, dated the file's day."""
    capture = captures["general/2024-03-02.json"]
    data = (EXPORT / "general" / "2024-03-02.json").read_bytes()
    record = capture.record
    assert capture.quarantined and capture.raw == data
    assert record["message_uid"] == "ch-raw-" + sha256_hex(data)[:40]
    assert record["sent_at"] == datetime(2024, 3, 2, tzinfo=timezone.utc)
    assert record["parse_error"].startswith("general/2024-03-02.json is not a JSON array of messages")
    assert "\n" not in record["parse_error"]
    assert (record["channel"], record["conversation_id"], record["workspace"]) == ("general", "C01GENERAL", TEAM)


def test_bad_entries_are_quarantined_with_their_json(captures: dict[str, Capture]) -> None:
    """An entry that is not an object, or has no ts, is quarantined with its canonical JSON as raw."""
    not_object = captures["random/2024-03-01.json#2"]
    no_ts = captures["random/2024-03-01.json#3"]
    assert not_object.quarantined and not_object.raw == _canonical("not a message object")
    assert not_object.record["parse_error"] == "random/2024-03-01.json#2: entry is a JSON string, not a message object"
    assert no_ts.quarantined and no_ts.record["parse_error"] == "random/2024-03-01.json#3: message has no ts"
    assert no_ts.record["sent_at"] == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert no_ts.record["message_uid"] == "ch-raw-" + sha256_hex(no_ts.raw)[:40]


def test_zip_reads_the_same_as_the_folder(tmp_path: Path) -> None:
    """A flat .zip of the export yields the same positions, raws and records as the folder, apart from source."""
    archive = Path(shutil.make_archive(str(tmp_path / "export"), "zip", EXPORT))
    folder = list(SlackExportSource(EXPORT))
    zipped = list(SlackExportSource(archive))
    assert [(c.position, c.raw) for c in zipped] == [(c.position, c.raw) for c in folder]
    assert [c.record | {"source": None, "sent_at": None} for c in zipped] == [
        c.record | {"source": None, "sent_at": None} for c in folder]
    assert zipped[0].record["source"] == str(archive)


def test_zip_with_top_folder_and_mac_junk(tmp_path: Path) -> None:
    """A zip holding the export inside one folder is read, and macOS junk entries are not taken for messages."""
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(EXPORT.rglob("*.json")):
            zf.write(file, "Strong Export/" + file.relative_to(EXPORT).as_posix())
        # What macOS adds: AppleDouble files beside real ones, and a __MACOSX mirror folder.
        zf.writestr("Strong Export/general/._2024-03-01.json", b"\x00\x05\x16\x07")
        zf.writestr("Strong Export/__MACOSX/2024-03-01.json", b"\x00\x05\x16\x07")
    positions = [c.position for c in SlackExportSource(archive)]
    assert positions == [c.position for c in SlackExportSource(EXPORT)]


def test_unlisted_folder_is_still_read(tmp_path: Path) -> None:
    """A conversation folder missing from channels.json is read with its folder name as id."""
    export = _copy_export(tmp_path)
    (export / "secret").mkdir()
    (export / "secret" / "2024-03-05.json").write_text(
        '[{"user": "U01ALICE", "text": "psst", "ts": "1709600000.000001"}]')
    captured = [c for c in SlackExportSource(export) if c.position.startswith("secret/")]
    assert [(c.record["conversation_id"], c.record["channel"], c.record["body_text"]) for c in captured] == [
        ("secret", "secret", "psst")]


def test_workspace_falls_back_to_message_team_then_export_name(tmp_path: Path) -> None:
    """Without team_id in users.json the first message team is used, and without any team the export's name."""
    export = _copy_export(tmp_path, "acme-2024")
    users = json.loads((export / "users.json").read_text("utf-8"))
    for user in users:
        del user["team_id"]
    (export / "users.json").write_text(json.dumps(users))
    assert {c.record["workspace"] for c in SlackExportSource(export)} == {TEAM}
    day = export / "general" / "2024-03-01.json"
    day.write_text(day.read_text("utf-8").replace('"team": "T0STRONG",', ""), "utf-8")
    assert {c.record["workspace"] for c in SlackExportSource(export)} == {"acme-2024"}


def test_numeric_ts_is_read_and_bad_ts_is_quarantined(tmp_path: Path) -> None:
    """A ts written as a JSON number still parses; a ts that is not a Slack timestamp or out of range is quarantined."""
    export = _copy_export(tmp_path)
    (export / "random" / "2024-03-09.json").write_text(
        '[{"user": "U01ALICE", "text": "x", "ts": "yesterday"}, {"user": "U01ALICE", "text": "y", "ts": 1709942400.25},'
        ' {"user": "U01ALICE", "text": "z", "ts": "99999999999999999999.1"}]')
    bad, numeric, huge = [c for c in SlackExportSource(export) if c.position.startswith("random/2024-03-09.json")]
    assert bad.quarantined and "'yesterday' is not a Slack timestamp" in bad.record["parse_error"]
    assert huge.quarantined and huge.record["parse_error"].endswith("is out of range")
    assert numeric.record["message_id"] == "1709942400.25"
    assert numeric.record["sent_at"] == datetime(2024, 3, 9, 0, 0, 0, 250000, tzinfo=timezone.utc)


def test_iteration_is_repeatable() -> None:
    """Two passes over the same export give the same uids and raws in the same order."""
    first = [(c.record["message_uid"], c.raw) for c in SlackExportSource(EXPORT)]
    assert first == [(c.record["message_uid"], c.raw) for c in SlackExportSource(EXPORT)]


def test_missing_path_is_refused(tmp_path: Path) -> None:
    """A path that does not exist raises InputError naming it."""
    with pytest.raises(InputError, match="does not exist"):
        SlackExportSource(tmp_path / "nowhere.zip")


def test_folder_without_conversation_lists_is_refused(tmp_path: Path) -> None:
    """A folder with no channels.json (or groups/mpims/dms) is not a Slack export."""
    (tmp_path / "users.json").write_text("[]")
    with pytest.raises(InputError, match="is not a Slack export: it has none of channels.json"):
        SlackExportSource(tmp_path)


def test_plain_file_and_zip_without_export_are_refused(tmp_path: Path) -> None:
    """A file that is not a zip, and a zip without channels.json, raise InputError."""
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="neither a folder nor a .zip"):
        SlackExportSource(text)
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.md", "hi")
    with pytest.raises(InputError, match="is not a Slack export"):
        SlackExportSource(archive)


def test_corrupt_users_json_is_refused(tmp_path: Path) -> None:
    """A users.json that is not JSON raises InputError instead of silently losing every name."""
    export = _copy_export(tmp_path)
    (export / "users.json").write_text("[{")
    with pytest.raises(InputError, match="users.json is not valid JSON"):
        SlackExportSource(export)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.from_regex(r"[0-9]{10}\.[0-9]{6}", fullmatch=True) | st.sampled_from(["<@U01>", "<#C1|x>", "<a|b>", "&amp;"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(["ts", "thread_ts", "user", "bot_id", "username", "text", "files", "file", "attachments",
                         "reactions", "edited", "subtype", "comment", "user_profile", "bot_profile", "team"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(_keys, _json, max_size=8) | _json, max_size=4))
def test_any_day_file_entries_are_each_accounted_for(tmp_path_factory: pytest.TempPathFactory,
                                                     entries: list[Any]) -> None:
    """Whatever a day file's array holds, each entry yields its captures, the first at its own position, and nothing raises."""
    export = tmp_path_factory.mktemp("fuzz")
    (export / "channels.json").write_text('[{"id": "C1", "name": "c"}]')
    (export / "c").mkdir()
    (export / "c" / "2024-01-01.json").write_text(json.dumps(entries), "utf-8")
    captures = [c for c in SlackExportSource(export) if "/" not in c.position.split("#")[1]]
    assert [c.position for c in captures] == [f"c/2024-01-01.json#{i}" for i in range(len(entries))]
    assert [c.raw for c in captures] == [_canonical(e) for e in entries]


def test_every_capture_fits_the_communication_schema(captures: dict[str, Capture]) -> None:
    """Each record has exactly the schema's fields but ingested_at, and encodes as Avro once that is stamped."""
    assert_fits_schema(captures.values())
