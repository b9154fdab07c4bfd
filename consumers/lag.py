"""`strongroom status`: per sink group and partition, where it is, how far behind, last write."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from consumers.manifest import ManifestLog
from strongroom.clients import kafka_admin, kafka_consumer
from strongroom.config import Settings
from strongroom.errors import KafkaError, StorageError
from strongroom.storage import open_store

SINKS = ("archiver", "indexer")
KINDS = ("email", "chat")


@dataclass
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    last_write: str | None


def group_lag(settings: Settings) -> list[PartitionLag]:
    from confluent_kafka import KafkaException, TopicPartition

    rows: list[PartitionLag] = []
    store = open_store(settings.storage)
    try:
        topics = kafka_admin(settings).list_topics(timeout=10).topics
        for sink in SINKS:
            group = settings.group(sink)
            consumer = kafka_consumer(settings, group)
            try:
                for kind in KINDS:
                    topic = settings.topic(kind)
                    if topic not in topics:
                        continue
                    parts = [TopicPartition(topic, p) for p in sorted(topics[topic].partitions)]
                    for tp in _committed(consumer, parts):
                        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                        committed = tp.offset if tp.offset >= 0 else None
                        rows.append(PartitionLag(group, topic, tp.partition, committed, high,
                                                 high - (committed or 0), _last_write(sink, store, settings, tp)))
            finally:
                consumer.close()
    except KafkaException as exc:
        raise KafkaError(f"cannot read group offsets from Kafka at {settings.kafka.bootstrap_servers}: "
                         f"{exc.args[0].str() if exc.args else exc}") from exc
    return rows


def _committed(consumer, parts: list, attempts: int = 10) -> list:
    """The group's committed offsets; right after a broker restart the group coordinator is still
    loading ("Not coordinator", "Coordinator load in progress"), which passes within seconds."""
    from confluent_kafka import KafkaError as Code, KafkaException

    passing = {Code.NOT_COORDINATOR, Code.COORDINATOR_LOAD_IN_PROGRESS, Code.COORDINATOR_NOT_AVAILABLE,
               Code._TIMED_OUT, Code._TRANSPORT}
    for attempt in range(attempts):
        try:
            return consumer.committed(parts, timeout=10)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if attempt == attempts - 1 or error is None or not (error.retriable() or error.code() in passing):
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _last_write(sink: str, store, settings: Settings, tp) -> str | None:
    """The archiver's newest manifest time; the indexer's last bulk time (its commit metadata)."""
    if sink != "archiver":
        return tp.metadata or None
    try:
        head = ManifestLog(store, settings.namespace, tp.topic, tp.partition).head()
    except StorageError:
        return "storage unreachable"  # status is most wanted exactly when something is down
    return head[0].created_at if head else None


def as_rows(lags: list[PartitionLag]) -> tuple[list[str], list[tuple]]:
    columns = ["group", "topic", "partition", "committed", "end", "lag", "last_write"]
    return columns, [tuple(asdict(lag).values()) for lag in lags]
