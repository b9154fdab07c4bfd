"""OpenSearchIndexer: Kafka topics -> the hot search index.

Delivery: at-least-once; idempotent because each document's `_id` is `message_uid:version`, so a
replay overwrites the same documents instead of adding new ones. Records go out in bulk requests
(never one request per message); a partition's offset is committed only after every record of it
in the bulk was accepted. Items OpenSearch rejects for their content (mapping errors) go to the
dead-letter topic; rejections for load (429) or server errors are retried with backoff, and a
bulk that still fails raises, so nothing is committed and the records are read again.

Indices: `<ns>-<kind>-YYYY.MM` by the message's own time, from one index template.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime, timezone

from consumers.dlq import DeadLetters
from consumers.search_mapping import document, ensure_template, index_name, index_pattern
from schemas import serde
from strongroom import observability as metrics
from strongroom.clients import check_opensearch, opensearch_client
from strongroom.config import Settings
from strongroom.errors import SearchError
from strongroom.registry import decoder

PartitionKey = tuple[str, int]
RETRIES = 3


class OpenSearchIndexer:
    name = "indexer"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = opensearch_client(settings)
        check_opensearch(self.client, settings)
        ensure_template(self.client, settings)
        self.decode = decoder(settings)
        # Per partition: (message, action line, document line) waiting for the next bulk.
        self.pending: dict[PartitionKey, list] = defaultdict(list)
        self.ready: dict[PartitionKey, int] = {}  # flushed, next offset not yet committed
        self.pending_bytes = 0
        self.oldest = None
        self.indexed = 0
        self.last_bulk_at: str | None = None
        self.dead_letters: DeadLetters | None = None

    def assigned(self, partitions: list[PartitionKey]) -> dict[PartitionKey, int | None]:
        return {key: None for key in partitions}  # resume from the group's committed offset

    def forget(self, key: PartitionKey) -> None:
        self.pending.pop(key, None)
        self.ready.pop(key, None)

    def finish(self) -> None:
        """Make what was indexed searchable now, rather than at the next refresh interval."""
        if self.indexed:
            self.client.indices.refresh(index=index_pattern(self.settings), params={"ignore_unavailable": "true"})

    def commit_metadata(self, key: PartitionKey) -> str | None:
        """When the bulk carrying this offset succeeded, for `strongroom status`."""
        return self.last_bulk_at

    def summary(self) -> str:
        return f"indexed {self.indexed} documents"

    def add(self, message, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        key = (message.topic(), message.partition())
        try:
            record = self.decode(message.value())
        except serde.WireFormatError as exc:
            dead_letters.send(message, f"indexer: {exc}")
            self.pending[key].append((message, None, None))
            return
        if record["event_type"] == "arrival":
            # Another copy of an email already indexed: its provenance lives in the warehouse's
            # `arrivals` view; a second document would make search show the message twice.
            self.pending[key].append((message, None, None))
            return
        action = json.dumps({"index": {"_index": index_name(self.settings, record),
                                       "_id": f"{record['message_uid']}:{record['version']}"}})
        doc = json.dumps(document(record), ensure_ascii=False, default=str)
        self.pending[key].append((message, action, doc))
        self.pending_bytes += len(action) + len(doc) + 2
        if self.oldest is None:
            self.oldest = time.monotonic()

    def buffered(self) -> list[PartitionKey]:
        return [key for key, items in self.pending.items() if items] + list(self.ready)

    def full(self, key: PartitionKey) -> bool:
        limits = self.settings.opensearch
        return self.pending_bytes >= limits.bulk_max_bytes or sum(len(v) for v in self.pending.values()) >= limits.bulk_max_docs

    def due(self, now: float) -> list[PartitionKey]:
        if self.full(("", 0)) or (self.oldest is not None and now - self.oldest >= self.settings.indexer.idle_seconds):
            return self.buffered()
        return []

    def flush(self, key: PartitionKey) -> int | None:
        if self.pending.get(key):
            self._send_all()
        return self.ready.pop(key, None)

    def _send_all(self) -> None:
        """One bulk carries every buffered partition; each is then ready to commit."""
        batch = [item for items in self.pending.values() for item in items if item[1] is not None]
        self._bulk(batch)
        self.last_bulk_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for key, items in self.pending.items():
            if items:
                self.ready[key] = items[-1][0].offset() + 1
        self.pending.clear()
        self.pending_bytes = 0
        self.oldest = None

    def _bulk(self, items: list) -> None:
        """Send one bulk; retry only the documents rejected for load, a few times, then give up
        with a transient SearchError so the runner pauses, backs off and tries the batch again."""
        for attempt in range(RETRIES + 1):
            body = "\n".join(line for _m, action, doc in items for line in (action, doc)) + "\n"
            try:
                response = self.client.bulk(body=body)
            except Exception as exc:  # transport errors: OpenSearch down or overloaded
                raise SearchError(f"bulk to {self.settings.opensearch.url} failed: {type(exc).__name__}") from exc
            retry = []
            for item, result in zip(items, response["items"]):
                outcome = result.get("index", {})
                status = outcome.get("status", 500)
                if status < 300:
                    self.indexed += 1
                    metrics.RECORDS_OUT.labels(self.name).inc()
                elif status == 429 or status >= 500:
                    retry.append(item)
                else:
                    reason = json.dumps(outcome.get("error", {}))[:1000]
                    assert self.dead_letters is not None
                    self.dead_letters.send(item[0], f"indexer: OpenSearch refused the document ({status}): {reason}")
            if not retry:
                return
            items = retry
            time.sleep(0.5 * 2 ** attempt)
        raise SearchError(f"bulk to {self.settings.opensearch.url}: {len(items)} documents still rejected for load")
