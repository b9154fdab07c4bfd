"""The email side of the producers, pure Python: find the format, read raw messages, parse them.

    detect_format(path, override)  -> EmailFormat          formats.py
    open_source(path, format)      -> iterable RawMessage  sources.py
    parse_email(raw, ...)          -> Capture              mime.py (parts, text, extract, threads)
    parse_msg(raw, ...)            -> [Capture, ...]       outlook.py (Outlook .msg, by content)
    PstSource(path)                -> iterable Capture     pst.py (via readpst)

`captures` chains the three and yields every nested message (forwarded, attached, bounced mail)
right after the message that carries it, so one input item may give several records; the
nested ones are at position "<parent position>/<n>". Other sources that call parse_email
themselves use `with_nested` for the same. Nothing above talks to Kafka or the network; the live
capture paths do: smtp.py (a journaling SMTP server, with journal.py for Exchange journal reports)
and imap.py (an incremental IMAP pull).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from producers.capture import Capture
from producers.email.formats import EmailFormat, detect_format
from producers.email.mime import parse_email
from producers.email.sources import RawMessage, open_source

__all__ = ["EmailFormat", "RawMessage", "captures", "detect_format", "open_source", "parse_email", "with_nested"]


def captures(path: str | os.PathLike[str], format: str | None = None) -> Iterator[Capture]:
    """One Capture per message stored at `path`, in source order, each followed by the messages
    nested in it; bad messages come back quarantined."""
    from producers.email.outlook import is_msg, parse_msg
    from producers.email.pst import PstSource

    source = open_source(path, format)
    if isinstance(source, PstSource):
        for capture in source.captures():
            yield from with_nested(capture)
        return
    for message in source:
        if is_msg(message.raw):  # by content: folders mix .eml and .msg files
            for capture in parse_msg(message.raw, source=message.path, position=message.position):
                yield from with_nested(capture)
            continue
        yield from with_nested(parse_email(message.raw, source=message.path, position=message.position,
                                           mbox_from_line_date=message.from_line_date))


def with_nested(capture: Capture) -> Iterator[Capture]:
    """`capture`, then every message nested in it, depth first (parents before their children)."""
    stack = [capture]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(reversed(item.nested))
