"""OpenSearchIndexer: Kafka topics -> the hot search index.

Delivery: at-least-once; idempotent because each document's `_id` is `message_uid:version`, so a
replay overwrites the same documents instead of adding new ones. Records go out in bulk requests
(never one request per message); a partition's offset is committed only after every record of it
in the bulk was accepted. Items OpenSearch rejects for their content (mapping errors) go to the
dead-letter topic; rejections for load (429) or server errors are retried with backoff, and a
bulk that still fails raises, so nothing is committed and the records are read again.

Indices: `<ns>-<kind>-YYYY.MM` by the message's own time, from one index template.

Speed: records wait as their framed bytes and are decoded at the bulk, a chunk at a time
(pyruhvro to Arrow, then to Python without the headers no document carries; the per-record path
for a chunk that cannot be decoded whole), documents are serialized with orjson, and the bulk
goes out as requests of ~`bulk_part_bytes`, `bulk_concurrency` at a time, while the next chunk
is being decoded. While the indexer is catching up (its bulks are full) the indices' refresh is
switched off; it is put back once a bulk is not full, and at the end.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timezone

import orjson

from consumers.dlq import DeadLetters
from consumers.search_mapping import document, ensure_template, index_name, index_pattern
from schemas import serde
from schemas.arrow_decode import ArrowDecoder
from strongroom import observability as metrics
from strongroom.clients import check_opensearch, opensearch_client
from strongroom.config import Settings
from strongroom.errors import SearchError
from strongroom.registry import decoder

PartitionKey = tuple[str, int]
RETRIES = 3
REFRESH = "5s"  # the template's refresh interval, put back once caught up
DECODE_CHUNK = 2000  # records turned into Python objects at a time: bounds the indexer's memory


class OpenSearchIndexer:
    name = "indexer"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = opensearch_client(settings)
        check_opensearch(self.client, settings)
        ensure_template(self.client, settings)
        self.decode = decoder(settings)
        self.arrow = ArrowDecoder(self.decode)
        # Per partition: messages not yet decoded, then (message, action, document) lines ready
        # for the next bulk (action None for a record that gets no document).
        self.pending: dict[PartitionKey, list] = defaultdict(list)
        self.prepared: dict[PartitionKey, list] = defaultdict(list)
        self.ready: dict[PartitionKey, int] = {}  # flushed, next offset not yet committed
        self.pending_bytes = 0
        self.pending_count = 0
        self.oldest = None
        self.indexed = 0
        self.last_bulk_at: str | None = None
        self.dead_letters: DeadLetters | None = None
        self.relaxed = False
        self._pool: ThreadPoolExecutor | None = None

    def assigned(self, partitions: list[PartitionKey]) -> dict[PartitionKey, int | None]:
        return {key: None for key in partitions}  # resume from the group's committed offset

    def forget(self, key: PartitionKey) -> None:
        dropped = self.pending.pop(key, [])
        self.pending_count -= len(dropped)
        self.pending_bytes -= sum(len(m.value() or b"") for m in dropped)
        self.prepared.pop(key, None)
        self.ready.pop(key, None)

    def finish(self) -> None:
        """Put the refresh back and make what was indexed searchable now."""
        self._relax(False)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.indexed:
            self.client.indices.refresh(index=index_pattern(self.settings), params={"ignore_unavailable": "true"})

    def commit_metadata(self, key: PartitionKey) -> str | None:
        """When the bulk carrying this offset succeeded, for `strongroom status`."""
        return self.last_bulk_at

    def summary(self) -> str:
        return f"indexed {self.indexed} documents"

    def add(self, message, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.pending[(message.topic(), message.partition())].append(message)
        self.pending_bytes += len(message.value() or b"")
        self.pending_count += 1
        if self.oldest is None:
            self.oldest = time.monotonic()

    def buffered(self) -> list[PartitionKey]:
        waiting = {key for key, items in self.pending.items() if items}
        waiting |= {key for key, items in self.prepared.items() if items}
        return sorted(waiting) + list(self.ready)

    def full(self, key: PartitionKey) -> bool:
        limits = self.settings.opensearch
        return self.pending_bytes >= limits.bulk_max_bytes or self.pending_count >= limits.bulk_max_docs

    def due(self, now: float) -> list[PartitionKey]:
        if self.full(("", 0)) or (self.oldest is not None and now - self.oldest >= self.settings.indexer.idle_seconds):
            return self.buffered()
        return []

    def flush(self, key: PartitionKey) -> int | None:
        if self.pending.get(key) or self.prepared.get(key):
            self._send_all()
        return self.ready.pop(key, None)

    # -- documents -------------------------------------------------------------------------
    def _records(self, messages: list) -> list:
        """(message, record or None) for each message; undecodable ones are dead-lettered."""
        assert self.dead_letters is not None
        good, out = [], []
        for message in messages:
            try:
                good.append((message, self.decode.header(message.value())))
            except serde.WireFormatError as exc:
                self.dead_letters.send(message, f"indexer: {exc}")
                out.append((message, None))
        records = None
        if good and all(self.arrow.batchable(schema_id) for _m, schema_id in good):
            try:
                # Headers never reach the document (search_mapping.document drops them), and
                # they are the bulkiest part to turn into Python objects.
                table = self.arrow.batch([m.value() for m, _id in good])
                records = table.drop_columns(["headers"]).to_pylist()
            except serde.WireFormatError:
                records = None  # a bad body somewhere: find it record by record
        if records is None:
            records = []
            for message, _id in good:
                try:
                    records.append(self.decode(message.value()))
                except serde.WireFormatError as exc:
                    self.dead_letters.send(message, f"indexer: {exc}")
                    records.append(None)
        out.extend(zip((m for m, _id in good), records))
        out.sort(key=lambda pair: pair[0].offset())
        return out

    def _lines(self, messages: list) -> list:
        lines = []
        for message, record in self._records(messages):
            if record is None or record["event_type"] == "arrival":
                # An arrival is another copy of an email already indexed: its provenance lives
                # in the warehouse's `arrivals` view; a second document would show it twice.
                lines.append((message, None, None))
                continue
            action = orjson.dumps({"index": {"_index": index_name(self.settings, record),
                                             "_id": f"{record['message_uid']}:{record['version']}"}})
            lines.append((message, action, orjson.dumps(document(record), default=str)))
        return lines

    # -- bulk ------------------------------------------------------------------------------
    def _send_all(self) -> None:
        """One bulk carries every buffered partition, as requests of ~bulk_part_bytes sent
        (bulk_concurrency at a time) while the next records are still being decoded; each
        partition is then ready to commit."""
        caught_up = not self.full(("", 0))
        if not caught_up:
            self._relax(True)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.opensearch.bulk_concurrency, thread_name_prefix="indexer-bulk")
        futures: list = []
        part: list = []
        size = 0

        def queue(lines: list) -> None:
            nonlocal part, size
            for item in lines:
                if item[1] is None:
                    continue
                part.append(item)
                size += len(item[1]) + len(item[2]) + 2
                if size >= self.settings.opensearch.bulk_part_bytes:
                    futures.append(self._pool.submit(self._bulk, part))
                    part, size = [], 0

        try:
            for items in self.prepared.values():  # prepared by an attempt that failed: send again
                queue(items)
            for key in list(self.pending):
                while self.pending.get(key):
                    chunk = self.pending[key][:DECODE_CHUNK]
                    lines = self._lines(chunk)  # a failure here leaves the chunk waiting
                    del self.pending[key][:DECODE_CHUNK]
                    self.pending_count -= len(chunk)
                    self.pending_bytes -= sum(len(m.value() or b"") for m in chunk)
                    self.prepared[key].extend(lines)
                    queue(lines)
                self.pending.pop(key, None)
            if part:
                futures.append(self._pool.submit(self._bulk, part))
        finally:
            wait(futures)  # no request is left running behind an error
        results = [future.result() for future in futures]  # the first failure is raised here
        # Only now, with every request accepted, count and dead-letter (a retry must not repeat them).
        for indexed, refused in results:
            self.indexed += indexed
            metrics.RECORDS_OUT.labels(self.name).inc(indexed)
            for message, reason in refused:
                assert self.dead_letters is not None
                self.dead_letters.send(message, reason)
        self.last_bulk_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for key, items in self.prepared.items():
            if items:
                self.ready[key] = items[-1][0].offset() + 1
        self.prepared.clear()
        self.pending_bytes = self.pending_count = 0
        self.oldest = None
        if caught_up:
            self._relax(False)

    def _relax(self, catching_up: bool) -> None:
        """Refresh off while catching up (no segment per second of a backlog), back on after."""
        if catching_up == self.relaxed:
            return
        try:
            self.client.indices.put_settings(index=index_pattern(self.settings),
                                             body={"index": {"refresh_interval": "-1" if catching_up else REFRESH}},
                                             params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        except Exception as exc:  # transport errors: the bulk that follows reports OpenSearch's state
            raise SearchError(f"setting the refresh of {index_pattern(self.settings)} failed: {type(exc).__name__}") from exc
        self.relaxed = catching_up

    def _bulk(self, items: list) -> tuple[int, list]:
        """Send one bulk request; retry only the documents rejected for load, a few times, then give
        up with a transient SearchError so the runner pauses, backs off and tries the batch again.
        Returns (documents indexed, [(message, reason)] refused for their content)."""
        indexed, refused = 0, []
        for attempt in range(RETRIES + 1):
            body = b"".join(line for _m, action, doc in items for line in (action, b"\n", doc, b"\n"))
            try:
                response = self.client.bulk(body=body)
            except Exception as exc:  # transport errors: OpenSearch down or overloaded
                raise SearchError(f"bulk to {self.settings.opensearch.url} failed: {type(exc).__name__}") from exc
            retry = []
            for item, result in zip(items, response["items"]):
                outcome = result.get("index", {})
                status = outcome.get("status", 500)
                if status < 300:
                    indexed += 1
                elif status == 429 or status >= 500:
                    retry.append(item)
                else:
                    reason = json.dumps(outcome.get("error", {}))[:1000]
                    refused.append((item[0], f"indexer: OpenSearch refused the document ({status}): {reason}"))
            if not retry:
                return indexed, refused
            items = retry
            time.sleep(0.5 * 2 ** attempt)
        raise SearchError(f"bulk to {self.settings.opensearch.url}: {len(items)} documents still rejected for load")
