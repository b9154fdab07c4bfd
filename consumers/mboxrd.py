"""mboxrd: originals in one mbox file, escaped so that each one comes back byte for byte.

Writing: a From_ line, the original with one ">" added to every line matching `^>*From `
(lines end at LF; a CR before it is ordinary content), a LF if the original did not end with
one, then one blank line. Reading back one message: take `length` bytes at `offset` (both in
the export manifest), remove one ">" from every line matching `^>+From `, and drop the last
byte if the manifest says `appended_newline`. The escaping is a bijection on lines (every
escaped line starts with ">", every unescaped line that matches `^>+From ` was escaped), so
the result is exactly the original, which `sha256` in the manifest confirms.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone

_ESCAPE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)


@dataclass(frozen=True)
class MboxEntry:
    """Where one original sits in the mbox file: the escaped bytes' offset and length."""

    offset: int
    length: int
    appended_newline: bool


def escape(raw: bytes) -> bytes:
    return _ESCAPE.sub(rb">\1", raw)


def unescape(data: bytes) -> bytes:
    return _UNESCAPE.sub(rb"\1", data)


def from_line(sender: str | None, when: datetime | None) -> bytes:
    """`From sender asctime` with a sender that has no blanks (MAILER-DAEMON when unknown)."""
    address = "".join((sender or "").split()) or "MAILER-DAEMON"
    stamp = (when or datetime(1970, 1, 1, tzinfo=timezone.utc)).astimezone(timezone.utc)
    return f"From {address} {stamp.strftime('%a %b %d %H:%M:%S %Y')}\n".encode("ascii", "replace")


class MboxWriter:
    """Appends originals to an open binary file and says where each one went."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.position = 0
        self.sha256 = hashlib.sha256()  # of the whole file, so it is never read back to be hashed

    def add(self, raw: bytes, sender: str | None, when: datetime | None) -> MboxEntry:
        head = from_line(sender, when)
        body = escape(raw)
        appended = not body.endswith(b"\n")
        if appended:
            body += b"\n"
        for chunk in (head, body, b"\n"):
            self.handle.write(chunk)
            self.sha256.update(chunk)
        entry = MboxEntry(self.position + len(head), len(body), appended)
        self.position += len(head) + len(body) + 1
        return entry


def recover(mbox: bytes, offset: int, length: int, appended_newline: bool) -> bytes:
    """The original bytes of the message at `offset` (see the module docstring)."""
    original = unescape(mbox[offset:offset + length])
    return original[:-1] if appended_newline else original
