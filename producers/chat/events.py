"""Chat history as events: one record per created / edited / deleted / reaction event.

Every source that knows edits and deletions (Matrix, XMPP, Telegram, WhatsApp) hands its events,
in event order, to one `VersionLedger`, which gives each message a rising `version`: 1 is the
message as created, 2, 3, ... each later event about it in the order they happened. The same
input always gives the same numbers, so a re-ingest is a duplicate and adds nothing.

An event about a message that is not in the input (an edit, deletion or reaction of a message
sent before the export began) is kept, never dropped: it gets the next version after 1 (so a
later ingest of the original, as version 1, fits in front of it), its `sent_at` is the event's
own time because the original's is unknown, and it carries the flag `original-missing`.

A deletion keeps the last text we know in `body_text`, so the deleted message is still found by
search and shown as deleted (`chat_latest.is_deleted`, `deleted_at`); a reaction's `body_text`
is the reaction itself and its sender is the person who reacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from producers.capture import Capture
from schemas.records import CHAT_TOPIC_KIND, chat_uid, new_record, sha256_hex
from strongroom.errors import InputError

__all__ = ["ChatEvent", "MessageState", "VersionLedger", "FLAG_SYSTEM", "FLAG_THREAD_REPLY",
           "FLAG_ORIGINAL_MISSING", "FLAG_REACTION_REMOVED", "epoch_millis", "epoch_seconds", "time_zone"]

FLAG_SYSTEM = "system"                      # joins, leaves, topic changes: not said by a person
FLAG_THREAD_REPLY = "thread-reply"
FLAG_ORIGINAL_MISSING = "original-missing"  # the message this event is about is not in the input
FLAG_REACTION_REMOVED = "reaction-removed"  # a reaction taken back (its own event, not a deletion)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_millis(value: Any) -> datetime:
    """Milliseconds since 1970 (Matrix origin_server_ts) -> aware UTC datetime."""
    if type(value) is not int:
        raise ValueError(f"timestamp {value!r} is not an integer of milliseconds")
    return _EPOCH + timedelta(milliseconds=value)


def epoch_seconds(value: Any) -> datetime:
    """Seconds since 1970, as a number or a decimal string (Telegram's *_unixtime)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if type(value) not in (int, float):
        raise ValueError(f"timestamp {value!r} is not a number of seconds")
    return _EPOCH + timedelta(microseconds=round(value * 1_000_000))


@dataclass
class MessageState:
    """What the ledger knows of one message: its last version, send time, text and sender."""

    version: int
    sent_at: datetime | None
    text: str | None
    sender: dict[str, Any] | None = None
    known: bool = True  # False when only later events were seen, not the message itself
    thread_id: str | None = None  # later versions stay in the original's thread


@dataclass
class VersionLedger:
    """Versions per message_uid, handed out in event order; `states` may be carried between runs."""

    states: dict[str, MessageState] = field(default_factory=dict)

    def created(self, uid: str, sent_at: datetime, text: str | None, sender: dict[str, Any],
                thread_id: str | None = None) -> int:
        state = self.states.get(uid)
        if state is None:
            self.states[uid] = MessageState(1, sent_at, text, sender, thread_id=thread_id)
        elif not state.known:
            # The original turned up after events about it: it is still version 1.
            state.sent_at, state.sender, state.known = sent_at, sender, True
            if state.text is None:
                state.text = text
        return 1

    def later(self, uid: str, at: datetime, text: str | None = None, *, replace_text: bool = False
              ) -> tuple[int, MessageState, bool]:
        """(version, state, original_missing) for the next event about `uid`."""
        state = self.states.get(uid)
        missing = state is None or not state.known
        if state is None:
            state = self.states[uid] = MessageState(1, None, None, None, known=False)
        state.version += 1
        if replace_text:
            state.text = text
        return state.version, state, missing


@dataclass
class ChatEvent:
    """The parts of one chat record a source knows; `capture()` makes the record and Capture."""

    platform: str
    source: str
    position: str
    raw: bytes
    workspace: str | None
    conversation_id: str | None
    channel: str | None
    message_id: str
    sent_at: datetime
    sender: dict[str, Any]
    body_text: str | None = None
    event_type: str = "created"
    version: int = 1
    event_at: datetime | None = None
    thread_id: str | None = None
    thread_is_message: bool = True  # False where a thread id is a token, not a message's id (XMPP)
    parent_id: str | None = None
    subject: str | None = None
    recipients: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def follow(self, ledger: VersionLedger, target_id: str, event_type: str, at: datetime,
               text: str | None = None, sent_at: datetime | None = None) -> "ChatEvent":
        """Make this an event about message `target_id` (edited, deleted or reaction), versioned by `ledger`.

        edited: `text` is the new full text; deleted: the last known text is kept; reaction:
        `text` is the reaction key. `sent_at` is the original's send time where the source
        tells it although the original itself is not in the input (Telegram's edited messages).
        """
        self.message_id, self.event_type, self.event_at = target_id, event_type, at
        version, state, missing = ledger.later(self.uid(), at, text, replace_text=event_type == "edited")
        self.version = version
        self.sent_at = state.sent_at or sent_at or at
        self.body_text = state.text if event_type == "deleted" else text
        self.thread_id = self.thread_id or state.thread_id
        if missing:
            self.flags.append(FLAG_ORIGINAL_MISSING)
        return self

    def record_created(self, ledger: VersionLedger) -> "ChatEvent":
        """Enter this created message in `ledger`, so later events about it find it."""
        ledger.created(self.uid(), self.sent_at, self.body_text, self.sender, self.thread_id)
        return self

    def uid(self, message_id: str | None = None) -> str:
        return chat_uid(self.platform, self.workspace, self.conversation_id, message_id or self.message_id)

    def capture(self) -> Capture:
        parent = self.parent_id or (self.thread_id if self.thread_is_message else None)
        record = new_record(
            message_uid=self.uid(), kind=CHAT_TOPIC_KIND, platform=self.platform, source=self.source,
            source_position=self.position, workspace=self.workspace, conversation_id=self.conversation_id,
            channel=self.channel, thread_id=self.thread_id,
            parent_uid=self.uid(parent) if parent and parent != self.message_id else None,
            message_id=self.message_id, event_type=self.event_type, version=self.version,
            sent_at=self.sent_at, event_at=self.event_at, sender=self.sender,
            recipients=list(self.recipients), subject=self.subject, body_text=self.body_text,
            attachments=list(self.attachments),
            headers=[{"name": k, "value": v} for k, v in self.headers.items() if v is not None],
            raw_sha256=sha256_hex(self.raw), raw_size=len(self.raw), flags=_unique(self.flags),
        )
        return Capture(path=self.source, position=self.position, raw=self.raw, record=record,
                       blobs=dict(self.blobs))


def _unique(flags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(flags))


def time_zone(name: str | None) -> tzinfo:
    """The zone local times in a text export are read in (an IANA name); UTC when none is given."""
    if not name or name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"--timezone {name!r} is not a known IANA time zone (e.g. Europe/Berlin).") from exc
