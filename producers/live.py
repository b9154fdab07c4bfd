"""The capture path of a long-lived source that must answer for each message (the SMTP server).

Delivery guarantee: at-least-once onto Kafka, and a message is reported captured only after the
broker acknowledged its record. The steps are those of producers/ingest.py, for one message at a
time from many threads:

1. decide new / arrival / duplicate against the receipts (loaded once) and the acknowledged
   records since; a copy of a message that another session is delivering right now waits for
   that delivery's outcome, so two simultaneous copies are never both produced;
2. store the raw original and its attachments in the blob store (claim check);
3. produce the record with the idempotent producer; records of concurrent sessions share the
   producer's batches (linger.ms), so many sessions delivering at once cost one round trip;
4. resolve the message's future when the delivery report arrives (one thread serves them all
   and writes receipts in batches); a report that does not come within the delivery timeout
   (librdkafka's message.timeout.ms) fails the future, and the caller answers "try again".

Kafka, the registry and storage are first reached with the first message, and again after a
failure, so a server can start (and say 451) while the broker is down.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError, wait

from producers.capture import Capture
from producers.ingest import Ingest, classify
from strongroom.config import Settings
from strongroom.errors import DeliveryError, StrongroomError

log = logging.getLogger("strongroom.live")
RECEIPT_FLUSH_S = 5.0


class LiveIngest:
    def __init__(self, settings: Settings, kind: str, delivery_timeout: float):
        self.settings = settings
        self.kind = kind
        self.timeout = delivery_timeout
        self._ingest: Ingest | None = None
        self._connect_lock = threading.Lock()
        self._lock = threading.Lock()  # guards seen, in-flight keys and the summary
        self._receipts_lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._last_failure: tuple[float, StrongroomError | None] = (0.0, None)

    # -- connection ---------------------------------------------------------------------
    def connect(self) -> Ingest:
        """The ingest, built on first use: topics, schema, receipts and a producer. A caller that
        waited while another's attempt failed gets that failure, not a second full timeout."""
        waiting_since = time.monotonic()
        with self._connect_lock:
            if self._ingest is None:
                failed_at, failure = self._last_failure
                if failure is not None and failed_at >= waiting_since:
                    raise failure
                try:
                    ingest = self._build()
                except StrongroomError as exc:
                    self._last_failure = (time.monotonic(), exc)
                    raise
                self._ingest = ingest
                self._poller = threading.Thread(target=self._serve_reports, name="delivery-reports", daemon=True)
                self._poller.start()
        return self._ingest

    def _build(self) -> Ingest:
        ingest = Ingest(self.settings, self.kind, topic_timeout=self.timeout, producer_overrides={
            "message.timeout.ms": max(1000, int(self.timeout * 1000)),
            # A sender is waiting on the answer: batch briefly, not for throughput.
            "linger.ms": 5})
        ingest.begin()
        return ingest

    def _serve_reports(self) -> None:
        assert self._ingest is not None
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._ingest.producer.poll(0.2)
            if time.monotonic() - last_flush >= RECEIPT_FLUSH_S:
                last_flush = time.monotonic()
                self._flush_receipts()

    def _flush_receipts(self) -> None:
        try:
            with self._receipts_lock:
                self._ingest.receipts.flush()
        except StrongroomError as exc:  # only dedup suffers; the next flush tries again
            log.warning("receipts not written yet: %s", exc)

    # -- capture ------------------------------------------------------------------------
    def submit(self, capture: Capture) -> Future:
        """Steps 1-3 (blocking: storage and produce); the future resolves with the status at step 4.

        Raises a StrongroomError when a service cannot be reached; the future fails with
        DeliveryError when the broker did not acknowledge in time."""
        ingest = self.connect()
        rec = capture.record
        event_type = rec.get("event_type", "created")
        while True:
            with self._lock:
                rec["event_type"] = event_type  # classify marks arrivals; decide afresh each round
                decision, keys = classify(rec, ingest.seen)
                busy = {self._inflight[k] for k in keys if k in self._inflight}
                if decision == "duplicate":
                    ingest.summary.read += 1
                    ingest.summary.duplicates += 1
                    done: Future = Future()
                    done.set_result("duplicate")
                    return done
                if not busy:
                    future: Future = Future()
                    self._inflight.update(dict.fromkeys(keys, future))
                    ingest.summary.read += 1
                    ingest.summary.bytes += len(capture.raw)
                    break
            wait(busy, timeout=self.timeout + 10)  # the other delivery's outcome decides ours
        try:
            key, value = ingest.store_and_encode(capture)
            ingest.produce(key, value, self._on_delivery(capture, keys, future))
        except Exception as exc:
            self._settle(keys, future, exc)
            raise
        return future

    def _on_delivery(self, capture: Capture, keys: tuple[str, ...], future: Future):
        def callback(err, _msg) -> None:
            if err is not None:
                self._settle(keys, future, DeliveryError(f"not acknowledged by Kafka: {err.str()}"))
                return
            status = ("arrival" if capture.record.get("event_type") == "arrival" else
                      "quarantined" if capture.quarantined else "archived")
            with self._receipts_lock:
                for key in keys:
                    self._ingest.receipts.add(key)
            self._settle(keys, future, None, status)
        return callback

    def _settle(self, keys: tuple[str, ...], future: Future, error: Exception | None, status: str = "") -> None:
        summary = self._ingest.summary
        with self._lock:
            for key in keys:
                self._inflight.pop(key, None)
            if error is None:
                self._ingest.seen.update(keys)
                summary.produced += 1
                summary.arrivals += status == "arrival"
                summary.quarantined += status == "quarantined"
            else:
                summary.failed += 1
                summary.errors.append(str(error))
                del summary.errors[:-10]  # a long-lived server keeps only the latest few
        try:
            future.set_exception(error) if error is not None else future.set_result(status)
        except InvalidStateError:  # the waiter gave up (cancelled) already
            pass

    def close(self) -> None:
        """Wait for outstanding delivery reports (at most the delivery timeout), write receipts."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._ingest is not None:
            self._ingest.producer.flush(self.timeout)
            self._flush_receipts()

    def summary_line(self) -> str:
        return self._ingest.summary.line() if self._ingest else f"{self.kind}: nothing received"
