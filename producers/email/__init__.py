"""The email side of the producers, pure Python: find the format, read raw messages, parse them.

    detect_format(path, override)  -> EmailFormat          formats.py
    open_source(path, format)      -> iterable RawMessage  sources.py
    parse_email(raw, ...)          -> Capture              mime.py
    parse_msg(raw, ...)            -> [Capture, ...]       outlook.py (Outlook .msg, by content)
    PstSource(path)                -> iterable Capture     pst.py (via readpst)

`captures` chains the three. Nothing here talks to Kafka or the network.
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
    from producers.email.outlook import is_msg, parse_msg
    from producers.email.pst import PstSource

    source = open_source(path, format)
    if isinstance(source, PstSource):
        yield from source.captures()
        return
    for message in source:
        if is_msg(message.raw):  # by content: folders mix .eml and .msg files
            yield from parse_msg(message.raw, source=message.path, position=message.position)
            continue
        yield parse_email(message.raw, source=message.path, position=message.position,
                          mbox_from_line_date=message.from_line_date)
