"""Chat sources: a Slack workspace export and the generic chat JSON-lines format.

Both yield one `producers.capture.Capture` per message, in a deterministic order, and never
drop an item they cannot parse: it becomes a quarantined Capture holding its bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from producers.capture import Capture
from schemas.records import CHAT_TOPIC_KIND, new_record, sha256_hex

__all__ = ["ChatJsonlSource", "SlackExportSource", "canonical_json", "json_array", "json_object", "json_text",
           "json_type", "quarantined"]


def canonical_json(value: Any) -> str:
    """One spelling per JSON value, so the same content always hashes the same."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for errors a user reads ("array", not "list")."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def json_text(value: Any) -> str | None:
    """A non-empty JSON string, else None: exports put null, "", numbers or objects where text goes."""
    return value if isinstance(value, str) and value else None


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object, else an empty one, so a malformed field reads as absent instead of raising."""
    return value if isinstance(value, dict) else {}


def json_array(value: Any) -> list[Any]:
    """A JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def quarantined(*, platform: str, source: str, position: str, raw: bytes, error: str,
                sent_at: datetime, **context: Any) -> Capture:
    """A Capture for an item that could not be parsed; `context` fills what is known (channel, ...)."""
    digest = sha256_hex(raw)
    record = new_record(
        # Without a parsed id the bytes are the only identity; same prefix length as email's em-raw-.
        message_uid="ch-raw-" + digest[:40], kind=CHAT_TOPIC_KIND, platform=platform, source=source,
        source_position=position, sent_at=sent_at, raw_sha256=digest, raw_size=len(raw),
        parse_status="quarantined", parse_error=" ".join(error.split()), **context,
    )
    return Capture(path=source, position=position, raw=raw, record=record)


def __getattr__(name: str) -> Any:
    # Lazy, so `from producers.chat import quarantined` inside a source module has no import cycle.
    if name == "SlackExportSource":
        from producers.chat.slack import SlackExportSource
        return SlackExportSource
    if name == "ChatJsonlSource":
        from producers.chat.jsonl import ChatJsonlSource
        return ChatJsonlSource
    raise AttributeError(name)
