"""`strongroom search`: full-text search over the hot index, with filters and snippets."""

from __future__ import annotations

from datetime import datetime

from consumers.search_mapping import index_pattern
from strongroom.clients import opensearch_client
from strongroom.config import Settings
from strongroom.errors import InputError, SearchError

# event_type and event_at show a chat version for what it is: "deleted" at 2026-11-03T09:00 is
# still found by its words, and says when it was deleted.
COLUMNS = ["message_uid", "sent_at", "kind", "sender", "subject_or_channel", "snippet", "event_type", "event_at"]


def _when(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise InputError(f"--{name} {value!r} is not an ISO date or time (e.g. 2026-11-20 or 2026-11-20T09:00)") from exc


def build_query(text: str, kind: str | None = None, sender: str | None = None, participant: str | None = None,
                since: str | None = None, until: str | None = None) -> dict:
    filters: list[dict] = []
    if kind:
        if kind not in ("email", "chat"):
            raise InputError(f"--kind {kind!r}: use email or chat")
        filters.append({"term": {"kind": kind}})
    if sender:
        filters.append({"bool": {"should": [{"term": {"sender.address": sender.lower()}},
                                            {"term": {"sender.user_id": sender}},
                                            {"term": {"sender.name.raw": sender}}], "minimum_should_match": 1}})
    if participant:
        filters.append({"term": {"participants": participant.lower()}})
    window = {k: v for k, v in (("gte", _when(since, "since")), ("lte", _when(until, "until"))) if v}
    if window:
        filters.append({"range": {"sent_at": window}})
    must = ({"simple_query_string": {"query": text, "fields": ["subject^2", "body_text", "attachments.name", "attachments.text",
                                                               "sender.name", "channel"],
                                     "default_operator": "and"}} if text.strip() else {"match_all": {}})
    return {"bool": {"must": must, "filter": filters}}


def search(settings: Settings, text: str, limit: int = 20, **filters) -> tuple[list[str], list[tuple]]:
    from opensearchpy.exceptions import NotFoundError, OpenSearchException

    client = opensearch_client(settings)
    body = {"query": build_query(text, **filters), "size": limit,
            "sort": ["_score", {"sent_at": "desc"}],
            "highlight": {"fields": {"body_text": {"fragment_size": 120, "number_of_fragments": 1},
                                     "subject": {}}, "pre_tags": ["«"], "post_tags": ["»"]}}
    try:
        response = client.search(index=index_pattern(settings, filters.get("kind")), body=body,
                                 params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    except NotFoundError:
        return COLUMNS, []
    except OpenSearchException as exc:
        raise SearchError(f"search at {settings.opensearch.url} failed: {type(exc).__name__}: {exc}") from exc
    rows = []
    for hit in response["hits"]["hits"]:
        doc, marks = hit["_source"], hit.get("highlight", {})
        person = doc.get("sender") or {}
        who = person.get("address") or person.get("name") or person.get("user_id")
        snippet = (marks.get("body_text") or marks.get("subject") or [(doc.get("body_text") or "")[:120]])[0]
        title = doc.get("subject") if doc.get("kind") == "email" else f"#{doc.get('channel')}"
        rows.append((doc["message_uid"], doc["sent_at"], doc["kind"], who, title, " ".join(snippet.split()),
                     doc.get("event_type"), doc.get("event_at")))
    return COLUMNS, rows
