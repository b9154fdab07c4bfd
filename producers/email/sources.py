"""Email sources: iterate the raw messages of an mbox, a Maildir, one .eml or .msg file or a tree of them.

(A PST is the exception: PstSource in pst.py yields Captures, since readpst's output needs the
PST's own bytes and folder attached; `producers.email.captures` handles both.)

Each source yields RawMessage(path, position, raw, from_line_date) in a deterministic order:
`path` is the source as given, `position` says where inside it the message is, `raw` is the
message exactly as stored, and `from_line_date` is the mbox From_ line date (None elsewhere),
the fallback for parse_email when a message has no usable Date header.

Sources only read; they never parse MIME and never raise for bad content (parse_email
quarantines it). A file that cannot be read raises InputError naming it.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple, Protocol

from producers.email.formats import HEADER_FIELD, MESSAGE_SUFFIXES, EmailFormat, detect_format
from strongroom.errors import InputError

_BOM = b"\xef\xbb\xbf"
# A From_ line with a ctime-style date ("From sender Mon Jan  1 00:00:00 2024", optionally with a
# zone or "remote from ..."): what every mbox writer puts there, and unlikely in a body.
_DATED_FROM_LINE = re.compile(rb"From \S+ +(?:[A-Za-z]{3},? +)?[A-Za-z]{3} +\d{1,2} +\d{1,2}:\d\d")
# Weaker shapes ("From -", "From 1844@xxx", or another date format) count only when a header
# field follows, so an unquoted body line such as "From Russia with love" stays in its message.
_BARE_OR_TIMED_FROM_LINE = re.compile(rb"From \S+(?:\s*$| .*\d:\d\d)")
_MONTHS = {m: i for i, m in enumerate(
    (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"), 1)}


class RawMessage(NamedTuple):
    """One stored message, byte-exact, with where it came from."""

    path: str
    position: str
    raw: bytes
    from_line_date: datetime | None = None


class EmailSource(Protocol):
    def __iter__(self) -> Iterator[RawMessage]: ...


def open_source(path: str | os.PathLike[str], format: str | None = None) -> EmailSource:
    """The source for `path`, detecting its format unless `format` (an EmailFormat value) is given."""
    fmt = detect_format(path, format)
    if fmt is EmailFormat.PST:
        from producers.email.pst import PstSource

        return PstSource(Path(path))  # type: ignore[return-value]
    sources = {EmailFormat.MBOX: MboxSource, EmailFormat.MAILDIR: MaildirSource,
               EmailFormat.EML: EmlFileSource, EmailFormat.EMLDIR: EmlDirSource, EmailFormat.MSG: EmlFileSource}
    if fmt is EmailFormat.EMLDIR and format:
        # The user said this folder holds messages: every file is one, whatever its name
        # (.raw, .msg.txt, no extension), rather than silently reading none of them.
        return EmlDirSource(Path(path), every_file=True)
    return sources[fmt](Path(path))


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file} cannot be read: {exc.strerror or exc}.") from exc


def from_line_date(line: bytes) -> datetime | None:
    """The date of an mbox From_ line as aware UTC (no zone given means UTC); None if there is none."""
    month: int | None = None
    day: int | None = None
    year: int | None = None
    clock: list[int] | None = None
    offset = timedelta(0)
    for token in line.split()[2:]:  # skip "From" and the envelope sender
        token = token.rstrip(b",")
        if clock is None and b":" in token:
            clock = [int(part) for part in token.split(b":") if part.isdigit()]
        elif token[:1] in (b"+", b"-") and len(token) == 5 and token[1:].isdigit():
            minutes = int(token[1:3]) * 60 + int(token[3:])
            offset = timedelta(minutes=-minutes if token[:1] == b"-" else minutes)
        elif token.isdigit():
            if len(token) == 4:
                year = int(token)
            elif day is None and len(token) <= 2:
                day = int(token)
        elif month is None and token[:3].lower() in _MONTHS and token.isalpha():
            month = _MONTHS[token[:3].lower()]
    if month is None or day is None or year is None or clock is None or len(clock) < 2:
        return None
    seconds = clock[2] if len(clock) > 2 else 0
    try:
        return datetime(year, month, day, clock[0], clock[1], seconds, tzinfo=timezone(offset)).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # impossible dates and zones, or year 1 pushed out of range
        return None


class MboxSource:
    """Messages of an mbox file, split on From_ lines, read through mmap so memory stays flat.

    `position` is "<index>@<offset>": the 0-based message index and the byte offset where its raw
    bytes start, so file[offset:offset + len(raw)] == raw. The From_ line and the one blank line
    an mbox writer adds before the next From_ line are not part of the message.

    ">From " lines are kept as stored, not unquoted: a file does not say whether it is mboxrd
    (undo one ">") or mboxo (where ">From " may be what the sender wrote), and guessing wrong
    would change what was said. Kept as stored, raw is a verifiable slice of the file; identity
    (message_uid) comes from Message-ID, sender and Date, so it does not depend on the quoting.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[RawMessage]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"{self.path} cannot be read: {exc.strerror or exc}.") from exc
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return  # mmap refuses empty files; an empty mbox holds zero messages
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                yield from self._split(mm, size)

    def _split(self, mm: mmap.mmap, size: int) -> Iterator[RawMessage]:
        start = len(_BOM) if mm[:len(_BOM)] == _BOM else 0
        while mm[start:start + 1] in (b"\n", b"\r"):  # blank lines before the first From_ line
            start += 1
        from_line: bytes | None = None
        if mm[start:start + 5] == b"From ":
            line_end = _line_end(mm, start, size)
            from_line, start = mm[start:line_end], min(line_end + 1, size)
        elif not mm[start:].strip():
            return  # only whitespace: nothing to account for
        index = 0
        while True:
            separator = self._next_separator(mm, start, size)
            end = separator if separator is not None else size
            raw = mm[start:_strip_one_blank_line(mm, start, end)]
            date = from_line_date(from_line) if from_line else None
            yield RawMessage(str(self.path), f"{index}@{start}", raw, date)
            if separator is None:
                return
            index += 1
            line_end = _line_end(mm, separator, size)
            from_line, start = mm[separator:line_end], min(line_end + 1, size)

    @staticmethod
    def _next_separator(mm: mmap.mmap, start: int, size: int) -> int | None:
        """Offset of the next From_ line at or after `start`, or None."""
        search = max(start - 1, 0)  # from the newline that ends the previous line
        while True:
            hit = mm.find(b"\nFrom ", search)
            if hit < 0:
                return None
            line_start = hit + 1
            line_end = _line_end(mm, line_start, size)
            line = mm[line_start:line_end]
            # A From_ line first in a message is the message's own envelope line, not a separator.
            if line_start != start and (
                    _DATED_FROM_LINE.match(line)
                    or (_BARE_OR_TIMED_FROM_LINE.match(line) and HEADER_FIELD.match(mm[line_end + 1:line_end + 200]))):
                return line_start
            search = line_end


def _line_end(mm: mmap.mmap, start: int, size: int) -> int:
    """Offset of the newline ending the line at `start` (or of the end of the file)."""
    end = mm.find(b"\n", start)
    return size if end < 0 else end


def _strip_one_blank_line(mm: mmap.mmap, start: int, end: int) -> int:
    if end - start >= 2 and mm[end - 2:end] == b"\n\n":
        return end - 1
    if end - start >= 4 and mm[end - 4:end] == b"\r\n\r\n":
        return end - 2
    return end


class MaildirSource:
    """Messages of a Maildir and of every Maildir folder below it (Maildir++ `.Folder`s or nested).

    Reads cur/ then new/ of each folder, root first, folders and files in name order; skips tmp/
    (messages still being delivered) and dotfiles. `position` is the file's path relative to the
    root, e.g. ".Sent/cur/1700000000.M1P2.host:2,S".
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[RawMessage]:
        for folder, dirnames, _files in os.walk(self.path):
            dirnames.sort()
            for sub in ("cur", "new"):
                if sub in dirnames:
                    yield from self._messages(Path(folder) / sub)
            # Message directories are leaves; only folders are walked further.
            dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]

    def _messages(self, directory: Path) -> Iterator[RawMessage]:
        with os.scandir(directory) as entries:
            files = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())
        for name in files:
            file = directory / name
            yield RawMessage(str(self.path), file.relative_to(self.path).as_posix(), _read(file))


class EmlDirSource:
    """Every *.eml and *.msg file below a directory (every file, with `every_file`): a folder's files in
    name order, then its subfolders in name order. Hidden files and folders are skipped;
    `position` is the path relative to the root."""

    def __init__(self, path: Path, every_file: bool = False) -> None:
        self.path = path
        self.every_file = every_file

    def __iter__(self) -> Iterator[RawMessage]:
        for folder, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if (self.every_file or name.lower().endswith(MESSAGE_SUFFIXES)) and not name.startswith("."):
                    file = Path(folder) / name
                    yield RawMessage(str(self.path), file.relative_to(self.path).as_posix(), _read(file))


class EmlFileSource:
    """One message file (.eml or .msg); `position` is its file name."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[RawMessage]:
        yield RawMessage(str(self.path), self.path.name, _read(self.path))
