"""IrcLogSource against hand-written logs (tests/fixtures/chat/irc) in the common client shapes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from producers.chat.irc import IrcLogSource
from strongroom.errors import InputError
from tests.chat_checks import check_event_model, kinds, same_output

LOGS = Path(__file__).parent.parent / "fixtures" / "chat" / "irc"


def test_irssi_log_with_day_lines():
    """8 lines said or done (3 bookkeeping lines skipped): 7 records, 1 quarantined; days from the log."""
    captures = list(IrcLogSource(LOGS / "#strongroom.log"))
    assert kinds(captures) == {"created": 7, "quarantined": 1}
    check_event_model(captures)
    records = [c.record for c in captures if not c.quarantined]
    assert [(r["sent_at"].isoformat(), r["sender"]["name"], r["flags"]) for r in records] == [
        ("2026-11-02T09:00:00+00:00", "alice", ["system"]), ("2026-11-02T09:01:00+00:00", "alice", []),
        ("2026-11-02T09:01:00+00:00", "bob", []), ("2026-11-02T09:02:00+00:00", "bob", ["action"]),
        ("2026-11-02T09:02:00+00:00", "alice", []), ("2026-11-02T09:03:00+00:00", "bob", ["system"]),
        ("2026-11-03T10:00:00+00:00", "alice", [])]
    assert records[1]["body_text"] == "Grüße aus Köln 🙂" and records[0]["channel"] == "#strongroom"
    assert len({r["message_uid"] for r in records}) == 7


def test_weechat_log_and_options():
    """WeeChat's tab-separated lines; --channel and --network name the conversation."""
    captures = list(IrcLogSource(LOGS / "weechat", channel="#strongroom", network="libera"))
    assert [(c.record["sender"]["name"], c.record["flags"], c.record["body_text"]) for c in captures] == [
        ("alice", ["system"], "alice (~alice@host.example) has joined #strongroom"), ("alice", [], "Hallo 🙂 zusammen"),
        ("bob", ["action"], "lacht"), ("bob", ["system"], "bob (~bob@host.example) has quit (Ping timeout)")]
    assert {(c.record["workspace"], c.record["conversation_id"]) for c in captures} == {("libera", "#strongroom")}


def test_textual_offsets_and_bracketed_clock(tmp_path):
    """Textual's own offsets are honoured; a [HH:MM] log takes its date from the file name."""
    log = tmp_path / "textual.txt"
    log.write_text("[2021-04-22T10:01:04+0200] <MasterDuke> any objections?\n"
                   "[2021-04-22T10:01:33+0200] • sena_kun: still waits\n"
                   "[2021-04-23T01:48:02+0200] lizmat changed the topic to Grüße\n", encoding="utf-8")
    records = [c.record for c in IrcLogSource(log, channel="#raku")]
    assert [(r["sent_at"].isoformat(), r["flags"]) for r in records] == [
        ("2021-04-22T08:01:04+00:00", []), ("2021-04-22T08:01:33+00:00", ["action"]), ("2021-04-22T23:48:02+00:00", ["system"])]
    named = list(IrcLogSource(LOGS / "2026-11-05"))
    assert [c.record["sent_at"].isoformat() for c in named] == ["2026-11-05T09:00:00+00:00", "2026-11-05T09:01:00+00:00"]


def test_missing_date_needs_the_option(tmp_path):
    """A log whose lines and name have no date stops with an error naming --date, and works with it."""
    log = tmp_path / "channel.log"
    log.write_text("[09:00] <ann> hi\n")
    with pytest.raises(InputError, match="--date"):
        list(IrcLogSource(log))
    [capture] = list(IrcLogSource(log, day=date(2026, 1, 2)))
    assert capture.record["sent_at"].isoformat() == "2026-01-02T09:00:00+00:00"


def test_reads_repeat():
    """The same logs read twice give the same identities, so a re-ingest adds nothing."""
    assert same_output(list(IrcLogSource(LOGS, channel="#strongroom")), list(IrcLogSource(LOGS, channel="#strongroom")))


def test_identity_does_not_depend_on_the_time_zone_given():
    """Reading the same log with another --timezone moves the times, not the identities."""
    from zoneinfo import ZoneInfo

    utc = list(IrcLogSource(LOGS / "#strongroom.log"))
    berlin = list(IrcLogSource(LOGS / "#strongroom.log", zone=ZoneInfo("Europe/Berlin")))
    assert [c.record["message_uid"] for c in utc] == [c.record["message_uid"] for c in berlin]
    assert utc[1].record["sent_at"] != berlin[1].record["sent_at"]
