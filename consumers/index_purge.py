"""Removing documents from the hot index: purged messages (by `_id`, in bulk) and everything older
than the hot window (whole monthly indices where the month is past, by `_id` in the month that
straddles the cutoff). The warehouse keeps what only leaves the index; the index can be rebuilt.

The local OpenSearch distribution has no delete-by-query (no reindex module), so documents are
found with a search and deleted with bulk requests, never one request per document.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from consumers.search_mapping import index_pattern
from strongroom.clients import opensearch_client
from strongroom.config import Settings
from strongroom.errors import SearchError

PAGE = 5000


def _bulk_delete(client, settings: Settings, targets: list[tuple[str, str]]) -> int:
    deleted = 0
    for start in range(0, len(targets), settings.opensearch.bulk_max_docs):
        batch = targets[start:start + settings.opensearch.bulk_max_docs]
        body = "\n".join(json.dumps({"delete": {"_index": index, "_id": doc_id}}) for index, doc_id in batch) + "\n"
        try:
            response = client.bulk(body=body, params={"refresh": "true"})
        except Exception as exc:  # transport errors: OpenSearch down or overloaded
            raise SearchError(f"bulk delete at {settings.opensearch.url} failed: {type(exc).__name__}: {exc}") from exc
        for item in response["items"]:
            outcome = item.get("delete", {})
            if outcome.get("result") == "deleted":
                deleted += 1
            elif outcome.get("status", 500) >= 500 or outcome.get("status") == 429:
                raise SearchError(f"bulk delete at {settings.opensearch.url}: {outcome.get('error')}")
            # 404: never indexed (arrival copies, dead letters) or already gone: nothing to delete.
    return deleted


def delete_documents(settings: Settings, targets: list[tuple[str, str]]) -> int:
    """Delete (index, _id) pairs in bulk; returns how many existed."""
    if not targets:
        return 0
    return _bulk_delete(opensearch_client(settings), settings, targets)


def hot_window(settings: Settings, as_of: datetime, apply: bool) -> dict:
    """Documents sent before `as_of - opensearch.hot_window_days` (`as_of` no later than now): count
    them, and delete them if `apply`."""
    client = opensearch_client(settings)
    # The index serves the present: a plan "as of" next year must not empty today's hot window.
    cutoff = min(as_of, datetime.now(timezone.utc)) - timedelta(days=settings.opensearch.hot_window_days)
    old = {"range": {"sent_at": {"lt": cutoff.astimezone(timezone.utc).isoformat()}}}
    result = {"cutoff": cutoff.isoformat(), "documents": 0, "indices_deleted": []}
    lenient = {"ignore_unavailable": "true", "allow_no_indices": "true"}
    try:
        indices = client.indices.get(index=index_pattern(settings), params=lenient)
        # One request counts the old documents of every index, however many months there are.
        counted = client.search(index=index_pattern(settings), params=lenient, body={
            "size": 0, "query": old, "aggs": {"index": {"terms": {"field": "_index", "size": 10000}}}})
        counts = {b["key"]: b["doc_count"] for b in counted.get("aggregations", {}).get("index", {}).get("buckets", [])}
        result["documents"] = sum(counts.values())
        for index in sorted(indices):
            month = datetime.strptime(index.rsplit("-", 1)[1], "%Y.%m").replace(tzinfo=timezone.utc)
            next_month = (month + timedelta(days=32)).replace(day=1)
            if next_month <= cutoff:  # the whole month is older than the window
                result["indices_deleted"].append(index)
                continue
            while apply and counts.get(index):  # the month the cutoff falls in: its older documents
                hits = client.search(index=index, body={"query": old, "size": PAGE, "_source": False})["hits"]["hits"]
                if not hits:
                    break
                _bulk_delete(client, settings, [(h["_index"], h["_id"]) for h in hits])
        if not apply:
            result["indices_deleted"] = []
        # Old mail spans many months: delete their indices some dozens per request, not one by one.
        for start in range(0, len(result["indices_deleted"]), 40):
            client.indices.delete(index=",".join(result["indices_deleted"][start:start + 40]))
    except SearchError:
        raise
    except Exception as exc:
        raise SearchError(f"hot window at {settings.opensearch.url} failed: {type(exc).__name__}: {exc}") from exc
    return result
