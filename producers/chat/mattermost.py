"""A Mattermost bulk export (JSON lines, as `mmctl export` writes it) -> one Capture per event.

Input: the .jsonl file, a folder holding it (and the export's `data/` folder of attachments), or
the export .zip with both inside. Line types read: `team`, `channel`, `user` (username, names,
email) and `direct_channel` as directories; `post` and `direct_post` as messages, each with its
`replies`, `reactions` and `attachments`. Other types (version, scheme, emoji, role, bot, ...)
describe the server, not what anyone said, and are not records. A line that is not JSON, or a
post without user or create_at, is quarantined with its bytes.

Mattermost exports no post id: a message is identified by its channel, author and create_at
(milliseconds), as Mattermost's own importer does. Events (producers/chat/snapshot.py):
`created`; `edited` at edit_at (only the latest text is exported: the created record has no text
and the flag `original-text-unavailable`); `deleted` at delete_at where an export has it; one
`reaction` per reaction with its time. Replies carry their root's thread; `type: system_*` posts
are flagged `system`, posts with props.from_bot or from_webhook `bot`. Members of a direct or
group channel are `member` recipients; `@username` in a text is a mention. Attachment bytes
under `data/<path>` become blobs; a missing file stays a link to its path in the export.
"""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import re
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import (canonical_json, json_type, quarantined,
                             json_object as _dict, json_array as _list, json_text as _s)
from producers.chat.snapshot import FLAG_BOT, FLAG_SYSTEM, FLAG_THREAD_REPLY, Reaction, Snapshot
from schemas.records import attachment, chat_uid, participant, recipient, sha256_hex
from strongroom.errors import InputError

PLATFORM = "mattermost"
MESSAGE_TYPES = ("post", "direct_post")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MENTION = re.compile(r"(?<![\w@])@([a-z0-9._-]+)", re.IGNORECASE)


class _Bundle:
    """The export's JSONL file and its attachment files, alike for a file, a folder and a zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        try:
            if path.is_dir():
                found = sorted(path.glob("*.jsonl")) or sorted(path.glob("*.json"))
                if not found:
                    raise InputError(f"{path} holds no Mattermost export (.jsonl).")
                self.jsonl, self.base = found[0].name, path
            elif zipfile.is_zipfile(path):
                self.zip = zipfile.ZipFile(path)
                names = sorted(n for n in self.zip.namelist() if n.endswith(".jsonl"))
                if not names:
                    raise InputError(f"{path} holds no Mattermost export (.jsonl).")
                self.jsonl, self.base = names[0], None
            else:
                self.jsonl, self.base = path.name, path.parent
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"Mattermost export {path} cannot be opened ({exc}).") from exc

    def lines(self) -> Iterator[bytes]:
        if self.zip is not None:
            with self.zip.open(self.jsonl) as handle:
                yield from handle
        else:
            with open(self.base / self.jsonl, "rb") as handle:  # type: ignore[operator]
                yield from handle

    def attachment(self, path: str) -> bytes | None:
        """The bytes of an attachment path from the export, None when the export does not hold them."""
        clean = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
        if clean.startswith(".."):
            return None  # never read outside the export
        top = posixpath.dirname(self.jsonl)
        for candidate in (posixpath.join(top, "data", clean), posixpath.join(top, clean)):
            try:
                if self.zip is not None:
                    return self.zip.read(candidate.lstrip("/"))
                file = self.base / candidate  # type: ignore[operator]
                if file.is_file():
                    return file.read_bytes()
            except KeyError:
                continue
            except (OSError, zipfile.BadZipFile) as exc:
                raise InputError(f"{self.path}: attachment {path} cannot be read ({exc}).") from exc
        return None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


class MattermostSource:
    """Iterate a Mattermost bulk export as Captures, in file order; replies follow their root."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.source = os.fspath(path)
        if not self.path.exists():
            raise InputError(f"Mattermost export {self.source} does not exist.")
        self.people: dict[str, tuple[str | None, str | None]] = {}
        self.channels: dict[tuple[str, str], str] = {}
        self.bots: set[str] = set()
        bundle = _Bundle(self.path)
        try:
            for line in bundle.lines():
                item = _parse(line)
                kind = item.get("type") if isinstance(item, dict) else None
                body = item.get(kind) if kind else None
                if not isinstance(body, dict):
                    continue
                if kind == "user" and _s(body.get("username")):
                    full = " ".join(p for p in (_s(body.get("first_name")), _s(body.get("last_name"))) if p)
                    self.people[body["username"]] = (full or _s(body.get("nickname")) or body["username"],
                                                     _s(body.get("email")))
                elif kind == "bot" and _s(body.get("username")):
                    self.bots.add(body["username"])
                    self.people.setdefault(body["username"], (_s(body.get("display_name")) or body["username"], None))
                elif kind == "channel" and _s(body.get("name")):
                    self.channels[(_s(body.get("team")) or "", body["name"])] = _s(body.get("display_name")) or body["name"]
        finally:
            bundle.close()

    def __iter__(self) -> Iterator[Capture]:
        bundle = _Bundle(self.path)
        try:
            for number, line in enumerate(bundle.lines(), start=1):
                raw = line.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                position = str(number)
                item = _parse(raw)
                if item is _BAD:
                    yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw,
                                      error=f"line {number} is not a JSON object", sent_at=datetime.now(timezone.utc))
                    continue
                kind = item.get("type")
                if kind not in MESSAGE_TYPES:
                    continue
                yield from self._post(item.get(kind), kind, position, bundle)
        finally:
            bundle.close()

    def _post(self, post: Any, kind: str, position: str, bundle: _Bundle, root: dict[str, Any] | None = None,
              where: tuple[str | None, str, str, list[str]] | None = None) -> Iterator[Capture]:
        raw = canonical_json(post).encode("utf-8")
        try:
            if not isinstance(post, dict):
                raise ValueError(f"{kind} is a JSON {json_type(post)}, not an object")
            where = where or self._where(post, kind)
            snap = self._snapshot(post, position, raw, bundle, where, root)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            yield quarantined(platform=PLATFORM, source=self.source, position=position, raw=raw,
                              error=f"line {position}: {exc}", sent_at=_salvaged(post))
            return
        yield from snap.captures()
        if root is None:
            for index, reply in enumerate(_list(post.get("replies"))):
                yield from self._post(reply, kind, f"{position}/replies/{index}", bundle, post, where)

    def _where(self, post: dict[str, Any], kind: str) -> tuple[str | None, str, str, list[str]]:
        """(workspace, conversation id, channel name, members) of a post."""
        if kind == "direct_post":
            members = sorted(m for m in _list(post.get("channel_members")) if isinstance(m, str))
            if not members:
                raise ValueError("direct_post has no channel_members")
            conversation = "dm:" + ",".join(members)
            return None, conversation, conversation, members
        team, channel = _s(post.get("team")), _s(post.get("channel"))
        if not channel:
            raise ValueError("post has no channel")
        return team, channel, self.channels.get((team or "", channel), channel), []

    def _snapshot(self, post: dict[str, Any], position: str, raw: bytes, bundle: _Bundle,
                  where: tuple[str | None, str, str, list[str]], root: dict[str, Any] | None) -> Snapshot:
        workspace, conversation, channel, members = where
        user = _s(post.get("user"))
        if not user:
            raise ValueError("post has no user")
        sent_at = _millis(post.get("create_at"), "create_at")
        if sent_at is None:
            raise ValueError("post has no create_at")
        message_id = f"{post['create_at']}:{user}"
        thread = f"{root['create_at']}:{root.get('user')}" if root else None
        text = _s(post.get("message")) or ""
        props = _dict(post.get("props"))
        for extra in _list(props.get("attachments")):  # bot and webhook "message attachments"
            extra = _dict(extra)
            parts = [_s(extra.get(k)) for k in ("pretext", "title", "text")]
            text = "\n".join(p for p in [text, *(parts if any(parts) else [_s(extra.get("fallback"))])] if p)
        flags = [FLAG_THREAD_REPLY] * bool(root)
        if (_s(post.get("type")) or "").startswith("system_"):
            flags.append(FLAG_SYSTEM)
        if user in self.bots or str(props.get("from_bot")).lower() == "true" \
                or str(props.get("from_webhook")).lower() == "true":
            flags.append(FLAG_BOT)
        mentioned = [m for m in dict.fromkeys(_MENTION.findall(text)) if m in self.people and m != user]
        recipients = [recipient("mention", m, *self.people[m]) for m in mentioned]
        recipients += [recipient("member", m, *self.people.get(m, (None, None))) for m in members if m != user]
        files, blobs = [], {}
        for item in _list(post.get("attachments")):
            path = _s(_dict(item).get("path"))
            if not path:
                continue
            data = bundle.attachment(path)
            digest = sha256_hex(data) if data is not None else None
            if digest:
                blobs[digest] = data
            name = posixpath.basename(path)
            files.append(attachment(mimetypes.guess_type(name)[0] or "application/octet-stream", name=name,
                                    size=len(data) if data is not None else None, sha256=digest,
                                    url=None if digest else path))
        fields = dict(
            message_uid=chat_uid(PLATFORM, workspace, conversation, message_id), platform=PLATFORM,
            source=self.source, workspace=workspace, conversation_id=conversation, channel=channel,
            thread_id=thread, parent_uid=chat_uid(PLATFORM, workspace, conversation, thread) if thread else None,
            message_id=message_id, sent_at=sent_at, sender=participant(user, *self.people.get(user, (None, None))),
            recipients=recipients, attachments=files, flags=flags,
            headers=[{"name": "mattermost.type", "value": post["type"]}] if _s(post.get("type")) else [],
        )
        edited_at = _millis(post.get("edit_at"), "edit_at")
        deleted_at = _millis(post.get("delete_at"), "delete_at")
        reactions = [Reaction(_s(r.get("emoji_name")) or "reaction",
                              participant(_s(r.get("user")), *self.people.get(_s(r.get("user")) or "", (None, None))),
                              _millis(r.get("create_at"), "reactions.create_at"))
                     for r in map(_dict, _list(post.get("reactions"))) if r]
        return Snapshot(fields=fields, raw=raw, position=position, text=text or None,
                        edited=edited_at is not None, edited_at=edited_at,
                        deleted=deleted_at is not None, deleted_at=deleted_at, reactions=reactions, blobs=blobs)


_BAD = object()


def _parse(line: bytes) -> Any:
    try:
        item = json.loads(line.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return _BAD
    return item if isinstance(item, dict) else _BAD


def _millis(value: Any, name: str) -> datetime | None:
    """Mattermost times: milliseconds since 1970; 0 or absent means never."""
    if value is None or value == 0:
        return None
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} {value!r} is not a time in milliseconds")
    return _EPOCH + timedelta(milliseconds=value)


def _salvaged(post: Any) -> datetime:
    try:
        return (_millis(post.get("create_at"), "create_at") if isinstance(post, dict) else None) \
            or datetime.now(timezone.utc)
    except (ValueError, OverflowError):
        return datetime.now(timezone.utc)
