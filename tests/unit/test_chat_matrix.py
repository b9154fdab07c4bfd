"""MatrixEventsSource against a hand-written /messages response (tests/fixtures/chat/matrix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producers.chat import canonical_json
from producers.chat.matrix import MatrixEventsSource
from schemas.records import chat_uid
from strongroom.errors import InputError
from tests.chat_checks import check_event_model, kinds, same_output

FIXTURE = Path(__file__).parent.parent / "fixtures" / "chat" / "matrix" / "messages-dir-b.json"
ROOM = "!ops:strongroom.test"


def _by_event(captures):
    return {json.loads(c.raw).get("event_id"): c.record for c in captures}


def test_every_event_is_one_record_with_exact_counts():
    """15 events in: 8 created, 2 edited, 1 deleted, 3 reactions, 1 quarantined (no event_id)."""
    captures = list(MatrixEventsSource(FIXTURE))
    assert len(captures) == len(json.loads(FIXTURE.read_text())["chunk"])
    assert kinds(captures) == {"created": 8, "edited": 2, "deleted": 1, "reaction": 3, "quarantined": 1}
    check_event_model(captures)


def test_edits_reactions_and_redactions_version_the_original_in_time_order():
    """/messages dir=b lists newest first; versions still follow origin_server_ts."""
    records = _by_event(MatrixEventsSource(FIXTURE))
    uid = chat_uid("matrix", "strongroom.test", ROOM, "$m1")
    history = [(records[e]["event_type"], records[e]["version"], records[e]["body_text"]) for e in
               ("$m1", "$e1", "$r1", "$x1", "$e2")]
    assert history == [("created", 1, "Grüße aus Köln 🙂"), ("edited", 2, "Grüße aus Köln, Bob 🙂"),
                       ("reaction", 3, "👍"), ("reaction", 4, "👍"), ("edited", 5, "Grüße aus Köln, Bob und Carol 🙂")]
    assert {records[e]["message_uid"] for e in ("$m1", "$e1", "$r1", "$x1", "$e2")} == {uid}
    assert records["$x1"]["flags"] == ["reaction-removed"]
    assert records["$r1"]["sender"] == {"user_id": "@bob:strongroom.test", "name": "Bob 東京", "address": None}
    assert records["$e1"]["sent_at"] == records["$m1"]["sent_at"] < records["$e1"]["event_at"]


def test_redaction_is_a_deletion_that_keeps_the_text_and_reason():
    """A redacted message stays findable: the deleted record keeps the last text, the time and the reason."""
    records = _by_event(MatrixEventsSource(FIXTURE))
    deleted = records["$x2"]
    assert (deleted["event_type"], deleted["version"], deleted["message_id"]) == ("deleted", 2, "$m2")
    assert deleted["body_text"] == "Das Passwort ist hunter2"
    assert {"name": "matrix.reason", "value": "versehentlich"} in deleted["headers"]


def test_threads_files_emotes_membership_and_unknown_targets():
    """Thread replies point at the root; files are mxc links; joins are system lines; orphans are kept."""
    records = _by_event(MatrixEventsSource(FIXTURE))
    reply = records["$t1"]
    assert reply["thread_id"] == "$m1" and reply["flags"] == ["thread-reply"]
    assert reply["parent_uid"] == chat_uid("matrix", "strongroom.test", ROOM, "$m1")
    assert records["$f1"]["attachments"] == [{"name": "Bericht-Ü.pdf", "content_type": "application/pdf", "size": 48213,
                                              "sha256": None, "url": "mxc://strongroom.test/AbCdEf", "text": None}]
    assert records["$em"]["body_text"] == "* winkt"
    assert (records["$join-b"]["body_text"], records["$join-b"]["flags"]) == ("Bob 東京 joined", ["system"])
    assert records["$leave-b"]["body_text"] == "Bob 東京 left"
    orphan = records["$r2"]
    assert (orphan["event_type"], orphan["version"], orphan["flags"]) == ("reaction", 2, ["original-missing"])
    assert orphan["workspace"] == "strongroom.test" and orphan["channel"] == ROOM


def test_raw_is_the_canonical_event_and_a_second_read_is_identical():
    """The stored original is the event's canonical JSON; reading again gives the same identities."""
    first, second = list(MatrixEventsSource(FIXTURE)), list(MatrixEventsSource(FIXTURE))
    events = {e.get("event_id"): e for e in json.loads(FIXTURE.read_text())["chunk"]}
    assert all(c.raw == canonical_json(events[json.loads(c.raw).get("event_id")]).encode() for c in first)
    assert same_output(first, second)


def test_sync_response_and_json_lines_are_read(tmp_path):
    """A /sync response gives rooms by key; JSON lines give one event per line."""
    chunk = json.loads(FIXTURE.read_text())["chunk"][::-1][:4]
    for event in chunk:
        event.pop("room_id")
    sync = {"next_batch": "s1", "rooms": {"join": {ROOM: {"timeline": {"events": chunk}, "ephemeral": {"events": [{"type": "m.typing"}]}}}}}
    (tmp_path / "sync.json").write_text(json.dumps(sync))
    records = [c.record for c in MatrixEventsSource(tmp_path / "sync.json")]
    assert [(r["conversation_id"], r["event_type"], r["version"]) for r in records] == [
        (ROOM, "created", 1), (ROOM, "created", 1), (ROOM, "created", 1), (ROOM, "edited", 2)]
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(json.dumps(e | {"room_id": ROOM}) for e in chunk) + "\n")
    assert len(list(MatrixEventsSource(lines))) == 4


def test_bad_input_is_quarantined_or_refused(tmp_path):
    """A file that is not JSON is kept quarantined; a missing path is an InputError."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    [capture] = list(MatrixEventsSource(bad))
    assert capture.quarantined and capture.raw == b"{not json"
    with pytest.raises(InputError):
        MatrixEventsSource(tmp_path / "missing.json")


def test_an_edit_of_a_thread_reply_stays_in_the_thread(tmp_path):
    """Later versions of a thread reply keep its thread, though the edit event does not name it."""
    events = json.loads(FIXTURE.read_text())["chunk"][::-1]
    reply = next(e for e in events if e.get("event_id") == "$t1")
    edit = {**reply, "event_id": "$t1e", "origin_server_ts": reply["origin_server_ts"] + 1,
            "content": {"msgtype": "m.text", "body": "* korrigiert", "m.new_content": {"msgtype": "m.text", "body": "korrigiert"},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": "$t1"}}}
    (tmp_path / "thread.json").write_text(json.dumps([reply, edit]))
    created, edited = (c.record for c in MatrixEventsSource(tmp_path / "thread.json"))
    assert (edited["event_type"], edited["version"], edited["thread_id"]) == ("edited", 2, "$m1")
    assert edited["parent_uid"] == created["parent_uid"]
