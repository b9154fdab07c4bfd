"""The email side of the producers, pure Python: find the format, read raw messages, parse them.

    detect_format(path, override)  -> EmailFormat          formats.py
    open_source(path, format)      -> iterable RawMessage  sources.py
    parse_email(raw, ...)          -> Capture              mime.py

`captures` chains the three, which never touch the network. The live capture paths do:
smtp.py (a journaling SMTP server, with journal.py for Exchange journal reports) and imap.py
(an incremental IMAP pull).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from producers.capture import Capture
from producers.email.formats import EmailFormat, detect_format
from producers.email.mime import parse_email
from producers.email.sources import RawMessage, open_source

__all__ = ["EmailFormat", "RawMessage", "captures", "detect_format", "open_source", "parse_email"]


def captures(path: str | os.PathLike[str], format: str | None = None) -> Iterator[Capture]:
    """One Capture per message stored at `path`, in source order; bad messages come back quarantined."""
    for message in open_source(path, format):
        yield parse_email(message.raw, source=message.path, position=message.position,
                          mbox_from_line_date=message.from_line_date)
