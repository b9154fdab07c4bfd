"""WhatsAppExportSource against a hand-written export (tests/fixtures/chat/whatsapp) and the date shapes."""

from __future__ import annotations

import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from producers.chat.whatsapp import WhatsAppExportSource
from schemas.records import sha256_hex
from strongroom.errors import InputError
from tests.chat_checks import check_event_model, kinds, same_output

EXPORT = Path(__file__).parent.parent / "fixtures" / "chat" / "whatsapp" / "export"
CHAT = EXPORT / "WhatsApp Chat with Projekt Ü.txt"
PHOTO = EXPORT / "IMG-20261102-WA0001.jpg"


def test_every_message_is_one_record_with_exact_counts():
    """11 messages (13 lines, one of three lines): 9 created (3 system), 1 deleted, 1 edited."""
    captures = list(WhatsAppExportSource(EXPORT))
    assert kinds(captures) == {"created": 9, "deleted": 1, "edited": 1}
    assert sum(c.record["flags"] == ["system"] for c in captures) == 3
    assert b"\n".join(c.raw for c in captures) + b"\n" == CHAT.read_bytes()  # every line accounted for
    check_event_model(captures)


def test_text_people_markers_and_files():
    """Multi-line text, phone senders, deletion and edit markers, omitted and attached media."""
    records = {c.position: c for c in WhatsAppExportSource(EXPORT)}
    first = records["line 3"].record
    assert first["body_text"] == "Grüße an alle 🙂\nZweite Zeile der Nachricht" and first["channel"] == "Projekt Ü"
    assert first["sender"] == {"user_id": None, "name": "Alice Ärger", "address": None}
    assert records["line 5"].record["sender"]["user_id"] == "+491701234567"
    assert records["line 5"].record["message_uid"] != records["line 6"].record["message_uid"]  # same minute, rank 2
    deleted = records["line 10"].record
    assert (deleted["event_type"], deleted["version"], deleted["flags"]) == ("deleted", 2, ["original-missing"])
    edited = records["line 11"].record
    assert (edited["event_type"], edited["body_text"]) == ("edited", "Termin ist Freitag")
    assert records["line 7"].record["flags"] == ["media-omitted"]
    photo = records["line 8"]
    digest = sha256_hex(PHOTO.read_bytes())
    assert photo.record["attachments"][0]["sha256"] == digest and photo.blobs == {digest: PHOTO.read_bytes()}
    assert photo.record["body_text"] == "Das Foto vom Whiteboard"


def test_day_first_is_detected_and_the_zone_applies():
    """13/11 makes the file day-first; times are the phone's local time in --timezone."""
    records = {c.position: c.record for c in WhatsAppExportSource(EXPORT, zone=ZoneInfo("Europe/Berlin"))}
    assert records["line 13"]["sent_at"].isoformat() == "2026-11-13T20:15:00+00:00"
    assert records["line 3"]["sent_at"].isoformat() == "2026-11-02T08:02:00+00:00"


@pytest.mark.parametrize("line, expected", [
    ("12/31/21, 11:59 PM - Ann: x", "2021-12-31T23:59:00+00:00"),
    ("[31.12.21, 23:59:58] Ann: x", "2021-12-31T23:59:58+00:00"),
    ("2021/12/31, 00:08 - Ann: x", "2021-12-31T00:08:00+00:00"),
    ("12/31/2021, 12:08 a. m. - Ann: x", "2021-12-31T00:08:00+00:00"),
    ("\u200e[31/12/2021, 07:05:00] Ann: x", "2021-12-31T07:05:00+00:00"),
])
def test_date_shapes(tmp_path, line, expected):
    """Android and iOS shapes, 12 and 24 hour clocks, each locale's date order."""
    chat = tmp_path / "chat.txt"
    chat.write_text(line + "\n", encoding="utf-8")
    [capture] = list(WhatsAppExportSource(chat))
    assert capture.record["sent_at"].isoformat() == expected and capture.record["body_text"] == "x"


def test_zip_export_and_repeatable_identity(tmp_path):
    """The .zip WhatsApp shares reads like the folder: same identities, media from the zip."""
    archive = tmp_path / "WhatsApp Chat with Projekt Ü.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(CHAT, CHAT.name)
        out.write(PHOTO, PHOTO.name)
    zipped = list(WhatsAppExportSource(archive))
    assert same_output(zipped, list(WhatsAppExportSource(EXPORT)))
    assert any(c.blobs for c in zipped)


def test_unusable_input(tmp_path):
    """A first line without a date is quarantined; a bad --date-order and a missing path are refused."""
    chat = tmp_path / "chat.txt"
    chat.write_text("hello\n01/02/2026, 10:00 - Ann: ok\n")
    captures = list(WhatsAppExportSource(chat))
    assert kinds(captures) == {"quarantined": 1, "created": 1}
    with pytest.raises(InputError):
        WhatsAppExportSource(chat, date_order="dym")
    with pytest.raises(InputError):
        WhatsAppExportSource(tmp_path / "missing.txt")
