"""XmppFileSource against hand-written stanza files (tests/fixtures/chat/xmpp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.chat.xmpp import XmppFileSource
from schemas.records import chat_uid
from strongroom.errors import InputError
from tests.chat_checks import check_event_model, kinds, same_output

FIXTURES = Path(__file__).parent.parent / "fixtures" / "chat" / "xmpp"
PAIR = "alice@strongroom.test bob@strongroom.test"
ROOM = "ops@conference.strongroom.test"


def _records(name: str) -> dict[str, dict]:
    return {c.position: c.record for c in XmppFileSource(FIXTURES / name)}


def test_every_message_stanza_is_one_record_with_exact_counts():
    """13 message stanzas (a presence is not a message): 7 created, 2 edited, 2 deleted, 2 reactions."""
    captures = list(XmppFileSource(FIXTURES / "stream.xml"))
    assert (FIXTURES / "stream.xml").read_text().count("<message ") == len(captures) == 13
    assert kinds(captures) == {"created": 7, "edited": 2, "deleted": 2, "reaction": 2}
    check_event_model(captures)


def test_correction_reaction_and_retraction_version_the_message():
    """XEP-0308, XEP-0444 and XEP-0424 all land on the original's identity, in order."""
    records = _records("stream.xml")
    uid = chat_uid("xmpp", None, PAIR, "c1")
    assert [(records[f"stanza#{n}"]["message_uid"], records[f"stanza#{n}"]["event_type"], records[f"stanza#{n}"]["version"],
             records[f"stanza#{n}"]["body_text"]) for n in (1, 2, 4)] == [
        (uid, "created", 1, "Grüße, Bob — 東京"), (uid, "edited", 2, "Grüße, Bob — Tokyo"), (uid, "reaction", 3, "👍 ❤️")]
    assert records["stanza#4"]["sender"]["address"] == "bob@strongroom.test"
    deleted = records["stanza#6"]
    assert (deleted["message_id"], deleted["event_type"], deleted["version"]) == ("c5", "deleted", 2)
    assert deleted["body_text"] == "Falsche Nachricht, Kontonummer 1234"
    assert deleted["event_at"].isoformat() == "2026-11-02T09:05:00+00:00"


def test_group_chat_uses_stanza_id_aliases_and_occupant_identity():
    """A room reaction and retraction point at the room's stanza-id; they reach the message sent as g1."""
    records = _records("stream.xml")
    assert [(records[f"stanza#{n}"]["message_id"], records[f"stanza#{n}"]["event_type"], records[f"stanza#{n}"]["version"])
            for n in (9, 10, 11)] == [("g1", "created", 1), ("g1", "reaction", 2), ("g1", "deleted", 3)]
    first = records["stanza#9"]
    assert (first["conversation_id"], first["workspace"]) == (ROOM, "conference.strongroom.test")
    assert first["sender"] == {"user_id": f"{ROOM}/Alice", "name": "Alice", "address": "alice@strongroom.test"}
    assert records["stanza#12"]["body_text"] == "subject: Tägliche Runde" and records["stanza#12"]["flags"] == ["system"]


def test_replies_threads_files_signals_and_orphans():
    """Reply -> parent; thread token kept; oob URL -> link; a chat state is a system record; orphans kept."""
    records = _records("stream.xml")
    reply = records["stanza#3"]
    assert reply["thread_id"] == "th-7" and reply["parent_uid"] == chat_uid("xmpp", None, PAIR, "c1")
    assert records["stanza#7"]["attachments"][0]["url"] == "https://files.strongroom.test/Bericht-Ü.pdf"
    signal = records["stanza#8"]
    assert signal["flags"] == ["system"] and signal["body_text"] is None
    assert {"name": "xmpp.time", "value": "estimated"} in signal["headers"]
    orphan = records["stanza#13"]
    assert (orphan["event_type"], orphan["version"], orphan["flags"]) == ("edited", 2, ["original-missing"])


def test_mam_results_are_unwrapped_with_archive_id_and_tombstones():
    """MAM result pages: the forwarded message, its delay stamp, the archive id; a tombstone is a deletion."""
    captures = list(XmppFileSource(FIXTURES / "mam-page.xml"))
    check_event_model(captures)
    first, tomb = (c.record for c in captures)
    assert first["body_text"] == "Ça va? Ünïcödé 東京" and first["sent_at"].isoformat() == "2026-11-03T10:00:00+00:00"
    assert {"name": "xmpp.archive_id", "value": "arch-1"} in first["headers"]
    assert (tomb["event_type"], tomb["message_id"], tomb["event_at"].isoformat()) == ("deleted", "k2", "2026-11-03T10:05:00+00:00")
    assert b"urn:xmpp:mam:2" in captures[0].raw  # the raw original is the whole result stanza


def test_broken_xml_keeps_what_came_before_and_quarantines_the_rest():
    """A file that stops parsing: the stanza before the break is a record, the rest is kept quarantined."""
    captures = list(XmppFileSource(FIXTURES / "broken.xml"))
    assert kinds(captures) == {"created": 1, "quarantined": 1}
    assert captures[1].raw.startswith(b"<message from='dave@strongroom.test/x' type='chat' id='b2'>")
    assert "line 2" in captures[1].record["parse_error"]


def test_doctype_is_refused_and_reads_are_repeatable(tmp_path):
    """A DOCTYPE (entity expansion) is never parsed; the same file read twice gives the same records."""
    evil = tmp_path / "evil.xml"
    evil.write_text('<!DOCTYPE m [<!ENTITY a "aaaa">]><message id="x"><body>&a;</body></message>')
    [capture] = list(XmppFileSource(evil))
    assert capture.quarantined and "DOCTYPE" in capture.record["parse_error"]
    assert same_output(list(XmppFileSource(FIXTURES / "stream.xml")), list(XmppFileSource(FIXTURES / "stream.xml")))
    with pytest.raises(InputError):
        XmppFileSource(tmp_path / "missing.xml")
