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


class Ingest:
    def __init__(self, settings: Settings, kind: str, report: IO[str] | None = None, progress=None):
        self.settings = settings
        self.kind = kind
        self.topic = ensure_topics(settings, kinds=(kind,))[0]
        self.encode = encoder(settings, kind)
        store = open_store(settings.storage)
        self.blobs = BlobStore(store, settings.namespace)
        self.receipts = Receipts(store, settings.namespace, kind)
        self.producer = kafka_producer(settings)
        self.report = Report(report)
        self.progress = progress  # callable(items, bytes) or None
        self.summary = IngestSummary(kind)
        self._batch: list[tuple[Capture, tuple[str, ...]]] = []
        self._batch_bytes = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest-blobs")
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

    def _produce(self, key: bytes, value: bytes, callback) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=callback)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self.producer.poll(0.5)

    def run(self, captures: Iterable[Capture]) -> IngestSummary:
        started = time.monotonic()
        seen = self.receipts.load()
        try:
            for capture in captures:
                self.summary.read += 1
                self.summary.bytes += len(capture.raw)
                rec = capture.record
                key = receipt_key(rec["message_uid"], rec.get("version", 1))
                arrival = self._arrival_key(key, rec)
                if key not in seen:
                    seen.update((key, arrival) if arrival else (key,))
                    self._capture(capture, (key, arrival) if arrival else (key,))
                elif arrival and arrival not in seen:
                    seen.add(arrival)
                    rec["event_type"] = "arrival"
                    self._capture(capture, (arrival,))
                else:
                    self.summary.duplicates += 1
                    self.report.write(capture, "duplicate")
                if self.progress:
                    self.progress(1, len(capture.raw))
                if self.summary.read % 64 == 0:
                    # Serve delivery reports now and then; each call gives up the GIL, and with the
                    # blob writer thread busy, taking it back can wait a whole switch interval.
                    self.producer.poll(0)
            self._submit()
            self._produce_inflight()
        finally:
            self._writer.shutdown(wait=True)
            self._drain()
            self.receipts.flush()
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _arrival_key(self, key: str, rec: dict) -> str | None:
        """Emails record each arrival; chat exports re-read from elsewhere are plain duplicates."""
        if rec.get("kind") != "email":
            return None
        rec["arrival_id"] = records.arrival_id(rec)
        return f"{key}|{rec['arrival_id']}"

    def _capture(self, capture: Capture, keys: tuple[str, ...]) -> None:
        self._batch.append((capture, keys))
        self._batch_bytes += len(capture.raw) + sum(map(len, capture.blobs.values()))
        if len(self._batch) >= BLOB_BATCH or self._batch_bytes >= BLOB_BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        """Hand this batch's blobs to the writer thread, then produce the batch before it."""
        batch, self._batch, self._batch_bytes = self._batch, [], 0
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
            rec = capture.record
            rec["ingested_at"] = datetime.now(timezone.utc)
            try:
                value = self.encode(rec)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                capture.record = rec = _quarantine(capture, str(exc))
                value = self.encode(rec)
            self._produce(rec["message_uid"].encode(), value, self._on_delivery(capture, keys))
        self.producer.poll(0)

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

