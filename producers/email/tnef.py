"""expand_tnef: the files and body inside a winmail.dat (TNEF, application/ms-tnef) attachment.

Exchange and Outlook wrap a message's attachments and rich body in TNEF; a mail reader without
TNEF support shows only an opaque winmail.dat. parse_email calls expand_tnef on every record:
each file inside a TNEF attachment becomes an attachment of the record too (its bytes in
Capture.blobs), and the TNEF body (plain, else HTML, else RTF, as text) fills body_text when the
MIME body is empty. The winmail.dat itself stays an attachment, byte for byte.

Read with tnefparse, which is lenient: a truncated stream yields what was read before the cut.
So the attribute structure is walked here first (lengths and checksums, MS-OXTNEF 2.1.3), and
damage is recorded in flags (`tnef-damaged:...`) rather than passed over in silence; a stream
tnefparse cannot read at all stays an opaque attachment with `tnef-unreadable:...`.
"""

from __future__ import annotations

import mimetypes
import struct
from typing import Any

from schemas.records import attachment, sha256_hex

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian
TNEF_CONTENT_TYPES = frozenset(("application/ms-tnef", "application/vnd.ms-tnef"))
_LEVELS = (1, 2)  # message, attachment


def is_tnef(item: dict[str, Any]) -> bool:
    """An attachment that holds TNEF: by content type or by Exchange's file name."""
    return (item.get("content_type") in TNEF_CONTENT_TYPES
            or (item.get("name") or "").strip().lower() == "winmail.dat")


def expand_tnef(record: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Adds the files and, when the body is empty, the body of every TNEF attachment of `record`."""
    for item in list(record["attachments"]):  # a winmail.dat inside a winmail.dat stays opaque
        data = blobs.get(item.get("sha256") or "")
        if data is None or not is_tnef(item):
            continue
        label = (item.get("name") or "winmail.dat").replace(":", "_")
        if not data.startswith(TNEF_SIGNATURE):
            record["flags"].append(f"tnef-unreadable:{label}: no TNEF signature")
            continue
        damage = structure_damage(data)
        try:
            from tnefparse import TNEF

            parsed = TNEF(data)
            files = [(_name(f, i), bytes(f.data or b"")) for i, f in enumerate(parsed.attachments)]
            body = _body(parsed)
        except Exception as exc:  # noqa: BLE001 - a stream tnefparse cannot read stays opaque
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            record["flags"].append(f"tnef-unreadable:{label}: {damage or reason}")
            continue
        if damage:
            record["flags"].append(f"tnef-damaged:{label}: {damage}")
        for name, payload in files:
            digest = sha256_hex(payload)
            blobs[digest] = payload
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            record["attachments"].append(attachment(content_type, name=name, size=len(payload), sha256=digest))
        record["flags"].append(f"tnef-expanded:{label}:{len(files)}")
        if body and not (record.get("body_text") or "").strip():
            record["body_text"] = body
            record["flags"].append(f"body-from-tnef:{label}")


def structure_damage(data: bytes) -> str | None:
    """What is wrong with a TNEF stream's attribute framing, or None if every attribute is whole."""
    offset = 6  # signature, legacy key
    if len(data) < offset:
        return "shorter than a TNEF header"
    while offset < len(data):
        if len(data) - offset < 9:
            return f"{len(data) - offset} stray bytes at offset {offset}"
        level, _attribute, length = struct.unpack_from("<BII", data, offset)
        if level not in _LEVELS:
            return f"bytes that are not a TNEF attribute at offset {offset}"
        end = offset + 9 + length
        if end + 2 > len(data):
            return f"truncated: the attribute at offset {offset} needs {end + 2 - len(data)} more bytes"
        (checksum,) = struct.unpack_from("<H", data, end)
        if checksum != sum(data[offset + 9:end]) & 0xFFFF:
            return f"checksum mismatch in the attribute at offset {offset}"
        offset = end + 2
    return None


def _name(item: Any, index: int) -> str:
    for getter in (lambda: item.long_filename(), lambda: item.name):
        try:
            value = getter()
        except Exception:  # noqa: BLE001 - an undecodable name costs the name only
            value = None
        if isinstance(value, bytes):
            value = value.decode("cp1252", "replace")
        if isinstance(value, str) and value.strip("\0 "):
            return value.strip("\0 ")
    return f"tnef-attachment-{index}"


def _body(parsed: Any) -> str | None:
    from producers.email.mime import decode_text, html_to_text
    from producers.email.rtf import rtf_to_text

    codepage = getattr(parsed, "codepage", None)

    def text(value: Any) -> str:
        return value if isinstance(value, str) else decode_text(bytes(value), codepage)

    plain = getattr(parsed, "body", None)
    if plain and text(plain).strip("\0 \r\n"):
        return text(plain).replace("\r\n", "\n").strip("\0")
    html = getattr(parsed, "htmlbody", None)
    if html:
        return html_to_text(text(html))
    rtf = getattr(parsed, "rtfbody", None)
    if rtf:
        return rtf_to_text(bytes(rtf) if not isinstance(rtf, str) else rtf.encode("cp1252", "replace")) or None
    return None
