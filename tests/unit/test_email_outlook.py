"""Outlook formats: .msg files, PST through readpst, winmail.dat (TNEF) parts, and their detection.

The .msg and TNEF inputs are written by tests/outlook_samples.py (no tool here writes them); the
committed fixtures come from tests/fixtures/email/outlook/generate.py. No PST can be made on this
machine, so the PST tests cover readpst on damaged files and the reading of readpst's output.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import replace
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from producers.email import EmailFormat, captures, detect_format
from producers.email.mime import parse_email
from producers.email.outlook import parse_msg
from producers.email.pst import (CONTAINER_HEADER, PstSource, captures_from_output, count_problem, libpff_count,
                                 readpst_output, readpst_problem)
from producers.email.rtf import rtf_to_text
from producers.email.tnef import structure_damage
from strongroom.errors import InputError
from tests.conftest import assert_fits_schema
from tests.outlook_samples import Attachment, Message, Recipient, compound_file, msg_file, tnef_file

OUTLOOK = Path(__file__).resolve().parent.parent / "fixtures" / "email" / "outlook"
SENT = datetime(2026, 11, 17, 9, 30, 15, tzinfo=timezone.utc)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _one(path: Path):
    found = list(captures(path))
    assert len(found) == 1
    return found[0]


def _assert_blobs_complete(capture) -> None:
    for item in capture.record["attachments"]:
        if item["sha256"]:
            assert _sha(capture.blobs[item["sha256"]]) == item["sha256"]
            assert len(capture.blobs[item["sha256"]]) == item["size"]


# --- .msg ----------------------------------------------------------------------------------


def test_received_msg_has_the_identity_of_its_mime_copy() -> None:
    """A .msg saved from Outlook and the journal's MIME copy of it get one message_uid and the same fields."""
    msg = _one(OUTLOOK / "received.msg")
    mime = _one(OUTLOOK / "journal-copy.eml")
    assert msg.raw == (OUTLOOK / "received.msg").read_bytes()
    assert msg.record["raw_sha256"] == _sha(msg.raw)
    assert msg.record["message_uid"] == mime.record["message_uid"]
    for field in ("message_id", "sender", "recipients", "subject", "sent_at", "conversation_id", "body_text"):
        assert msg.record[field] == mime.record[field], field
    assert [a["sha256"] for a in msg.record["attachments"]] == [a["sha256"] for a in mime.record["attachments"]]
    names = [h["name"] for h in msg.record["headers"]]
    assert names[:8] == ["From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References"]
    assert {"name": "X-Strongroom-Original-Format", "value": "outlook-msg"} in msg.record["headers"]
    _assert_blobs_complete(msg)
    assert_fits_schema([msg, mime])


def test_sent_msg_is_read_from_its_properties_with_its_embedded_message() -> None:
    """Without transport headers the record comes from the properties; an embedded .msg is a linked record."""
    parent, child = list(captures(OUTLOOK / "sent.msg"))
    rec = parent.record
    assert rec["parse_status"] == "ok"
    assert rec["sender"] == {"user_id": None, "name": "Sören Kl", "address": "soren.kl@northwind.example"}
    assert [(r["role"], r["address"]) for r in rec["recipients"]] == [
        ("to", "amelie.dubois@northwind.example"), ("bcc", "legal@northwind.example")]
    assert rec["subject"] == "Fwd: Board minutes — vertraulich"
    assert rec["sent_at"] == datetime(2026, 11, 18, 7, 45, 0, tzinfo=timezone.utc)  # whole seconds, like Date
    assert rec["body_text"] == "See the minutes below.\n\nGrüße, Sören"  # HTML body, style dropped
    # Composed headers are only read, never presented as the message's own.
    assert {h["name"] for h in rec["headers"]} == {
        "X-Strongroom-Sent-At-Source", "X-Strongroom-Original-Format", "X-Strongroom-Msg-Class"}
    assert {"name": "X-Strongroom-Sent-At-Source", "value": "msg-client-submit-time"} in rec["headers"]
    embedded, csv = rec["attachments"]
    assert (embedded["name"], embedded["content_type"]) == ("Board minutes.msg", "application/vnd.ms-outlook")
    assert (csv["name"], csv["content_type"], parent.blobs[csv["sha256"]]) == (
        "agenda.csv", "text/csv", b"item,owner\naccounts,cfo\n")
    _assert_blobs_complete(parent)

    sub = child.record
    assert sub["parent_uid"] == rec["message_uid"]
    assert child.raw == parent.blobs[embedded["sha256"]] and sub["raw_sha256"] == embedded["sha256"]
    assert (sub["subject"], sub["message_id"], child.position) == (
        "Board minutes", "minutes-1112@northwind.example", "sent.msg/embedded:0")
    assert sub["flags"] == ["derived-raw:embedded-msg"]
    assert [a["name"] for a in sub["attachments"]] == ["minutes.txt"]
    _assert_blobs_complete(child)
    assert_fits_schema([parent, child])


def test_msg_built_from_properties_dedupes_with_the_same_mime_message() -> None:
    """Without transport headers, matching properties (submit time, recipients, body, files) still give the MIME uid."""
    mime = _one(OUTLOOK / "journal-copy.eml")
    data = msg_file(Message(
        subject="Q3 figures — final", sender_name="Zoë Müller", sender_address="zoe.mueller@northwind.example",
        body="Dear audit team,\r\n\r\nthe Q3 figures are attached.\r\n\r\nRegards,\r\nZoë\r\n",
        submit_time=SENT.replace(microsecond=730000), message_id="<q3-final.4711@northwind.example>",
        in_reply_to="<q3-draft.4700@northwind.example>", references="<q3-draft.4700@northwind.example>",
        recipients=[Recipient(1, "audit@northwind.example", "audit@northwind.example"),
                    Recipient(1, "José Álvarez", "jose@contoso.example"),
                    Recipient(2, "ops@northwind.example", "ops@northwind.example")],
        attachments=[Attachment("Q3-figures.pdf", mime.blobs[mime.record["attachments"][0]["sha256"]],
                                "application/pdf")]))
    [msg] = parse_msg(data, source="sent-items", position="1")
    assert msg.record["message_uid"] == mime.record["message_uid"]
    assert msg.record["conversation_id"] == "q3-draft.4700@northwind.example"


def test_msg_with_other_content_gets_another_identity() -> None:
    """A .msg reusing a Message-ID for another body is not taken for a duplicate."""
    base = Message(subject="s", sender_name="A", sender_address="a@x.example", body="one",
                   submit_time=SENT, message_id="<same@x.example>")
    first = parse_msg(msg_file(base), source="a", position="1")[0].record["message_uid"]
    second = parse_msg(msg_file(replace(base, body="two")), source="a", position="2")[0].record["message_uid"]
    assert first != second


def test_rtf_only_msg_body_is_read_as_text() -> None:
    """A .msg whose only body is compressed RTF gets that RTF's text as body_text."""
    import compressed_rtf

    rtf = rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}\f0 Native RTF body\par caf\'e9 au lait}"
    data = msg_file(Message(subject="r", sender_name="A", sender_address="a@x.example", submit_time=SENT,
                            rtf_compressed=compressed_rtf.compress(rtf, compressed=True)))
    [capture] = parse_msg(data, source="r", position="r")
    assert capture.record["body_text"] == "Native RTF body\ncafé au lait"


def test_msg_transport_headers_without_sender_fall_back_to_properties() -> None:
    """Transport headers missing From and Message-ID are completed from the sender and id properties."""
    data = msg_file(Message(subject="t", sender_name="Ann", sender_address="ann@x.example", body="b",
                            message_id="<t1@x.example>", transport_headers="Subject: t\r\nTo: b@x.example\r\n"))
    rec = parse_msg(data, source="t", position="t")[0].record
    assert (rec["sender"]["address"], rec["message_id"]) == ("ann@x.example", "t1@x.example")
    assert [h["name"] for h in rec["headers"]][:2] == ["Subject", "To"]


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("empty", b"", "not an OLE compound file"),
    ("text", b"From: a@b.example\n\nnot a msg\n" * 100, "not an OLE compound file"),
    ("truncated", None, ""),
    ("not-a-message", compound_file({"WordDocument": b"\x00" * 600}), "no readable message class"),
    ("random-after-magic", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(4000), ""),
])
def test_damaged_msg_is_quarantined_with_its_bytes(name: str, data: bytes | None, reason: str) -> None:
    """A .msg that cannot be read becomes one quarantined item that keeps the exact bytes."""
    if data is None:
        data = (OUTLOOK / "sent.msg").read_bytes()[:2600]
    found = parse_msg(data, source=name, position=name)
    assert found[0].record["parse_status"] == "quarantined"
    assert found[0].raw == data and found[0].record["raw_sha256"] == _sha(data)
    assert found[0].record["message_uid"] == "em-raw-" + _sha(data)[:40]
    assert reason in found[0].record["parse_error"]
    assert_fits_schema(found)


def test_msg_exchange_addresses_and_winmail_attachment() -> None:
    """Exchange-only addresses are kept as they are; a winmail.dat attached to a .msg is expanded too."""
    data = msg_file(Message(
        subject="ex", sender_name="Ex User", sender_address="/O=NW/OU=EXCHANGE/CN=RECIPIENTS/CN=EXUSER",
        sender_addrtype="EX", body="hi", submit_time=SENT, recipients=[Recipient(1, "Other", "/O=NW/CN=OTHER", "EX")],
        attachments=[Attachment("winmail.dat", tnef_file("s", "b", [("in.txt", b"x")]), "application/ms-tnef")]))
    capture = parse_msg(data, source="x", position="x")[0]
    rec = capture.record
    assert rec["sender"]["address"] == "/o=nw/ou=exchange/cn=recipients/cn=exuser"
    assert [(r["role"], r["address"]) for r in rec["recipients"]] == [("to", "/o=nw/cn=other")]
    assert [a["name"] for a in rec["attachments"]] == ["winmail.dat", "in.txt"]
    assert rec["message_uid"] == "em-raw-" + _sha(data)[:40]  # no Message-ID: the file's hash, as for MIME
    _assert_blobs_complete(capture)


def test_msg_with_a_damaged_attachment_keeps_the_message() -> None:
    """A .msg cut inside its embedded message is still read; the lost attachment is named in flags."""
    data = (OUTLOOK / "sent.msg").read_bytes()[:12000]
    [capture] = parse_msg(data, source="cut", position="cut")
    assert capture.record["parse_status"] == "ok" and capture.raw == data
    assert capture.record["subject"] == "Fwd: Board minutes — vertraulich"
    assert capture.record["flags"][0].startswith("msg-attachment-unreadable:")


# --- detection -----------------------------------------------------------------------------


def test_msg_and_pst_are_detected_by_content_and_by_name(tmp_path: Path) -> None:
    """OLE and !BDN magic decide without an extension; the extension decides for empty files."""
    (tmp_path / "noext").write_bytes((OUTLOOK / "sent.msg").read_bytes())
    (tmp_path / "mailbox").write_bytes(b"!BDN" + b"\0" * 508)
    (tmp_path / "empty.msg").write_bytes(b"")
    (tmp_path / "empty.pst").write_bytes(b"")
    (tmp_path / "archive.ost").write_bytes(b"\0" * 10)
    assert detect_format(tmp_path / "noext") is EmailFormat.MSG
    assert detect_format(tmp_path / "mailbox") is EmailFormat.PST
    assert detect_format(tmp_path / "empty.msg") is EmailFormat.MSG
    assert detect_format(tmp_path / "empty.pst") is EmailFormat.PST
    assert detect_format(tmp_path / "archive.ost") is EmailFormat.PST
    assert detect_format(tmp_path / "noext", "msg") is EmailFormat.MSG
    assert detect_format(tmp_path / "mailbox", "PST") is EmailFormat.PST
    with pytest.raises(InputError, match="needs a file"):
        detect_format(tmp_path, "msg")


def test_folder_mixing_eml_and_msg_reads_both(tmp_path: Path) -> None:
    """A folder of .eml and .msg files is one source; each file is parsed as what it contains."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.eml").write_bytes((OUTLOOK / "journal-copy.eml").read_bytes())
    (tmp_path / "sub" / "b.msg").write_bytes((OUTLOOK / "sent.msg").read_bytes())
    (tmp_path / "empty.msg").write_bytes(b"")
    assert detect_format(tmp_path) is EmailFormat.EMLDIR
    found = list(captures(tmp_path))
    assert [(c.position, c.record["parse_status"]) for c in found] == [
        ("a.eml", "ok"), ("empty.msg", "quarantined"), ("sub/b.msg", "ok"), ("sub/b.msg/embedded:0", "ok")]
    (tmp_path / "a.eml").unlink()
    (tmp_path / "empty.msg").unlink()
    assert detect_format(tmp_path) is EmailFormat.EMLDIR  # .msg alone makes it a message folder


# --- TNEF ----------------------------------------------------------------------------------


def test_winmail_dat_files_and_body_become_the_records() -> None:
    """A winmail.dat's files join the attachments, its body fills the empty MIME body, and it stays attached."""
    capture = _one(OUTLOOK / "winmail.eml")
    rec = capture.record
    assert [(a["name"], a["size"]) for a in rec["attachments"]][1:] == [("contract-v2.docx", 87), ("notes.txt", 17)]
    assert rec["attachments"][0]["name"] == "winmail.dat"
    assert capture.blobs[rec["attachments"][2]["sha256"]] == b"clause 4 changed\n"
    assert rec["body_text"] == "Please find the contract draft attached.\nThe old version is gone.\n"
    assert rec["flags"] == ["tnef-expanded:winmail.dat:2", "body-from-tnef:winmail.dat"]
    _assert_blobs_complete(capture)
    assert_fits_schema([capture])


def test_truncated_winmail_dat_is_flagged_not_dropped() -> None:
    """A cut TNEF stream keeps what was read, and says it was damaged."""
    rec = _one(OUTLOOK / "winmail-truncated.eml").record
    assert rec["parse_status"] == "ok"
    assert rec["flags"][0].startswith("tnef-damaged:winmail.dat: truncated")
    assert rec["attachments"][0]["name"] == "winmail.dat"


def _with_winmail(dat: bytes, body: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@fabrikam.example"
    msg["Subject"] = "x"
    msg.set_content(body)
    msg.add_attachment(dat, maintype="application", subtype="octet-stream", filename="WINMAIL.DAT")
    return msg.as_bytes()


def test_unreadable_winmail_dat_stays_an_opaque_attachment() -> None:
    """Bytes named winmail.dat that are not TNEF are kept as they are, with a note."""
    rec = parse_email(_with_winmail(b"this is not TNEF at all"), source="m", position="0").record
    assert rec["parse_status"] == "ok"
    assert [a["name"] for a in rec["attachments"]] == ["WINMAIL.DAT"]
    assert rec["flags"] == ["tnef-unreadable:WINMAIL.DAT: no TNEF signature"]


def test_mime_body_wins_over_the_tnef_body() -> None:
    """The TNEF body is used only when the MIME body is empty (found by name, whatever the content type)."""
    dat = tnef_file("s", "tnef body", [("a.txt", b"a")])
    rec = parse_email(_with_winmail(dat, "mime body\n"), source="m", position="0").record
    assert rec["body_text"] == "mime body\n"
    assert [a["name"] for a in rec["attachments"]] == ["WINMAIL.DAT", "a.txt"]


def test_tnef_structure_check_finds_each_kind_of_damage() -> None:
    """Lengths and checksums of every TNEF attribute are verified."""
    dat = tnef_file("subject", "body", [("f.bin", bytes(range(200)))])
    assert structure_damage(dat) is None
    assert "truncated" in structure_damage(dat[:-5])
    assert "stray bytes" in structure_damage(dat + b"xyz")
    assert "not a TNEF attribute" in structure_damage(dat + b"\x07" + b"\0" * 12)
    offset = dat.index(bytes(range(200)))
    bad = dat[:offset] + b"\xff" + dat[offset + 1:]
    assert "checksum mismatch" in structure_damage(bad)
    assert struct.unpack_from("<I", dat)[0] == 0x223E9F78


def test_rtf_bodies_become_text() -> None:
    """Native RTF keeps its words, code-page bytes and Unicode; tables of fonts and pictures are dropped."""
    rtf = (rb"{\rtf1\ansi\ansicpg1251{\fonttbl{\f0 Arial;}}{\colortbl;\red0\green0\blue255;}"
           rb"\uc1 Hello \'cf\'f0\u1080? world\par{\*\generator Riched20;}Second\tab line{\pict 0123abcd}}")
    assert rtf_to_text(rtf) == "Hello При world\nSecond\tline"
    html = rb"{\rtf1\ansi\fromhtml1{\*\htmltag64 <p>}Hello{\*\htmltag72 </p>}\par}"
    assert "Hello" in rtf_to_text(html)


# --- PST -----------------------------------------------------------------------------------


def test_corrupt_pst_is_one_quarantined_item_with_readpst_reason(tmp_path: Path) -> None:
    """readpst refusing a PST gives one quarantined item keeping the PST's bytes, never a traceback."""
    for name, data in (("cut.pst", b"!BDN" + os.urandom(600)), ("empty.pst", b"")):
        pst = tmp_path / name
        pst.write_bytes(data)
        [capture] = list(captures(pst))
        rec = capture.record
        assert rec["parse_status"] == "quarantined"
        assert capture.raw == data and rec["raw_sha256"] == _sha(data)
        assert rec["parse_error"].startswith("readpst failed (exit 1): Error opening File; "
                                             "the number of items could not be checked: libpff could not read the PST")
        assert rec["parse_error"].endswith("the PST is kept as this item's raw")
        assert (rec["source"], rec["source_position"]) == (str(pst), "pst")
        assert_fits_schema([capture])


def test_missing_readpst_is_a_clear_input_error(tmp_path: Path, monkeypatch) -> None:
    """Without pst-utils the user is told what to install."""
    pst = tmp_path / "box.pst"
    pst.write_bytes(b"!BDN")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="pst-utils"):
        list(PstSource(pst))


def _readpst_tree(root: Path) -> None:
    """What `readpst -e` writes: a folder per PST folder, numbered .eml files, other item kinds."""
    inbox = root / "Outlook Data File" / "Inbox"
    inbox.mkdir(parents=True)
    for n in (1, 2, 10):
        (inbox / f"{n}.eml").write_bytes(b"From: a@x.example\nSubject: m%d\nMessage-ID: <m%d@x.example>\n\nbody\n" % (n, n))
    (root / "Outlook Data File" / "Sent Items").mkdir()
    (root / "Outlook Data File" / "Sent Items" / "1.eml").write_bytes(b"From: me@x.example\nSubject: sent\n\nhi\n")
    (root / "Outlook Data File" / "Calendar").mkdir()
    (root / "Outlook Data File" / "Calendar" / "1.ics").write_bytes(b"BEGIN:VCALENDAR\nEND:VCALENDAR\n")


def test_readpst_output_becomes_records_naming_the_pst(tmp_path: Path) -> None:
    """Each file readpst wrote is one item: folder:number position, store name as workspace, PST referenced."""
    _readpst_tree(tmp_path)
    assert [(folder, label) for folder, label, _f in readpst_output(tmp_path)] == [
        ("Outlook Data File/Calendar", "1"),
        ("Outlook Data File/Inbox", "1"), ("Outlook Data File/Inbox", "2"), ("Outlook Data File/Inbox", "10"),
        ("Outlook Data File/Sent Items", "1")]
    pst = b"!BDN pretend PST"
    found = list(captures_from_output(tmp_path, "/cases/box.pst", pst, _sha(pst)))
    assert [(c.position, c.record["parse_status"]) for c in found] == [
        ("Outlook Data File/Calendar:1", "quarantined"), ("Outlook Data File/Inbox:1", "ok"),
        ("Outlook Data File/Inbox:2", "ok"), ("Outlook Data File/Inbox:10", "ok"),
        ("Outlook Data File/Sent Items:1", "ok")]
    assert found[0].record["parse_error"] == "not an email message: readpst wrote a calendar or journal item here"
    assert found[0].blobs == {_sha(pst): pst} and all(not c.blobs for c in found[1:])
    for capture in found:
        assert capture.record["workspace"] == "Outlook Data File"
        assert capture.record["source"] == "/cases/box.pst"
        assert {"name": CONTAINER_HEADER, "value": _sha(pst)} in capture.record["headers"]
        assert "derived-raw:readpst" in capture.record["flags"]
    assert found[3].record["subject"] == "m10"
    assert_fits_schema(found)


def test_items_readpst_skips_are_reported() -> None:
    """readpst exits 0 when it cannot read some items; its folder summaries still say so."""
    # readpst 0.6.76's output on a PST with damaged blocks (made with a PST writer elsewhere).
    stdout = (b'Opening PST file and indexes...\nProcessing Folder "Deleted Items"\nProcessing Folder "Inbox"\n'
              b'Processing Folder "Projects"\n\t"Projects" - 1 items done, 0 items skipped.\n'
              b'\t"Inbox" - 2 items done, 1 items skipped.\n\t"Personal folders" - 3 items done, 1 items skipped.\n')
    assert readpst_problem(0, stdout, b"") == ("readpst skipped 2 items it could not read (Inbox: 1, Personal "
                                               "folders: 1)")
    assert readpst_problem(0, stdout.replace(b"1 items skipped", b"0 items skipped"), b"") is None
    assert readpst_problem(1, b"Opening PST file and indexes...\nError opening File\n", b"") == (
        "readpst failed (exit 1): Error opening File")


def test_libpff_count_checks_what_readpst_wrote(tmp_path: Path) -> None:
    """Fewer items written than libpff counts is a loss; libpff failing on a file says why."""
    assert count_problem(3, 5, None) == "readpst wrote 3 items, libpff counts 5 in the PST"
    assert count_problem(6, 5, None) is None  # readpst also recovers deleted items
    assert count_problem(5, 5, None) is None
    garbage = tmp_path / "garbage.pst"
    garbage.write_bytes(b"!BDN" + bytes(1000))
    counted, why = libpff_count(garbage)
    assert counted is None and "unable to open file" in why
    assert "libpff could not read the PST (pypff_file_open" in count_problem(0, counted, why)
