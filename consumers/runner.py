"""The consume loop and commit protocol every sink shares (archiver, indexer).

A sink buffers records per (topic, partition) and says when a partition is due (rows, bytes,
idle time). The checkpoint of a partition, in order:

1. the sink flushes that partition's buffer and makes it durable (files + manifest, or a bulk
   request that succeeded); it returns the next offset to read;
2. dead letters produced for that partition are flushed to Kafka;
3. only then is `next offset` committed for the consumer group, synchronously.

A flush that fails for a reason that may pass (a service down: a transient error) pauses every
partition and is tried again with exponential backoff, the buffer kept, nothing committed; after
MAX_OUTAGE_S, or on any other error, it raises: the process exits non-zero and a restart re-reads
from the last commit (or, for the archiver, the last manifest). On SIGTERM/SIGINT every
partition is checkpointed and the process exits 0. `until_idle` stops once every assigned
partition has reached its end and been checkpointed.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Protocol

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, TopicPartition

from consumers.dlq import DeadLetters
from strongroom import observability as metrics
from strongroom.clients import ensure_topics, kafka_consumer
from strongroom.config import Settings
from strongroom.errors import KafkaError, StrongroomError

log = logging.getLogger("strongroom.consumers")
PartitionKey = tuple[str, int]
BATCH = 1000  # records per consume call: bounds memory held outside the sink's buffers
MAX_BACKOFF_S = 30.0
MAX_OUTAGE_S = 15 * 60.0  # a service down longer than this stops the sink (non-zero exit)
ASSIGN_WAIT_S = 60.0  # covers a dead member's session timeout (10 s) and a rebalance


class Sink(Protocol):
    name: str

    def assigned(self, partitions: list[PartitionKey]) -> dict[PartitionKey, int | None]: ...
    def add(self, message, dead_letters: DeadLetters) -> None: ...
    def due(self, now: float) -> list[PartitionKey]: ...
    def full(self, partition: PartitionKey) -> bool: ...
    def buffered(self) -> list[PartitionKey]: ...
    def flush(self, partition: PartitionKey) -> int | None: ...
    def forget(self, partition: PartitionKey) -> None: ...
    def finish(self) -> None: ...
    def summary(self) -> str: ...
    def commit_metadata(self, partition: PartitionKey) -> str | None: ...


class SinkRunner:
    def __init__(self, settings: Settings, sink: Sink, group: str, kinds: tuple[str, ...] = ("email", "chat")):
        self.settings = settings
        self.sink = sink
        self.topics = ensure_topics(settings, kinds=kinds + ("dlq",))[: len(kinds)]
        self.dead_letters = DeadLetters(settings, sink.name)
        self.consumer = kafka_consumer(settings, group, **{"enable.partition.eof": True})
        self.assigned: set[PartitionKey] = set()
        self.at_end: set[PartitionKey] = set()
        self.saw_assignment = False
        self.stopping = False
        self.consumed = 0
        self.retry_at: float | None = None  # paused for backoff until then
        self.failing_since: float | None = None
        self.backoff = 1.0
        self.last_error = ""
        self.last_message = self.last_position_check = time.monotonic()
        self.last_others_check = 0.0

    # -- group membership ----------------------------------------------------------------
    def _on_assign(self, consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        starts = self.sink.assigned(keys)
        for tp in partitions:
            start = starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
        consumer.incremental_assign(partitions)
        self.assigned.update(keys)
        self.saw_assignment = True

    def _on_revoke(self, consumer, partitions: list[TopicPartition]) -> None:
        # Checkpoint before the partition moves, so its new owner starts where we stopped.
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._checkpoint(key)
            self.sink.forget(key)
            self.assigned.discard(key)
            self.at_end.discard(key)
        consumer.incremental_unassign(partitions)

    # -- the commit protocol ---------------------------------------------------------------
    def _checkpoint(self, key: PartitionKey) -> None:
        started = time.monotonic()
        next_offset = self.sink.flush(key)
        if next_offset is None:
            return
        self.dead_letters.flush()
        metrics.FLUSHES.labels(self.sink.name).inc()
        metrics.FLUSH_SECONDS.labels(self.sink.name).observe(time.monotonic() - started)
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True) or (0, 0)
        metrics.LAG.labels(self.sink.name, key[0], str(key[1])).set(max(0, high - next_offset))
        try:
            # The metadata (the archiver's manifest head hash) anchors the chain outside storage.
            position = TopicPartition(key[0], key[1], next_offset, self.sink.commit_metadata(key) or "")
            self.consumer.commit(offsets=[position], asynchronous=False)
        except KafkaException as exc:
            # The data is durable; a lost commit only means a re-read that the sink makes harmless.
            log.warning("commit of %s[%d]@%d failed: %s", key[0], key[1], next_offset, exc)

    # -- backpressure: a sink's service is down ---------------------------------------------
    def _try(self, keys: list[PartitionKey]) -> None:
        """Checkpoint these partitions; on a transient failure pause every partition and back off.

        Paused, the consumer keeps polling (so it stays in the group) but fetches nothing; the
        sink keeps its buffer, and the same checkpoint is tried again after the backoff."""
        if self.retry_at is not None and time.monotonic() < self.retry_at:
            return
        try:
            for key in keys:
                self._checkpoint(key)
        except StrongroomError as exc:
            if not exc.transient:
                raise
            metrics.ERRORS.labels(self.sink.name).inc()
            metrics.PAUSED.labels(self.sink.name).set(1)
            self.last_error = str(exc)
            self.failing_since = self.failing_since or time.monotonic()
            if time.monotonic() - self.failing_since > MAX_OUTAGE_S:
                raise
            self.backoff = min(MAX_BACKOFF_S, self.backoff * 2) if self.retry_at else 1.0
            self.retry_at = time.monotonic() + self.backoff
            log.warning("%s: %s; paused, retrying in %.0fs", self.sink.name, exc, self.backoff)
            self.consumer.pause(self.consumer.assignment())
            return
        if self.retry_at is not None:
            log.warning("%s: recovered; resuming", self.sink.name)
            self.consumer.resume(self.consumer.assignment())
            self.retry_at = self.failing_since = None
            metrics.PAUSED.labels(self.sink.name).set(0)

    def health(self) -> str | None:
        """None while healthy; the reason while paused on a service that is down."""
        if self.failing_since is not None:
            return f"{self.sink.name} paused {time.monotonic() - self.failing_since:.0f}s: {self.last_error}"
        return None

    # -- the loop ----------------------------------------------------------------------------
    def _stop(self, *_args) -> None:
        self.stopping = True

    def run(self, until_idle: bool = False) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        started = time.monotonic()
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        try:
            while not self.stopping:
                for message in self.consumer.consume(num_messages=BATCH, timeout=0.5):
                    self._handle(message)
                due = self.sink.buffered() if self.retry_at is not None else self.sink.due(time.monotonic())
                self._try(due)
                if until_idle and self.retry_at is None and self._idle(started):
                    break
            self.retry_at = None
            while self.sink.buffered():  # a clean stop still makes everything durable first
                self._try(sorted(set(self.sink.buffered())))
                if self.retry_at is not None:
                    time.sleep(max(0.0, self.retry_at - time.monotonic()))
            self.sink.finish()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.consumer.close()
            self.dead_letters.close()
        return self.consumed

    def _handle(self, message) -> None:
        error = message.error()
        key = (message.topic(), message.partition())
        if error is None:
            self.at_end.discard(key)
            self.last_message = time.monotonic()
            metrics.RECORDS_IN.labels(self.sink.name, key[0]).inc()
            self.sink.add(message, self.dead_letters)
            if self.retry_at is None and self.sink.full(key):
                # Flush inside a consumed batch too, so a buffer never outgrows its limits.
                self._try([key])
            self.consumed += 1
        elif error.code() == RdKafkaError._PARTITION_EOF:
            self.at_end.add(key)
        elif error.fatal() or error.code() == RdKafkaError.UNKNOWN_TOPIC_OR_PART:
            raise KafkaError(f"consumer for {', '.join(self.topics)}: {error.str()}")
        else:  # e.g. all brokers down: librdkafka reconnects by itself
            log.warning("consumer: %s", error.str())

    def _idle(self, started: float) -> bool:
        if not self.saw_assignment:
            if time.monotonic() - started > ASSIGN_WAIT_S:
                raise KafkaError(f"no partitions of {', '.join(self.topics)} were assigned within {ASSIGN_WAIT_S:.0f}s")
            return False
        now = time.monotonic()
        if not self.assigned <= self.at_end:
            # End-of-partition events can be missed across a rebalance; every few quiet seconds,
            # ask the broker directly whether each assigned partition's position is at its end.
            if now - self.last_message < 3.0 or now - self.last_position_check < 3.0:
                return False
            self.last_position_check = now
            if not self._positions_at_end():
                return False
        # Our own partitions are done. Partitions still held by a member that died (until its
        # session times out) or not yet handed to anyone must be done too, or this process
        # would stop while their backlog waits for a rebalance that would have brought it here.
        if now - self.last_others_check < 3.0:
            return False
        self.last_others_check = now
        return self._others_committed_to_end()

    def _positions_at_end(self) -> bool:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            for tp in self.consumer.position([TopicPartition(t, p) for t, p in self.assigned]):
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
                if (tp.offset < 0 and high > low) or 0 <= tp.offset < high:
                    return False
        except KafkaException:
            return False
        return True

    def _others_committed_to_end(self) -> bool:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            topics = self.consumer.list_topics(timeout=5).topics
            others = [TopicPartition(topic, p) for topic in self.topics if topic in topics
                      for p in topics[topic].partitions if (topic, p) not in self.assigned]
            if not others:
                return True
            for tp in self.consumer.committed(others, timeout=5):
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
                if high > low and tp.offset < high:
                    return False
        except KafkaException:
            return False
        return True
