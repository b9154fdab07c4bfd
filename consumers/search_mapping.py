"""The hot index's shape: one template, monthly indices, and the document made from a record.

The local OpenSearch distribution has only the core analyzers, so text fields use `standard`
(words, lower-cased, any script) and addresses and ids are keywords for exact filters.
`participants` gathers every address and user id on a message, so "everything X was on" is one
term filter whether X sent or received it.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from strongroom.config import Settings

_KEYWORD = {"type": "keyword", "ignore_above": 512}
_PERSON = {"properties": {"user_id": _KEYWORD, "address": _KEYWORD,
                          "name": {"type": "text", "fields": {"raw": _KEYWORD}}}}

MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "message_uid": _KEYWORD, "kind": _KEYWORD, "platform": _KEYWORD, "source": _KEYWORD,
        "workspace": _KEYWORD, "conversation_id": _KEYWORD, "channel": _KEYWORD, "thread_id": _KEYWORD,
        "parent_uid": _KEYWORD, "message_id": _KEYWORD, "event_type": _KEYWORD, "version": {"type": "integer"},
        "sent_at": {"type": "date"}, "event_at": {"type": "date"}, "ingested_at": {"type": "date"},
        "flags": _KEYWORD,
        "sender": _PERSON,
        "recipients": {"properties": {"role": _KEYWORD, **_PERSON["properties"]}},
        "participants": _KEYWORD,
        "subject": {"type": "text", "analyzer": "standard", "fields": {"raw": _KEYWORD}},
        "body_text": {"type": "text", "analyzer": "standard"},
        "attachments": {"properties": {"name": {"type": "text", "fields": {"raw": _KEYWORD}},
                                       "content_type": _KEYWORD, "size": {"type": "long"},
                                       "sha256": _KEYWORD,
                                       # Extracted text of text/HTML/PDF/Office attachments (producers/email/extract.py).
                                       "text": {"type": "text", "analyzer": "standard"}}},
        "raw_sha256": _KEYWORD, "raw_size": {"type": "long"},
        "parse_status": _KEYWORD, "parse_error": {"type": "text"},
    },
}


def index_name(settings: Settings, record: dict[str, Any]) -> str:
    when = record["sent_at"].astimezone(timezone.utc)
    return f"{settings.index_prefix(record['kind'])}-{when:%Y.%m}"


def index_pattern(settings: Settings, kind: str | None = None) -> str:
    if kind:
        return f"{settings.index_prefix(kind)}-*"
    return f"{settings.namespace}-email-*,{settings.namespace}-chat-*"


def ensure_template(client, settings: Settings) -> None:
    client.indices.put_index_template(name=f"{settings.namespace}-communications", body={
        "index_patterns": [f"{settings.index_prefix(kind)}-*" for kind in ("email", "chat")],
        "priority": 100,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "5s"},
            "mappings": MAPPINGS,
        },
    })


def document(record: dict[str, Any]) -> dict[str, Any]:
    """The indexed document: the record without bulky headers, plus `participants`."""
    doc = {k: v for k, v in record.items() if k != "headers"}
    people = [record["sender"], *record["recipients"]]
    doc["participants"] = sorted({value.lower() for person in people
                                  for value in (person.get("address"), person.get("user_id")) if value})
    for field in ("sent_at", "event_at", "ingested_at"):
        if doc.get(field) is not None:
            doc[field] = doc[field].isoformat()
    return doc
