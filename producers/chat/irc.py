"""IRC channel logs -> one chat record per line (a file, or every file under a folder, sorted).

Line shapes read, by their time prefix:
- `[HH:MM] <nick> text`, `[HH:MM:SS] ...` (many clients, ZNC, bots' channel logs);
- `HH:MM <nick> text` with `--- Log opened ...` / `--- Day changed ...` lines (irssi);
- `YYYY-MM-DD HH:MM:SS<TAB>nick<TAB>text` (WeeChat; `-->`, `<--`, `--`, ` *` in the nick column);
- `[YYYY-MM-DDTHH:MM:SS+ZZZZ] <nick> text` (Textual, with its offset).
After the time: `<nick> text` is a message (mode prefixes @ + % ~ & dropped); `* nick text` and
`• nick: text` are actions (flag `action`); `*** ...`, `-!- ...` and the sentences clients write
for joins, parts, quits, nick and topic changes, kicks and modes are records flagged `system`,
with the nick they are about as sender.

The day: from the line itself where it has one, else the last "Log opened" / "Day changed" line,
else a date in the file's name (YYYY-MM-DD or YYYYMMDD), else `date`; without any, the command
stops with an error asking for --date. Times without an offset are local to `zone` (default UTC).
The channel: `channel`, else a `#name` in the file's path, else the nearest folder name that is
not a number (logs are often kept as CHANNEL/YEAR/DATE).

IRC has no message ids: a line's identity is its time, nick, kind and text and its rank among
equal lines, so the same log read again (or a longer copy of it) gives the same records. The
raw original is the line's bytes. A line matching no shape is quarantined, never dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from datetime import date, datetime, time, timezone, tzinfo
from pathlib import Path
from typing import Iterator

from producers.capture import Capture
from producers.chat import quarantined
from producers.chat.events import FLAG_SYSTEM, ChatEvent
from schemas.records import participant
from strongroom.errors import InputError

PLATFORM = "irc"

_FULL = re.compile(r"^\[?(?P<d>\d{4}-\d{2}-\d{2})[T ](?P<t>\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?(?P<z>Z|[+-]\d{2}:?\d{2})?\]?(?P<sep>\t| )(?P<rest>.*)$")
_CLOCK = re.compile(r"^\[?(?P<t>\d{1,2}:\d{2}(?::\d{2})?)\]?\s(?P<rest>.*)$")
_DAY_LINE = re.compile(r"^--- (?:Log opened|Log closed|Day changed) (?:\w{3} )?(?P<when>.+)$")
_FILE_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_MESSAGE = re.compile(r"^<\s?[@+%~&]?(?P<nick>[^>\s]+)> ?(?P<text>.*)$")
_ACTION = re.compile(r"^(?:\*|•) (?P<nick>[^\s:]+):? (?P<text>.*)$")
_SYSTEM = re.compile(r"^(?:\*\*\*|-!-|-->|<--|--|→|←|⇐|⇒) ?(?P<text>.*)$")
_SENTENCE = re.compile(r"^(?P<nick>\S+) (?:\(.*?\) )?(?:joined|left|has joined|has left|has quit|quit|is now known as|"
                       r"changed the topic|changes topic|sets mode|kicked|was kicked|set the topic)\b.*$")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


class IrcLogSource:
    """Iterate IRC log lines under `path` as Captures."""

    def __init__(self, path: str | os.PathLike[str], *, channel: str | None = None, network: str | None = None,
                 day: date | None = None, zone: tzinfo = timezone.utc) -> None:
        root = Path(path)
        if root.is_dir():
            self.files = sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not self.files:
                raise InputError(f"{os.fspath(path)} holds no log files.")
        elif root.is_file():
            self.files = [root]
        else:
            raise InputError(f"IRC log {os.fspath(path)} does not exist.")
        self.channel, self.network, self.day, self.zone = channel, network, day, zone

    def __iter__(self) -> Iterator[Capture]:
        for file in self.files:
            yield from self._file(file)

    def _file(self, file: Path) -> Iterator[Capture]:
        source = os.fspath(file)
        channel = self.channel or _channel_of(file)
        day = _date_of(file.name) or self.day
        seen: Counter[str] = Counter()
        last = datetime.fromtimestamp(file.stat().st_mtime, timezone.utc)
        with file.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                raw = line.rstrip(b"\r\n")
                text = raw.decode("utf-8", errors="replace")
                if not text.strip():
                    continue
                position = f"line {number}"
                if opened := _DAY_LINE.match(text):  # also "Log closed": the day, nothing said
                    day = _log_day(opened.group("when")) or day
                    continue  # a client's bookkeeping line, not something said
                try:
                    at, written, rest, weechat = self._time(text, day, source)
                    ev = self._event(rest, weechat, at, source, position, raw, channel)
                except InputError:
                    raise  # no date at all: the user must say which day, not one quarantine per line
                except ValueError as exc:
                    yield quarantined(platform=PLATFORM, source=source, position=position, raw=raw,
                                      error=f"{position}: {exc}", sent_at=last, conversation_id=channel,
                                      channel=channel, workspace=self.network)
                    continue
                last = at
                # The time as written, not as converted: another --timezone must not make new messages.
                identity = "\x1f".join((written, ev.sender["name"] or "", ",".join(ev.flags), ev.body_text or ""))
                seen[identity] += 1
                ev.message_id = hashlib.sha256(f"{identity}\x1f{seen[identity]}".encode()).hexdigest()[:32]
                yield ev.capture()

    def _time(self, text: str, day: date | None, source: str) -> tuple[datetime, str, str, bool]:
        """(UTC time, the local time as written, the rest of the line, whether it is WeeChat's shape)."""
        full = _FULL.match(text)
        if full:
            moment = datetime.fromisoformat(f"{full.group('d')}T{full.group('t')}")
            zone = full.group("z")
            if zone:
                zone = "+00:00" if zone == "Z" else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
                moment = datetime.fromisoformat(moment.isoformat() + zone)
            else:
                moment = moment.replace(tzinfo=self.zone)
            written = f"{full.group('d')}T{full.group('t')}{full.group('z') or ''}"
            return moment.astimezone(timezone.utc), written, full.group("rest"), full.group("sep") == "\t"
        clock = _CLOCK.match(text)
        if not clock:
            raise ValueError("no time at the start of the line")
        if day is None:
            raise InputError(f"{source}: the log gives times without a date and its name holds none; "
                             "give the day with --date YYYY-MM-DD.")
        moment = datetime.combine(day, time.fromisoformat(clock.group("t").zfill(5 if clock.group("t").count(":") == 1 else 8)))
        return (moment.replace(tzinfo=self.zone).astimezone(timezone.utc), moment.isoformat(),
                clock.group("rest").lstrip(), False)

    def _event(self, rest: str, weechat: bool, at: datetime, source: str, position: str, raw: bytes,
               channel: str) -> ChatEvent:
        ev = ChatEvent(platform=PLATFORM, source=source, position=position, raw=raw, workspace=self.network,
                       conversation_id=channel, channel=channel, message_id="", sent_at=at, sender=participant())
        if weechat:
            nick, _, text = rest.partition("\t")
            marker = nick.strip()
            if marker in ("-->", "<--", "--", "=!="):
                ev.flags.append(FLAG_SYSTEM)
                ev.sender, ev.body_text = _nick(text.split(" ", 1)[0]), text
            elif marker == "*":
                ev.flags.append("action")
                who, _, said = text.partition(" ")
                ev.sender, ev.body_text = _nick(who), said
            else:
                ev.sender, ev.body_text = _nick(marker), text
            return ev
        if said := _MESSAGE.match(rest):
            ev.sender, ev.body_text = _nick(said.group("nick")), said.group("text")
        elif system := _SYSTEM.match(rest):
            ev.flags.append(FLAG_SYSTEM)
            body = system.group("text")
            ev.sender, ev.body_text = _nick(_first_nick(body)), body
        elif action := _ACTION.match(rest):
            ev.flags.append("action")
            ev.sender, ev.body_text = _nick(action.group("nick")), action.group("text")
        elif sentence := _SENTENCE.match(rest):
            ev.flags.append(FLAG_SYSTEM)
            ev.sender, ev.body_text = _nick(sentence.group("nick")), rest
        else:
            raise ValueError(f"not a message, action or channel event: {rest[:80]!r}")
        return ev


def _nick(nick: str) -> dict:
    nick = nick.lstrip("@+%~&")
    return participant(nick or None, nick or None)


def _first_nick(text: str) -> str:
    """The nick a system line is about: 'Joins: nick (...)' or 'nick [~u@h] has joined' or 'nick left'."""
    words = text.split()
    if words and words[0].endswith(":") and len(words) > 1:
        return words[1]
    return words[0] if words else ""


def _date_of(name: str) -> date | None:
    found = _FILE_DATE.search(name)
    if not found:
        return None
    try:
        return date(*map(int, found.groups()))
    except ValueError:
        return None


def _log_day(when: str) -> date | None:
    """'Fri Apr 23 00:00:00 2021' (opened) or 'Sat Apr 24 2021' (day changed) -> a date."""
    words = when.replace(",", " ").split()
    try:
        month = next(_MONTHS[w[:3].lower()] for w in words if w[:3].lower() in _MONTHS)
        numbers = [int(w) for w in words if w.isdigit()]
        year = next(n for n in numbers if n > 1000)
        day = next(n for n in numbers if 1 <= n <= 31)
        return date(year, month, day)
    except (StopIteration, ValueError):
        return None


def _channel_of(file: Path) -> str:
    for part in [file.name, *(p.name for p in file.parents)]:
        if "#" in part:
            return "#" + part.split("#", 1)[1].rsplit(".", 1)[0].split(".")[0]
    for parent in file.parents:
        if parent.name and not parent.name.isdigit():
            return parent.name
    return file.stem
