"""parse_email: one raw RFC 5322 message -> a Capture holding a Communication record. Never raises.

The MIME tree comes from the stdlib parser with policy compat32; header fields, charsets and
transfer encodings are decoded by us (text.py), the tree is walked in parts.py, attachment text
comes from extract.py, threads from threads.py. policy.default was measured about ten times
slower on real mail (its feed parser asks for Content-Type over and over, re-parsing it each
time), which the throughput target cannot afford; it also turns raw 8-bit header bytes into
U+FFFD and raises LookupError on an unknown body charset. compat32 keeps raw values, which we
decode with one fallback chain.

body_text is the inline text/plain parts, or else the inline text/html parts turned into plain
text, with CRLF made LF (raw keeps the original). Every other leaf part is an attachment, its
decoded bytes in Capture.blobs under their sha256.

Nested messages (message/rfc822: forwarded, attached or bounced mail) stay attachments of the
parent and also become Captures of their own in Capture.nested: raw = the nested message's
bytes (the attachment's blob), position "<parent position>/<n>", parent_uid = the parent's
message_uid, flag "nested", sent_at from its own Date or else the parent's. Nesting deeper than
MAX_NESTED_DEPTH, and a message/rfc822 part holding no header field at all (a placeholder such
as "[original message goes here]"), stay in the attachment blobs only.

Unparseable, hence quarantined: empty input; input in which the parser finds not a single header
field before the body (it stops at the first line that is neither a field nor a continuation:
binary data, a text or JSON file); and any exception while parsing (for example recursion on
absurdly deep nesting). A quarantined Capture keeps the fields read before the failure, its
message_uid is "em-raw-<sha256>" and sent_at is the ingest time. Damage short of that (bad
dates, addresses, charsets, boundaries) leaves fields empty or repaired, never quarantined.
Header faults common in real mail are repaired for parsing only (raw is never touched): a BOM or
blanks before the first field, blanks before a field's colon, a stray line between fields.
"""

from __future__ import annotations

import inspect
import re
from datetime import datetime, timezone
from email import policy
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from producers.capture import Capture
from producers.email.formats import HEADER_FIELD
from producers.email.parts import walk
from producers.email.text import clean as _clean
from producers.email.text import decode_header_value, decode_text, html_to_text
from producers.email.threads import conversation_id
from producers.email.tnef import expand_tnef
from schemas.records import (EMAIL_TOPIC_KIND, email_content_digest, email_uid, new_record, normalize_message_id,
                             participant, recipient, sha256_hex)

__all__ = ["MAX_NESTED_DEPTH", "decode_header_value", "decode_text", "html_to_text", "parse_email"]


class _RawHeaders(policy.Compat32):
    """compat32, but header lookups return the stored value: compat32 turns raw 8-bit bytes into
    U+FFFD on lookup (so an 8-bit filename is lost); we decode them ourselves instead."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_PARSER = BytesParser(policy=_RawHeaders())
# max_line_length 0: re-emit headers without refolding them; linesep as the message uses.
_SERIALIZE = {sep: _RawHeaders(max_line_length=0, linesep=sep.decode()) for sep in (b"\n", b"\r\n")}
# Python >= 3.11.10/3.12.6 rejects malformed address lists unless strict=False; an archive records
# what the header says, ambiguous or not, so keep the lenient parse everywhere.
_ADDRESS_OPTIONS = {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}
_BOM = b"\xef\xbb\xbf"
_OBSOLETE_FIELD_BLANKS = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_ADDRESS_SEPARATORS = re.compile(r"[\s<>,;:\"()\[\]]+")
_SENT_AT_SOURCE = "X-Strongroom-Sent-At-Source"
MAX_NESTED_DEPTH = 8
_NOT_A_MESSAGE = frozenset(("empty input", "only whitespace, no header fields", "no header field before the body"))


class _Unparseable(Exception):
    """The input is not a message at all; the text is the parse_error."""


def parse_email(raw: bytes, *, source: str, position: str,
                mbox_from_line_date: datetime | None = None) -> Capture:
    """The Capture for one raw message, nested messages in its `nested`; bad input becomes a
    quarantined Capture, never an exception."""
    fallback = (_utc(mbox_from_line_date), "mbox-from") if mbox_from_line_date else None
    return _capture(raw, source, position, fallback, 0)


def _capture(raw: bytes, source: str, position: str, fallback: tuple[datetime, str] | None, depth: int) -> Capture:
    ingested = datetime.now(timezone.utc)
    raw_sha256 = sha256_hex(raw)
    base = {"kind": EMAIL_TOPIC_KIND, "platform": "email", "source": source, "source_position": position,
            "raw_sha256": raw_sha256, "raw_size": len(raw)}
    found: dict[str, Any] = {}  # fields read so far, kept when a later step fails
    nested: list[bytes] = []
    blobs: dict[str, bytes] = {}
    try:
        record = _parse(raw, base, found, blobs, nested, fallback or (ingested, "ingest-time"))
    except Exception as exc:  # noqa: BLE001 - the contract is to quarantine, never to raise
        reason = str(exc) if isinstance(exc, _Unparseable) else f"{type(exc).__name__}: {exc}"
        if "headers" not in found and not isinstance(exc, _Unparseable):
            try:  # the body defeated the parser: keep what the header block says
                _read_headers(_parse_message(raw, headers_only=True), found)
            except Exception:  # noqa: BLE001, S110 - nothing more can be read
                pass
        # The mbox From_ line (or the parent's time) is the best evidence of when unreadable mail arrived.
        when, when_source = fallback or (ingested, "ingest-time")
        found["headers"] = [*found.get("headers", ()), {"name": _SENT_AT_SOURCE, "value": when_source}]
        found.pop("flags", None)
        record = new_record(**base, **found, message_uid=email_uid(None, None, None, raw_sha256),
                            sent_at=when, parse_status="quarantined",
                            parse_error=" ".join(reason.split())[:500] or type(exc).__name__)
        blobs, nested = {}, []
    capture = Capture(path=source, position=position, raw=raw, record=record, blobs=blobs)
    if depth < MAX_NESTED_DEPTH:
        for number, data in enumerate(nested, 1):
            child = _capture(data, source, f"{position}/{number}", (record["sent_at"], "parent-message"), depth + 1)
            if child.quarantined and child.record["parse_error"] in _NOT_A_MESSAGE:
                continue  # a placeholder ("[original message goes here]"): the attachment keeps it
            child.record["parent_uid"] = record["message_uid"]
            child.record["flags"] = ["nested", *child.record["flags"]]
            capture.nested.append(child)
    return capture


def _parse(raw: bytes, base: dict[str, Any], found: dict[str, Any], blobs: dict[str, bytes], nested: list[bytes],
           fallback: tuple[datetime, str]) -> dict[str, Any]:
    if not raw.strip():
        raise _Unparseable("empty input" if not raw else "only whitespace, no header fields")
    msg = _parse_message(raw)
    if not msg.keys():
        raise _Unparseable("no header field before the body")
    headers, fields = _read_headers(msg, found)
    first = {name: values[0] for name, values in fields.items()}
    message_id, address = found["message_id"], found["sender"]["address"]
    header_date = _date(first.get("date"))
    sent_at, sent_at_source = (header_date, "date-header") if header_date else fallback

    linesep = b"\r\n" if b"\r\n" in raw[:raw.find(b"\n") + 1] else b"\n"
    parts = walk(msg, raw, _SERIALIZE, linesep, _PARSER.parsebytes)
    blobs.update(parts.blobs)
    nested.extend(parts.nested)
    found["headers"] = [*headers, {"name": _SENT_AT_SOURCE, "value": sent_at_source}]
    body = parts.body_text
    record = new_record(**base, **found, message_uid="", sent_at=sent_at,
                        body_text=_clean(body) if body is not None else None, attachments=parts.attachments,
                        flags=sorted(parts.flags))
    expand_tnef(record, blobs)  # winmail.dat: its files become attachments too (tnef.py)
    record["message_uid"] = email_uid(message_id, address, header_date, base["raw_sha256"],
                                      email_content_digest(record))
    return record


def _parse_message(raw: bytes, headers_only: bool = False) -> Message:
    # A BOM, blanks or blank lines before the first field would make the parser drop that field;
    # so would a quoted ">From " line (an mboxrd envelope line kept in a forwarded message).
    start = len(_BOM) if raw.startswith(_BOM) else 0
    while raw[start:start + 1] in (b" ", b"\t", b"\r", b"\n"):
        start += 1
    if raw.startswith(b">From ", start):
        start = raw.find(b"\n", start) + 1 or len(raw)
    text = raw[start:] if start else raw
    msg = _PARSER.parsebytes(text, headersonly=headers_only)
    if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in msg.defects):
        repaired = _repair_header_block(text)
        if repaired is not text:
            msg = _PARSER.parsebytes(repaired, headersonly=headers_only)
    return msg


def _repair_header_block(text: bytes) -> bytes:
    """The parser ends the header block at the first line that is not a field. Two such lines
    are repairable: obsolete blanks before the colon ("Subject  : hi") lose them, and a stray
    line between fields (a broken fold) becomes a continuation. A stray line with no field
    after it is where the body starts without a blank line, as the parser assumed; one with
    no field before it means the text does not start with a header at all."""
    blank = _BLANK_LINE.search(text)
    end = blank.start() if blank else len(text)
    lines = text[:end].splitlines(keepends=True)
    is_field = [bool(HEADER_FIELD.match(line)) for line in lines]
    first_field = is_field.index(True) if True in is_field else len(lines)
    last_field = len(lines) - 1 - is_field[::-1].index(True) if True in is_field else -1
    changed = False
    for i, line in enumerate(lines):
        if is_field[i]:
            fixed = _OBSOLETE_FIELD_BLANKS.sub(rb"\1:", line, count=1)
        elif line[:1] in (b" ", b"\t") or (i == 0 and line.startswith(b"From ")):
            continue
        elif first_field < i < last_field:
            fixed = b" " + line
        else:
            break
        changed |= fixed != line
        lines[i] = fixed
    return b"".join(lines) + text[end:] if changed else text


def _read_headers(msg: Message, found: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """Every header in order, decoded, and the raw values by lower-cased name; fills `found`."""
    fields: dict[str, list[str]] = {}
    headers = []
    for name, value in msg.raw_items():
        name, value = name.strip(), _unfold(value)
        fields.setdefault(name.lower(), []).append(value)
        headers.append({"name": name, "value": decode_header_value(value)})
    found["headers"] = headers
    first = {name: values[0] for name, values in fields.items()}
    if "subject" in first:
        found["subject"] = decode_header_value(first["subject"]).strip()
    found["message_id"] = normalize_message_id(_clean(first.get("message-id", "")))
    senders = _addresses(fields.get("from") or fields.get("sender") or [])
    name, address = senders[0] if senders else (None, None)
    found["sender"] = participant(name=name, address=address)
    found["recipients"] = [recipient(role, name=n, address=a)
                           for role in ("to", "cc", "bcc") for n, a in _addresses(fields.get(role, []))]
    people = [found["sender"]["address"], *(r["address"] for r in found["recipients"])]
    found["conversation_id"] = conversation_id(first, found["message_id"], found.get("subject"), people)
    return headers, fields


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "") if "\n" in value or "\r" in value else value


def _addresses(values: list[str]) -> list[tuple[str | None, str | None]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        try:
            parsed = getaddresses([value], **_ADDRESS_OPTIONS)
        except RecursionError:  # the stdlib parser recurses per word; thousands of words defeat it
            parsed = None
        if parsed is None or not all((n or a) and (_is_address(a) or "@" not in a) for n, a in parsed):
            # Garbled beyond the grammar ("a@x.org b@x.org" parses as "@x.org"): take the addresses.
            found = [token for token in _ADDRESS_SEPARATORS.split(value) if _is_address(token)]
            parsed = [("", address) for address in found] or parsed or []
        pairs.extend(parsed)
    found = []
    for name, address in pairs:
        name, address = decode_header_value(name).strip(), _clean(address).strip()
        if name or address:
            found.append((name or None, address or None))
    return found


def _is_address(token: str) -> bool:
    local, at, domain = token.rpartition("@")
    return bool(local and at and domain) and not _ADDRESS_SEPARATORS.search(token)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:  # "-0000" ("zone unknown", RFC 5322) comes back naive: read as UTC
        return _utc(parsedate_to_datetime(_clean(value).strip()))
    except (ValueError, TypeError, IndexError, OverflowError):  # junk, or a year pushed past 9999
        return None


