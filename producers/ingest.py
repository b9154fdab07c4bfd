"""The ingest run every source shares: blobs first, then one Avro record per item on Kafka.

Delivery guarantee: at-least-once onto Kafka, and every input item accounted for. For each item:

1. skip it as a duplicate if its (message_uid, version) was captured before (receipts) or earlier
   in this run; an email already captured but arriving from somewhere new (another mailbox, the
   journal, another envelope) is produced as an `arrival` record instead, so every copy's
   provenance is kept while the message itself is archived once;
2. store the raw original and each attachment in the blob store (content-addressed, write-once)
   before the record that points at them exists (claim check); blobs are written a batch at a
   time (one durability barrier per batch instead of two fsyncs per blob), in a writer thread
   while the next batch is parsed, and a batch's records are produced only once its blobs are
   durable;
3. produce the record, keyed by message_uid, with an idempotent producer (acks=all);
4. count it only when the broker's delivery report arrives; the run waits for every report and
   exits non-zero if any record was not acknowledged.

A record that cannot be encoded is not dropped: it is replaced by a quarantine record that still
points at the raw original.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterable

from producers.capture import Capture
from producers.receipts import Receipts, receipt_key
from schemas import records
from strongroom.blobs import BlobStore
from strongroom.clients import ensure_topics, kafka_producer
from strongroom.config import Settings
from strongroom.errors import DeliveryError
from strongroom.registry import encoder
from strongroom.storage import open_store

FLUSH_TIMEOUT_S = 120.0
BLOB_BATCH = 500  # captures whose blobs are made durable together
BLOB_BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class IngestSummary:
    kind: str
    read: int = 0
    produced: int = 0
    duplicates: int = 0
    arrivals: int = 0
    quarantined: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.read / self.seconds if self.seconds else 0.0
        return (f"{self.kind}: read {self.read}, produced {self.produced}, duplicates {self.duplicates}, "
                f"{f'arrivals {self.arrivals}, ' if self.arrivals else ''}"
                f"quarantined {self.quarantined}, failed {self.failed} "
                f"({self.bytes / 1e6:.1f} MB in {self.seconds:.1f}s, {rate:,.0f} items/s)")


class Report:
    """One JSON line per input item (path, position, status, message_uid, raw_sha256, error)."""

    def __init__(self, handle: IO[str] | None):
        self.handle = handle

    def write(self, capture: Capture, status: str, error: str | None = None) -> None:
        if self.handle is None:
            return
        rec = capture.record
        self.handle.write(json.dumps({
            "path": capture.path, "position": capture.position, "status": status,
            "message_uid": rec.get("message_uid"), "raw_sha256": rec.get("raw_sha256"),
            "error": error or rec.get("parse_error")}, ensure_ascii=False) + "\n")


def _quarantine(capture: Capture, reason: str) -> dict:
    """A minimal record for an item whose parsed record could not be encoded."""
    rec = capture.record
    sha = records.sha256_hex(capture.raw)
    return records.new_record(
        message_uid=f"{'em' if rec.get('kind') == 'email' else 'ch'}-raw-{sha[:40]}",
        kind=rec.get("kind", "email"), platform=str(rec.get("platform") or "unknown"), source=capture.path,
        source_position=capture.position, sent_at=rec.get("ingested_at") or datetime.now(timezone.utc),
        raw_sha256=sha, raw_size=len(capture.raw), ingested_at=rec.get("ingested_at"),
        parse_status="quarantined", parse_error=f"record not encodable: {reason}"[:1000])


def classify(rec: dict, seen: set[str]) -> tuple[str, tuple[str, ...]]:
    """Step 1: "new", "arrival" or "duplicate", and the receipt keys the record settles once acknowledged.

    Emails record each arrival; chat exports re-read from elsewhere are plain duplicates. A source
    may set `arrival_id` itself when its position is not part of a copy's identity (an IMAP UID
    that a UIDVALIDITY change renumbers)."""
    key = receipt_key(rec["message_uid"], rec.get("version", 1))
    arrival = None
    if rec.get("kind") == "email":
        rec["arrival_id"] = rec.get("arrival_id") or records.arrival_id(rec)
        arrival = f"{key}|{rec['arrival_id']}"
    if key not in seen:
        return "new", (key, arrival) if arrival else (key,)
    if arrival and arrival not in seen:
        rec["event_type"] = "arrival"
        return "arrival", (arrival,)
    return "duplicate", ()


class Ingest:
    def __init__(self, settings: Settings, kind: str, report: IO[str] | None = None, progress=None,
                 producer_overrides: dict | None = None, topic_timeout: float = 15.0):
        self.settings = settings
        self.kind = kind
        self.topic = ensure_topics(settings, kinds=(kind,), timeout=topic_timeout)[0]
        self.encode = encoder(settings, kind)
        self.store = open_store(settings.storage)
        self.blobs = BlobStore(self.store, settings.namespace)
        self.receipts = Receipts(self.store, settings.namespace, kind)
        self.producer = kafka_producer(settings, **(producer_overrides or {}))
        self.seen: set[str] = set()
        self.report = Report(report)
        self.progress = progress  # callable(items, bytes) or None
        self.summary = IngestSummary(kind)
        self._batch: list[tuple[Capture, tuple[str, ...]]] = []
        self._batch_bytes = 0
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future, list[tuple[Capture, tuple[str, ...]]]] | None = None

    def _on_delivery(self, capture: Capture, keys: tuple[str, ...]):
        def callback(err, _msg) -> None:
            if err is not None:
                self.summary.failed += 1
                self.summary.errors.append(err.str())
                self.report.write(capture, "failed", f"not acknowledged by Kafka: {err.str()}")
                return
            self.summary.produced += 1
            for key in keys:
                self.receipts.add(key)
            if capture.record.get("event_type") == "arrival":
                self.summary.arrivals += 1
                self.report.write(capture, "arrival")
            elif capture.quarantined:
                self.summary.quarantined += 1
                self.report.write(capture, "quarantined")
            else:
                self.report.write(capture, "archived")
        return callback

    def produce(self, key: bytes, value: bytes, callback) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=callback)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self.producer.poll(0.5)

    def run(self, captures: Iterable[Capture]) -> IngestSummary:
        started = time.monotonic()
        self.begin()
        try:
            for capture in captures:
                self.add(capture)
        finally:
            try:
                self.settle()
            finally:
                if self._writer is not None:
                    self._writer.shutdown(wait=True)
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def begin(self) -> None:
        """Load what was captured before; `add` and `settle` may follow, as often as a source needs."""
        self.seen = self.receipts.load()

    def add(self, capture: Capture) -> None:
        """Steps 1-3 for one item: skip a duplicate, or store its blobs and produce its record."""
        self.summary.read += 1
        self.summary.bytes += len(capture.raw)
        decision, keys = classify(capture.record, self.seen)
        if decision == "duplicate":
            self.summary.duplicates += 1
            self.report.write(capture, "duplicate")
        else:
            self.seen.update(keys)
            self._capture(capture, keys)
        if self.progress:
            self.progress(1, len(capture.raw))
        if self.summary.read % 64 == 0:
            # Serve delivery reports now and then; each call gives up the GIL, and with the blob
            # writer thread busy, taking it back can wait a whole switch interval.
            self.producer.poll(0)

    def settle(self) -> int:
        """Step 4: wait for every delivery report so far and write the receipts; returns failures so far.

        A source that checkpoints its position (IMAP) calls this before moving its checkpoint."""
        self._submit()
        self._produce_inflight()
        self._drain()
        self.receipts.flush()
        return self.summary.failed

    def _capture(self, capture: Capture, keys: tuple[str, ...]) -> None:
        self._batch.append((capture, keys))
        self._batch_bytes += len(capture.raw) + sum(map(len, capture.blobs.values()))
        if len(self._batch) >= BLOB_BATCH or self._batch_bytes >= BLOB_BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        """Hand this batch's blobs to the writer thread, then produce the batch before it."""
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch and self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest-blobs")
        future = self._writer.submit(self._store_blobs, batch) if batch else None
        self._produce_inflight()
        self._inflight = (future, batch) if future is not None else None

    def _store_blobs(self, batch: list[tuple[Capture, tuple[str, ...]]]) -> None:
        items: list[tuple[bytes, str | None]] = []
        for capture, _keys in batch:
            items.append((capture.raw, capture.record.get("raw_sha256")))
            items.extend((payload, sha) for sha, payload in capture.blobs.items())
        self.blobs.put_many(items)

    def _produce_inflight(self) -> None:
        """Once the batch's blobs are durable (or their error raised here), produce its records."""
        if self._inflight is None:
            return
        future, batch = self._inflight
        self._inflight = None
        future.result()
        for capture, keys in batch:
            self.produce(*self.encode_record(capture), self._on_delivery(capture, keys))
        self.producer.poll(0)

    def store_and_encode(self, capture: Capture) -> tuple[bytes, bytes]:
        """Step 2 for one item (the live paths: one message, one acknowledgement) and its record's
        key and value."""
        rec = capture.record
        self.blobs.put(capture.raw, rec.get("raw_sha256"))
        for sha, payload in capture.blobs.items():
            self.blobs.put(payload, sha)
        return self.encode_record(capture)

    def encode_record(self, capture: Capture) -> tuple[bytes, bytes]:
        """The record's key and value; an unencodable record becomes a quarantine record."""
        rec = capture.record
        rec["ingested_at"] = datetime.now(timezone.utc)
        try:
            value = self.encode(rec)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            capture.record = rec = _quarantine(capture, str(exc))
            value = self.encode(rec)
        return rec["message_uid"].encode(), value

    def _drain(self) -> None:
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            self.summary.failed += remaining
            self.summary.errors.append(f"{remaining} records still unacknowledged after {FLUSH_TIMEOUT_S:.0f}s")


def ingest(settings: Settings, kind: str, captures: Iterable[Capture], report_path: Path | None = None,
           progress=None) -> IngestSummary:
    """Run one ingest; raises DeliveryError (after writing everything it can) if any record failed."""
    handle = open(report_path, "w", encoding="utf-8") if report_path else None
    try:
        summary = Ingest(settings, kind, handle, progress).run(captures)
    finally:
        if handle:
            handle.close()
    if summary.failed:
        first = summary.errors[0] if summary.errors else "unknown"
        raise DeliveryError(f"{summary.line()}; {summary.failed} not acknowledged (first error: {first})")
    return summary

