"""Exchange journal reports: the envelope Exchange saw, and the original message attached to it.

A journal report (header `X-MS-Journal-Report`, Exchange and Exchange Online) is a
multipart/mixed message from the journaling agent: a text part listing `Sender:`, `Subject:`,
`Message-Id:` and the recipients, one per line, as `To:`, `Cc:`, `Bcc:` (or `Recipient:` when
Exchange does not know the role), each possibly annotated `, Expanded: <list>` or
`, Forwarded: <address>`; and the original message as a message/rfc822 part.

The original is cut out of the report's bytes as it stands there (only a base64 or
quoted-printable transfer encoding is undone), never re-serialized, so its raw blob is what
the sender sent and its message_uid is that of every other copy (an IMAP copy, another journal).
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser

REPORT_HEADERS = ("x-ms-journal-report", "x-ms-exchange-organization-journal-report")
_HEADERS = BytesParser(policy=policy.compat32)
_LINE = re.compile(r"^\s*(sender|recipient|to|cc|bcc|on-behalf-of)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_MAX_DEPTH = 4  # the original sits at the top level; a little nesting tolerated, never unbounded


@dataclass
class JournalReport:
    """What a report says: the sender, the recipients as (role, address), and the original's bytes."""

    sender: str | None = None
    recipients: list[tuple[str, str]] = field(default_factory=list)
    original: bytes | None = None


def is_journal_report(raw: bytes) -> bool:
    head = _HEADERS.parsebytes(_header_block(raw), headersonly=True)
    return any(name.lower() in REPORT_HEADERS for name in head.keys())


def read_report(raw: bytes) -> JournalReport:
    """The report's envelope and original; `original` is None when no message/rfc822 part is found."""
    report = JournalReport()
    text_parts: list[bytes] = []
    report.original = _find_original(raw, text_parts, 0)
    for part in text_parts:
        for name, value in _LINE.findall(_decoded_text(part)):
            role = name.lower()
            address = _address(value.split(",")[0])
            if not address:
                continue
            if role == "sender":
                report.sender = report.sender or address
            elif role != "on-behalf-of":
                report.recipients.append(("envelope" if role == "recipient" else role, address))
        if report.recipients:
            break  # the first text part listing recipients is the report; later ones are content
    return report


def _address(value: str) -> str:
    value = value.strip()
    match = re.search(r"<([^<>\s]+@[^<>\s]+)>", value)
    return (match.group(1) if match else value.strip("<>\"' ")).lower() if "@" in value else ""


def _header_block(data: bytes) -> bytes:
    end = _body_start(data)
    return data[:end] if end >= 0 else data


def _body_start(data: bytes) -> int:
    """Offset of the body: after the first empty line (CRLF or LF); -1 if there is none."""
    found = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not found:
        return -1
    first = min(found)
    return first + (4 if data[first:first + 4] == b"\r\n\r\n" else 2)


def _find_original(entity: bytes, text_parts: list[bytes], depth: int) -> bytes | None:
    """The first message/rfc822 part below `entity` (a multipart); text/plain parts collected on the way."""
    head = _HEADERS.parsebytes(_header_block(entity), headersonly=True)
    boundary = head.get_param("boundary") if head.get_content_maintype() == "multipart" else None
    start = _body_start(entity)
    if not boundary or start < 0 or depth > _MAX_DEPTH:
        return None
    for part in _split(entity[start:], str(boundary).encode("utf-8", "surrogateescape")):
        part_head = _HEADERS.parsebytes(_header_block(part), headersonly=True)
        kind = part_head.get_content_type()
        if kind == "message/rfc822":
            body_at = _body_start(part)
            body = part[body_at:] if body_at >= 0 else b""
            return _undo_transfer_encoding(body, part_head)
        if kind == "text/plain":
            text_parts.append(part)
        elif part_head.get_content_maintype() == "multipart":
            found = _find_original(part, text_parts, depth + 1)
            if found is not None:
                return found
    return None


def _split(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between delimiter lines, each without the line break that belongs to the next
    delimiter (RFC 2046 5.1.1), so a part's bytes are exactly what was enclosed."""
    delimiter = b"--" + boundary
    parts: list[bytes] = []
    current: int | None = None
    offset = 0
    for line in body.splitlines(keepends=True):
        stripped = line.rstrip(b"\r\n").rstrip(b" \t")
        if stripped in (delimiter, delimiter + b"--"):
            if current is not None:
                end = offset - (2 if body[offset - 2:offset] == b"\r\n" else 1 if body[offset - 1:offset] == b"\n" else 0)
                parts.append(body[current:max(end, current)])
            if stripped.endswith(b"--") and stripped != delimiter:
                return parts
            current = offset + len(line)
        offset += len(line)
    if current is not None and current < len(body):
        parts.append(body[current:])  # no closing delimiter: keep what there is
    return parts


def _undo_transfer_encoding(body: bytes, head: Message) -> bytes:
    encoding = str(head.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        data = b"".join(body.split())
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return body
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


def _decoded_text(part: bytes) -> str:
    message = _HEADERS.parsebytes(part)
    payload = message.get_payload(decode=True) or b""
    charset = message.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")
