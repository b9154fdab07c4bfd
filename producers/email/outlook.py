"""parse_msg: one Outlook .msg file (an OLE compound file, MS-OXMSG) -> Captures. Never raises.

Read with extract-msg. The raw original is the .msg file's exact bytes. The record is built
from its MAPI properties, through the same header code as MIME mail, so a .msg copy and the
MIME copy of one message (a journal copy, the IMAP copy) get the same fields and, where the
properties agree, the same message_uid:

- with PR_TRANSPORT_MESSAGE_HEADERS (mail Outlook received): those headers are the record's
  headers, and sender, recipients, subject, Date, Message-ID and threading come from them,
  exactly as for the MIME copy;
- without (a draft, a sent item, a message saved before transport): an RFC 822 header block is
  composed from the properties (sender, To/Cc/Bcc from the recipient table, subject,
  PR_CLIENT_SUBMIT_TIME or else PR_MESSAGE_DELIVERY_TIME as Date, PR_INTERNET_MESSAGE_ID,
  PR_IN_REPLY_TO_ID, PR_INTERNET_REFERENCES) only to read it; the record's headers then hold
  nothing but our X-Strongroom-* notes, never invented header fields.

The body is PR_BODY, else PR_HTML as text, else what extract-msg makes of the RTF body.
Attachments by value go to Capture.blobs; an embedded message (attach method 5) becomes an
attachment holding it as a stand-alone .msg (extract-msg re-exports the sub-storage) and a
record of its own with parent_uid set, its raw being those exported bytes (flagged
`derived-raw:embedded-msg`, since an embedded message has no file of its own to keep).
Input that is not a readable .msg is quarantined with the reason, raw kept.
"""

from __future__ import annotations

import logging
import mimetypes
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

from producers.capture import Capture
from producers.email.formats import OLE_MAGIC
from producers.email.mime import decode_text, html_to_text, parse_email
from producers.email.rtf import rtf_to_text
from producers.email.tnef import expand_tnef
from schemas.records import email_content_digest, email_uid, normalize_message_id, participant, sha256_hex

MSG_CONTENT_TYPE = "application/vnd.ms-outlook"
# Below this a compound file cannot hold a header, a FAT and a directory; olefile would also take
# shorter bytes for a file name, so they never reach it.
_MIN_CFB_SIZE = 1536
_MAX_EMBEDDING = 20  # embedded messages inside embedded messages: real mail goes 2-3 deep
_SENT_AT_SOURCE = "X-Strongroom-Sent-At-Source"
_ROLES = {1: "To", 2: "Cc", 3: "Bcc"}
# extract-msg logs at CRITICAL even about files it tolerates; parse_error and flags say what matters.
logging.getLogger("extract_msg").setLevel(logging.CRITICAL + 1)


def is_msg(raw: bytes) -> bool:
    return raw[:8] == OLE_MAGIC


def parse_msg(raw: bytes, *, source: str, position: str) -> list[Capture]:
    """The Capture of a .msg file, then one per embedded message (parent_uid set); never raises."""
    try:
        import extract_msg  # heavy import, only when a .msg is met
        if len(raw) < _MIN_CFB_SIZE or not is_msg(raw):
            raise ValueError(f"not an OLE compound file ({len(raw)} bytes, no D0CF11E0 header)")
        msg = extract_msg.openMsg(raw, strict=False, delayAttachments=False,
                                  errorBehavior=extract_msg.enums.ErrorBehavior.SUPPRESS_ALL)
    except Exception as exc:  # noqa: BLE001 - a file extract-msg cannot open is quarantined
        return [quarantined(raw, source, position, f"not a readable Outlook .msg: {_reason(exc)}")]
    if not hasattr(msg, "recipients"):  # a contact, a task, a note: an Outlook item, not mail
        try:
            kind = msg.classType
        except Exception:  # noqa: BLE001 - damaged enough to have no readable class either
            kind = None
        msg.close()
        reason = (f"an Outlook item of class {kind}, not a message" if kind else
                  "no readable message class: a damaged or truncated .msg, or another kind of OLE file")
        return [quarantined(raw, source, position, reason)]
    try:
        out: list[Capture] = []
        _build(msg, raw, source, position, None, out, depth=0)
        return out
    except Exception as exc:  # noqa: BLE001 - the contract is to quarantine, never to raise
        return [quarantined(raw, source, position, f"Outlook .msg unreadable: {_reason(exc)}")]
    finally:
        msg.close()


def _reason(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:400]


def quarantined(raw: bytes, source: str, position: str, reason: str) -> Capture:
    """A quarantined Capture keeping `raw`, with `reason` as its parse_error."""
    # parse_email quarantines the empty string the same way as every other unreadable input;
    # the reason and the raw bytes are ours.
    capture = parse_email(b"", source=source, position=position)
    sha = sha256_hex(raw)
    capture.raw = raw
    capture.record.update(raw_sha256=sha, raw_size=len(raw), message_uid="em-raw-" + sha[:40], parse_error=reason[:1000])
    return capture


def _build(msg: Any, raw: bytes, source: str, position: str, parent_uid: str | None,
           out: list[Capture], depth: int) -> None:
    transport = _string(msg, "007D")
    header_block = transport.strip() if transport and ":" in transport else None
    composed = header_block is None
    if composed:
        header_block = _compose_headers(msg)
    # Parsed as an empty-bodied message: the same decoding, normalization and threading as MIME.
    block = header_block.replace("\r\n", "\n").encode("utf-8", "surrogateescape") + b"\n\n"
    parsed = parse_email(block, source=source, position=position).record
    if parsed.get("parse_status") != "ok":
        raise ValueError(f"header fields unreadable: {parsed.get('parse_error')}")
    record = parsed
    sha = sha256_hex(raw)
    record.update(raw_sha256=sha, raw_size=len(raw), parent_uid=parent_uid)
    sent_at_source = next(h["value"] for h in record["headers"] if h["name"] == _SENT_AT_SOURCE)
    if sent_at_source != "date-header":
        when, sent_at_source = _msg_time(msg)
        record["sent_at"] = when or record["sent_at"]
    elif composed:
        sent_at_source = _msg_time(msg)[1]
    headers = [] if composed else [h for h in record["headers"] if h["name"] != _SENT_AT_SOURCE]
    headers.append({"name": _SENT_AT_SOURCE, "value": sent_at_source})
    headers.append({"name": "X-Strongroom-Original-Format", "value": "outlook-msg"})
    message_class = _string(msg, "001A")
    if message_class:
        headers.append({"name": "X-Strongroom-Msg-Class", "value": message_class})
    record["headers"] = headers
    if not composed:  # transport headers cut short by the client: the properties still know
        if not record["sender"]["address"]:
            name = _string(msg, "0C1A") or _string(msg, "0042")
            address = _string(msg, "5D01") or _string(msg, "5D02") or _string(msg, "0C1F") or _string(msg, "0065")
            record["sender"] = participant(name=name, address=address)
        record["message_id"] = record["message_id"] or normalize_message_id(_string(msg, "1035"))
    record["body_text"] = _body(msg)
    blobs: dict[str, bytes] = {}
    embedded: list[tuple[Any, bytes, str]] = []
    record["attachments"] = _attachments(msg, blobs, embedded, record["flags"])
    expand_tnef(record, blobs)  # a winmail.dat attached to a .msg, as in MIME mail
    if depth:
        record["flags"].append("derived-raw:embedded-msg")
    date = record["sent_at"] if sent_at_source != "ingest-time" else None
    record["message_uid"] = email_uid(record["message_id"], record["sender"]["address"], date, sha,
                                      email_content_digest(record))
    out.append(Capture(path=source, position=position, raw=raw, record=record, blobs=blobs))
    for index, (child, child_raw, name) in enumerate(embedded):
        child_position = f"{position}/embedded:{index}"
        if depth + 1 >= _MAX_EMBEDDING:
            record["flags"].append(f"embedded-msg-too-deep:{name}")
            continue
        try:
            _build(child, child_raw, source, child_position, record["message_uid"], out, depth + 1)
        except Exception as exc:  # noqa: BLE001 - one bad embedded message must not cost the parent
            capture = quarantined(child_raw, source, child_position, f"embedded .msg unreadable: {_reason(exc)}")
            capture.record["parent_uid"] = record["message_uid"]
            out.append(capture)


def _string(msg: Any, prop: str) -> str | None:
    try:
        value = msg.getStringStream(f"__substg1.0_{prop}")
    except Exception:  # noqa: BLE001 - an undecodable property is an absent one
        return None
    return value.rstrip("\0") if isinstance(value, str) and value.strip("\0 ") else None


def _fixed(msg: Any, tag: str) -> Any:
    try:
        prop = msg.props.get(tag)
    except Exception:  # noqa: BLE001
        return None
    return getattr(prop, "value", None) if prop is not None else None


def _address(display: str | None, address: str | None) -> str:
    try:
        return formataddr((display or "", address or ""), charset="utf-8")
    except (UnicodeError, ValueError):
        return formataddr(("", address or ""))


def _header_line(name: str, value: str) -> str:
    # Non-ASCII values are RFC 2047 encoded, so decoding them is the MIME path's own decoding.
    text = " ".join(value.split())
    return f"{name}: {Header(text, 'utf-8').encode(maxlinelen=0) if not text.isascii() else text}"


def _compose_headers(msg: Any) -> str:
    lines = []
    sender_smtp = _string(msg, "5D01") or _string(msg, "5D02")
    sender_address = sender_smtp or _string(msg, "0C1F") or _string(msg, "0065")
    sender_name = _string(msg, "0C1A") or _string(msg, "0042")
    if sender_address or sender_name:
        lines.append(f"From: {_address(sender_name, sender_address)}")
    for kind, role in _ROLES.items():
        people = [_address(name, address) for rtype, name, address in _recipients(msg) if rtype == kind]
        if people:
            lines.append(f"{role}: " + ", ".join(people))
    subject = _string(msg, "0037")
    if subject is not None:
        lines.append(_header_line("Subject", subject))
    when = _msg_time(msg)[0]
    if when is not None:
        lines.append(f"Date: {format_datetime(when)}")
    for prop, name in (("1035", "Message-ID"), ("1042", "In-Reply-To"), ("1039", "References")):
        value = _string(msg, prop)
        if value:
            lines.append(f"{name}: {' '.join(value.split())}")
    if not lines:
        lines.append("X-Strongroom-Empty-Msg: no sender, recipient, subject or date property")
    return "\n".join(lines)


def _msg_time(msg: Any) -> tuple[datetime | None, str]:
    """When the message was sent (PR_CLIENT_SUBMIT_TIME) or else delivered, and which it was."""
    for tag, label in (("00390040", "msg-client-submit-time"), ("0E060040", "msg-delivery-time")):
        value = _fixed(msg, tag)
        if isinstance(value, datetime) and value.year > 1601:
            # A Date header holds whole seconds, and Outlook sets it from the same clock.
            return value.astimezone(timezone.utc).replace(microsecond=0), label
    return None, "ingest-time"


def _recipients(msg: Any) -> list[tuple[int, str | None, str | None]]:
    found = []
    for r in msg.recipients:
        rtype = int(getattr(r.type, "value", r.type) or 1)
        address = None
        for getter in (lambda: r.smtpAddress, lambda: r.email):
            try:
                value = getter()
            except Exception:  # noqa: BLE001
                value = None
            if value and "@" in value:
                address = value.strip()
                break
        if address is None:  # an Exchange address (/O=...): keep it as the address it is
            address = _recipient_string(r, "3003")
        found.append((rtype & 0x0F, _recipient_string(r, "3001"), address))
    return found


def _recipient_string(r: Any, prop: str) -> str | None:
    try:
        value = r.getStringStream(f"__substg1.0_{prop}")
    except Exception:  # noqa: BLE001
        return None
    return value.rstrip("\0").strip() or None if isinstance(value, str) else None


def _body(msg: Any) -> str | None:
    plain = _string(msg, "1000")
    if plain and plain.strip():
        return plain.replace("\r\n", "\n")
    html = None
    try:
        html = msg.getStream("__substg1.0_10130102")
    except Exception:  # noqa: BLE001
        html = None
    if html:
        text = html if isinstance(html, str) else decode_text(html, _html_charset(html))
        return html_to_text(text)
    try:  # PR_RTF_COMPRESSED, decompressed by extract-msg
        rtf = msg.rtfBody
    except Exception:  # noqa: BLE001 - a broken RTF body costs the body, not the message
        rtf = None
    if rtf:
        return rtf_to_text(rtf if isinstance(rtf, bytes) else str(rtf).encode("cp1252", "replace")) or None
    return plain.replace("\r\n", "\n") if plain else None


def _html_charset(html: bytes) -> str | None:
    head = html[:2048].lower()
    marker = head.find(b"charset=")
    if marker < 0:
        return None
    value = head[marker + 8:marker + 40].strip(b"\"' ")
    return value.split(b'"')[0].split(b"'")[0].split(b";")[0].split(b">")[0].strip().decode("ascii", "replace") or None


def _attachments(msg: Any, blobs: dict[str, bytes], embedded: list[tuple[Any, bytes, str]],
                 flags: list[str]) -> list[dict[str, Any]]:
    from schemas.records import attachment

    found = []
    for index, att in enumerate(msg.attachments):
        name = _att_name(att) or f"attachment-{index}"
        try:
            data = att.data
            if data is not None and hasattr(data, "exportBytes"):  # an embedded message
                data = (data, data.exportBytes())
        except Exception as exc:  # noqa: BLE001 - one damaged attachment must not cost the message
            flags.append(f"msg-attachment-unreadable:{name}: {_reason(exc)[:200]}")
            found.append(attachment("application/octet-stream", name=name))
            continue
        if isinstance(data, tuple):
            payload = data[1]
            embedded.append((data[0], payload, name))
            content_type = MSG_CONTENT_TYPE
            if not name.lower().endswith(".msg"):
                name = f"{name}.msg"
        elif isinstance(data, (bytes, bytearray)):
            payload = bytes(data)
            content_type = (getattr(att, "mimetype", None) or mimetypes.guess_type(name)[0]
                            or "application/octet-stream").strip().lower()
        else:  # OLE objects, web references: listed, with nothing to store
            flags.append(f"msg-attachment-not-stored:{name}")
            found.append(attachment("application/octet-stream", name=name))
            continue
        digest = sha256_hex(payload)
        blobs[digest] = payload
        found.append(attachment(content_type, name=name, size=len(payload), sha256=digest))
    return found


def _att_name(att: Any) -> str | None:
    for field in ("longFilename", "shortFilename", "displayName", "name"):
        try:
            value = getattr(att, field, None)
        except Exception:  # noqa: BLE001
            value = None
        if isinstance(value, str) and value.strip("\0 "):
            return value.strip("\0 ")
    return None
