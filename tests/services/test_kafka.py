"""Kafka: the real broker from infra/local, through confluent-kafka."""

from __future__ import annotations

import pytest

from strongroom.clients import check_kafka, ensure_topics, kafka_producer
from strongroom.errors import KafkaError
from tests.conftest import consume


def test_topic_created_and_record_round_trips(settings):
    """A topic made by the AdminClient carries a record from an idempotent producer to a consumer, byte for byte."""
    (topic,) = ensure_topics(settings, kinds=("email",))
    producer = kafka_producer(settings)
    acked = []
    producer.produce(topic, key=b"k1", value="Grüße".encode(), headers=[("h", b"v")],
                     on_delivery=lambda err, msg: acked.append((err, msg.offset())))
    assert producer.flush(15) == 0
    assert acked and acked[0][0] is None
    (got,) = consume(settings, topic, "probe", 1)
    assert (got.key(), got.value(), got.headers()) == (b"k1", "Grüße".encode(), [("h", b"v")])
    assert got.offset() == acked[0][1]


def test_topics_are_created_once(settings):
    """ensure_topics is idempotent and gives each topic the configured partition count."""
    first = ensure_topics(settings)
    second = ensure_topics(settings)
    assert first == second == [f"{settings.namespace}.email", f"{settings.namespace}.chat", f"{settings.namespace}.dlq"]
    from strongroom.clients import kafka_admin

    meta = kafka_admin(settings).list_topics(timeout=10)
    assert len(meta.topics[first[0]].partitions) == settings.kafka.partitions


def test_unreachable_broker_is_one_clear_error(settings):
    """A broker that does not answer gives a KafkaError naming the address."""
    broken = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})})
    with pytest.raises(KafkaError, match="cannot reach Kafka at 127.0.0.1:1"):
        check_kafka(broken, timeout=2)
