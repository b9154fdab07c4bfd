"""Microsoft Teams messages in the Graph API `chatMessage` JSON shape -> one Capture per event.

Accepted input: a .json file holding one message, an array of them, or a Graph page
`{"value": [...]}` (or an array of pages); a JSON-lines file of any of those; or a folder of such
files, read in sorted order. Keys are matched case-insensitively, so the PascalCase tenant export
(`Id`, `CreatedDateTime`, `From.User.DisplayName`, ...) reads the same as Graph's camelCase. In a
folder, `usersList.json` (people: id, display name, mail), `teamsList.json` and `channels_*.json`
(names) are directories, `teamMembers_*.json` is skipped, every other file holds messages.

Events (producers/chat/snapshot.py): `created`; `edited` at lastEditedDateTime (only the latest
text is exported, so the created record has no text and the flag `original-text-unavailable`);
`deleted` at deletedDateTime, keeping whatever text the export still holds; one `reaction` per
reaction with its own time. Replies (replyToId, or a nested `replies` array) carry the root's
thread; reactions taken back (messageHistory reactionRemoved) are reaction events flagged
`reaction-removed`; `from.application` is a bot; systemEventMessage (or an eventDetail) is a system message.
The raw original of every event is the canonical JSON of its message object as exported.

Longer than our usual ~300 lines: the two key spellings, the folder's directory files and the
Graph fields (bodies, mentions, attachments, reactions, system events) are one format's concerns.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import (canonical_json, json_type, quarantined,
                             json_object as _dict, json_array as _list, json_text as _s)
from producers.chat.html_text import html_to_text
from producers.chat.snapshot import FLAG_BOT, FLAG_SYSTEM, FLAG_TEXT_UNAVAILABLE, FLAG_THREAD_REPLY, Reaction, Snapshot
from schemas.records import attachment, chat_uid, participant, recipient
from strongroom.errors import InputError

PLATFORM = "teams"
_USERS_FILE = "userslist.json"
_TEAMS_FILE = "teamslist.json"
_SKIPPED = re.compile(r"teammembers_.*\.json", re.IGNORECASE)
_CHANNELS = re.compile(r"channels_.*\.json", re.IGNORECASE)
_TEAM_OF_FILE = re.compile(r"messages_([0-9a-f-]{36})\.json", re.IGNORECASE)
_TEXT_CAP = 100_000


def lower_keys(value: Any) -> Any:
    """Graph writes camelCase, the tenant export PascalCase: compare keys in one case."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


class TeamsSource:
    """Iterate Teams messages as Captures: by file (sorted), then item order, replies after their root."""

    def __init__(self, path: str | os.PathLike[str], users: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(path)
        self.source = os.fspath(path)
        if not self.root.exists():
            raise InputError(f"Teams export {self.source} does not exist.")
        listed = sorted(f for f in self.root.rglob("*") if f.is_file() and f.suffix.lower() in (".json", ".jsonl")) \
            if self.root.is_dir() else [self.root]
        self.people: dict[str, tuple[str | None, str | None]] = {}
        self.team_names: dict[str, str] = {}
        self.channel_names: dict[str, str] = {}
        self.files: list[Path] = []
        for file in listed:
            name = file.name.lower()
            if name == _USERS_FILE:
                self._read_users(file)
            elif name == _TEAMS_FILE:
                for team in _entries(_load(file)):
                    if _s(team.get("groupsid")) and _s(team.get("name")):
                        self.team_names[team["groupsid"]] = team["name"]
            elif _CHANNELS.fullmatch(file.name):
                for channel in _entries(_load(file)):
                    if _s(channel.get("id")) and _s(channel.get("displayname")):
                        self.channel_names[channel["id"]] = channel["displayname"]
            elif not _SKIPPED.fullmatch(file.name):
                self.files.append(file)
        if users is not None:
            if not Path(users).is_file():
                raise InputError(f"Teams users file {os.fspath(users)} does not exist.")
            self._read_users(Path(users))
        if not self.files:
            raise InputError(f"{self.source} holds no Teams message files (.json or .jsonl).")

    def _read_users(self, file: Path) -> None:
        for user in _entries(_load(file)):
            user_id = _s(user.get("id")) or _s(user.get("userid"))
            email = _s(user.get("mail")) or _s(user.get("userprincipalname"))
            if user_id:
                self.people[user_id] = (_s(user.get("displayname")), email if email and "@" in email else None)

    def __iter__(self) -> Iterator[Capture]:
        # Graph messages do not list a chat's members: those seen writing in it stand in for them.
        self.chat_members: dict[str, dict[str, dict[str, Any]]] = {}
        for file in self.files:
            for _, item, _context in self._items(file):
                m = lower_keys(item) if isinstance(item, dict) else {}
                for message in [m, *map(_dict, _list(m.get("replies")))]:
                    user = _dict(_dict(message.get("from")).get("user"))
                    if _s(message.get("chatid")) and _s(user.get("id")):
                        self.chat_members.setdefault(message["chatid"], {})[user["id"]] = self._person(user)
        for file in self.files:
            for position, item, context in self._items(file):
                if isinstance(item, Capture):
                    yield item
                else:
                    yield from self._item(item, position, context)

    def _items(self, file: Path) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        """(position, message object, context) per item of a file; a quarantined Capture for what is not JSON."""
        where = file.relative_to(self.root).as_posix() if file != self.root else file.name
        data = file.read_bytes()
        team = _TEAM_OF_FILE.fullmatch(file.name)
        context = {"team": team.group(1) if team else None}
        lines = data.splitlines()
        try:
            whole = json.loads(data.decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            whole = None
            if not _json_lines(lines):
                # A cut-off or garbled file is kept whole rather than as many broken lines.
                yield where, quarantined(platform=PLATFORM, source=self.source, position=where, raw=data,
                                         error=f"{where} is neither JSON nor JSON lines: {exc}", sent_at=_now()), context
                return
        if whole is not None:
            for index, item in enumerate(_messages(whole)):
                yield f"{where}#{index}", item, context
            return
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line.decode("utf-8-sig"))
            except (ValueError, RecursionError) as exc:
                yield f"{where}:{number}", quarantined(
                    platform=PLATFORM, source=self.source, position=f"{where}:{number}", raw=line,
                    error=f"{where} line {number} is not JSON: {exc}", sent_at=_now()), context
                continue
            for index, item in enumerate(_messages(parsed)):
                yield f"{where}:{number}#{index}", item, context

    def _item(self, item: Any, position: str, context: dict[str, Any], root: dict[str, Any] | None = None
              ) -> Iterator[Capture]:
        raw = canonical_json(item).encode("utf-8")
        message = lower_keys(item) if isinstance(item, dict) else item
        try:
            events = self._snapshot(message, position, raw, context, root).captures()
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw,
                              error=f"{position}: {exc}", sent_at=_salvaged(message))
            return
        yield from events
        # Graph's $expand=replies nests a root's replies inside it.
        for index, reply in enumerate(_original(item, "replies")):
            yield from self._item(reply, f"{position}/replies/{index}", context, message)

    def _snapshot(self, m: Any, position: str, raw: bytes, context: dict[str, Any],
                  root: dict[str, Any] | None) -> Snapshot:
        if not isinstance(m, dict):
            raise ValueError(f"item is a JSON {json_type(m)}, not a message object")
        message_id = _id(m.get("id"))
        if not message_id:
            raise ValueError("message has no id")
        sent_at = _instant(m.get("createddatetime"), "createdDateTime")
        if sent_at is None:
            raise ValueError("message has no createdDateTime")
        where = _dict(m.get("channelidentity")) or _dict((root or {}).get("channelidentity"))
        channel_id, chat_id = _s(where.get("channelid")), _s(m.get("chatid")) or _s((root or {}).get("chatid"))
        team = _s(where.get("teamid")) or context["team"]
        conversation = channel_id or chat_id or (_s(root.get("id")) if root else None) or "unknown"
        workspace = team if channel_id else None
        reply_to = _id(m.get("replytoid")) or (_id(root.get("id")) if root else None)
        thread = reply_to if reply_to != message_id else None
        detail = _dict(m.get("eventdetail"))
        # A system event has no `from`; who caused it is its initiator.
        sender, flags = self._sender(_dict(m.get("from")) or _dict(detail.get("initiator")))
        if (_s(m.get("messagetype")) or "").lower() == "systemeventmessage" or detail:
            flags.append(FLAG_SYSTEM)
        if thread:
            flags.append(FLAG_THREAD_REPLY)
        body = _dict(m.get("body"))
        content = _s(body.get("content")) or ""
        text = html_to_text(content) if (_s(body.get("contenttype")) or "html").lower() == "html" else content.strip()
        if detail:
            text = "\n".join(p for p in (text, _event_summary(detail, self.people)) if p)
        headers = [{"name": f"teams.{k}", "value": v} for k in ("importance", "messagetype", "weburl")
                   if (v := _s(m.get(k))) and not (k == "importance" and v == "normal")]
        fields = dict(
            message_uid=chat_uid(PLATFORM, workspace, conversation, message_id), platform=PLATFORM,
            source=self.source, workspace=workspace, conversation_id=conversation,
            channel=self.channel_names.get(channel_id or "") or _s(m.get("chattopic")) or conversation,
            thread_id=thread, parent_uid=chat_uid(PLATFORM, workspace, conversation, thread) if thread else None,
            message_id=message_id, sent_at=sent_at, sender=sender, subject=_s(m.get("subject")),
            recipients=self._mentions(m) + ([] if channel_id else self._members(chat_id, sender)),
            attachments=[_attachment(a) for a in map(_dict, _list(m.get("attachments"))) if a],
            headers=headers, flags=flags,
        )
        edited_at = _instant(m.get("lastediteddatetime"), "lastEditedDateTime")
        deleted_at = _instant(m.get("deleteddatetime"), "deletedDateTime")
        reactions = [self._reaction(r, _instant(r.get("createddatetime"), "reactions.createdDateTime"))
                     for r in map(_dict, _list(m.get("reactions"))) if r]
        # messageHistory also holds reactions since taken back: each add, and each removal as its own event.
        for item in map(_dict, _list(m.get("messagehistory"))):
            actions, reaction = (_s(item.get("actions")) or "").lower(), _dict(item.get("reaction"))
            if reaction and "reactionadded" in actions:
                reactions.append(self._reaction(reaction, _instant(reaction.get("createddatetime"), "reaction time")))
            if reaction and "reactionremoved" in actions:
                reactions.append(self._reaction(reaction, _instant(item.get("modifieddatetime"), "messageHistory time"),
                                                removed=True))
        if deleted_at and not text:
            flags.append(FLAG_TEXT_UNAVAILABLE)  # deleted and exported without its text
        return Snapshot(fields=fields, raw=raw, position=position, text=text[:_TEXT_CAP] or None,
                        edited=edited_at is not None, edited_at=edited_at, deleted=deleted_at is not None,
                        deleted_at=deleted_at, reactions=reactions)

    def _reaction(self, r: dict[str, Any], at: datetime | None, removed: bool = False) -> Reaction:
        kind = _s(r.get("reactiontype")) or "reaction"
        # reactionType is the emoji (or like, heart, ...); a custom one is named only by displayName.
        name = (_s(r.get("displayname")) or kind) if kind == "custom" else kind
        return Reaction(name, self._person(_dict(_dict(r.get("user")).get("user")) or _dict(r.get("user"))), at, removed)

    def _person(self, user: dict[str, Any]) -> dict[str, Any]:
        user_id = _s(user.get("id"))
        name, email = self.people.get(user_id or "", (None, None))
        return participant(user_id, _s(user.get("displayname")) or name, email)

    def _sender(self, origin: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        user, app = _dict(origin.get("user")), _dict(origin.get("application"))
        if user:
            return self._person(user), []
        if app:
            return participant(_s(app.get("id")), _s(app.get("displayname"))), [FLAG_BOT]
        return participant(), []

    def _members(self, chat_id: str | None, sender: dict[str, Any]) -> list[dict[str, Any]]:
        """Everyone else seen writing in a chat; channels name only their mentions."""
        seen = self.chat_members.get(chat_id or "", {})
        return [recipient("member", p["user_id"], p["name"], p["address"])
                for uid, p in sorted(seen.items()) if uid != sender["user_id"]]

    def _mentions(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for mention in _list(m.get("mentions")):
            mentioned = _dict(_dict(mention).get("mentioned"))
            user = _dict(mentioned.get("user"))
            if user:
                person = self._person(user)
                found.append(recipient("mention", person["user_id"], person["name"], person["address"]))
            elif mentioned:  # a channel, a team, a tag or an app: a name, no person
                other = next((v for v in map(_dict, mentioned.values()) if v), {})
                found.append(recipient("mention", _s(other.get("id")),
                                       _s(other.get("displayname")) or _s(_dict(mention).get("mentiontext"))))
        return found


def _original(item: dict[str, Any], key: str) -> list[Any]:
    """The array under `key` in the message object as exported (keys in their own case), so each
    reply keeps its exported spelling as its raw original."""
    return next((_list(value) for name, value in item.items() if name.lower() == key), [])


def _messages(value: Any) -> list[Any]:
    """Messages in a parsed file or line: a message, an array, a Graph page, or an array of pages."""
    if isinstance(value, dict):
        page = next((v for k, v in value.items() if k.lower() == "value"), None)
        return page if isinstance(page, list) else [value]
    if isinstance(value, list):
        return [m for v in value for m in (_messages(v) if isinstance(v, dict) and any(
            k.lower() == "value" and isinstance(x, list) for k, x in v.items()) else [v])]
    return [value]


def _json_lines(lines: list[bytes]) -> bool:
    """Whether a file that is not one JSON value is JSON lines: its first non-blank line parses alone."""
    first = next((line for line in lines if line.strip()), b"")
    try:
        json.loads(first.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return False
    return True


def _entries(value: Any) -> list[dict[str, Any]]:
    return [e for e in (lower_keys(m) for m in _messages(value)) if isinstance(e, dict)]


def _load(file: Path) -> Any:
    try:
        return json.loads(file.read_bytes().decode("utf-8-sig"))
    except (ValueError, RecursionError, OSError) as exc:
        raise InputError(f"{file} is not valid JSON ({exc}).") from exc


def _attachment(a: dict[str, Any]) -> dict[str, Any]:
    kind = _s(a.get("contenttype")) or "application/octet-stream"
    name = _s(a.get("name"))
    if kind == "reference":  # a link to a file in SharePoint/OneDrive: the bytes are not in the export
        kind = (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
    content = a.get("content")
    text = content if isinstance(content, str) else canonical_json(content) if content else None
    return attachment(kind, name=name, url=_s(a.get("contenturl")), text=text[:_TEXT_CAP] if text else None)


def _event_summary(detail: dict[str, Any], people: dict[str, tuple[str | None, str | None]]) -> str:
    """`#microsoft.graph.membersAddedEventMessageDetail` with members -> "membersAdded: Ann, Bo"."""
    kind = (_s(detail.get("@odata.type")) or "").rsplit(".", 1)[-1].removesuffix("EventMessageDetail")
    if not kind:
        # The tenant export names the event by its one filled property (MembersAdded: {...}).
        kind = next((k for k, v in detail.items() if v and k not in ("initiator", "eventtype")), "") or "system event"
        detail = _dict(detail.get(kind)) or detail
    names = []
    for member in _list(detail.get("members")):
        member = _dict(member)
        names.append(_s(member.get("displayname")) or people.get(_s(member.get("id")) or "", (None, None))[0]
                     or _s(member.get("id")) or "?")
    for key in ("chatdisplayname", "channeldisplayname", "teamdisplayname", "topic"):
        if _s(detail.get(key)):
            names.append(detail[key])
    return f"{kind or 'event'}: {', '.join(names)}" if names else kind


def _instant(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} {value!r} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        # Graph writes up to 7 fractional digits; Python reads at most 6.
        match = re.fullmatch(r"(.*\.\d{6})\d*(.*)", value)
        if not match:
            raise ValueError(f"{name} {value!r} is not an ISO 8601 time") from None
        moment = datetime.fromisoformat((match.group(1) + match.group(2)).replace("Z", "+00:00"))
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)  # Graph times are UTC
    return moment.astimezone(timezone.utc)


def _salvaged(m: Any) -> datetime:
    try:
        return (_instant(m.get("createddatetime"), "createdDateTime") if isinstance(m, dict) else None) or _now()
    except ValueError:
        return _now()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _id(value: Any) -> str | None:
    return str(value) if type(value) is int else _s(value)
