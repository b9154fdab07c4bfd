"""parse_email: one raw message to a Communication record, repaired or quarantined, never raising."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import Capture
from producers.email import captures, parse_email
from producers.email.text import decode_header_value, decode_text, html_to_text
from producers.email.sources import MboxSource
from schemas.records import email_content_digest, email_uid, sha256_hex

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "email"
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
       b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def _mbox(index: int) -> Capture:
    message = list(MboxSource(FIXTURES / "sample.mbox"))[index]
    return parse_email(message.raw, source=message.path, position=message.position,
                       mbox_from_line_date=message.from_line_date)


def _eml(name: str) -> Capture:
    path = FIXTURES / "eml" / name
    return parse_email(path.read_bytes(), source=str(path), position=name)


def _parse(raw: bytes, **kwargs: object) -> dict:
    return parse_email(raw, source="test", position="0", **kwargs).record  # type: ignore[arg-type]


def _header(record: dict, name: str) -> list[str]:
    return [h["value"] for h in record["headers"] if h["name"] == name]


# --- the fixture mbox ----------------------------------------------------------------------


def test_plain_message_fields() -> None:
    """A plain message fills identity, people, subject, body and time from its headers."""
    capture = _mbox(0)
    record = capture.record
    assert record["parse_status"] == "ok"
    assert (record["kind"], record["platform"]) == ("email", "email")
    assert record["message_id"] == "root-1@example.com"
    assert record["sender"] == {"user_id": None, "name": "Alice Archer", "address": "alice@example.com"}
    assert [(r["role"], r["name"], r["address"]) for r in record["recipients"]] == [
        ("to", "Bob Baker", "bob@example.org"), ("to", None, "carol@example.net"),
        ("cc", "Dave D.", "dave@example.org")]
    assert record["subject"] == "Quarterly numbers"
    assert record["body_text"].startswith("Bob, the quarterly numbers are on the wiki.\n>From the archive")
    assert record["sent_at"] == datetime(2024, 3, 4, 9, 15, tzinfo=timezone.utc)
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["date-header"]
    assert record["conversation_id"] == "root-1@example.com"
    assert record["parent_uid"] is None
    assert record["attachments"] == []


def test_identity_and_raw_description() -> None:
    """message_uid, raw_sha256 and raw_size describe the exact bytes and their Date-header identity."""
    capture = _mbox(0)
    record = capture.record
    assert record["raw_sha256"] == sha256_hex(capture.raw)
    assert record["raw_size"] == len(capture.raw)
    assert record["message_uid"] == email_uid("root-1@example.com", "alice@example.com",
                                              datetime(2024, 3, 4, 9, 15, tzinfo=timezone.utc),
                                              record["raw_sha256"], email_content_digest(record))
    assert record["source"] == str(FIXTURES / "sample.mbox")
    assert record["source_position"] == capture.position == "0@48"


def test_headers_kept_in_order_with_duplicates() -> None:
    """Every header is kept, in order, duplicates included, with our sent-at marker last."""
    names = [h["name"] for h in _mbox(0).record["headers"]]
    assert names == ["Return-Path", "Received", "Received", "Message-ID", "Date", "From", "To", "Cc",
                     "Subject", "MIME-Version", "Content-Type", "X-Strongroom-Sent-At-Source"]


def test_reply_joins_thread_root_and_decodes_latin1() -> None:
    """A reply's conversation is its first Reference, normalized, and its latin-1 body is decoded."""
    record = _mbox(1).record
    assert record["conversation_id"] == "root-1@example.com"
    assert record["body_text"] == "Danke, Alice. Grüße aus München.\n"


def test_attachment_with_encoded_subject_sender_and_filename() -> None:
    """RFC 2047 subject and name and an RFC 2231 filename decode; the PDF lands in blobs by sha256."""
    capture = _mbox(2)
    record = capture.record
    assert record["subject"] == "Überweisung für März – 1.250 €"
    assert record["sender"]["name"] == "Jürgen Müller"
    assert record["body_text"] == "Die Rechnung für März hängt an."
    (pdf,) = record["attachments"]
    assert pdf == {"name": "Rechnung März.pdf", "content_type": "application/pdf", "size": len(PDF),
                   "sha256": sha256_hex(PDF), "url": None, "text": None}
    assert capture.blobs == {sha256_hex(PDF): PDF}


def test_binary_garbage_is_quarantined_with_raw_identity() -> None:
    """Bytes without a header line are quarantined under the raw hash, timed by their mbox From_ line."""
    capture = _mbox(3)
    record = capture.record
    assert capture.quarantined
    assert record["parse_error"] == "no header field before the body"
    assert record["message_uid"] == "em-raw-" + sha256_hex(capture.raw)[:40]
    assert record["sent_at"] == datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)
    assert record["raw_size"] == len(capture.raw) > 0
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["mbox-from"]


def test_garbage_outside_an_mbox_is_timed_at_ingest() -> None:
    """Unreadable bytes with no From_ line to go by are timed at ingest."""
    before = datetime.now(timezone.utc)
    record = _parse(b"\x00\x01 garbage \xff\n\nmore")
    assert record["parse_status"] == "quarantined"
    assert before <= record["sent_at"] <= datetime.now(timezone.utc)
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["ingest-time"]


def test_empty_input_is_quarantined() -> None:
    """Empty bytes are quarantined with a one-line reason."""
    record = _parse(b"")
    assert (record["parse_status"], record["parse_error"]) == ("quarantined", "empty input")
    assert record["raw_sha256"] == sha256_hex(b"")


# --- the fixture .eml files ----------------------------------------------------------------


def test_html_only_body_becomes_plain_text() -> None:
    """An HTML-only message yields its visible text, without title, style or script."""
    record = _eml("html-only.eml").record
    assert record["body_text"] == "Spring offers\n\nCafé & bar\nopen daily\n\nTea\n\nCoffee"
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["ingest-time"]


def test_unknown_charset_falls_back_to_utf8() -> None:
    """An unknown charset ("x-junk") in body and encoded word falls back to UTF-8."""
    record = _eml("unknown-charset.eml").record
    assert record["parse_status"] == "ok"
    assert record["body_text"] == "naïve café\n"
    assert record["subject"] == "naïve charset"


def test_nested_message_is_one_attachment_of_its_stored_bytes() -> None:
    """A message/rfc822 part is an attachment whose blob is the nested message as stored."""
    capture = _eml("nested/forwarded.eml")
    rfc822, png = capture.record["attachments"]
    assert (rfc822["content_type"], rfc822["name"]) == ("message/rfc822", "original.eml")
    assert capture.blobs[rfc822["sha256"]] == (b"Message-ID: <root-1@example.com>\nFrom: alice@example.com\n"
                                               b"Subject: Quarterly numbers\n\nThe numbers.")
    assert (png["content_type"], png["name"], capture.blobs[png["sha256"]]) == ("image/png", None, b"\x89PNG\r\n\x1a\n")
    assert capture.record["body_text"] == "See below."


def test_maildir_duplicate_to_headers_and_bcc() -> None:
    """Each To header and the Bcc become separate recipients with their roles."""
    path = FIXTURES / "maildir" / "new" / "1700000100.M2P100.strongroom"
    record = parse_email(path.read_bytes(), source="maildir", position="new/x").record
    assert [(r["role"], r["address"]) for r in record["recipients"]] == [
        ("to", "alice@example.com"), ("to", "bob@example.org"), ("bcc", "auditor@example.com")]


def test_every_fixture_record_fits_the_avro_schema() -> None:
    """Every fixture capture, ok or quarantined, serializes with the Communication schema."""
    schema = fastavro.parse_schema(json.loads((ROOT / "schemas" / "communication.avsc").read_text()))
    records = [c.record for source in (FIXTURES / "sample.mbox", FIXTURES / "maildir", FIXTURES / "eml")
               for c in captures(source)]
    assert len(records) == 11  # 10 stored messages plus the one forwarded inside nested/forwarded.eml
    for record in records:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, {**record, "ingested_at": datetime.now(timezone.utc)})
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, schema)["message_uid"] == record["message_uid"]


# --- dates and threads ---------------------------------------------------------------------


def test_missing_date_uses_mbox_from_line_and_no_date_in_identity() -> None:
    """Without a Date header sent_at is the From_ line date, and the identity does not use it."""
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    raw = b"Message-ID: <x@example.com>\nFrom: a@example.com\n\nhi\n"
    record = _parse(raw, mbox_from_line_date=when)
    assert record["sent_at"] == when
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["mbox-from"]
    assert record["message_uid"] == email_uid("x@example.com", "a@example.com", None, sha256_hex(raw),
                                              email_content_digest(record))


def test_unparseable_date_falls_back_without_quarantine() -> None:
    """A junk Date header is ignored: ingest time is used and the message stays ok."""
    record = _parse(b"Date: Pn, 29 paX 2007 21:13:00 +0100\nFrom: a@example.com\n\nhi\n")
    assert record["parse_status"] == "ok"
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["ingest-time"]
    assert datetime.now(timezone.utc) - record["sent_at"] < timedelta(minutes=1)


def test_date_beyond_year_9999_in_utc_falls_back() -> None:
    """A Date that would land after year 9999 in UTC is ignored rather than quarantining the message."""
    record = _parse(b"From: a@example.com\nDate: Fri, 31 Dec 9999 23:00:00 -1200\n\nhi\n")
    assert record["parse_status"] == "ok"
    assert _header(record, "X-Strongroom-Sent-At-Source") == ["ingest-time"]


def test_unknown_zone_date_is_utc() -> None:
    """A "-0000" Date (zone unknown) is read as UTC."""
    record = _parse(b"Date: Sat, 13 Oct 2012 15:33:07 -0000\nFrom: a@example.com\n\nhi\n")
    assert record["sent_at"] == datetime(2012, 10, 13, 15, 33, 7, tzinfo=timezone.utc)


def test_in_reply_to_is_used_without_references() -> None:
    """Without References, the conversation is the In-Reply-To message id."""
    record = _parse(b"Message-ID: <b@x.org>\nIn-Reply-To: <A@X.ORG> (Alice's message)\n\nhi\n")
    assert record["conversation_id"] == "A@x.org"


def test_subject_conversation_ignores_reply_prefixes_and_case() -> None:
    """Without any message id, replies and forwards between the same people share the hash of
    their bare subject and addresses; the same subject between other people is another thread."""
    first = _parse(b"From: a@example.com\nTo: B@example.com\nSubject: Quarterly numbers\n\nhi\n")
    reply = _parse(b"From: b@example.com\nTo: a@example.com\nSubject: RE: AW: Fwd:  quarterly   Numbers\n\nhi\n")
    other = _parse(b"From: c@example.com\nTo: a@example.com\nSubject: Quarterly numbers\n\nhi\n")
    expected = "subj-" + sha256_hex(b"quarterly numbers\x1fa@example.com\x1eb@example.com")[:40]
    assert first["conversation_id"] == reply["conversation_id"] == expected != other["conversation_id"]


# --- decoding ------------------------------------------------------------------------------


def test_encoded_words_split_inside_a_character_join() -> None:
    """Adjacent encoded words of one charset decode together, so a split UTF-8 character survives."""
    assert decode_header_value("=?utf-8?B?w6?= =?utf-8?B?pA==?= und =?ISO-8859-1?Q?=FC?=") == "ä und ü"


def test_text_decoding_fallback_chain() -> None:
    """Declared charset first, then UTF-8, then cp1252 with replacement; never an error."""
    assert decode_text("Grüße".encode("latin-1"), "iso-8859-1") == "Grüße"
    assert decode_text("naïve".encode(), "us-ascii") == "naïve"
    assert decode_text(b"\x93quoted\x94 \x81", "base64") == "\u201cquoted\u201d \ufffd"


def test_raw_eight_bit_headers_decode_without_surrogates() -> None:
    """Raw UTF-8 and raw latin-1 header bytes decode to clean text, including filenames."""
    raw = (b"From: J\xc3\xb6rg <j@example.de>\nSubject: Caf\xe9\nContent-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: application/msword; name=\xe7\xae\xa1\xe7\x90\x86.doc\n\nx\n--b--\n")
    record = _parse(raw)
    assert record["sender"]["name"] == "Jörg"
    assert record["subject"] == "Café"
    assert record["attachments"][0]["name"] == "管理.doc"
    assert json.dumps(record, default=str).encode("utf-8")


def test_bad_base64_and_quoted_printable_decode_leniently() -> None:
    """Missing padding, stray characters and broken quoted-printable escapes still decode."""
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ*!\n"
           b"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
           b"caf=C3=A9 =ZZ soft=\nbreak\n--b--\n")
    capture = parse_email(raw, source="test", position="0")
    (blob,) = capture.blobs.values()
    assert blob == b"hello world"
    assert capture.record["body_text"] == "café =ZZ softbreak"


@pytest.mark.parametrize(("encoding", "expected"), [(b"base64;", b"hello"), (b"x-unknown", b"aGVsbG8=")])
def test_transfer_encoding_token_is_normalized(encoding: bytes, expected: bytes) -> None:
    """A trailing ";" on the encoding is tolerated; an unknown encoding keeps the stored bytes."""
    raw = (b"From: a@example.com\nContent-Type: application/octet-stream\n"
           b"Content-Transfer-Encoding: " + encoding + b"\n\naGVsbG8=")
    assert list(parse_email(raw, source="t", position="0").blobs.values()) == [expected]


def test_html_to_text_handles_pre_and_unclosed_head() -> None:
    """<pre> keeps its spacing, and an unclosed <title> in the head does not hide the body."""
    assert html_to_text("<pre>a   b\n  c</pre>") == "a   b\nc"
    assert html_to_text("<head><title>Untitled<body><p>visible</p>") == "visible"


# --- parts that are and are not bodies -----------------------------------------------------


def test_named_text_part_is_an_attachment_not_body() -> None:
    """A text/plain part with a filename is an attachment; the unnamed one is the body."""
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n"
           b"--b\nContent-Type: text/plain; name=notes.txt\n\nnotes\n--b--\n")
    record = _parse(raw)
    assert record["body_text"] == "body"
    assert [(a["name"], a["content_type"], a["size"]) for a in record["attachments"]] == [
        ("notes.txt", "text/plain", 5)]


def test_crlf_message_body_uses_lf() -> None:
    """Body text of a CRLF message uses LF line ends (raw keeps CRLF)."""
    capture = parse_email(b"From: a@example.com\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n", source="t", position="0")
    assert capture.record["body_text"] == "line 1\nline 2\n"
    assert capture.raw.endswith(b"\r\n")


# --- regressions found by probing real-world samples ---------------------------------------


def test_blank_before_first_header_keeps_that_header() -> None:
    """A space before the first field (enmime bad-header-start) does not lose the From header."""
    record = _parse(b" From: James <james@example.com>\nSubject: plain\n\nhi\n")
    assert record["sender"]["address"] == "james@example.com"


def test_bom_before_headers_is_ignored() -> None:
    """A UTF-8 BOM before the headers (mimekit feedback-report) does not make the message unparseable."""
    record = _parse(b"\xef\xbb\xbfFrom: <abuse@example.com>\nSubject: FW: Earn money\n\nreport\n")
    assert (record["parse_status"], record["subject"]) == ("ok", "FW: Earn money")


def test_obsolete_blank_before_colon_is_repaired() -> None:
    """Obsolete "Name  :" fields (RFC 2822 example 13) are read, not taken for the body."""
    record = _parse(b"From  : John Doe <jdoe@machine.example>\r\nSubject     : Saying Hello\r\n\r\nHi\r\n")
    assert (record["sender"]["address"], record["subject"], record["body_text"]) == (
        "jdoe@machine.example", "Saying Hello", "Hi\n")


def test_stray_line_between_headers_does_not_end_the_header() -> None:
    """A broken fold between fields (mimekit issue358) keeps the later fields, such as Content-Type."""
    raw = (b"From: a@example.com\nx-report: SFV:NSPM;SFS:(100)\nds;MX:1;A:1;LANG:it;\n"
           b"Subject: after the stray line\nContent-Type: text/plain; charset=utf-8\n\nTest headers\n")
    record = _parse(raw)
    assert record["subject"] == "after the stray line"
    assert record["body_text"] == "Test headers\n"


def test_body_without_separator_stays_body() -> None:
    """Text right after the headers with no blank line (and no field after it) is the body."""
    record = _parse(b"From: a@example.com\nSubject: s\nHello there, no blank line\nsecond line\n")
    assert record["subject"] == "s"
    assert record["body_text"] == "Hello there, no blank line\nsecond line\n"


def test_garbled_address_list_yields_its_addresses() -> None:
    """Two bare addresses without a comma (ruby raw_email_multiple_from) give the first as sender."""
    record = _parse(b"From: tim@example.com concierge@example.com\nTo: a@example.com\n\nhi\n")
    assert record["sender"]["address"] == "tim@example.com"


def test_thousands_of_encoded_words_in_address_header() -> None:
    """An address header that makes the stdlib parser recurse too deep (mimekit stack-overflow) stays ok."""
    words = b"\n\t=?utf-8?Q?date=3E2017-08-20T10:08:28.617=3C/pr?=" * 3000
    record = _parse(b'From: "test" <test@test.com>\nTo: "test" <to@test.com>,' + words + b"\nSubject: s\n\nbody\n")
    assert record["parse_status"] == "ok"
    assert [r["address"] for r in record["recipients"]] == ["to@test.com"]


def test_damaged_content_type_keeps_the_media_type() -> None:
    """'application/pdf name="x.pdf"' without a semicolon (enmime mime-bad-content-type) is application/pdf."""
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
           b"Content-Type: application/pdf name=\"x.pdf\"\nContent-Disposition: attachment; filename=x.pdf\n\n"
           b"%PDF\n--b--\n")
    assert _parse(raw)["attachments"][0]["content_type"] == "application/pdf"


def test_multipart_without_boundary_is_read_as_text() -> None:
    """A multipart with no boundary (enmime multipart-wo-boundary) keeps its text as the body."""
    record = _parse(b"From: a@example.com\nContent-Type: multipart/mixed\n\nI'm a multipart without boundary\n")
    assert record["body_text"] == "I'm a multipart without boundary\n"


def test_nested_message_with_eight_bit_unbounded_multipart() -> None:
    """A nested message whose multipart lacks a boundary and holds 8-bit text (a mutated mimekit
    multipart-digest) is still kept as a message/rfc822 attachment."""
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
           b"Subject: inner\nContent-Type: multipart/alternative\n\ncaf\xe9\n--b--\n")
    record = _parse(raw)
    assert record["parse_status"] == "ok"
    assert [a["content_type"] for a in record["attachments"]] == ["message/rfc822"]


def test_absurd_nesting_is_quarantined_but_keeps_headers() -> None:
    """Nesting deeper than the stdlib parser can recurse is quarantined with the header fields kept."""
    raw = (b"From: a@example.com\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n"
           + b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(3000))
           + b"--b3000\n\nhi\n")
    record = _parse(raw)
    assert record["parse_status"] == "quarantined"
    assert record["parse_error"].startswith("RecursionError")
    assert (record["sender"]["address"], record["subject"]) == ("a@example.com", "deep")


MULTIPART_HEAD = b"From: a@b.c\nContent-Type: multipart/mixed; boundary=x\n\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.builds(MULTIPART_HEAD.__add__, st.binary(max_size=2000)))
def test_parse_email_never_raises_and_stays_utf8(raw: bytes) -> None:
    """Any bytes give a Capture whose text fields encode as UTF-8 (Avro strings)."""
    capture = parse_email(raw, source="fuzz", position="0")
    assert capture.record["parse_status"] in ("ok", "quarantined")
    json.dumps(capture.record, default=str, ensure_ascii=False).encode("utf-8")


HEADER_VALUE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({name: HEADER_VALUE for name in (
    "From", "To", "Cc", "Date", "Subject", "Message-ID", "References", "Content-Type",
    "Content-Transfer-Encoding", "Content-Disposition")}), st.binary(max_size=300))
def test_any_header_values_parse_ok(values: dict[str, str], body: bytes) -> None:
    """Whatever the field values say, a message with a header block is parsed, not quarantined."""
    head = b"".join(f"{name}: {value}\n".encode() for name, value in values.items())
    record = _parse(head + b"\n" + body)
    assert record["parse_status"] == "ok", record["parse_error"]


def test_copies_of_a_message_share_an_identity_but_a_reused_message_id_does_not() -> None:
    """A copy with other trace headers and line endings is the same message; other content under the same Message-ID is not."""
    base = (b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Q3\r\n"
            b"Date: Mon, 04 Mar 2024 09:15:00 +0000\r\nMessage-ID: <same@example.com>\r\n\r\nThe figures.\r\n")
    copy = b"Received: from relay.example by mx.example; Mon, 04 Mar 2024 09:15:02 +0000\n" + base.replace(b"\r\n", b"\n")
    reused = base.replace(b"The figures.", b"Other figures.")
    uids = [_parse(raw)["message_uid"] for raw in (base, copy, reused)]
    assert uids[0] == uids[1] != uids[2]
