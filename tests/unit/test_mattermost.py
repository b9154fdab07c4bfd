"""MattermostSource on tests/fixtures/chat/mattermost: a bulk export with replies, edits, a deletion, reactions, files."""

from __future__ import annotations

import shutil
import zipfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from producers.capture import Capture
from producers.chat.mattermost import MattermostSource
from schemas.records import chat_uid, sha256_hex
from strongroom.errors import InputError
from tests.conftest import assert_fits_schema

EXPORT = Path(__file__).parent.parent / "fixtures" / "chat" / "mattermost"
BASE = datetime(2026, 11, 5, 8, 0, tzinfo=timezone.utc)
BASE_MS = int(BASE.timestamp() * 1000)


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return {c.position: c for c in MattermostSource(EXPORT / "export.jsonl")}


def test_every_event_is_accounted_for(captures: dict[str, Capture]) -> None:
    """9 posts and replies, 2 edits, 1 deletion, 3 reactions, 2 bad lines; metadata lines are not records."""
    assert Counter((c.record["event_type"], c.record["parse_status"]) for c in captures.values()) == {
        ("created", "ok"): 8, ("edited", "ok"): 2, ("deleted", "ok"): 1, ("reaction", "ok"): 3,
        ("created", "quarantined"): 2}
    assert len({(c.record["message_uid"], c.record["version"]) for c in captures.values()}) == len(captures)
    assert_fits_schema(captures.values())


def test_post_identity_people_and_mentions(captures: dict[str, Capture]) -> None:
    """A post is identified by team, channel, author and create_at; its author and @mention resolve to addresses."""
    record = captures["10"].record
    assert record["message_uid"] == chat_uid("mattermost", "northwind", "deals", f"{BASE_MS + 600123}:alice")
    assert record["sent_at"] == BASE + timedelta(seconds=600, milliseconds=123)
    assert (record["workspace"], record["conversation_id"], record["channel"]) == ("northwind", "deals", "Deals – Geschäfte")
    assert record["body_text"] == "Término del acuerdo: 署名 today? @jose"
    assert record["sender"] == {"user_id": "alice", "name": "Alice Archer", "address": "alice.archer@northwind.example"}
    assert [(r["role"], r["address"]) for r in record["recipients"]] == [("mention", "jose@contoso.example")]


def test_replies_edits_and_reactions(captures: dict[str, Capture]) -> None:
    """A reply points at its root; edit_at makes an edited event (v1 without text); reactions keep their times."""
    root = captures["10"].record["message_uid"]
    first, edit = captures["10/replies/0"].record, captures["10/replies/0/edited"].record
    assert first["parent_uid"] == edit["parent_uid"] == root and "thread-reply" in first["flags"]
    assert (first["body_text"], edit["body_text"]) == (None, "Ja — nach Rücksprache mit Zoë: 11,5 Mio. €")
    assert (edit["version"], edit["event_at"]) == (62, BASE + timedelta(seconds=760))
    reactions = sorted((c.record["body_text"], c.record["sender"]["user_id"], c.record["event_at"])
                       for p, c in captures.items() if "/reaction/" in p)
    assert reactions == [("+1", "jose", BASE + timedelta(seconds=620)), ("eyes", "zoe", BASE + timedelta(seconds=630)),
                         ("white_check_mark", "alice", BASE + timedelta(seconds=810))]


def test_attachment_bytes_from_the_data_folder(captures: dict[str, Capture]) -> None:
    """A file under data/ becomes a blob; a missing one stays a link to its export path."""
    capture = captures["10/replies/1"]
    data = next((EXPORT / "data").rglob("term-sheet.txt")).read_bytes()
    saved, missing = capture.record["attachments"]
    assert (saved["name"], saved["content_type"], saved["sha256"], saved["size"]) == (
        "term-sheet.txt", "text/plain", sha256_hex(data), len(data))
    assert capture.blobs == {sha256_hex(data): data}
    assert (missing["name"], missing["sha256"]) == ("signed.pdf", None) and missing["url"].endswith("f2/signed.pdf")


def test_deleted_post_keeps_its_text_and_time(captures: dict[str, Capture]) -> None:
    """delete_at: a deleted event at that time with the last text, same uid and sent_at."""
    created, deleted = captures["11"].record, captures["11/deleted"].record
    assert deleted["message_uid"] == created["message_uid"] and deleted["sent_at"] == created["sent_at"]
    assert deleted["body_text"] == "Bitte löschen: Nebenabrede mit Contoso"
    assert deleted["event_at"] == BASE + timedelta(seconds=4500)


def test_bot_system_and_direct_posts(captures: dict[str, Capture]) -> None:
    """A bot's attachment text is its body; a system_* post is flagged; a DM names the other member."""
    bot = captures["12"].record
    assert (bot["sender"]["name"], bot["flags"], bot["body_text"]) == ("Deal Bot", ["bot"], "Deal moved\nContoso → closing")
    assert captures["9"].record["flags"] == ["system"]
    dm = captures["14"].record
    assert (dm["workspace"], dm["conversation_id"]) == (None, "dm:alice,zoe")
    assert [(r["role"], r["address"]) for r in dm["recipients"]] == [("member", "zoe.mueller@northwind.example")]


def test_bad_lines_are_quarantined(captures: dict[str, Capture]) -> None:
    """A post without user and a cut-off line are quarantined with their bytes and line numbers."""
    assert captures["16"].record["parse_error"] == "line 16: post has no user"
    assert captures["17"].quarantined and captures["17"].raw.startswith(b'{"type":"post"')


def test_folder_and_zip_read_like_the_file(tmp_path: Path) -> None:
    """The export's folder, and the export zipped with data/, give the same events and blobs."""
    file_events = [(c.position, c.record["message_uid"], c.record["version"], sorted(c.blobs))
                   for c in MattermostSource(EXPORT / "export.jsonl")]
    folder = [(c.position, c.record["message_uid"], c.record["version"], sorted(c.blobs)) for c in MattermostSource(EXPORT)]
    archive = Path(shutil.make_archive(str(tmp_path / "mm"), "zip", EXPORT))
    zipped = [(c.position, c.record["message_uid"], c.record["version"], sorted(c.blobs)) for c in MattermostSource(archive)]
    assert file_events == folder == zipped


def test_missing_and_empty_inputs_are_refused(tmp_path: Path) -> None:
    """A missing path, a folder without .jsonl, and a zip without one are InputErrors."""
    with pytest.raises(InputError, match="does not exist"):
        MattermostSource(tmp_path / "nowhere.jsonl")
    with pytest.raises(InputError, match="holds no Mattermost export"):
        MattermostSource(tmp_path)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(InputError, match="holds no Mattermost export"):
        MattermostSource(tmp_path / "empty.zip")
