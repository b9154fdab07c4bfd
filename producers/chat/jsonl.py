"""Chat JSON lines (docs/chat-jsonl.md): the one format any chat system can be converted to.

One JSON object per line, one message event per object. A line that cannot be used (bad JSON,
a missing required field, a bad date) becomes a quarantined Capture whose error names the line;
nothing is dropped and nothing raises. `raw` is the line's exact bytes without its line ending.
Files are read line by line, so their size does not matter.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import canonical_json, json_type, quarantined
from schemas.records import CHAT_TOPIC_KIND, attachment, chat_uid, new_record, participant, recipient, sha256_hex
from strongroom.errors import InputError

FIELDS = frozenset({
    "platform", "workspace", "channel", "channel_name", "message_id", "thread_id", "sent_at",
    "sender", "subject", "text", "event_type", "version", "recipients", "mentions", "attachments",
    "edited_at", "extra",
})
EVENT_TYPES = ("created", "edited", "deleted", "reaction")
ROLES = ("to", "cc", "bcc", "envelope", "mention")
UNKNOWN_PREFIX = "jsonl."

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LineError(ValueError):
    """Why one line cannot become a record; the message is shown as the parse error."""


class ChatJsonlSource:
    """Iterate one .jsonl file, or every *.jsonl file under a folder (sorted), as Captures."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        root = Path(path)
        if root.is_dir():
            self.files = sorted(f for f in root.rglob("*.jsonl") if f.is_file())
            if not self.files:
                raise InputError(f"{os.fspath(path)} holds no .jsonl files.")
        elif root.is_file():
            self.files = [root]
        else:
            raise InputError(f"chat JSON-lines path {os.fspath(path)} does not exist.")

    def __iter__(self) -> Iterator[Capture]:
        for file in self.files:
            with file.open("rb") as lines:
                for number, line in enumerate(lines, start=1):
                    raw = line.removesuffix(b"\n").removesuffix(b"\r")
                    if raw.strip():
                        yield _capture(os.fspath(file), number, raw)


def _capture(source: str, number: int, raw: bytes) -> Capture:
    item: Any = None
    try:
        # A BOM can only lead line 1, but stripping it anywhere is harmless: it is not JSON.
        item = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
        record = _record(item, source, str(number), raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, LineError
        return quarantined(platform=_platform(item), source=source, position=str(number), raw=raw,
                           error=f"line {number}: {exc}", sent_at=_salvaged_time(item))
    return Capture(path=source, position=str(number), raw=raw, record=record)


def _record(item: Any, source: str, position: str, raw: bytes) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise LineError(f"a line must be a JSON object, not a JSON {json_type(item)}")
    platform = _required(item, "platform").lower()
    channel = _required(item, "channel")
    message_id = _required(item, "message_id")
    workspace = _optional(item, "workspace")
    thread_id = _optional(item, "thread_id")
    thread_id = thread_id if thread_id != message_id else None
    event_type = _optional(item, "event_type") or "created"
    if event_type not in EVENT_TYPES:
        raise LineError(f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    return new_record(
        message_uid=chat_uid(platform, workspace, channel, message_id), kind=CHAT_TOPIC_KIND,
        platform=platform, source=source, source_position=position, workspace=workspace,
        conversation_id=channel, channel=_optional(item, "channel_name") or channel, thread_id=thread_id,
        # thread_id is the root message's id, so the parent's identity follows from it.
        parent_uid=chat_uid(platform, workspace, channel, thread_id) if thread_id else None,
        message_id=message_id, event_type=event_type, version=_version(item, event_type),
        sent_at=_instant(item.get("sent_at"), "sent_at"), sender=_person(item.get("sender"), "sender"),
        recipients=_recipients(item), subject=_optional(item, "subject"), body_text=_optional(item, "text"),
        attachments=[_attachment(a, i) for i, a in enumerate(_array(item, "attachments"))],
        headers=_headers(item), raw_sha256=sha256_hex(raw), raw_size=len(raw),
    )


def _required(item: dict[str, Any], key: str) -> str:
    value = _optional(item, key)
    if value is None:
        raise LineError(f"{key} is required")
    return value


def _optional(item: dict[str, Any], key: str) -> str | None:
    """A string field; ids may come as integers, which we spell as decimal strings."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if type(value) is int and key in ("message_id", "thread_id", "channel", "workspace"):
        return str(value)
    if not isinstance(value, str):
        raise LineError(f"{key} must be a string, not a JSON {json_type(value)}")
    return value


def _version(item: dict[str, Any], event_type: str) -> int:
    version = item.get("version")
    if version is None and event_type == "created":
        return 1
    if type(version) is not int or version < 1:
        raise LineError(f"version must be a positive integer (required unless event_type is created), not {version!r}")
    # (message_uid, version) names one event; a later event reusing 1 would overwrite the original.
    if event_type != "created" and version < 2:
        raise LineError(f"version must be 2 or more for an {event_type} event: version 1 is the created message")
    return version


def _instant(value: Any, key: str) -> datetime:
    """ISO 8601 with a UTC offset, or epoch seconds -> aware UTC datetime."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _EPOCH + timedelta(microseconds=round(value * 1_000_000))
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
            if moment.utcoffset() is None:
                raise LineError(f"{key} {value!r} has no UTC offset (add Z or +hh:mm)")
            return moment.astimezone(timezone.utc)
    except LineError:
        raise
    except (ValueError, OverflowError):
        pass
    if value is None:
        raise LineError(f"{key} is required")
    raise LineError(f"{key} {value!r} is neither ISO 8601 with a UTC offset nor epoch seconds")


def _person(value: Any, key: str, role: str | None = None) -> dict[str, Any]:
    """{"id", "name", "email"} or a bare string, which is taken as both id and name."""
    if isinstance(value, str) and value:
        fields: tuple[Any, Any, Any] = (value, value, None)
    elif isinstance(value, dict):
        fields = (value.get("id"), value.get("name"), value.get("email"))
        if type(fields[0]) is int:
            fields = (str(fields[0]), fields[1], fields[2])
        if not all(f is None or isinstance(f, str) for f in fields) or not any(fields):
            raise LineError(f"{key} needs a string id, name or email")
    else:
        raise LineError(f"{key} must be an object with id/name/email or a string")
    return recipient(role, *fields) if role else participant(*fields)


def _recipients(item: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, default in (("recipients", "to"), ("mentions", "mention")):
        for index, value in enumerate(_array(item, key)):
            role = value.get("role", default) if isinstance(value, dict) else default
            if role not in ROLES:
                raise LineError(f"{key}[{index}].role {role!r} is not one of {', '.join(ROLES)}")
            found.append(_person(value, f"{key}[{index}]", role))
    return found


def _attachment(value: Any, index: int) -> dict[str, Any]:
    where = f"attachments[{index}]"
    if not isinstance(value, dict):
        raise LineError(f"{where} must be an object")
    size, digest = value.get("size"), value.get("sha256")
    if size is not None and (type(size) is not int or size < 0):
        raise LineError(f"{where}.size must be a byte count, not {size!r}")
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest.lower())):
        raise LineError(f"{where}.sha256 must be 64 hex digits")
    return attachment(_optional(value, "content_type") or "application/octet-stream",
                      name=_optional(value, "name"), size=size,
                      sha256=digest.lower() if digest else None, url=_optional(value, "url"))


def _headers(item: dict[str, Any]) -> list[dict[str, str]]:
    headers = []
    if item.get("edited_at") is not None:
        headers.append({"name": "edited_at", "value": _instant(item["edited_at"], "edited_at").isoformat()})
    extra = item.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise LineError("extra must be an object")
    for name, value in [*(extra or {}).items(),
                        *((UNKNOWN_PREFIX + k, v) for k, v in item.items() if k not in FIELDS)]:
        # Unknown keys are kept, not refused: a converter's extra detail is still evidence.
        headers.append({"name": name, "value": value if isinstance(value, str) else canonical_json(value)})
    return headers


def _array(item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise LineError(f"{key} must be an array")
    return value


def _platform(item: Any) -> str:
    value = item.get("platform") if isinstance(item, dict) else None
    return value.lower() if isinstance(value, str) and value else "chat-jsonl"


def _salvaged_time(item: Any) -> datetime:
    """A quarantined line still sorts by its own time when that part of it is readable."""
    try:
        return _instant(item.get("sent_at"), "sent_at") if isinstance(item, dict) else datetime.now(timezone.utc)
    except LineError:
        return datetime.now(timezone.utc)
