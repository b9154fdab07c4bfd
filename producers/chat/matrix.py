"""Matrix room events, as the client-server API returns them -> one chat record per event.

Accepted input (a file, or a folder of *.json / *.jsonl files, sorted): a /messages response
(`{"chunk": [...], "state": [...]}`), a /sync response (`rooms.join|leave.<room>.state|timeline`),
a JSON array of events, one event object, or JSON lines of events. Only room events (those with
an `event_id`) are messages; a /sync's ephemeral and account data are not read.

Mapping: `m.room.message` and `m.sticker` -> created (attachments from `url` / `file.url`, mxc://
links, since an export holds no file bytes); `rel_type m.replace` -> edited with
`m.new_content`; `m.room.redaction` -> deleted (or, when it redacts a reaction, a reaction event
flagged `reaction-removed`); `m.reaction` (`m.annotation`) -> reaction; `rel_type m.thread` ->
thread_id = the root event; `m.room.member` and other state -> created, flagged `system`;
`m.room.encrypted` -> created without text, flagged `encrypted`. Channel = room id, workspace =
the room's server (the part after the first ':'). People: user_id = the MXID, name = the
display name from the room's member events.

Events of a room are versioned in time order (origin_server_ts, then input order): /messages
with dir=b lists them newest first. The raw original of each record is the event's canonical JSON.
Memory: one file's events are held at a time (a Matrix export is a JSON document, not a stream).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import canonical_json, json_type, quarantined, json_object as _dict, json_array as _list
from producers.chat.events import (FLAG_REACTION_REMOVED, FLAG_SYSTEM, FLAG_THREAD_REPLY, ChatEvent,
                                   VersionLedger, epoch_millis)
from schemas.records import attachment, participant
from strongroom.errors import InputError

PLATFORM = "matrix"
MESSAGE_TYPES = ("m.room.message", "m.sticker")


class MatrixEventsSource:
    """Iterate Matrix room events under `path` as Captures, one per event."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        root = Path(path)
        if root.is_dir():
            self.files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in (".json", ".jsonl"))
            if not self.files:
                raise InputError(f"{os.fspath(path)} holds no .json or .jsonl files.")
        elif root.is_file():
            self.files = [root]
        else:
            raise InputError(f"Matrix events path {os.fspath(path)} does not exist.")
        self.ledger = VersionLedger()

    def __iter__(self) -> Iterator[Capture]:
        for file in self.files:
            source = os.fspath(file)
            data = file.read_bytes()
            try:
                items = list(_events(_load(data)))
            except ValueError as exc:
                yield quarantined(platform=PLATFORM, source=source, position="file", raw=data,
                                  error=f"{source}: {exc}", sent_at=datetime.now(timezone.utc))
                continue
            yield from self._file(source, items)

    def _file(self, source: str, items: list[tuple[str, str | None, Any]]) -> Iterator[Capture]:
        names: dict[str, str] = {}
        good: list[tuple[datetime, int, str, str, dict[str, Any]]] = []
        for index, (position, room, event) in enumerate(items):
            raw = canonical_json(event).encode("utf-8")
            try:
                room_id, at = _check(event, room)
            except ValueError as exc:
                yield quarantined(platform=PLATFORM, source=source, position=position, raw=raw,
                                  error=f"{position}: {exc}", sent_at=_salvaged(event))
                continue
            good.append((at, index, position, room_id, event))
            if event.get("type") == "m.room.member" and isinstance(event.get("state_key"), str):
                name = _dict(event.get("content")).get("displayname")
                if isinstance(name, str) and name:
                    names.setdefault(event["state_key"], name)
        state = _RoomState(names)
        for at, _index, position, room_id, event in sorted(good, key=lambda g: (g[3], g[0], g[1])):
            raw = canonical_json(event).encode("utf-8")
            try:
                yield self._event(state, source, position, room_id, at, event, raw).capture()
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                yield quarantined(platform=PLATFORM, source=source, position=position, raw=raw,
                                  error=f"{position}: {exc}", sent_at=at, conversation_id=room_id, channel=room_id)

    def _event(self, state: "_RoomState", source: str, position: str, room_id: str, at: datetime,
               event: dict[str, Any], raw: bytes) -> ChatEvent:
        kind, content, sender_id = event["type"], _dict(event.get("content")), event.get("sender")
        ev = ChatEvent(platform=PLATFORM, source=source, position=position, raw=raw,
                       workspace=room_id.partition(":")[2] or None, conversation_id=room_id, channel=room_id,
                       message_id=event["event_id"], sent_at=at,
                       sender=participant(sender_id, state.names.get(sender_id or "")),
                       headers={"matrix.type": kind})
        relation = _dict(content.get("m.relates_to"))
        rel_type, target = relation.get("rel_type"), relation.get("event_id")
        if kind in MESSAGE_TYPES and rel_type == "m.replace" and isinstance(target, str):
            new = _dict(content.get("m.new_content")) or content
            target = state.edits.get(target, target)
            state.edits[event["event_id"]] = target
            ev.attachments = _files(new)
            ev.headers["matrix.event_id"] = event["event_id"]
            return ev.follow(self.ledger, target, "edited", at, _text(new))
        if kind == "m.reaction" and isinstance(target, str):
            key = relation.get("key") if isinstance(relation.get("key"), str) else None
            state.reactions[event["event_id"]] = (target, key)
            ev.headers["matrix.event_id"] = event["event_id"]
            return ev.follow(self.ledger, target, "reaction", at, key)
        if kind == "m.room.redaction":
            redacts = content.get("redacts") or event.get("redacts")
            if not isinstance(redacts, str):
                raise ValueError("m.room.redaction names no event it redacts")
            ev.headers.update({"matrix.event_id": event["event_id"], "matrix.redacts": redacts,
                               "matrix.reason": content.get("reason") if isinstance(content.get("reason"), str) else None})
            if redacts in state.reactions:
                target, key = state.reactions[redacts]
                ev.flags.append(FLAG_REACTION_REMOVED)
                return ev.follow(self.ledger, target, "reaction", at, key)
            return ev.follow(self.ledger, state.edits.get(redacts, redacts), "deleted", at)
        if kind in MESSAGE_TYPES:
            ev.body_text, ev.attachments = _text(content), _files(content)
            if isinstance(content.get("msgtype"), str):
                ev.headers["matrix.msgtype"] = content["msgtype"]
            if rel_type == "m.thread" and isinstance(target, str):
                ev.thread_id = target
                ev.flags.append(FLAG_THREAD_REPLY)
            reply = _dict(relation.get("m.in_reply_to")).get("event_id")
            if isinstance(reply, str) and not relation.get("is_falling_back"):
                ev.parent_id = reply
        elif kind == "m.room.encrypted":
            ev.flags.append("encrypted")
        else:
            ev.flags.append(FLAG_SYSTEM)
            ev.body_text = _describe(kind, event, content, state.names)
        if _dict(_dict(event.get("unsigned")).get("redacted_because")):
            ev.flags.append("redacted")  # the server already stripped this event's content
        return ev.record_created(self.ledger)


class _RoomState:
    """What one file teaches about its rooms: display names, and which events are edits or reactions."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.edits: dict[str, str] = {}  # edit event id -> the original message's event id
        self.reactions: dict[str, tuple[str, str | None]] = {}  # reaction event id -> (message, key)


def _load(data: bytes) -> Any:
    text = data.decode("utf-8-sig")
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        return [json.loads(line) for line in lines]
    except ValueError as exc:
        raise ValueError(f"neither JSON nor JSON lines ({exc})") from None


def _events(doc: Any) -> Iterator[tuple[str, str | None, Any]]:
    """(position, room id from the enclosing structure, event) for every room event in `doc`."""
    if isinstance(doc, list):
        for i, event in enumerate(doc):
            yield f"#{i}", None, event
    elif isinstance(doc, dict) and isinstance(doc.get("rooms"), dict):
        for membership in ("join", "leave", "invite", "knock"):
            for room_id, room in sorted(_dict(doc["rooms"].get(membership)).items()):
                for part in ("state", "timeline"):
                    for i, event in enumerate(_list(_dict(_dict(room).get(part)).get("events"))):
                        yield f"rooms.{membership}.{room_id}.{part}#{i}", room_id, event
    elif isinstance(doc, dict) and "chunk" in doc:
        for part in ("state", "chunk"):
            for i, event in enumerate(_list(doc.get(part))):
                yield f"{part}#{i}", None, event
    elif isinstance(doc, dict) and "type" in doc:
        yield "#0", None, doc
    else:
        raise ValueError(f"a JSON {json_type(doc)} that is no /messages or /sync response, event list or event")


def _check(event: Any, room: str | None) -> tuple[str, datetime]:
    if not isinstance(event, dict):
        raise ValueError(f"event is a JSON {json_type(event)}, not an object")
    for key in ("type", "event_id"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise ValueError(f"event has no {key}")
    room_id = event.get("room_id") if isinstance(event.get("room_id"), str) else room
    if not room_id:
        raise ValueError("event has no room_id and is not inside a room")
    return room_id, epoch_millis(event.get("origin_server_ts"))


def _text(content: dict[str, Any]) -> str | None:
    body = content.get("body")
    if not isinstance(body, str):
        return None
    return f"* {body}" if content.get("msgtype") == "m.emote" else body


def _files(content: dict[str, Any]) -> list[dict[str, Any]]:
    url = content.get("url") or _dict(content.get("file")).get("url")
    if not isinstance(url, str):
        return []
    info = _dict(content.get("info"))
    name = content.get("filename") or content.get("body")
    size = info.get("size")
    return [attachment(info.get("mimetype") if isinstance(info.get("mimetype"), str) else "application/octet-stream",
                       name=name if isinstance(name, str) else None,
                       size=size if type(size) is int else None, url=url)]


def _describe(kind: str, event: dict[str, Any], content: dict[str, Any], names: dict[str, str]) -> str:
    """A line a reviewer reads for a state change ("Alice joined", "topic: ...")."""
    if kind == "m.room.member":
        who = event.get("state_key") or event.get("sender") or "someone"
        name = names.get(who) or who
        membership = content.get("membership")
        verbs = {"join": "joined", "leave": "left", "invite": "was invited", "ban": "was banned", "knock": "knocked"}
        if membership == "leave" and event.get("sender") not in (None, who):
            return f"{name} was removed by {event['sender']}"
        return f"{name} {verbs.get(membership, f'membership {membership}')}"
    for key in ("topic", "name", "alias", "body"):
        if isinstance(content.get(key), str):
            return f"{kind} {key}: {content[key]}"
    return kind


def _salvaged(event: Any) -> datetime:
    try:
        return epoch_millis(event.get("origin_server_ts")) if isinstance(event, dict) else datetime.now(timezone.utc)
    except (ValueError, OverflowError):
        return datetime.now(timezone.utc)
