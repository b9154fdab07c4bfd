"""ChatJsonlSource against tests/fixtures/chat/sample.jsonl and the example in docs/chat-jsonl.md."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import Capture
from producers.chat.jsonl import FIELDS, ChatJsonlSource
from schemas.records import chat_uid, sha256_hex
from strongroom.errors import InputError
from tests.conftest import assert_fits_schema

ROOT = Path(__file__).parent.parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "chat" / "sample.jsonl"
DOC = ROOT / "docs" / "chat-jsonl.md"


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return {c.position: c for c in ChatJsonlSource(SAMPLE)}


def _line(number: int) -> bytes:
    return SAMPLE.read_bytes().split(b"\n")[number - 1]


def test_every_non_blank_line_is_one_capture(captures: dict[str, Capture]) -> None:
    """Each non-blank line yields one capture positioned at its 1-based physical line number."""
    assert list(captures) == ["1", "3", "4", "5", "6", "7", "8", "9", "10"]
    assert [p for p, c in captures.items() if c.quarantined] == ["5", "6", "7", "9", "10"]


def test_full_line_maps_every_field(captures: dict[str, Capture]) -> None:
    """A line using every field fills identity, time, people, subject, text, attachments and headers."""
    record = captures["1"].record
    assert record["message_uid"] == chat_uid("slack", "T0STRONG", "C01GENERAL", "1709283600.123456")
    assert (record["platform"], record["workspace"], record["conversation_id"], record["channel"]) == (
        "slack", "T0STRONG", "C01GENERAL", "general")
    assert record["sent_at"] == datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
    assert record["sender"] == {"user_id": "U01ALICE", "name": "Alice Archer", "address": "alice.archer@example.com"}
    assert record["recipients"] == [
        {"role": "cc", "user_id": "U02JOSE", "name": None, "address": None},
        {"role": "mention", "user_id": "U02JOSE", "name": "José Grüßer", "address": None}]
    assert (record["subject"], record["body_text"]) == ("Release", "Release plan, ask @José")
    assert record["attachments"] == [{
        "name": "plan.pdf", "content_type": "application/pdf", "size": 1024, "url": "https://files.example.com/plan.pdf",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "text": None}]
    assert record["headers"] == [{"name": "importance", "value": "high"}, {"name": "reply_count", "value": "1"}]
    assert (record["event_type"], record["version"], record["parse_status"], record["thread_id"]) == (
        "created", 1, "ok", None)


def test_raw_is_the_exact_line(captures: dict[str, Capture]) -> None:
    """raw is the line's bytes without the newline, with matching hash, size and source."""
    capture = captures["1"]
    assert capture.raw == _line(1)
    assert capture.record["raw_sha256"] == sha256_hex(_line(1)) and capture.record["raw_size"] == len(_line(1))
    assert capture.path == capture.record["source"] == str(SAMPLE)
    assert capture.record["source_position"] == "1"


def test_short_forms_string_sender_epoch_time_and_thread(captures: dict[str, Capture]) -> None:
    """A string sender, integer message_id, float epoch time and thread_id are all accepted."""
    record = captures["3"].record
    assert record["sender"] == {"user_id": "Oma", "name": "Oma", "address": None}
    assert record["message_id"] == "42"
    assert record["sent_at"] == datetime(2024, 3, 1, 9, 1, 40, 500000, tzinfo=timezone.utc)
    assert record["thread_id"] == "1709283600.123456"
    assert record["parent_uid"] == chat_uid("whatsapp", None, "family", "1709283600.123456")
    assert record["body_text"] == "Grüße 東京 🙂"
    assert record["channel"] == "family" and record["workspace"] is None


def test_edit_keeps_identity_and_raises_version(captures: dict[str, Capture]) -> None:
    """An edited event has the created message's uid, its own version, and edited_at as a UTC header."""
    record = captures["4"].record
    assert record["message_uid"] == captures["1"].record["message_uid"]
    assert (record["event_type"], record["version"]) == ("edited", 2)
    assert record["headers"] == [{"name": "edited_at", "value": "2024-03-01T09:05:00+00:00"}]


def test_unknown_keys_become_headers(captures: dict[str, Capture]) -> None:
    """Keys the format does not define are kept as jsonl.<key> headers, JSON values compact."""
    record = captures["8"].record
    assert record["parse_status"] == "ok"
    assert record["headers"] == [
        {"name": "jsonl.origin_server_ts", "value": "1709283600000"},
        {"name": "jsonl.unsigned", "value": '{"age":12}'}]


@pytest.mark.parametrize("position, error", [
    ("5", "line 5: Unterminated string"),
    ("6", "line 6: channel is required"),
    ("7", "line 7: sent_at '2024-03-01T09:00:00' has no UTC offset (add Z or +hh:mm)"),
    ("9", "line 9: a line must be a JSON object, not a JSON array"),
    ("10", "line 10: version must be a positive integer (required unless event_type is created), not None"),
])
def test_bad_lines_are_quarantined_with_line_number(captures: dict[str, Capture], position: str, error: str) -> None:
    """Each kind of bad line is quarantined with its exact bytes and an error starting with its line number."""
    capture = captures[position]
    assert capture.quarantined and capture.record["parse_error"].startswith(error)
    assert capture.raw == _line(int(position))
    assert capture.record["message_uid"] == "ch-raw-" + sha256_hex(capture.raw)[:40]


def test_quarantined_line_keeps_readable_time_and_platform(captures: dict[str, Capture]) -> None:
    """A quarantined line whose sent_at and platform are readable keeps them."""
    record = captures["6"].record
    assert record["sent_at"] == datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
    assert record["platform"] == "slack"
    assert captures["9"].record["platform"] == "chat-jsonl"


def test_crlf_bom_and_invalid_utf8(tmp_path: Path) -> None:
    """CRLF endings are not part of raw, a leading BOM is tolerated, and invalid UTF-8 is quarantined."""
    good = b'{"platform":"x","channel":"c","message_id":"1","sent_at":0,"sender":"s"}'
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n" + good.replace(b'"s"', b'"\xff"') + b"\r\n")
    first, second = ChatJsonlSource(path)
    assert not first.quarantined and first.raw == b"\xef\xbb\xbf" + good
    assert first.record["sent_at"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert second.quarantined and second.record["parse_error"].startswith("line 2: 'utf-8' codec can't decode")


def test_wrong_types_are_quarantined_not_raised(tmp_path: Path) -> None:
    """Fields of the wrong type or value quarantine the line with a message naming the field."""
    base = '"platform":"x","channel":"c","message_id":"1","sent_at":0,"sender":"s"'
    lines = [
        '{' + base + ',"event_type":"shouted"}',
        '{' + base + ',"attachments":[{"size":-1}]}',
        '{' + base + ',"attachments":[{"sha256":"abc"}]}',
        '{' + base + ',"mentions":[{"id":"u","role":"boss"}]}',
        '{' + base + ',"text":["a"]}',
        '{' + base + ',"extra":[1]}',
        '{' + base.replace('"sender":"s"', '"sender":{}') + '}',
        '{' + base.replace('"sent_at":0', '"sent_at":1e300') + '}',
        '{' + base + ',"event_type":"reaction","version":1}',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    errors = [c.record["parse_error"] for c in ChatJsonlSource(path)]
    assert errors == [
        "line 1: event_type 'shouted' is not one of created, edited, deleted, reaction",
        "line 2: attachments[0].size must be a byte count, not -1",
        "line 3: attachments[0].sha256 must be 64 hex digits",
        "line 4: mentions[0].role 'boss' is not one of to, cc, bcc, envelope, mention",
        "line 5: text must be a string, not a JSON array",
        "line 6: extra must be an object",
        "line 7: sender needs a string id, name or email",
        "line 8: sent_at 1e+300 is neither ISO 8601 with a UTC offset nor epoch seconds",
        "line 9: version must be 2 or more for an reaction event: version 1 is the created message",
    ]


def test_directory_reads_jsonl_files_sorted(tmp_path: Path) -> None:
    """A folder is read file by file in sorted order, including subfolders, ignoring other extensions."""
    line = '{"platform":"x","channel":"c","message_id":"%s","sent_at":0,"sender":"s"}\n'
    (tmp_path / "b.jsonl").write_text(line % "b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jsonl").write_text(line % "c")
    (tmp_path / "a.jsonl").write_text(line % "a")
    (tmp_path / "notes.txt").write_text(line % "ignored")
    assert [c.record["message_id"] for c in ChatJsonlSource(tmp_path)] == ["a", "b", "c"]


def test_bad_paths_are_refused(tmp_path: Path) -> None:
    """A missing path and a folder without .jsonl files raise InputError."""
    with pytest.raises(InputError, match="does not exist"):
        ChatJsonlSource(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="holds no .jsonl files"):
        ChatJsonlSource(tmp_path)


def test_documented_example_parses_cleanly(tmp_path: Path) -> None:
    """Every line of the example in docs/chat-jsonl.md is accepted, and its edit shares the original's uid."""
    block = re.search(r"```jsonl\n(.*?)```", DOC.read_text("utf-8"), re.S)
    assert block is not None
    path = tmp_path / "example.jsonl"
    path.write_text(block.group(1), "utf-8")
    records = [c.record for c in ChatJsonlSource(path)]
    assert [(r["parse_status"], r["event_type"], r["version"]) for r in records] == [
        ("ok", "created", 1), ("ok", "created", 1), ("ok", "edited", 2), ("ok", "deleted", 3)]
    assert records[0]["message_uid"] == records[2]["message_uid"]
    assert records[1]["parent_uid"] == records[0]["message_uid"]
    assert records[0]["sent_at"] == datetime(2024, 4, 1, 7, 0, tzinfo=timezone.utc)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(sorted(FIELDS) + ["role", "id", "email", "size", "sha256"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=8))
def test_any_json_object_yields_exactly_one_capture(tmp_path_factory: pytest.TempPathFactory,
                                                    item: dict[str, Any]) -> None:
    """Whatever JSON object a line holds, reading it yields one capture and never raises."""
    path = tmp_path_factory.mktemp("fuzz") / "one.jsonl"
    path.write_text(json.dumps(item) + "\n", "utf-8")
    (capture,) = ChatJsonlSource(path)
    assert capture.record["parse_status"] in ("ok", "quarantined")
    assert capture.raw == json.dumps(item).encode()


def test_every_capture_fits_the_communication_schema(captures: dict[str, Capture]) -> None:
    """Each record has exactly the schema's fields but ingested_at, and encodes as Avro once that is stamped."""
    assert_fits_schema(captures.values())
