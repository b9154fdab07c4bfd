"""`strongroom dlq list|show|redrive`: what failed, why, from where; and sending it back.

Redrive produces each dead letter's original key and value (and headers) back to the topic it
came from, once: the dead letters already redriven are recorded in the storage
(`<ns>/dlq/redriven/*.json`, one object per run, written after the broker acknowledged), so a
second redrive skips them. A crash between the acknowledgement and the record can send one
twice; the warehouse views keep one row per (message_uid, version) and the index overwrites by
`_id`, so that never shows as a duplicate answer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from strongroom.clients import ensure_topics, kafka_consumer, kafka_producer
from strongroom.config import Settings
from strongroom.errors import DeliveryError, InputError
from strongroom.storage import open_store

ORIGIN = ("strongroom.topic", "strongroom.partition", "strongroom.offset")


@dataclass
class DeadLetter:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        return next((v.decode("utf-8", "replace") for k, v in self.headers if k == name), "")

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    def row(self) -> tuple:
        origin = f"{self.header('strongroom.topic')}[{self.header('strongroom.partition')}]@{self.header('strongroom.offset')}"
        return (self.ref, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp / 1000)),
                self.header("strongroom.sink"), origin, self.header("strongroom.error"))


COLUMNS = ["dlq_ref", "failed_at", "sink", "origin", "error"]


def read_all(settings: Settings) -> list[DeadLetter]:
    """Every record on the dead-letter topic, read without a consumer group's commit."""
    from confluent_kafka import TopicPartition

    (topic,) = ensure_topics(settings, kinds=("dlq",))
    consumer = kafka_consumer(settings, settings.group("dlq-tools"), **{"enable.partition.eof": True})
    letters: list[DeadLetter] = []
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
        open_parts = {p for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in open_parts])
        deadline = time.monotonic() + 60
        while open_parts and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is None:
                letters.append(DeadLetter(msg.partition(), msg.offset(), msg.timestamp()[1], msg.key(), msg.value(),
                                          list(msg.headers() or [])))
                if msg.offset() >= ends[msg.partition()][1] - 1:
                    open_parts.discard(msg.partition())
    finally:
        consumer.close()
    return sorted(letters, key=lambda d: (d.timestamp, d.partition, d.offset))


def find(letters: list[DeadLetter], ref: str) -> DeadLetter:
    for letter in letters:
        if letter.ref == ref:
            return letter
    raise InputError(f"no dead letter {ref!r} (use the dlq_ref shown by `strongroom dlq list`, e.g. 0:12)")


def redrive(settings: Settings, letters: list[DeadLetter]) -> tuple[int, int]:
    """Send each not-yet-redriven letter back to its origin topic; returns (sent, skipped)."""
    store = open_store(settings.storage)
    prefix = f"{settings.namespace}/dlq/redriven/"
    done = {ref for key in store.list(prefix) for ref in json.loads(store.get(key))}
    todo = [letter for letter in letters if letter.ref not in done]
    if not todo:
        return 0, len(letters)
    producer = kafka_producer(settings)
    failures: list[str] = []
    for letter in todo:
        topic = letter.header("strongroom.topic")
        if not topic:
            raise InputError(f"dead letter {letter.ref} names no origin topic")
        headers = [(k, v) for k, v in letter.headers if not k.startswith("strongroom.")]
        headers.append(("strongroom.redriven-from", letter.ref.encode()))
        producer.produce(topic, key=letter.key, value=letter.value, headers=headers,
                         on_delivery=lambda err, _m: err and failures.append(err.str()))
    remaining = producer.flush(60)
    if remaining or failures:
        raise DeliveryError(f"redrive: {remaining + len(failures)} records not acknowledged; nothing recorded, "
                            f"run it again")
    store.put_new(f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json",
                  json.dumps([letter.ref for letter in todo]).encode())
    return len(todo), len(letters) - len(todo)
