"""`strongroom replay`: move a sink group's offsets back (or forward) so it re-reads a topic.

The group's consumers must be stopped: Kafka refuses to move the offsets of a group with active
members, and we check first to say so plainly. Re-reading never duplicates: the archiver resumes
each partition after its manifest chain (what is archived is skipped), the indexer overwrites
documents by `_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from strongroom.clients import kafka_admin, kafka_consumer
from strongroom.config import Settings
from strongroom.errors import InputError, KafkaError

SINKS = ("archiver", "indexer")


@dataclass
class Move:
    partition: int
    committed: int | None
    target: int
    end: int

    @property
    def rereads(self) -> int:
        return max(0, (self.committed if self.committed is not None else self.end) - self.target)


def plan(settings: Settings, sink: str, topic: str, *, from_beginning: bool = False,
         from_offset: int | None = None, from_time: str | None = None) -> tuple[str, str, list[Move]]:
    from confluent_kafka import KafkaException, TopicPartition

    if sink not in SINKS:
        raise InputError(f"--group {sink!r}: use archiver or indexer")
    if sum([from_beginning, from_offset is not None, from_time is not None]) != 1:
        raise InputError("give exactly one of --from-beginning, --from-offset N, --from-time ISO")
    topic = topic if "." in topic else settings.topic(topic)
    group = settings.group(sink)
    admin = kafka_admin(settings)
    try:
        meta = admin.list_topics(timeout=10).topics
        if topic not in meta:
            raise InputError(f"topic {topic} does not exist")
        parts = [TopicPartition(topic, p) for p in sorted(meta[topic].partitions)]
        described = admin.describe_consumer_groups([group])[group].result()
        if described.members:
            raise InputError(f"group {group} has {len(described.members)} active consumers; stop them before a replay")
        consumer = kafka_consumer(settings, group)
        try:
            committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
            bounds = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in parts}
            if from_time is not None:
                when = _millis(from_time)
                found = consumer.offsets_for_times([TopicPartition(topic, p.partition, when) for p in parts], timeout=10)
                targets = {tp.partition: tp.offset if tp.offset >= 0 else bounds[tp.partition][1] for tp in found}
            elif from_offset is not None:
                targets = {p: min(max(from_offset, low), high) for p, (low, high) in bounds.items()}
            else:
                targets = {p: low for p, (low, _high) in bounds.items()}
        finally:
            consumer.close()
    except KafkaException as exc:
        raise KafkaError(f"replay: Kafka at {settings.kafka.bootstrap_servers}: "
                         f"{exc.args[0].str() if exc.args else exc}") from exc
    moves = [Move(p, committed[p] if committed[p] >= 0 else None, targets[p], bounds[p][1]) for p in sorted(targets)]
    return group, topic, moves


def apply(settings: Settings, group: str, topic: str, moves: list[Move]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, m.partition, m.target) for m in moves])
    admin = kafka_admin(settings)  # kept alive: a collected client never resolves its futures
    try:
        admin.alter_consumer_group_offsets([request])[group].result(timeout=30)
    except KafkaException as exc:
        raise KafkaError(f"replay: moving offsets of {group} failed: {exc.args[0].str() if exc.args else exc}") from exc


def _millis(value: str) -> int:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"--from-time {value!r} is not an ISO date or time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)
