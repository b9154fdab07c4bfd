"""A WhatsApp chat export ("Export chat": a .txt, or the .zip / folder with its media) -> records.

Line shapes read (Android and iOS, any locale's date order):
`12/31/21, 23:59 - Name: text`, `31.12.21, 23:59 - Name: text`, `2021/12/31, 23:59 - ...`,
`[31/12/2021, 23:59:59] Name: text`, 12-hour clocks (`11:59 PM`, `11:59 p. m.`). A line
that does not start with a date continues the message before it. The date order (day/month,
month/day, year first) is found from the file (a first field above 12 means day first, a second
one means month first); `date_order` decides when the file cannot tell (default day first).
Times are local to the exporting phone: `zone` says which (default UTC).

Lines without "Name:" are system lines (group created, added, left, security notices): records
flagged `system`. "This message was deleted" / "You deleted this message" -> a `deleted` event;
"<This message was edited>" -> an `edited` event with the text before the marker. WhatsApp keeps
neither the deleted text nor the text before an edit, so these are version 2 flagged
`original-missing` (an earlier export holding the original gives version 1 the same identity).
"<Media omitted>" / "image omitted" -> an attachment without bytes; "NAME (file attached)" and
"<attached: NAME>" -> the file's bytes when the export holds it, else a link by name.

Identity: the chat (`channel`: the name in "WhatsApp Chat with NAME.txt", or the file's name),
and per message its local time as written, its sender and its rank among messages with the same
two: an export has no message ids, and this is what a later export of the same chat repeats.
The raw original of each record is the message's lines as they are in the file.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import Counter
from datetime import datetime, timezone, tzinfo
from pathlib import Path, PurePosixPath
from typing import Iterator

from producers.capture import Capture
from producers.chat import quarantined
from producers.chat.events import FLAG_SYSTEM, ChatEvent, VersionLedger
from schemas.records import attachment, participant, sha256_hex
from strongroom.errors import InputError

PLATFORM = "whatsapp"
DATE_ORDERS = ("dmy", "mdy", "ymd")

_HEAD = re.compile(
    r"^[\u200e\u200f\ufeff]?\[?(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4}),?\s+"
    r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)(?:[\s\u202f]*(?P<half>[aApP])\.?\s?[mM]\.?)?\]?"
    r"\s*(?:[-–]\s)?\s*(?P<rest>.*)$")
_SENDER = re.compile(r"^(?P<name>[^:\"\n]{1,80}?):(?: |$|(?=\S))(?P<text>.*)$", re.S)
_DELETED = re.compile(r"^[\u200e]?(This message was deleted|You deleted this message|Diese Nachricht wurde gelöscht"
                      r"|Du hast diese Nachricht gelöscht|Se eliminó este mensaje|Eliminaste este mensaje)\.?$")
_EDITED = re.compile(r"\s*[\u200e]?<(This message was edited|Diese Nachricht wurde bearbeitet|Se editó este mensaje)>$")
_OMITTED = re.compile(r"^[\u200e]?(?:<Media omitted>|<Médias omis>|<Medien ausgeschlossen>|"
                      r"(?:image|video|audio|sticker|GIF|document) omitted)$")
_ATTACHED = re.compile(r"^[\u200e]?(?:<attached: (?P<ios>[^>]+)>|(?P<android>\S.*?) \(file attached\))(?:\n(?P<caption>.*))?$", re.S)
_PHONE = re.compile(r"^\+[\d\s()-]{6,}$")


class WhatsAppExportSource:
    """Iterate one WhatsApp chat export (.txt, .zip or folder) as Captures, one per message."""

    def __init__(self, path: str | os.PathLike[str], *, zone: tzinfo = timezone.utc,
                 date_order: str | None = None, channel: str | None = None) -> None:
        self.path, self.source = Path(path), os.fspath(path)
        if not self.path.exists():
            raise InputError(f"WhatsApp export {self.source} does not exist.")
        if date_order is not None and date_order not in DATE_ORDERS:
            raise InputError(f"--date-order must be one of {', '.join(DATE_ORDERS)}, not {date_order!r}.")
        self.zone, self.date_order, self.channel = zone, date_order, channel
        self.ledger = VersionLedger()

    def __iter__(self) -> Iterator[Capture]:
        name, text, media = self._open()
        channel = self.channel or _chat_name(name)
        order = self.date_order or _date_order(text)
        seen: Counter[tuple[str, str]] = Counter()
        last = datetime.fromtimestamp(self.path.stat().st_mtime, timezone.utc)
        for number, lines in _messages(text):
            raw = "\n".join(lines).encode("utf-8")
            position = f"line {number}"
            head = _HEAD.match(lines[0])
            if not head:
                yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw, sent_at=last,
                                  error=f"{position}: no date at the start of the export's first line",
                                  conversation_id=channel, channel=channel)
                continue
            try:
                at = _local_time(head, order).replace(tzinfo=self.zone).astimezone(timezone.utc)
            except ValueError as exc:
                yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw, sent_at=last,
                                  error=f"{position}: {exc}", conversation_id=channel, channel=channel)
                continue
            last = at
            rest = "\n".join([head.group("rest"), *lines[1:]])
            sender = _SENDER.match(rest)
            who = sender.group("name").strip() if sender else ""
            stamp = f"{head.group('date')} {head.group('time')}{(head.group('half') or '').lower()}"
            seen[(stamp, who)] += 1
            ev = ChatEvent(platform=PLATFORM, source=self.source, position=position, raw=raw, workspace=None,
                           conversation_id=channel, channel=channel, message_id=f"{stamp}|{who}|{seen[(stamp, who)]}",
                           sent_at=at, sender=_person(who) if who else participant(),
                           headers={"whatsapp.local_time": stamp})
            yield self._event(ev, sender.group("text") if sender else rest, bool(sender), at, media).capture()

    def _event(self, ev: ChatEvent, text: str, said: bool, at: datetime, media: "_Media") -> ChatEvent:
        if not said:
            ev.flags.append(FLAG_SYSTEM)
            ev.body_text = text
        elif _DELETED.match(text):
            ev.headers["whatsapp.marker"] = text
            return ev.follow(self.ledger, ev.message_id, "deleted", at, sent_at=at)
        elif edited := _EDITED.search(text):
            ev.headers["whatsapp.marker"] = edited.group(1)
            return ev.follow(self.ledger, ev.message_id, "edited", at, text[:edited.start()], sent_at=at)
        elif _OMITTED.match(text):
            ev.attachments = [attachment("application/octet-stream", name=text.strip("\u200e<>"))]
            ev.flags.append("media-omitted")
        elif attached := _ATTACHED.match(text):
            name = (attached.group("ios") or attached.group("android")).strip()
            data = media.read(name)
            digest = sha256_hex(data) if data is not None else None
            ev.attachments = [attachment(_content_type(name), name=name, size=len(data) if data is not None else None,
                                         sha256=digest, url=None if data is not None else name)]
            if data is not None:
                ev.blobs[digest] = data
            ev.body_text = attached.group("caption")
        else:
            ev.body_text = text
        return ev.record_created(self.ledger)

    def _open(self) -> tuple[str, str, "_Media"]:
        """(chat file name, its text, the export's media files)."""
        if self.path.is_dir():
            chats = sorted(self.path.glob("*.txt"))
            if not chats:
                raise InputError(f"{self.source} holds no chat .txt file.")
            return chats[0].name, _decode(chats[0].read_bytes()), _Media(folder=self.path)
        if zipfile.is_zipfile(self.path):
            try:
                archive = zipfile.ZipFile(self.path)
                chats = sorted(n for n in archive.namelist() if n.endswith(".txt"))
                if not chats:
                    raise InputError(f"{self.source} holds no chat .txt file.")
                return PurePosixPath(chats[0]).name, _decode(archive.read(chats[0])), _Media(archive=archive)
            except (OSError, zipfile.BadZipFile) as exc:
                raise InputError(f"{self.source} cannot be read as a zip ({exc}).") from exc
        return self.path.name, _decode(self.path.read_bytes()), _Media(folder=self.path.parent)


class _Media:
    """Files beside the chat text, in a folder or the same zip."""

    def __init__(self, folder: Path | None = None, archive: zipfile.ZipFile | None = None) -> None:
        self.folder, self.archive = folder, archive

    def read(self, name: str) -> bytes | None:
        if "/" in name or "\\" in name or name.startswith("."):
            return None  # only the export's own files, never a path it names elsewhere
        try:
            if self.archive is not None:
                return self.archive.read(name) if name in self.archive.namelist() else None
            file = self.folder / name if self.folder else None
            return file.read_bytes() if file and file.is_file() else None
        except (OSError, KeyError, zipfile.BadZipFile):
            return None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"the chat text is not UTF-8 ({exc}).") from exc


def _messages(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) per message: a line without a leading date continues the one before."""
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if _HEAD.match(line) or not current:
            if current:
                yield start, current
            current, start = [line], number
        else:
            current.append(line)
    if current and any(line.strip() for line in current):
        yield start, current


def _date_order(text: str) -> str:
    firsts, seconds = set(), set()
    for line in text.splitlines():
        head = _HEAD.match(line)
        if head:
            parts = re.split(r"[./-]", head.group("date"))
            if len(parts[0]) == 4:
                return "ymd"
            firsts.add(int(parts[0]))
            seconds.add(int(parts[1]))
    if max(seconds, default=0) > 12:
        return "mdy"
    return "dmy"


def _local_time(head: re.Match[str], order: str) -> datetime:
    a, b, c = (int(p) for p in re.split(r"[./-]", head.group("date")))
    year, month, day = (a, b, c) if order == "ymd" else (c, b, a) if order == "dmy" else (c, a, b)
    if year < 100:
        year += 2000
    parts = [int(p) for p in re.split(r"[:.]", head.group("time"))]
    hour, minute, second = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
    half = (head.group("half") or "").lower()
    if half:
        if not 1 <= hour <= 12 and hour != 0:
            raise ValueError(f"hour {hour} with {half.upper()}M")
        hour = hour % 12 + (12 if half == "p" else 0)
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"date {head.group('date')} {head.group('time')} read as {order}: {exc}") from None


def _chat_name(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0]
    for prefix in ("WhatsApp Chat with ", "WhatsApp Chat - ", "WhatsApp-Chat mit "):
        if stem.startswith(prefix):
            return stem[len(prefix):]
    return stem.lstrip("_") or stem


def _person(name: str) -> dict:
    name = name.strip("\u200e\u202a\u202c ")
    if _PHONE.match(name):
        return participant("+" + re.sub(r"\D", "", name), name)
    return participant(None, name)


def _content_type(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"
