"""A Slack workspace export (the .zip Slack gives you, or that zip unpacked) -> one Capture per event.

Each message yields its events (producers/chat/snapshot.py): `created`; `edited` when it carries
`edited` {user, ts} (the export holds only the latest text, so the created record has no text and
the flag `original-text-unavailable`, unless a `message_changed` event of the same day still holds
the text before the edit); `deleted` for `message_deleted` events (deleted_ts, with the last text
from previous_message) and for `tombstone`s (a deleted thread root, text and time unknown); one
`reaction` per (reaction, user), without a time because exports hold none. Flags: `thread-reply`,
`bot` (bot_message, bot_id, a bot user), `system` (joins, leaves, topic/purpose/name changes).
In direct and group messages (dms.json, mpims.json) every other member is a `member` recipient.
Shared files are links, plus their bytes as blobs where an export tool saved them beside the
messages (slackdump: `<channel id>/attachments/<file id>-<name>` or `__uploads/<file id>/<name>`).

Layout read: `channels.json`, `groups.json`, `mpims.json`, `dms.json` (whichever exist) map
conversation folders to ids; `users.json` resolves people; each conversation folder holds one
`YYYY-MM-DD.json` per day, an array of message objects. Other top-level files (integration_logs,
canvases, ...) are not messages and are not read. Folders not listed in any conversation file
are still read, with the folder name as id, so no message is left behind.

Slack has no byte-original for a message: the export is Slack's own JSON rendering of it. The
original we keep (`raw`) is therefore the canonical JSON of exactly the object the export holds,
which is stable across re-exports and re-reads of the same content.

Memory: users and the conversation lists are held; messages are read one day file at a time.

Longer than our usual ~300 lines: file access (folder or zip), people and channel lookups,
Slack's markup and its history subtypes are one format's concerns and change together.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import (canonical_json, json_type, quarantined,
                             json_object as _dict, json_array as _list, json_text as _text)
from producers.chat.snapshot import FLAG_BOT, FLAG_ORIGINAL_MISSING, FLAG_SYSTEM, FLAG_TEXT_UNAVAILABLE, FLAG_THREAD_REPLY, Reaction, Snapshot
from schemas.records import attachment, chat_uid, participant, recipient, sha256_hex
from strongroom.errors import InputError

PLATFORM = "slack"
CONVERSATION_LISTS = ("channels.json", "groups.json", "mpims.json", "dms.json")
# Direct and group messages: every member is a recipient (channels: only who is mentioned).
_PRIVATE_LISTS = ("mpims.json", "dms.json")
# Not said by a person: joins, leaves, renames, topic and purpose changes.
SYSTEM_SUBTYPES = frozenset(f"{kind}_{event}" for kind in ("channel", "group") for event in (
    "join", "leave", "topic", "purpose", "name", "archive", "unarchive")) | {"bot_add", "bot_remove"}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TS = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\.json")
_TOKEN = re.compile(r"<([^<>]*)>")  # Slack markup: <@U1>, <#C1|name>, <!here>, <url|label>
# Zip tools add these; they are not conversations.
_JUNK_FOLDERS = ("__MACOSX",)


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str | None
    email: str | None
    bot: bool = False


@dataclass(frozen=True)
class Conversation:
    id: str
    name: str
    members: tuple[str, ...] = ()


class _ExportFiles:
    """Read access to an export's files by relative name, the same for a folder and a zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        try:
            if path.is_dir():
                names = [p.name for p in path.iterdir()]
            elif zipfile.is_zipfile(path):
                self._zip = zipfile.ZipFile(path)
                names = self._zip.namelist()
                self._prefix = _zip_prefix(names)
                names = [n[len(self._prefix):] for n in names if n.startswith(self._prefix)]
            else:
                raise InputError(f"{path} is not a Slack export: it is neither a folder nor a .zip file.")
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"Slack export {path} cannot be opened ({exc}).") from exc
        if not any(name in CONVERSATION_LISTS for name in names):
            self.close()
            raise InputError(f"{path} is not a Slack export: it has none of {', '.join(CONVERSATION_LISTS)}.")

    def read(self, name: str) -> bytes | None:
        """The file's bytes, None when the export has no such file."""
        try:
            if self._zip is None:
                file = self.path / name
                return file.read_bytes() if file.is_file() else None
            try:
                return self._zip.read(self._prefix + name)
            except KeyError:
                return None
        except (OSError, zipfile.BadZipFile, zlib.error) as exc:
            # We cannot keep bytes we cannot read; stopping loudly beats archiving a hole.
            raise InputError(f"{self.path}: {name} cannot be read ({exc}).") from exc

    def day_files(self) -> list[tuple[str, str]]:
        """(folder, file) for every JSON file one folder deep, sorted: folder name, then day."""
        if self._zip is None:
            pairs = [(d.name, f.name) for d in self.path.iterdir() if d.is_dir()
                     for f in d.iterdir() if f.suffix == ".json" and f.is_file()]
        else:
            parts = (n[len(self._prefix):].split("/") for n in self._zip.namelist() if n.startswith(self._prefix))
            pairs = [(p[0], p[1]) for p in parts if len(p) == 2 and p[1].endswith(".json")]
        return sorted({(folder, day) for folder, day in pairs
                       if folder not in _JUNK_FOLDERS and not folder.startswith(".") and not day.startswith(".")})

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@dataclass(frozen=True)
class _Place:
    """Where a day file's messages are: the export, the conversation, and texts before edits seen that day."""

    files: _ExportFiles
    conversation: Conversation
    workspace: str
    first_texts: dict[str | None, str | None]


def _zip_prefix(names: list[str]) -> str:
    """Exports are zipped either flat or inside one top folder; find where channels.json & co sit."""
    if any(n in CONVERSATION_LISTS for n in names):
        return ""
    tops = {n.split("/")[0] + "/" for n in names if n.count("/") == 1 and n.split("/")[1] in CONVERSATION_LISTS}
    return tops.pop() if len(tops) == 1 else ""


class SlackExportSource:
    """Iterate a Slack export as Captures: by conversation folder, then day file, then array order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.source = os.fspath(path)
        if not self.path.exists():
            raise InputError(f"Slack export {self.source} does not exist.")
        files = _ExportFiles(self.path)
        try:
            users = self._metadata(files, "users.json")
            self.people = {p.user_id: p for p in map(_person, users) if p}
            # A bot posts with bot_id; its user entry carries that id in profile.bot_id.
            self.bots = {bot_id: self.people[u["id"]] for u in users
                         if (bot_id := _text(_dict(u.get("profile")).get("bot_id")))
                         and _text(u.get("id")) in self.people}
            self.conversations: dict[str, Conversation] = {}
            for listing in CONVERSATION_LISTS:
                for entry in self._metadata(files, listing):
                    cid = _text(entry.get("id"))
                    name = _text(entry.get("name")) or cid  # dms.json has no names; its folders are ids
                    members = tuple(m for m in _list(entry.get("members")) if isinstance(m, str))
                    if cid and name:
                        self.conversations[name] = Conversation(
                            cid, name, members if listing in _PRIVATE_LISTS else ())
            self.channel_names = {c.id: c.name for c in self.conversations.values()}
            teams = Counter(t for t in (_text(u.get("team_id")) for u in users) if t)
            self._team = teams.most_common(1)[0][0] if teams else None
        finally:
            files.close()

    def _metadata(self, files: _ExportFiles, name: str) -> list[dict[str, Any]]:
        data = files.read(name)
        if data is None:
            return []
        try:
            entries = json.loads(data.decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{self.source}: {name} is not valid JSON ({exc}).") from exc
        if not isinstance(entries, list):
            raise InputError(f"{self.source}: {name} is not a JSON array.")
        return [e for e in entries if isinstance(e, dict)]

    def __iter__(self) -> Iterator[Capture]:
        files = _ExportFiles(self.path)
        try:
            days = files.day_files()
            workspace = self._workspace(files, days)
            for folder, day in days:
                yield from self._day(files, folder, day, workspace)
        finally:
            files.close()

    def _workspace(self, files: _ExportFiles, days: list[tuple[str, str]]) -> str:
        """The team id, so identities survive the next export of the same workspace."""
        if self._team:
            return self._team
        # users.json is the export's own team; a message's "team" is its sender's, hence second.
        for folder, day in days:
            try:
                messages = json.loads((files.read(f"{folder}/{day}") or b"").decode("utf-8-sig"))
            except (ValueError, RecursionError):
                continue
            for message in messages if isinstance(messages, list) else []:
                if isinstance(message, dict) and _text(message.get("team")):
                    self._team = message["team"]
                    return self._team
        # Last resort; identities then differ between two exports of the same workspace.
        return self.path.stem if self.path.suffix.lower() == ".zip" else self.path.name

    def _day(self, files: _ExportFiles, folder: str, day: str, workspace: str) -> Iterator[Capture]:
        conversation = self.conversations.get(folder) or Conversation(folder, folder)
        position = f"{folder}/{day}"
        data = files.read(position) or b""
        context = {"workspace": workspace, "conversation_id": conversation.id, "channel": conversation.name}
        try:
            messages = json.loads(data.decode("utf-8-sig"))
            if not isinstance(messages, list):
                raise ValueError(f"top level is a JSON {json_type(messages)}, not an array")
        except (ValueError, RecursionError) as exc:
            yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=data,
                              error=f"{position} is not a JSON array of messages: {exc}",
                              sent_at=_day_start(day), **context)
            return
        # An edit event (message_changed) holds the text before the edit; the message itself, read
        # from the same day, then gets that text as its first version instead of none.
        first_texts = {
            _ts(m["message"].get("ts")): self._text(m["previous_message"], [])
            for m in messages if isinstance(m, dict) and m.get("subtype") == "message_changed"
            and isinstance(m.get("message"), dict) and isinstance(m.get("previous_message"), dict)
            and not m["previous_message"].get("edited")}
        where = _Place(files, conversation, workspace, first_texts)
        for index, message in enumerate(messages):
            raw = canonical_json(message).encode("utf-8")
            at = f"{position}#{index}"
            try:
                events = self._snapshot(message, where, at, raw).captures()
            # An export holds whatever its writer wrote: a surprising shape quarantines this one
            # message instead of stopping the archive run.
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                yield quarantined(platform=PLATFORM, source=self.source, position=at, raw=raw,
                                  error=f"{at}: {exc}", sent_at=_day_start(day), **context)
                continue
            yield from events

    def _snapshot(self, message: Any, where: _Place, position: str, raw: bytes) -> Snapshot:
        """The message and what the export says happened to it: edit, deletion, reactions."""
        if not isinstance(message, dict):
            raise ValueError(f"entry is a JSON {json_type(message)}, not a message object")
        subtype = _text(message.get("subtype"))
        event_ts = _ts(message.get("ts"))
        if not event_ts:
            raise ValueError("message has no ts")
        if subtype == "message_changed" and isinstance(message.get("message"), dict):
            # An edit event: the inner message is the new state, previous_message the one before.
            current, previous = message["message"], _dict(message.get("previous_message"))
            snap = self._message(current, where, position, raw)
            snap.edited, snap.edited_at = True, snap.edited_at or _sent_at(event_ts)
            return snap
        if subtype == "message_deleted":
            target = _ts(message.get("deleted_ts"))
            if not target:
                raise ValueError("message_deleted has no deleted_ts")
            previous = _dict(message.get("previous_message"))
            snap = self._message(previous | {"ts": target}, where, position, raw)
            snap.deleted, snap.deleted_at, snap.known = True, _sent_at(event_ts), bool(previous)
            if not previous:
                snap.fields["flags"].append(FLAG_ORIGINAL_MISSING)
            return snap
        snap = self._message(message, where, position, raw)
        if subtype == "tombstone":
            # What Slack leaves of a deleted thread root that has replies: its text is gone.
            snap.text, snap.deleted = None, True
            snap.fields["sender"] = participant()
            snap.fields["flags"].append(FLAG_TEXT_UNAVAILABLE)
        return snap

    def _message(self, message: dict[str, Any], where: _Place, position: str, raw: bytes) -> Snapshot:
        conversation, workspace = where.conversation, where.workspace
        ts = _ts(message.get("ts"))
        if not ts:
            raise ValueError("message has no ts")
        thread = _text(message.get("thread_ts"))
        thread = thread if thread != ts else None
        mentions: list[str] = []
        text = self._text(message, mentions)
        sender = self._sender(message)
        subtype = _text(message.get("subtype"))
        flags = [FLAG_THREAD_REPLY] * bool(thread)
        if subtype in SYSTEM_SUBTYPES:
            flags.append(FLAG_SYSTEM)
        if subtype == "bot_message" or message.get("bot_id") or self._is_bot(sender):
            flags.append(FLAG_BOT)
        members = [self.people.get(uid) or Person(uid, None, None) for uid in conversation.members
                   if uid != sender["user_id"]]
        attachments, blobs = self._files(message, conversation, where.files)
        uid = chat_uid(PLATFORM, workspace, conversation.id, ts)
        fields = dict(
            message_uid=uid, platform=PLATFORM, source=self.source, workspace=workspace,
            conversation_id=conversation.id, channel=conversation.name, thread_id=thread,
            parent_uid=chat_uid(PLATFORM, workspace, conversation.id, thread) if thread else None,
            message_id=ts, sent_at=_sent_at(ts), sender=sender,
            recipients=self._mentioned(mentions) + [recipient("member", p.user_id, p.name, p.email) for p in members],
            attachments=attachments, headers=_headers(message), flags=flags,
        )
        edited = _dict(message.get("edited"))
        editor = self.people.get(_text(edited.get("user")) or "")
        reactions = [Reaction(name, self._person(user))
                     for r in _list(message.get("reactions")) if isinstance(r, dict) and (name := _text(r.get("name")))
                     for user in _list(r.get("users")) if isinstance(user, str)]
        # A Slack export keeps only the latest text of an edited message: the first is lost
        # unless an edit event of the same day still holds it.
        return Snapshot(fields=fields, raw=raw, position=position, text=text, edited=bool(edited),
                        edited_at=_edit_time(edited), first_text=where.first_texts.get(ts),
                        first_known=ts in where.first_texts,
                        editor=participant(editor.user_id, editor.name, editor.email) if editor else None,
                        reactions=reactions, blobs=blobs)

    def _text(self, message: dict[str, Any], mentions: list[str]) -> str | None:
        body = [self._render(_text(message.get("text")) or "", mentions)]
        for extra in _list(message.get("attachments")):
            # Bots often post only attachments; their text is content a reviewer must find.
            parts = [_text(extra.get(k)) for k in ("pretext", "title", "text")] if isinstance(extra, dict) else []
            if isinstance(extra, dict) and not any(parts):
                parts = [_text(extra.get("fallback"))]
            body += [self._render(p, mentions) for p in parts if p]
        return "\n".join(p for p in body if p) or None

    def _person(self, user_id: str) -> dict[str, Any]:
        person = self.people.get(user_id)
        return participant(user_id, person.name, person.email) if person else participant(user_id)

    def _is_bot(self, sender: dict[str, Any]) -> bool:
        person = self.people.get(sender.get("user_id") or "")
        return bool(person and person.bot)

    def _files(self, message: dict[str, Any], conversation: Conversation,
               files: _ExportFiles) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """`files` (current exports) and `file` (before 2019); the bytes too where the export has them."""
        shared = [f for f in [*_list(message.get("files")), message.get("file")] if isinstance(f, dict)]
        found, blobs = [], {}
        for f in shared:
            data = _file_bytes(f, conversation, files)
            digest = sha256_hex(data) if data is not None else None
            if digest:
                blobs[digest] = data
            size = len(data) if data is not None else f["size"] if type(f.get("size")) is int else None
            found.append(attachment(_text(f.get("mimetype")) or "application/octet-stream", name=_text(f.get("name")),
                                    size=size, sha256=digest,
                                    url=_text(f.get("url_private")) or _text(f.get("permalink"))))
        return found, blobs

    def _sender(self, message: dict[str, Any]) -> dict[str, Any]:
        # file_comment messages (older exports) carry their author only inside "comment".
        user_id = _text(message.get("user")) or _text(_dict(message.get("comment")).get("user"))
        if user_id:
            person = self.people.get(user_id)
            if person:
                return participant(user_id, person.name, person.email)
            profile = _dict(message.get("user_profile"))
            return participant(user_id, _text(profile.get("real_name")) or _text(profile.get("name"))
                               or _text(message.get("username")))
        bot_id = _text(message.get("bot_id"))
        bot = self.bots.get(bot_id) if bot_id else None
        # The name shown is the message's own (webhooks set it per post), else the bot's.
        name = (_text(message.get("username")) or _text(_dict(message.get("bot_profile")).get("name"))
                or (bot.name if bot else None))
        if bot:
            return participant(bot.user_id, name, bot.email)
        return participant(bot_id, name)

    def _mentioned(self, user_ids: list[str]) -> list[dict[str, Any]]:
        people = [self.people.get(uid) or Person(uid, None, None) for uid in dict.fromkeys(user_ids)]
        return [recipient("mention", p.user_id, p.name, p.email) for p in people]

    def _render(self, text: str, mentions: list[str]) -> str:
        """Slack markup -> what a reader sees; user ids met on the way go to `mentions`."""
        pieces = _TOKEN.split(text)  # odd indexes are the insides of <...>
        return "".join(self._token(p, mentions) if i % 2 else _unescape(p) for i, p in enumerate(pieces))

    def _token(self, token: str, mentions: list[str]) -> str:
        target, _, label = token.partition("|")
        label = _unescape(label)
        if target.startswith("@"):
            mentions.append(target[1:])
            person = self.people.get(target[1:])
            return "@" + ((person.name if person else None) or label or target[1:])
        if target.startswith("#"):
            return "#" + (label or self.channel_names.get(target[1:], target[1:]))
        if target.startswith("!"):  # <!here>, <!subteam^S1|@team>, <!date^...|fallback>
            return label or "@" + target[1:].split("^")[0]
        url = _unescape(target)
        if not url or not label or label in (url, url.removeprefix("mailto:")):
            return label or url
        return f"{label} ({url})"


def _person(user: dict[str, Any]) -> Person | None:
    user_id = _text(user.get("id"))
    if not user_id:
        return None
    profile = _dict(user.get("profile"))
    name = _text(user.get("real_name")) or _text(profile.get("real_name")) or _text(user.get("name"))
    return Person(user_id, name, _text(profile.get("email")), user.get("is_bot") is True)


def _file_bytes(shared: dict[str, Any], conversation: Conversation, files: _ExportFiles) -> bytes | None:
    """A shared file's bytes where an export tool put them next to the messages; None when not there.

    Slack's own exports hold links only; slackdump writes `<channel id>/attachments/<file id>-<name>`
    (its "standard" layout) or `__uploads/<file id>/<name>` (its "mattermost" layout).
    """
    file_id, name = _text(shared.get("id")), _text(shared.get("name"))
    if not file_id or not name or "/" in name or "/" in file_id or name.startswith("."):
        return None
    for candidate in (f"{conversation.id}/attachments/{file_id}-{name}", f"{conversation.name}/attachments/{file_id}-{name}",
                      f"attachments/{file_id}-{name}", f"__uploads/{file_id}/{name}"):
        data = files.read(candidate)
        if data is not None:
            return data
    return None


def _headers(message: dict[str, Any]) -> list[dict[str, str]]:
    headers = []
    for key, name in (("subtype", "slack.subtype"), ("reactions", "slack.reactions"), ("edited", "slack.edited")):
        value = message.get(key)
        if value is not None:
            headers.append({"name": name, "value": value if isinstance(value, str) else canonical_json(value)})
    return headers


def _edit_time(edited: dict[str, Any]) -> datetime | None:
    """When an edit happened; a garbled edited.ts leaves the time unknown rather than losing the message."""
    try:
        return _sent_at(_ts(edited.get("ts")) or "")
    except ValueError:
        return None


def _ts(found: Any) -> str | None:
    """A message's ts as text; some writers put it as a JSON number."""
    return repr(found) if type(found) in (int, float) else _text(found)


def _sent_at(ts: str) -> datetime:
    """Slack ts "1452837318.000002" -> aware UTC datetime, exact to the microsecond (no float)."""
    match = _TS.fullmatch(ts)
    if not match:
        raise ValueError(f"ts {ts!r} is not a Slack timestamp")
    micros = int((match.group(2) or "")[:6].ljust(6, "0"))
    try:
        return _EPOCH + timedelta(seconds=int(match.group(1)), microseconds=micros)
    except OverflowError:
        raise ValueError(f"ts {ts!r} is out of range") from None


def _day_start(day: str) -> datetime:
    """The day a day file is named after, at 00:00 UTC; now when the name is not a date."""
    match = _DAY.fullmatch(day)
    try:
        if match:
            year, month, date = map(int, match.groups())
            return datetime(year, month, date, tzinfo=timezone.utc)
    except ValueError:  # 2024-02-31.json
        pass
    return datetime.now(timezone.utc)


def _unescape(text: str) -> str:
    # Slack escapes exactly these three; html.unescape would also rewrite text like "&copy".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
