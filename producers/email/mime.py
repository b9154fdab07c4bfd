"""parse_email: one raw RFC 5322 message -> a Capture holding a Communication record. Never raises.

The MIME tree comes from the stdlib parser with policy compat32; header fields, charsets and
transfer encodings are decoded here. policy.default was measured about ten times slower on real
mail (its feed parser asks for Content-Type over and over, re-parsing it each time), which the
throughput target cannot afford; it also turns raw 8-bit header bytes into U+FFFD and raises
LookupError on an unknown body charset. compat32 keeps raw values, which we decode with one
fallback chain.

Text decoding never fails: the declared charset, then UTF-8, then cp1252 with replacement.
Bad base64 is padded or trimmed, bad quoted-printable is decoded leniently, an unknown
transfer encoding leaves the bytes as they are. body_text is the inline text/plain parts, or
else the inline text/html parts turned into plain text (scripts and styles dropped), with
CRLF made LF (raw keeps the original). Every other leaf part is an attachment (message/* parts
as their serialized body), its decoded bytes in Capture.blobs under their sha256.

Unparseable, hence quarantined: empty input; input in which the parser finds not a single header
field before the body (it stops at the first line that is neither a field nor a continuation:
binary data, a text or JSON file); and any exception while parsing (for example recursion on
absurdly deep nesting). A quarantined Capture keeps the fields read before the failure, its
message_uid is "em-raw-<sha256>" and sent_at is the ingest time. Damage short of that (bad
dates, addresses, charsets, boundaries) leaves fields empty or repaired, never quarantined.
Header faults common in real mail are repaired for parsing only (raw is never touched): a BOM or
blanks before the first field, blanks before a field's colon, a stray line between fields.

Longer than our usual ~300 lines: charset, RFC 2047 and HTML-to-text decoding live here too;
they would split out cleanly into a text.py of their own.
"""

from __future__ import annotations

import binascii
import codecs
import inspect
import io
import re
from datetime import datetime, timezone
from email import policy
from email.errors import MissingHeaderBodySeparatorDefect
from email.generator import BytesGenerator, Generator
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

from producers.capture import Capture
from producers.email.formats import HEADER_FIELD
from producers.email.tnef import expand_tnef
from schemas.records import (EMAIL_TOPIC_KIND, attachment, email_content_digest, email_uid, new_record,
                             normalize_message_id, participant, recipient, sha256_hex)


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
# Labels that mailers use for a superset encoding (as browsers decode them, WHATWG Encoding).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
                    "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "x-sjis": "cp932",
                    "iso-8859-8-i": "iso-8859-8", "tis-620": "cp874", "unicode-1-1-utf-7": "utf-7"}
_BOM = b"\xef\xbb\xbf"
_OBSOLETE_FIELD_BLANKS = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_ADDRESS_SEPARATORS = re.compile(r"[\s<>,;:\"()\[\]]+")
# Encoded text cannot hold "?" (RFC 2047); [^?]* also keeps the scan linear on hostile headers.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
# Reply and forward markers, English and the common Outlook translations (AW, SV, WG); "Re[2]:" too.
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|sv|wg)\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE)
# type/subtype as RFC 6838 names them; the rest of a damaged value ('application/pdf name="x"') goes.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_CTE_TOKEN = re.compile(r"[a-z0-9-]+")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
_NOT_BASE64 = bytes(b for b in range(256) if not (chr(b).isalnum() and b < 128) and b not in b"+/")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table td th tr ul".split())
_HIDDEN_TAGS = frozenset(("script", "style", "title", "template"))
_SENT_AT_SOURCE = "X-Strongroom-Sent-At-Source"


class _Unparseable(Exception):
    """The input is not a message at all; the text is the parse_error."""


def parse_email(raw: bytes, *, source: str, position: str,
                mbox_from_line_date: datetime | None = None) -> Capture:
    """The Capture for one raw message; bad input becomes a quarantined Capture, never an exception."""
    ingested = datetime.now(timezone.utc)
    raw_sha256 = sha256_hex(raw)
    base = {"kind": EMAIL_TOPIC_KIND, "platform": "email", "source": source, "source_position": position,
            "raw_sha256": raw_sha256, "raw_size": len(raw)}
    found: dict[str, Any] = {}  # fields read so far, kept when a later step fails
    blobs: dict[str, bytes] = {}
    try:
        record = _parse(raw, base, found, blobs, ingested, mbox_from_line_date)
    except Exception as exc:  # noqa: BLE001 - the contract is to quarantine, never to raise
        reason = str(exc) if isinstance(exc, _Unparseable) else f"{type(exc).__name__}: {exc}"
        if "headers" not in found and not isinstance(exc, _Unparseable):
            try:  # the body defeated the parser: keep what the header block says
                _read_headers(_parse_message(raw, headers_only=True), found)
            except Exception:  # noqa: BLE001, S110 - nothing more can be read
                pass
        # The mbox From_ line is the best evidence of when unreadable mail arrived.
        when, when_source = ((_utc(mbox_from_line_date), "mbox-from") if mbox_from_line_date
                             else (ingested, "ingest-time"))
        found["headers"] = [*found.get("headers", ()), {"name": _SENT_AT_SOURCE, "value": when_source}]
        record = new_record(**base, **found, message_uid=email_uid(None, None, None, raw_sha256),
                            sent_at=when, parse_status="quarantined",
                            parse_error=" ".join(reason.split())[:500] or type(exc).__name__)
        blobs = {}
    return Capture(path=source, position=position, raw=raw, record=record, blobs=blobs)


def _parse(raw: bytes, base: dict[str, Any], found: dict[str, Any], blobs: dict[str, bytes],
           ingested: datetime, from_line_date: datetime | None) -> dict[str, Any]:
    if not raw.strip():
        raise _Unparseable("empty input" if not raw else "only whitespace, no header fields")
    msg = _parse_message(raw)
    if not msg.keys():
        raise _Unparseable("no header field before the body")
    headers, fields = _read_headers(msg, found)
    first = {name: values[0] for name, values in fields.items()}
    message_id, address = found["message_id"], found["sender"]["address"]
    header_date = _date(first.get("date"))
    sent_at, sent_at_source = ((header_date, "date-header") if header_date else
                               (_utc(from_line_date), "mbox-from") if from_line_date else
                               (ingested, "ingest-time"))

    plain, html, attachments = _walk(msg, b"\r\n" if b"\r\n" in raw[:raw.find(b"\n") + 1] else b"\n", blobs)
    body = "\n".join(plain) if plain else "\n".join(map(html_to_text, html)) if html else None
    found["headers"] = [*headers, {"name": _SENT_AT_SOURCE, "value": sent_at_source}]
    record = new_record(**base, **found, message_uid="", sent_at=sent_at,
                        body_text=_clean(body) if body is not None else None, attachments=attachments)
    expand_tnef(record, blobs)  # winmail.dat: its files become attachments too (tnef.py)
    record["message_uid"] = email_uid(message_id, address, header_date, base["raw_sha256"],
                                      email_content_digest(record))
    return record


def _parse_message(raw: bytes, headers_only: bool = False) -> Message:
    # A BOM or blanks before the first field would make the parser drop that field.
    start = len(_BOM) if raw.startswith(_BOM) else 0
    while raw[start:start + 1] in (b" ", b"\t"):
        start += 1
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
    found["conversation_id"] = _conversation_id(first, found["message_id"], found.get("subject"))
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


def _conversation_id(first: dict[str, str], message_id: str | None, subject: str | None) -> str | None:
    references = _clean(first.get("references", "")).split()
    for candidate in (" ".join(references), references[0] if references else "", first.get("in-reply-to")):
        root = normalize_message_id(_clean(candidate or ""))
        if root:
            return root
    if message_id:
        return message_id
    topic = " ".join(_REPLY_PREFIX.sub("", subject or "").lower().split())
    return "subj-" + sha256_hex(topic.encode("utf-8"))[:40] if topic else None


def _walk(msg: Message, linesep: bytes, blobs: dict[str, bytes]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Inline text/plain and text/html bodies and the attachments, in document order."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[dict[str, Any]] = []
    stack: list[Message] = [msg]  # a stack, not recursion: nesting depth is attacker-controlled
    while stack:
        part = stack.pop()
        media_type = _MEDIA_TYPE.match(part.get_content_type())
        content_type = media_type.group(0) if media_type else "application/octet-stream"
        maintype = content_type.partition("/")[0]
        if part.is_multipart() and maintype == "multipart":
            stack.extend(reversed(part.get_payload()))
            continue
        filename = _filename(part)
        if part.is_multipart():  # message/*: the stored sub-message, serialized
            data = _serialized_body(part, linesep)
        elif ((content_type in ("text/plain", "text/html") or maintype == "multipart")
              and filename is None and part.get_content_disposition() != "attachment"):
            # A multipart left without parts (no usable boundary) is one opaque body: read it as text.
            text = decode_text(_decoded_payload(part), _charset(part)).replace("\r\n", "\n")
            (html if content_type == "text/html" else plain).append(text)
            continue
        else:
            data = _decoded_payload(part)
        digest = sha256_hex(data)
        blobs[digest] = data
        attachments.append(attachment(content_type, name=filename, size=len(data), sha256=digest))
    return plain, html, attachments


def _filename(part: Message) -> str | None:
    try:  # RFC 2231 continuations and charsets are decoded by get_filename; RFC 2047 is not
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - a malformed parameter costs the name, not the message
        return None
    if not name:
        return None
    return decode_header_value(name).strip() or None


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - a malformed parameter falls back to charset guessing
        return None


def _decoded_payload(part: Message) -> bytes:
    # Not get_payload(): it re-decodes 8-bit bytes with the declared charset, lossily. _payload is
    # what the bytes parser stored (ASCII plus surrogate escapes), which encodes back exactly.
    payload = part._payload  # noqa: SLF001
    data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload or b"")
    match = _CTE_TOKEN.search(str(part.get("content-transfer-encoding", "")).lower())
    encoding = match.group(0) if match else ""
    if encoding == "base64":
        return _b64decode(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        decoded = part.get_payload(decode=True)
        return decoded if isinstance(decoded, bytes) else data
    return data  # 7bit, 8bit, binary, or unknown: the stored bytes are the content


def _b64decode(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # bad padding: drop the stray tail, pad what is left
        cleaned = data.translate(None, _NOT_BASE64)
        cleaned = cleaned[: len(cleaned) - 1] if len(cleaned) % 4 == 1 else cleaned
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))


def _serialized_body(part: Message, linesep: bytes) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=_SERIALIZE[linesep]).flatten(part)
        data = buffer.getvalue()
    except UnicodeEncodeError:
        # The bytes generator fails on 8-bit text in a multipart without a boundary (it decodes
        # and re-encodes as ASCII); the text generator copes, at the cost of U+FFFD for those bytes.
        text = io.StringIO()
        Generator(text, mangle_from_=False, policy=_SERIALIZE[linesep]).flatten(part)
        data = text.getvalue().encode("utf-8", "surrogateescape")
    _headers, found, body = data.partition(linesep * 2)
    return body if found else b""


@lru_cache(maxsize=512)
def _codec(charset: str) -> str | None:
    label = charset.strip().strip("\"'").lower()
    try:
        info = codecs.lookup(_CHARSET_ALIASES.get(label, label))
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None  # not base64, rot13, zlib


def decode_text(data: bytes, charset: str | None) -> str:
    """`data` as text: the declared charset, else UTF-8, else cp1252 with replacement characters."""
    codec = _codec(charset) if charset else None
    if codec:
        try:
            return data.decode(codec)
        except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
            pass
    if codec != "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return data.decode("cp1252", "replace")


def _clean(text: str) -> str:
    """`text` without lone surrogates: raw 8-bit header bytes are decoded like a body of unknown charset."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return decode_text(text.encode("utf-8", "surrogateescape"), None)
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")


def decode_header_value(value: str) -> str:
    """An unfolded header value with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return _clean(value)
    out: list[str] = []
    run = bytearray()  # adjacent words of one charset decode together: a character may span two
    run_charset = ""
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        data = _decode_word(match.group(2), match.group(3))
        if data is None:
            continue  # not decodable: stays in the text as written
        gap = value[position:match.start()]
        if gap and not (position and gap.isspace()):  # blanks between two encoded words vanish
            if run:
                out.append(decode_text(bytes(run), run_charset))
                run.clear()
            out.append(_clean(gap))
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 allows "charset*language"
        if run and charset != run_charset:
            out.append(decode_text(bytes(run), run_charset))
            run.clear()
        run += data
        run_charset = charset
        position = match.end()
    if run:
        out.append(decode_text(bytes(run), run_charset))
    out.append(_clean(value[position:]))
    return "".join(out)


def _decode_word(encoding: str, text: str) -> bytes | None:
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    return binascii.a2b_qp(data, header=True) if encoding in "qQ" else _b64decode(data)


class _HtmlText(HTMLParser):
    """Visible text of an HTML document, with a line break at every block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <body> ends the head even if a <title> or <style> there was never closed.
        self._hidden = 0 if tag == "body" else self._hidden + (tag in _HIDDEN_TAGS)
        self._pre += tag == "pre"
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data if self._pre else _SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Plain text of an HTML body: scripts and styles dropped, blocks on their own lines."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001 - html.parser has raised on hostile markup; strip tags instead
        text = _TAG.sub(" ", html)
    lines = (line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
