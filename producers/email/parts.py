"""A parsed MIME tree -> body text, attachments (with their text), flags and nested messages.

Every leaf part that is not an inline text/plain or text/html body is an attachment, its
decoded bytes in the blobs under their sha256: signature parts (S/MIME, PGP) and encrypted
payloads included, so what was signed can be verified later. message/rfc822 (and message/global)
parts are attachments of their stored bytes and are also returned as nested messages, which
parse_email turns into records of their own.

Flags say what the message is: signed:smime, signed:pgp, encrypted, calendar, dsn, mdn. An
opaque S/MIME signature (application/pkcs7-mime, signed-data) is kept as its .p7m attachment and
the entity it signs is read from it (smime.py) like any other part.
"""

from __future__ import annotations

import binascii
import io
import re
from dataclasses import dataclass, field
from email.generator import BytesGenerator, Generator
from email.message import Message
from typing import Any, Callable

from producers.email.extract import TextBudget, attachment_text
from producers.email.smime import signed_content
from producers.email.text import b64decode, decode_header_value, decode_text, html_to_text
from schemas.records import attachment, sha256_hex

# type/subtype as RFC 6838 names them; the rest of a damaged value ('application/pdf name="x"') goes.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_CTE_TOKEN = re.compile(r"[a-z0-9-]+")
_NESTED_TYPES = frozenset(("message/rfc822", "message/global"))
_SMIME_SIGNATURES = frozenset(("application/pkcs7-signature", "application/x-pkcs7-signature"))
_SMIME_ENVELOPES = frozenset(("application/pkcs7-mime", "application/x-pkcs7-mime"))
_ENVELOPED = frozenset(("enveloped-data", "authenveloped-data"))
_DSN_PARTS = frozenset(("message/delivery-status", "message/global-delivery-status"))
_PGP_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_PGP_ENCRYPTED = "-----BEGIN PGP MESSAGE-----"


@dataclass
class Parts:
    """What the walk found, in document order."""

    body_text: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    nested: list[bytes] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def walk(msg: Message, raw: bytes, serialize_policies: dict[bytes, Any], linesep: bytes,
         parse: Callable[[bytes], Message]) -> Parts:
    """Inline text/plain and text/html bodies, attachments, nested messages and flags."""
    found = Parts()
    budget = TextBudget()
    plain: list[str] = []
    html: list[str] = []
    cursor = 0  # where in raw the last nested message ended: parts come in document order
    # A stack, not recursion: nesting depth is attacker-controlled. Each part with the boundaries
    # of the multiparts around it, innermost last (a missing close delimiter ends at an outer one),
    # or None for parts that are not in raw as such (the entity inside an opaque S/MIME signature).
    stack: list[tuple[Message, tuple[str, ...] | None]] = [(msg, ())]
    while stack:
        part, enclosing = stack.pop()
        content_type = media_type(part)
        maintype = content_type.partition("/")[0]
        _flag(part, content_type, found.flags)
        if part.is_multipart() and maintype == "multipart":
            boundary = _boundary(part)
            around = (*enclosing, boundary) if boundary and enclosing is not None else enclosing
            stack.extend((child, around) for child in reversed(part.get_payload()))
            continue
        filename = _filename(part)
        if part.is_multipart():  # message/*: the stored sub-message, serialized
            data = _message_body(part, serialize_policies[linesep])
            if content_type in _NESTED_TYPES:
                if enclosing is not None and _transfer_encoding(part) not in ("base64", "quoted-printable"):
                    data, cursor = exact_slice(raw, data, enclosing, cursor)
                found.nested.append(data)
        elif ((content_type in ("text/plain", "text/html") or maintype == "multipart")
              and filename is None and part.get_content_disposition() != "attachment"):
            # A multipart left without parts (no usable boundary) is one opaque body: read it as text.
            text = decode_text(decoded_payload(part), _charset(part)).replace("\r\n", "\n")
            (html if content_type == "text/html" else plain).append(text)
            continue
        else:
            data = decoded_payload(part)
            if content_type in _NESTED_TYPES and data.strip():  # a message/rfc822 the parser left flat
                found.nested.append(data)
            elif ((content_type in _SMIME_ENVELOPES or (filename or "").lower().endswith(".p7m"))
                  and _param(part, "smime-type") != "certs-only"):
                inner = signed_content(data) if _param(part, "smime-type") not in _ENVELOPED else None
                found.flags.add("signed:smime" if inner is not None else "encrypted")
                if inner is not None:  # opaque signing: the signed entity is read like any other part
                    stack.append((parse(inner), None))
        digest = sha256_hex(data)
        found.blobs[digest] = data
        text = None if content_type in _NESTED_TYPES else attachment_text(
            content_type, filename, data, _charset(part), budget)
        found.attachments.append(attachment(content_type, name=filename, size=len(data), sha256=digest, text=text))
    body = "\n".join(plain) if plain else "\n".join(map(html_to_text, html)) if html else None
    found.body_text = body
    if body and _PGP_SIGNED in body:
        found.flags.add("signed:pgp")
    if body and _PGP_ENCRYPTED in body:
        found.flags.add("encrypted")
    found.flags |= budget.flags
    return found


def exact_slice(raw: bytes, data: bytes, boundaries: tuple[str, ...], cursor: int) -> tuple[bytes, int]:
    """The nested message as it stands in `raw` (byte for byte), found from its serialization
    `data`: its first line after `cursor`, up to the line break before the next delimiter of an
    enclosing multipart. The serialization itself when that cannot be matched with confidence (the
    generator may respace a folded header or a delimiter line)."""
    body = data.lstrip(b"\r\n")
    first_line = body.split(b"\n", 1)[0].rstrip(b"\r")
    if not first_line:
        return data, cursor
    # The message starts right after the blank line that ends its part's header block, with the
    # blank lines it starts with itself, or without them (the generator writes a header-less
    # message as a blank line and its text).
    start = -1
    for leading in (data[:len(data) - len(body)], b""):
        start = raw.find(first_line, cursor)
        while start >= 0 and not (raw[:start - len(leading)].endswith((b"\n\n", b"\n\r\n"))
                                  and raw[start - len(leading):start] == leading):
            start = raw.find(first_line, start + 1)
        if start >= 0:
            start -= len(leading)
            break
    if start < 0:
        return data, cursor
    end = len(raw)
    if boundaries:
        names = b"|".join(re.escape(b.encode("utf-8", "surrogateescape")) for b in boundaries)
        match = re.compile(rb"\r?\n--(?:" + names + rb")(?:--)?[ \t]*(?:\r?\n|$)").search(raw, start)
        if match is None:
            return data, cursor
        end = match.start()
    candidate = raw[start:end]
    # The same message, modulo respacing: the same last line and about the same length.
    last = data.rstrip().rsplit(b"\n", 1)[-1].strip()
    if candidate.rstrip().rsplit(b"\n", 1)[-1].strip() != last or abs(len(candidate) - len(data)) > 64 + len(data) // 20:
        return data, cursor
    return candidate, end


def _boundary(part: Message) -> str | None:
    try:
        boundary = part.get_boundary()
    except Exception:  # noqa: BLE001 - a malformed parameter: no exact slicing below this part
        return None
    return str(boundary) if boundary else None


def media_type(part: Message) -> str:
    match = _MEDIA_TYPE.match(part.get_content_type())
    return match.group(0) if match else "application/octet-stream"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001 - a malformed parameter reads as absent
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return str(value or "").strip().lower()


def _flag(part: Message, content_type: str, flags: set[str]) -> None:
    if content_type == "multipart/signed":
        protocol = _param(part, "protocol")
        flags.add("signed:pgp" if "pgp" in protocol else "signed:smime" if "pkcs7" in protocol else "signed")
    elif content_type == "multipart/encrypted":
        flags.add("encrypted")
    elif content_type in _SMIME_SIGNATURES:
        flags.add("signed:smime")
    elif content_type == "application/pgp-signature":
        flags.add("signed:pgp")
    elif content_type in ("application/pgp-encrypted",):
        flags.add("encrypted")
    elif content_type in ("text/calendar", "application/ics") or (_filename(part) or "").lower().endswith(".ics"):
        flags.add("calendar")
    elif content_type == "multipart/report" or content_type in _DSN_PARTS:
        report = _param(part, "report-type") if content_type == "multipart/report" else "delivery-status"
        if report in ("delivery-status", "global-delivery-status"):
            flags.add("dsn")
        elif report in ("disposition-notification", "global-disposition-notification"):
            flags.add("mdn")


def _filename(part: Message) -> str | None:
    try:  # RFC 2231 continuations and charsets are decoded by get_filename; RFC 2047 is not
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - a malformed parameter costs the name, not the message
        return None
    if isinstance(name, tuple):  # get_filename's RFC 2231 decoding gave up: (charset, language, value)
        name = name[2]
    if not name:
        return None
    return decode_header_value(str(name)).strip() or None


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - a malformed parameter falls back to charset guessing
        return None


def _transfer_encoding(part: Message) -> str:
    match = _CTE_TOKEN.search(str(part.get("content-transfer-encoding", "")).lower())
    return match.group(0) if match else ""


def decoded_payload(part: Message) -> bytes:
    """The leaf part's content, transfer encoding undone leniently; the stored bytes if unknown."""
    # Not get_payload(): it re-decodes 8-bit bytes with the declared charset, lossily. _payload is
    # what the bytes parser stored (ASCII plus surrogate escapes), which encodes back exactly.
    payload = part._payload  # noqa: SLF001
    data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload or b"")
    return _undo_transfer_encoding(part, data)


def _undo_transfer_encoding(part: Message, data: bytes) -> bytes:
    encoding = _transfer_encoding(part)
    if encoding == "base64":
        return b64decode(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        decoded = part.get_payload(decode=True)
        return decoded if isinstance(decoded, bytes) else data
    return data  # 7bit, 8bit, binary, or unknown: the stored bytes are the content


def _message_body(part: Message, serialize_policy: Any) -> bytes:
    """A message/* part's content: its stored sub-message, serialized without refolding."""
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=serialize_policy).flatten(part)
        data = buffer.getvalue()
    except UnicodeEncodeError:
        # The bytes generator fails on 8-bit text in a multipart without a boundary (it decodes
        # and re-encodes as ASCII); the text generator copes, at the cost of U+FFFD for those bytes.
        text = io.StringIO()
        Generator(text, mangle_from_=False, policy=serialize_policy).flatten(part)
        data = text.getvalue().encode("utf-8", "surrogateescape")
    linesep = serialize_policy.linesep.encode()
    _headers, found, body = data.partition(linesep * 2)
    body = body if found else b""
    # A base64 or quoted-printable message/rfc822 (forbidden by RFC 2046, sent anyway): the parser
    # read the encoded text as a header-less message; undo the encoding to get the message.
    if _transfer_encoding(part) in ("base64", "quoted-printable") and body:
        return _undo_transfer_encoding(part, body.lstrip(b"\r\n"))
    return body
