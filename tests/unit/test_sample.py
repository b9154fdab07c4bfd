"""strongroom.sample: the demo corpus is deterministic, well-formed and as large as it says."""

from __future__ import annotations

import email
import json
import mailbox
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from strongroom.sample import SampleInfo, write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleInfo:
    return write_sample(tmp_path_factory.mktemp("sample"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _parsed(info: SampleInfo) -> list[EmailMessage]:
    """Every mbox entry that has a Message-ID, parsed with the modern policy (the broken one has none)."""
    parsed = [email.message_from_bytes(m.as_bytes(), policy=policy.default) for m in mailbox.mbox(info.mbox)]
    return [m for m in parsed if m["Message-ID"]]


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    """Two runs with the same seed write byte-identical files, and another seed writes different mail."""
    first = write_sample(tmp_path / "a")
    second = write_sample(tmp_path / "b")
    assert first.emails == second.emails and first.chat_messages == second.chat_messages
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(_files(tmp_path / "a")) > 5
    other = write_sample(tmp_path / "c", seed=8)
    assert other.mbox.read_bytes() != first.mbox.read_bytes()


def test_rerun_into_same_folder_leaves_no_stale_days(tmp_path: Path) -> None:
    """A shorter second run into the same folder replaces the first run's day files instead of adding to them."""
    write_sample(tmp_path, chat_days=5)
    info = write_sample(tmp_path, chat_days=2, messages=10)
    days = {p.name for p in info.slack.glob("*/*.json")}
    assert days == {"2026-11-19.json", "2026-11-20.json"}
    assert len(mailbox.mbox(info.mbox)) == 10


def test_mbox_holds_the_promised_number_of_messages(sample: SampleInfo) -> None:
    """The mbox has one From_ separator and one mailbox entry per counted email, one of them broken."""
    data = sample.mbox.read_bytes()
    assert len(re.findall(rb"^From \S+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", data, re.MULTILINE)) == sample.emails
    assert len(mailbox.mbox(sample.mbox)) == sample.emails == 60
    assert sample.broken_emails == 1
    assert len(_parsed(sample)) == sample.emails - sample.broken_emails


def test_broken_message_has_no_header_block(sample: SampleInfo) -> None:
    """Exactly one entry is not a message at all: its first line is binary, not a header field."""
    header = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
    starts = [m.as_bytes().split(b"\n", 1)[0] for m in mailbox.mbox(sample.mbox)]
    assert sum(1 for line in starts if not header.match(line)) == sample.broken_emails


def test_body_lines_starting_with_from_are_quoted(sample: SampleInfo) -> None:
    """A body line "From our side ..." is stored as ">From ..." so it cannot split the mbox."""
    data = sample.mbox.read_bytes()
    assert b"\n>From our side the book" in data
    assert not re.search(rb"^From (?!\S+ \w{3} \w{3} [ \d]\d \d\d:)", data, re.MULTILINE)


def test_threads_reference_existing_message_ids(sample: SampleInfo) -> None:
    """Every In-Reply-To and References id names a message in the mbox, and several threads run 3-6 deep."""
    messages = _parsed(sample)
    ids = [m["Message-ID"] for m in messages]
    assert len(set(ids)) == len(ids)
    assert all(i.endswith("@northwind.example>") for i in ids)
    replies = [m for m in messages if m["In-Reply-To"]]
    assert len(replies) >= 20
    for reply in replies:
        refs = str(reply["References"]).split()
        assert reply["In-Reply-To"] in ids and refs[-1] == reply["In-Reply-To"]
        assert all(ref in ids for ref in refs)
    roots = [str(m["References"]).split()[0] for m in replies]
    deep = [root for root in set(roots) if 3 <= roots.count(root) + 1 <= 6]
    assert len(deep) >= 4


def test_mime_features_survive_parsing(sample: SampleInfo) -> None:
    """Non-ASCII subjects, RFC 2231 file names, HTML alternatives, latin-1 bodies and attachments all decode."""
    messages = _parsed(sample)
    subjects = {str(m["Subject"]) for m in messages}
    assert "Project Halcyon — final terms & allocations" in subjects
    names = {part.get_filename(): part for m in messages for part in m.iter_attachments()}
    assert names["Halcyon_term_sheet_v3.pdf"].get_content().startswith(b"%PDF-1.4")
    assert names["Handelsbestätigungen_2026-11-18.csv"].get_content().startswith("trade_id,")
    assert names["Halcyon – Zuteilungsübersicht.docx"].get_content()[:2] == b"PK"
    assert any(m.get_body(("html",)) is not None and m.get_content_type() != "text/plain" for m in messages)
    latin = [m for m in messages if m.get_content_charset() == "iso-8859-1"]
    assert latin and "Grüße aus München" in latin[0].get_content()
    assert any("Auto-Submitted" in m for m in messages)
    assert all(m["Date"].datetime.year == 2026 and m["Date"].datetime.month == 11 for m in messages)


def test_slack_export_is_valid_and_counts_add_up(sample: SampleInfo) -> None:
    """users, channels and every day file are JSON of the export's shape, and the messages sum to chat_messages."""
    users = json.loads((sample.slack / "users.json").read_text())
    channels = json.loads((sample.slack / "channels.json").read_text())
    user_ids = {u["id"] for u in users}
    assert all(u["id"].startswith("U") and "real_name" in u["profile"] for u in users)
    assert sum(1 for u in users if u["is_bot"]) == 1
    assert 2 <= len(channels) <= 3 and all(c["id"].startswith("C") and c["purpose"]["value"] for c in channels)
    days = sorted(sample.slack.glob("*/*.json"))
    assert {p.parent.name for p in days} == {c["name"] for c in channels}
    assert {p.name for p in days} == {f"2026-11-{d}.json" for d in range(16, 21)}
    messages = [m for p in days for m in json.loads(p.read_text())]
    assert len(messages) == sample.chat_messages == 76
    assert all(m["type"] == "message" and re.fullmatch(r"\d{10}\.\d{6}", m["ts"]) for m in messages)
    assert all(m["user"] in user_ids for m in messages if "user" in m)


def test_slack_export_carries_the_awkward_cases(sample: SampleInfo) -> None:
    """Threads point at real parents, and joins, edits, reactions, files, mentions and non-ASCII text occur."""
    messages = [m for p in sample.slack.glob("*/*.json") for m in json.loads(p.read_text())]
    by_ts = {m["ts"]: m for m in messages}
    replies = [m for m in messages if m.get("thread_ts") not in (None, m["ts"])]
    assert replies
    for reply in replies:
        parent = by_ts[reply["thread_ts"]]
        assert {"user": reply["user"], "ts": reply["ts"]} in parent["replies"]
        assert parent["reply_count"] == len(parent["replies"])
    assert any(m.get("subtype") == "channel_join" for m in messages)
    assert any(m.get("subtype") == "bot_message" for m in messages)
    assert any("edited" in m for m in messages)
    assert any(r["count"] == len(r["users"]) for m in messages for r in m.get("reactions", []))
    assert any(f["url_private"].startswith("https://") for m in messages for f in m.get("files", []))
    texts = " ".join(m["text"] for m in messages)
    assert "Grüße aus München" in texts and "東京オフィス" in texts and re.search(r"<@U\w+>", texts)


def test_small_and_invalid_sizes(tmp_path: Path) -> None:
    """The smallest sample is the broken message alone; zero messages or days is refused."""
    info = write_sample(tmp_path, messages=1, chat_days=1)
    assert len(mailbox.mbox(info.mbox)) == 1 and info.broken_emails == 1
    assert len(list(info.slack.glob("*/*.json"))) == 3
    with pytest.raises(ValueError):
        write_sample(tmp_path, messages=0)
