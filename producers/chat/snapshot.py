"""Snapshot exports (Slack, Teams, Mattermost) -> one record per event, with versions stable across exports.

These exports hold each message as last seen: its current text, plus facts about its past (an
edit time, a deletion time, reactions). A source reads one message into a `Snapshot`;
`Snapshot.captures()` turns it into events: `created` (version 1), `edited`, `deleted`,
`reaction`, all with the message's `message_uid` and its original `sent_at`.

Versions are derived from the event itself, never counted, so the same event gets the same
version in every export of the workspace and a different event never reuses one (a re-ingest is a
duplicate; a later export that saw one more edit adds exactly that edit):

- 1: created;
- edited / deleted with a known time: 2 + whole seconds between sending and the event, so text
  versions rise with time (a second event in the same second takes the next free number);
- edited / deleted without a time: TIMELESS_EDIT / TIMELESS_DELETE, after every timed one;
- reaction: REACTION_BASE + a hash of (reaction, user, time), above every text version; reactions
  are not versions of the text and the views chat_latest/chat_first skip them.

What an export cannot tell is said, never invented: when only the edited text survives, the
created record has no text and the flag `original-text-unavailable`; an event without a time has
event_at null and the flag `time-unknown`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from producers.capture import Capture
from schemas.records import CHAT_TOPIC_KIND, new_record, recipient, sha256_hex

FLAG_BOT = "bot"
FLAG_SYSTEM = "system"                  # joins, leaves, topic changes: not said by a person
FLAG_THREAD_REPLY = "thread-reply"
FLAG_TEXT_UNAVAILABLE = "original-text-unavailable"
FLAG_TIME_UNKNOWN = "time-unknown"
FLAG_ORIGINAL_MISSING = "original-missing"  # only a later event is in the export, not the message

REACTION_BASE = 1 << 30
TIMELESS_EDIT = REACTION_BASE - 2
TIMELESS_DELETE = REACTION_BASE - 1
_LAST_TIMED = TIMELESS_EDIT - 1


FLAG_REACTION_REMOVED = "reaction-removed"  # a reaction taken back: its own event, not a deletion


@dataclass(frozen=True)
class Reaction:
    name: str
    user: dict[str, Any]           # a participant()
    at: datetime | None = None
    removed: bool = False          # at is when it was taken back


@dataclass
class Snapshot:
    """One message as an export holds it. `fields` are the record fields every event shares."""

    fields: dict[str, Any]          # message_uid, platform, source, workspace, ..., sent_at, sender, ...
    raw: bytes
    position: str
    text: str | None
    edited: bool = False            # the text in the export is not the text first sent
    edited_at: datetime | None = None
    editor: dict[str, Any] | None = None
    deleted: bool = False
    deleted_at: datetime | None = None
    reactions: list[Reaction] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    first_text: str | None = None   # the text as first sent, when the export still has it (first_known)
    first_known: bool = False
    known: bool = True              # False: only later events are known (no created record)

    def captures(self) -> list[Capture]:
        flags = list(self.fields.get("flags") or [])
        taken = {1}
        events = []
        if self.known:
            unknown = self.edited and not self.first_known
            first_text = self.first_text if self.first_known else None if self.edited else self.text
            events.append(self._capture("created", 1, None, first_text,
                                        flags + ([FLAG_TEXT_UNAVAILABLE] if unknown else []), self.position))
        if self.edited:
            version = _text_version(self.fields["sent_at"], self.edited_at, TIMELESS_EDIT, taken)
            events.append(self._capture("edited", version, self.edited_at, self.text, flags + _timeless(self.edited_at),
                                        self._position(events, "edited"), sender=self.editor))
        if self.deleted:
            version = _text_version(self.fields["sent_at"], self.deleted_at, TIMELESS_DELETE, taken)
            # The last text known is kept, so a deleted message is still found by search.
            events.append(self._capture("deleted", version, self.deleted_at, self.text,
                                        flags + _timeless(self.deleted_at), self._position(events, "deleted")))
        author = self.fields["sender"]
        seen: set[tuple[str, str, str]] = set()
        for reaction in self.reactions:
            identity = (reaction.name, reaction.user.get("user_id") or reaction.user.get("name") or "",
                        (reaction.at.isoformat() if reaction.at else "") + ("/removed" if reaction.removed else ""))
            if identity in seen:  # one person's one reaction, listed twice
                continue
            seen.add(identity)
            to = [recipient("to", author["user_id"], author["name"], author["address"])] if any(author.values()) else []
            events.append(self._capture(
                "reaction", _reaction_version(*identity), reaction.at, reaction.name,
                [f for f in flags if f == FLAG_THREAD_REPLY] + _timeless(reaction.at)
                + [FLAG_REACTION_REMOVED] * reaction.removed,
                f"{self.position}/reaction/{reaction.name}/{identity[1]}" + (f"@{identity[2]}" if identity[2] else ""),
                sender=reaction.user, recipients=to, attachments=[]))
        return events

    def _position(self, events: list[Capture], event: str) -> str:
        # The first event of an item takes the item's own position, so every input item is reported.
        return f"{self.position}/{event}" if events else self.position

    def _capture(self, event_type: str, version: int, at: datetime | None, text: str | None, flags: list[str],
                 position: str, **overrides: Any) -> Capture:
        fields = dict(self.fields, **{k: v for k, v in overrides.items() if v is not None or k != "sender"})
        fields.pop("flags", None)
        record = new_record(**fields, kind=CHAT_TOPIC_KIND, event_type=event_type, version=version, event_at=at,
                            body_text=text, source_position=position, flags=list(dict.fromkeys(flags)),
                            raw_sha256=sha256_hex(self.raw), raw_size=len(self.raw))
        return Capture(path=fields["source"], position=position, raw=self.raw, record=record,
                       blobs=dict(self.blobs) if event_type != "reaction" else {})


def _timeless(at: datetime | None) -> list[str]:
    return [] if at else [FLAG_TIME_UNKNOWN]


def _text_version(sent_at: datetime, at: datetime | None, timeless: int, taken: set[int]) -> int:
    if at is None:
        version = timeless
    else:
        seconds = int((at - sent_at).total_seconds())
        version = 2 + min(max(seconds, 0), _LAST_TIMED - 2)
        while version in taken and version < _LAST_TIMED:
            version += 1
    taken.add(version)
    return version


def _reaction_version(name: str, user: str, at: str) -> int:
    digest = hashlib.sha256("\x1f".join((name, user, at)).encode("utf-8")).digest()
    return REACTION_BASE + int.from_bytes(digest[:4], "big") % REACTION_BASE
