"""MIME fidelity: every hard case in tests/fixtures/email/hard parses (or is quarantined) as stated."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timezone
from pathlib import Path

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.capture import Capture
from producers.email import captures, parse_email, with_nested
from producers.email.extract import TEXT_CAP, TextBudget, attachment_text
from producers.email.invites import invite_text
from producers.email.smime import signed_content
from producers.email.text import codec_name, decode_text
from producers.email.threads import normalized_subject
from schemas.records import sha256_hex

ROOT = Path(__file__).resolve().parent.parent.parent
HARD = ROOT / "tests" / "fixtures" / "email" / "hard"
SCHEMA = fastavro.parse_schema(json.loads((ROOT / "schemas" / "communication.avsc").read_text()))


def _all(name: str) -> list[Capture]:
    return list(captures(HARD / name))


def _one(name: str) -> dict:
    (capture,) = _all(name)
    return capture.record


def _attachments(record: dict) -> dict[str | None, dict]:
    return {a["name"] or a["content_type"]: a for a in record["attachments"]}


# --- every fixture ---------------------------------------------------------------------------

EXPECTED_STATUS = {
    "attachment-text.eml": ("ok", 1), "charsets.eml": ("ok", 1), "dsn.eml": ("ok", 2),
    "forwarded-nested.eml": ("ok", 4), "invite.eml": ("ok", 1), "junk-charsets.eml": ("ok", 1),
    "not-a-message.eml": ("quarantined", 1), "office.eml": ("ok", 1), "pgp-encrypted.eml": ("ok", 1), "pgp-inline.eml": ("ok", 1),
    "pgp-signed.eml": ("ok", 1), "rfc2231-filenames.eml": ("ok", 1), "smime-encrypted.eml": ("ok", 1),
    "smime-signed.eml": ("ok", 1), "smime-opaque-signed.eml": ("ok", 1), "thread-no-ids-1.eml": ("ok", 1), "thread-no-ids-2.eml": ("ok", 1),
    "thread-no-ids-other.eml": ("ok", 1), "thread-reply.eml": ("ok", 1),
}


def test_every_hard_fixture_is_listed_and_accounted_for() -> None:
    """Each fixture file gives its stated status and number of records, and every record fits the Avro schema."""
    assert sorted(p.name for p in HARD.iterdir()) == sorted(EXPECTED_STATUS)
    for name, (status, count) in EXPECTED_STATUS.items():
        items = _all(name)
        assert (items[0].record["parse_status"], len(items)) == (status, count), name
        for capture in items:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, SCHEMA, {**capture.record, "ingested_at": datetime.now(timezone.utc)})
            assert capture.record["raw_sha256"] == sha256_hex(capture.raw)


def test_directory_ingest_reports_each_nested_record_after_its_parent() -> None:
    """Reading the folder yields parents first, children at "<parent position>/<n>", nothing lost."""
    positions = [c.position for c in captures(HARD)]
    assert len(positions) == sum(count for _status, count in EXPECTED_STATUS.values())
    start = positions.index("forwarded-nested.eml")
    assert positions[start:start + 4] == ["forwarded-nested.eml", "forwarded-nested.eml/1",
                                          "forwarded-nested.eml/1/1", "forwarded-nested.eml/2"]


# --- charsets and names ----------------------------------------------------------------------


def test_bodies_and_headers_in_many_charsets() -> None:
    """koi8-r, Shift_JIS, windows-1255 (QP), UTF-16 (base64), x-mac-cyrillic bodies; ISO-2022-JP,
    GB2312, Big5, ISO-8859-7 encoded words."""
    record = _one("charsets.eml")
    assert record["body_text"] == "Привет из Москвы\n東京の会議\nשלום\nUTF-16 Grüße\nМак"
    assert record["subject"] == "中文中文ελληνικά"
    assert record["sender"]["name"] == "Дима"
    assert record["recipients"][0]["name"] == "こんにちは"


def test_junk_charsets_fall_back_without_errors() -> None:
    """A quoted junk label, unknown-8bit, a non-text codec (rot13) and 8-bit "us-ascii" all decode;
    undecodable encoded words stay readable."""
    record = _one("junk-charsets.eml")
    assert record["parse_status"] == "ok"
    assert record["body_text"] == "naïve\nStraße\nplain text, not rotated\n€ 5"
    assert record["sender"]["name"] == "café"
    assert record["subject"].startswith("hello") and record["subject"].endswith(" broken")


@pytest.mark.parametrize(("label", "text", "codec"), [
    ("cp-1252", "Grüße €", "cp1252"), ("win-1251", "Привет", "cp1251"), ("windows-874", "สวัสดี", "cp874"),
    ("x-mac-cyrillic", "Мак", "mac_cyrillic"), ("ks_c_5601-1987", "한국", "cp949"), ("x-gbk", "中文", "gb18030"),
    ("unicode", "Grüße", "utf-16"), ("\"utf-8\"", "Grüße", "utf-8")])
def test_charset_labels_seen_in_the_wild(label: str, text: str, codec: str) -> None:
    """Misspelled and vendor charset labels decode as the codec they mean."""
    assert codec_name(label) is not None
    assert decode_text(text.encode(codec), label) == text


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib", "x-no-such", "8bit", ""])
def test_labels_that_are_no_text_charset(label: str) -> None:
    """Non-text codecs and unknown labels count as no charset (UTF-8, then cp1252, is tried)."""
    assert codec_name(label) is None


def test_every_python_text_codec_decodes_without_raising() -> None:
    """For every charset Python knows, decoding arbitrary bytes returns clean text."""
    import encodings.aliases

    junk = bytes(range(256))
    for label in sorted(set(encodings.aliases.aliases.values())):
        text = decode_text(junk, label)
        text.encode("utf-8")


def test_rfc2231_and_rfc2047_filenames() -> None:
    """Continuations with a charset and language, an RFC 2047 name, and a single encoded parameter."""
    names = [a["name"] for a in _one("rfc2231-filenames.eml")["attachments"]]
    assert names == ["Geschäftsbericht 2024.bin", "Résumé.bin", "été.bin"]


# --- nested messages -------------------------------------------------------------------------


def test_nested_messages_are_records_with_exact_bytes_and_parents() -> None:
    """Each message/rfc822 part is an attachment of the parent and a record of its own: raw is the
    attachment's exact bytes, parent_uid links it, and it carries the "nested" flag."""
    outer, middle, original, encoded = _all("forwarded-nested.eml")
    assert [a["content_type"] for a in outer.record["attachments"]] == ["message/rfc822"] * 3
    assert middle.raw in outer.raw and original.raw in middle.raw
    assert middle.record["raw_sha256"] == outer.record["attachments"][0]["sha256"]
    assert outer.blobs[middle.record["raw_sha256"]] == middle.raw
    assert (middle.record["parent_uid"], original.record["parent_uid"], encoded.record["parent_uid"]) == (
        outer.record["message_uid"], middle.record["message_uid"], outer.record["message_uid"])
    assert original.record["subject"] == "The original"
    assert original.record["message_id"] == "original@example.org"
    assert original.record["sent_at"] == datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
    assert all(c.record["flags"] == ["nested"] for c in (middle, original, encoded))
    assert outer.record["parent_uid"] is None and "nested" not in outer.record["flags"]


def test_base64_nested_message_is_decoded_and_timed_by_its_parent() -> None:
    """A base64-encoded message/rfc822 is decoded into its own record; without a Date it takes the parent's time."""
    outer, *_rest, encoded = _all("forwarded-nested.eml")
    assert encoded.raw.startswith(b"From: dave@example.net\n")
    assert encoded.record["body_text"] == "Encoded as a whole.\n"
    assert encoded.record["sent_at"] == outer.record["sent_at"]
    assert {"name": "X-Strongroom-Sent-At-Source", "value": "parent-message"} in encoded.record["headers"]


def test_placeholder_rfc822_part_stays_an_attachment_only() -> None:
    """A message/rfc822 part without a single header field is kept as an attachment, not a record."""
    outer = _all("forwarded-nested.eml")[0]
    placeholder = outer.record["attachments"][2]
    assert outer.blobs[placeholder["sha256"]] == b"[original message goes here]"


def test_with_nested_yields_parent_then_children() -> None:
    """with_nested flattens a parse_email result for sources that call parse_email themselves."""
    raw = (HARD / "dsn.eml").read_bytes()
    items = list(with_nested(parse_email(raw, source="smtp", position="7")))
    assert [c.position for c in items] == ["7", "7/1"]


# --- signed and encrypted --------------------------------------------------------------------


def test_smime_signed_keeps_signature_and_reads_signed_text() -> None:
    """multipart/signed S/MIME: the signed text is the body, the .p7s is an attachment blob, flag signed:smime."""
    capture = _all("smime-signed.eml")[0]
    record = capture.record
    assert record["flags"] == ["signed:smime"]
    assert record["body_text"] == "I agree to the contract terms."
    (signature,) = record["attachments"]
    assert (signature["name"], signature["content_type"]) == ("smime.p7s", "application/pkcs7-signature")
    assert capture.blobs[signature["sha256"]].startswith(b"0\x82\x01\x00")


def test_opaque_smime_signed_content_is_read_from_the_cms() -> None:
    """application/pkcs7-mime signed-data (BER, indefinite lengths, as openssl cms -stream writes it):
    the signed entity's text is the body; the .p7m stays an attachment for verification."""
    capture = _all("smime-opaque-signed.eml")[0]
    record = capture.record
    assert record["flags"] == ["signed:smime"]
    assert record["body_text"] == "Opaque signed: wire 5000 EUR to account 12.\n"
    (p7m,) = record["attachments"]
    assert (p7m["name"], p7m["content_type"]) == ("smime.p7m", "application/pkcs7-mime")
    assert signed_content(capture.blobs[p7m["sha256"]]).endswith(b"account 12.\r\n")


@pytest.mark.parametrize("data", [b"", b"0", b"0\x80\x06\x09", b"0\x84\xff\xff\xff\xff", b"\x24\x80" * 100])
def test_signed_content_of_junk_is_none(data: bytes) -> None:
    """Truncated, oversized or absurdly nested BER gives None, never an exception."""
    assert signed_content(data) is None


@pytest.mark.parametrize(("name", "flags", "body"), [
    ("smime-encrypted.eml", ["encrypted"], None),
    ("pgp-signed.eml", ["signed:pgp"], "Ship the order on Friday."),
    ("pgp-encrypted.eml", ["encrypted"], None),
])
def test_pgp_and_encrypted_flags(name: str, flags: list[str], body: str | None) -> None:
    """PGP/MIME signatures and S/MIME or PGP ciphertext are flagged and kept as attachments."""
    record = _one(name)
    assert record["flags"] == flags
    assert record["body_text"] == body
    assert record["attachments"]


def test_inline_pgp_signed_message() -> None:
    """An inline PGP signed message is flagged, its text searchable as sent."""
    record = _one("pgp-inline.eml")
    assert record["flags"] == ["signed:pgp"]
    assert "Pay invoice 4711 today." in record["body_text"]


# --- calendar, DSN, attachment text ----------------------------------------------------------


INVITE_TEXT = ("Method: REQUEST\nEvent: Q3 numbers review, board room\nStart: 2024-03-11 14:00 Europe/Berlin\n"
               "End: 2024-03-11 15:00 Europe/Berlin\nOrganizer: Müller, Anna <anna@example.de>\n"
               "Attendee: Bob <bob@example.org>\nLocation: Raum 4.11\nDescription: Agenda:\n1. numbers\n2. forecast")


def test_calendar_invite_summary_is_searchable() -> None:
    """The inline text/calendar part and the .ics attachment carry what, when, where and who."""
    record = _one("invite.eml")
    assert record["flags"] == ["calendar"]
    assert record["body_text"] == "You are invited."
    assert [a["text"] for a in record["attachments"]] == [INVITE_TEXT, INVITE_TEXT]


def test_invite_text_survives_broken_calendars() -> None:
    """Junk, a missing END and a date without time never raise."""
    assert invite_text("garbage\n:::\n;;;") == ""
    assert invite_text("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20240311\nSUMMARY:Day off") == (
        "Start: 2024-03-11\nEvent: Day off")


def test_dsn_flags_reports_failures_and_returns_the_original() -> None:
    """A delivery-status report is flagged dsn, its recipients and codes are searchable text, and
    the returned message is its own nested record."""
    report, returned = _all("dsn.eml")
    assert report.record["flags"] == ["dsn"]
    status = report.record["attachments"][0]
    assert status["content_type"] == "message/delivery-status"
    for fact in ("gone@example.net", "Status: 5.1.1", "typo@exmaple.org", "Status: 5.4.4", "User unknown"):
        assert fact in status["text"]
    assert returned.record["parent_uid"] == report.record["message_uid"]
    assert returned.record["subject"] == "Contract draft"
    assert [r["address"] for r in returned.record["recipients"]] == ["gone@example.net", "typo@exmaple.org"]


def test_text_html_and_pdf_attachments_have_text() -> None:
    """PDF, HTML and CSV attachments get their text; a broken PDF gets none and flags the failure."""
    record = _one("attachment-text.eml")
    found = _attachments(record)
    assert record["body_text"] == "Three documents, see attached."
    assert found["invoice.pdf"]["text"] == "Invoice 4711 total EUR 1250"
    assert found["minutes.html"]["text"] == "Minutes\n\nCafé budget approved"
    assert found["figures.csv"]["text"] == "region,total\nnorth,42"
    assert found["broken.pdf"]["text"] is None and found["logo.png"]["text"] is None
    assert record["flags"] == ["text-extraction-failed"]


def test_office_documents_have_text() -> None:
    """docx (body before footer) and xlsx (shared strings) give their words; a corrupt docx is flagged."""
    record = _one("office.eml")
    found = _attachments(record)
    assert found["terms.docx"]["text"] == "Term sheet & allocation\nPrice: 42 EUR\n\nConfidential"
    assert found["figures.xlsx"]["text"] == "region\nNord-Süd"
    assert found["broken.docx"]["text"] is None
    assert record["flags"] == ["text-extraction-failed"]


def test_attachment_text_is_capped_per_attachment_and_per_message() -> None:
    """Each attachment's text stops at TEXT_CAP characters, and a message's total at its budget."""
    budget = TextBudget()
    texts = [attachment_text("text/plain", None, b"x" * (TEXT_CAP + 10), "utf-8", budget) for _ in range(6)]
    assert [len(t or "") for t in texts] == [TEXT_CAP] * 5 + [0]
    assert budget.flags == {"attachment-text-capped"}


# --- threads ---------------------------------------------------------------------------------


def test_thread_root_is_first_reference() -> None:
    """References win over In-Reply-To; the root id is normalized (domain lower-cased)."""
    assert _one("thread-reply.eml")["conversation_id"] == "Root-0@example.de"


def test_threads_without_ids_use_subject_and_people() -> None:
    """Without ids a reply (AW:/Re:, other case) joins its original; another sender's same subject does not."""
    first, reply, other = (_one(f"thread-no-ids-{n}.eml")["conversation_id"] for n in ("1", "2", "other"))
    assert first == reply != other
    assert first.startswith("subj-")


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: AW: WG: Fwd: Budget", "budget"), ("SV: Antw: FW: Re[2]: x", "x"), ("RE : Tr: rv: y", "y"),
    ("Reply needed", "reply needed"), ("", "")])
def test_normalized_subject(subject: str, expected: str) -> None:
    """Reply and forward markers in several languages go; words that merely start alike stay."""
    assert normalized_subject(subject) == expected


# --- fuzzing ---------------------------------------------------------------------------------

SEEDS = sorted(p.read_bytes() for p in HARD.iterdir())
_MUTATIONS = ("drop-line", "dup-line", "charset", "boundary", "encoding", "truncate", "splice", "header")
_CHARSETS = [b"utf-8", b"x-junk", b"utf-16", b"iso-2022-jp", b"base64", b"", b"\"", b"utf-8''", b"koi8-r\xff"]
_ENCODINGS = [b"base64", b"quoted-printable", b"x-uuencode", b"8bit", b"bogus", b"", b"base64;;"]


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    lines = raw.split(b"\n")
    kind = rng.choice(_MUTATIONS)
    index = rng.randrange(len(lines))
    if kind == "drop-line":
        del lines[index]
    elif kind == "dup-line":
        lines.insert(index, lines[index])
    elif kind == "charset":
        lines = [line.replace(b"charset=", b"charset=" + rng.choice(_CHARSETS) + b";x=") for line in lines]
    elif kind == "boundary":
        lines = [line.replace(b"--", rng.choice([b"-", b"---", b"--x", b"\n--"]), 1) if rng.random() < 0.3 else line
                 for line in lines]
    elif kind == "encoding":
        lines.insert(index, b"Content-Transfer-Encoding: " + rng.choice(_ENCODINGS))
    elif kind == "truncate":
        return raw[:rng.randrange(len(raw) + 1)]
    elif kind == "splice":
        other = rng.choice(SEEDS)
        cut = rng.randrange(len(other) + 1)
        return raw[:rng.randrange(len(raw) + 1)] + other[cut:]
    else:
        lines.insert(index, rng.choice([b"Content-Type: message/rfc822", b"Content-Type: multipart/mixed; boundary=",
                                        b"Subject: =?utf-8?B?\xff?=", b"\tcontinued", b"From: <<@>>",
                                        b"Content-Disposition: attachment; filename*0*=bad'%ZZ"]))
    return b"\n".join(lines)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False), st.integers(1, 6))
def test_structurally_mutated_mime_never_raises(seed: bytes, rng: random.Random, rounds: int) -> None:
    """Header, charset, boundary and encoding mutations of the hard fixtures parse or are quarantined,
    and every resulting record (nested ones too) encodes as UTF-8."""
    raw = seed
    for _ in range(rounds):
        raw = _mutate(raw, rng)
    for capture in with_nested(parse_email(raw, source="fuzz", position="0")):
        assert capture.record["parse_status"] in ("ok", "quarantined")
        json.dumps(capture.record, default=str, ensure_ascii=False).encode("utf-8")
