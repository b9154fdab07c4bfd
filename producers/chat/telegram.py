"""A Telegram Desktop JSON export (result.json, with or without its media folders) -> records.

Shapes read: the full export (`chats.list[]`, plus `left_chats.list[]`) and a single chat's
export (`{"name", "type", "id", "messages": [...]}`). Per message: `text` as a string or an
entity array (joined; a text_link shows its address), `from` / `from_id`, `date_unixtime` (else
`date`, local time in `zone`), `reply_to_message_id` -> parent, `photo` / `file` -> the file's
bytes when the export folder holds it, else a link by its relative path. Service messages
(`type: service`: joins, invites, pins, title changes) are records flagged `system` with the
actor as sender.

Edits: an export holds only a message's last text. A message with `edited` / `edited_unixtime`
is therefore an `edited` event (version 2, `event_at` = the edit time, `sent_at` = the original
date) flagged `original-missing`; an earlier export holding the first text gives version 1 the
same identity. Reactions (`reactions[].recent[]`: who and when) -> one reaction event each,
after the message, by time; a reaction without `recent` is one event by an unknown person with
its count in a header.

Identity: chat id (its name where an export has none) and message `id`. The raw original of a
record is the message object's canonical JSON. Memory: result.json is read whole (it is one
JSON document); media are read one at a time.
"""

from __future__ import annotations

import json
import mimetypes
import os
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import (canonical_json, json_type, quarantined,
                             json_object as _dict, json_array as _list, json_text as _text)
from producers.chat.events import FLAG_SYSTEM, ChatEvent, VersionLedger, epoch_seconds
from schemas.records import attachment, participant, sha256_hex
from strongroom.errors import InputError

PLATFORM = "telegram"
_NOT_INCLUDED = "(File not included"


class TelegramExportSource:
    """Iterate a Telegram Desktop JSON export (result.json or its folder) as Captures."""

    def __init__(self, path: str | os.PathLike[str], *, zone: tzinfo = timezone.utc) -> None:
        root = Path(path)
        self.file = root / "result.json" if root.is_dir() else root
        if not self.file.is_file():
            raise InputError(f"Telegram export {os.fspath(path)} does not exist (or has no result.json).")
        self.source, self.folder, self.zone = os.fspath(self.file), self.file.parent, zone
        try:
            self.doc = json.loads(self.file.read_bytes().decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{self.source} is not valid JSON ({exc}).") from exc
        self.ledger = VersionLedger()
        self.chats()  # refuse a file that is no export now, before an ingest run starts

    def chats(self) -> list[tuple[str, Any]]:
        doc = self.doc
        if isinstance(doc, dict) and isinstance(doc.get("messages"), list):
            return [("chat", doc)]
        if isinstance(doc, dict) and isinstance(doc.get("chats"), dict):
            found = [(f"chats.list#{i}", c) for i, c in enumerate(_list(doc["chats"].get("list")))]
            left = _dict(doc.get("left_chats"))
            return found + [(f"left_chats.list#{i}", c) for i, c in enumerate(_list(left.get("list")))]
        raise InputError(f"{self.source}: a JSON {json_type(doc)} that is neither a Telegram export "
                         "(chats.list) nor one chat (messages).")

    def __iter__(self) -> Iterator[Capture]:
        for where, chat in self.chats():
            if not isinstance(chat, dict):
                raw = canonical_json(chat).encode("utf-8")
                yield quarantined(platform=PLATFORM, source=self.source, position=where, raw=raw,
                                  sent_at=datetime.now(timezone.utc), error=f"{where} is not a chat object")
                continue
            channel_id = str(chat["id"]) if type(chat.get("id")) in (int, str) else _text(chat.get("name")) or where
            name = _text(chat.get("name")) or channel_id
            seen: dict[str, int] = {}
            for index, message in enumerate(_list(chat.get("messages"))):
                position = f"{where}.messages#{index}"
                raw = canonical_json(message).encode("utf-8")
                try:
                    yield from self._message(message, channel_id, name, position, raw, seen)
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                    yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw,
                                      error=f"{position}: {exc}", sent_at=datetime.now(timezone.utc),
                                      conversation_id=channel_id, channel=name)

    def _message(self, message: Any, channel_id: str, name: str, position: str, raw: bytes,
                 seen: dict[str, int]) -> Iterator[Capture]:
        if not isinstance(message, dict):
            raise ValueError(f"message is a JSON {json_type(message)}, not an object")
        at = self._time(message, "date")
        service = message.get("type") == "service"
        who = participant(_id(message.get("actor_id" if service else "from_id")),
                          _text(message.get("actor" if service else "from")))
        native = _id(message.get("id"))
        if native is None:  # older or trimmed exports: time, sender and rank stand in for the id
            base = f"{at.isoformat()}|{who['user_id'] or who['name'] or ''}"
            seen[base] = seen.get(base, 0) + 1
            native = f"{base}|{seen[base]}"
        ev = ChatEvent(platform=PLATFORM, source=self.source, position=position, raw=raw, workspace=None,
                       conversation_id=channel_id, channel=name, message_id=native, sent_at=at, sender=who,
                       parent_id=_id(message.get("reply_to_message_id")),
                       headers={k: v for k, v in (("telegram.type", _text(message.get("type"))),
                                                  ("telegram.action", _text(message.get("action"))),
                                                  ("telegram.forwarded_from", _text(message.get("forwarded_from"))),
                                                  ("telegram.via_bot", _text(message.get("via_bot"))))})
        text = _render(message.get("text"))
        ev.attachments = self._files(message, ev)
        if service:
            ev.flags.append(FLAG_SYSTEM)
            members = ", ".join(m for m in _list(message.get("members")) if isinstance(m, str))
            ev.body_text = " ".join(p for p in (_text(message.get("action")) or "service", _text(message.get("title")),
                                                members, text) if p)
        if message.get("edited") or message.get("edited_unixtime"):
            ev.follow(self.ledger, native, "edited", self._time(message, "edited"), text or None, sent_at=at)
        else:
            ev.body_text = ev.body_text or text or None
            ev.record_created(self.ledger)
        yield ev.capture()
        yield from self._reactions(message, ev, raw)

    def _reactions(self, message: dict[str, Any], ev: ChatEvent, raw: bytes) -> Iterator[Capture]:
        found = []
        for i, reaction in enumerate(_list(message.get("reactions"))):
            if not isinstance(reaction, dict):
                continue
            key = _text(reaction.get("emoji")) or _text(reaction.get("document_id")) or _text(reaction.get("type"))
            recent = [r for r in _list(reaction.get("recent")) if isinstance(r, dict)]
            for j, who in enumerate(recent or [{}]):
                at = self._time(who, "date") if who.get("date") else ev.sent_at
                found.append((at, i, j, key, who, reaction.get("count") if not recent else None))
        for at, i, j, key, who, count in sorted(found, key=lambda f: (f[0], f[1], f[2])):
            reaction = ChatEvent(platform=PLATFORM, source=self.source, position=f"{ev.position}.reactions#{i}.{j}",
                                 raw=raw, workspace=None, conversation_id=ev.conversation_id, channel=ev.channel,
                                 message_id=ev.message_id, sent_at=ev.sent_at,
                                 sender=participant(_id(who.get("from_id")), _text(who.get("from"))),
                                 headers={"telegram.reaction_count": str(count) if count is not None else None})
            yield reaction.follow(self.ledger, ev.message_id, "reaction", at, key).capture()

    def _files(self, message: dict[str, Any], ev: ChatEvent) -> list[dict[str, Any]]:
        files = []
        for key in ("photo", "file", "thumbnail"):
            ref = _text(message.get(key))
            if not ref or (key == "thumbnail" and files):
                continue
            name = _text(message.get("file_name")) or Path(ref).name
            kind = _text(message.get("mime_type")) or mimetypes.guess_type(ref)[0] or "application/octet-stream"
            if ref.startswith(_NOT_INCLUDED):
                files.append(attachment(kind, name=_text(message.get("file_name")),
                                        size=message.get("file_size") if type(message.get("file_size")) is int else None))
                ev.headers[f"telegram.{key}"] = ref
                continue
            data = self._read(ref)
            digest = sha256_hex(data) if data is not None else None
            if data is not None:
                ev.blobs[digest] = data
            files.append(attachment(kind, name=name, size=len(data) if data is not None else None,
                                    sha256=digest, url=None if data is not None else ref))
        return files

    def _read(self, ref: str) -> bytes | None:
        target = (self.folder / ref).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            return None  # only the export's own files
        try:
            return target.read_bytes() if target.is_file() else None
        except OSError:
            return None

    def _time(self, item: dict[str, Any], key: str) -> datetime:
        if item.get(f"{key}_unixtime") is not None:
            return epoch_seconds(item[f"{key}_unixtime"])
        value = item.get(key)
        if not isinstance(value, str):
            raise ValueError(f"message has no {key}_unixtime or {key}")
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=self.zone)).astimezone(timezone.utc)


def _render(text: Any) -> str:
    """Telegram text: a string, or an array of strings and {type, text[, href]} entities."""
    if isinstance(text, str):
        return text
    parts = []
    for piece in _list(text):
        if isinstance(piece, str):
            parts.append(piece)
        elif isinstance(piece, dict) and isinstance(piece.get("text"), str):
            href = piece.get("href")
            parts.append(f"{piece['text']} ({href})" if isinstance(href, str) and href != piece["text"] else piece["text"])
    return "".join(parts)


def _id(value: Any) -> str | None:
    if type(value) is int:
        return str(value)
    return value if isinstance(value, str) and value else None
