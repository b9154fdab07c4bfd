"""Client factories for Kafka, the schema registry and OpenSearch, built from Settings.

Connection failures are translated here into strongroom errors that name the service and the
address, so a user sees "cannot reach Kafka at 127.0.0.1:9092" instead of a librdkafka trace.
"""

from __future__ import annotations

from typing import Any

from strongroom.config import Settings
from strongroom.errors import KafkaError, RegistryError, SearchError

TOPIC_KINDS = ("email", "chat", "dlq")


def kafka_admin(settings: Settings):
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings.kafka.client_config())


def check_kafka(settings: Settings, timeout: float = 10.0) -> None:
    """Fail fast with one clear line when the brokers cannot be reached."""
    from confluent_kafka import KafkaException

    try:
        kafka_admin(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaError(f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: "
                         f"{exc.args[0].str() if exc.args else exc}") from exc


def ensure_topics(settings: Settings, kinds: tuple[str, ...] = TOPIC_KINDS, timeout: float = 15.0) -> list[str]:
    """Create the namespace's topics if missing (idempotent); returns their names."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    admin = kafka_admin(settings)
    names = [settings.topic(kind) for kind in kinds]
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise KafkaError(f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: "
                         f"{exc.args[0].str() if exc.args else exc}") from exc
    missing = [NewTopic(name, num_partitions=settings.kafka.partitions,
                        replication_factor=settings.kafka.replication_factor,
                        # Archives are kept in the warehouse; the log keeps a week for replays.
                        config={"retention.ms": str(7 * 24 * 3600 * 1000), "max.message.bytes": str(8 * 1024 * 1024)})
               for name in names if name not in existing]
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0]
                if err.name() != "TOPIC_ALREADY_EXISTS":
                    raise KafkaError(f"cannot create topic {name}: {err.str()}") from exc
    return names


def kafka_producer(settings: Settings, **overrides: Any):
    from confluent_kafka import Producer

    conf = {
        **settings.kafka.client_config(),
        # Idempotence: broker retries never duplicate or reorder a partition's records.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "zstd",
        "message.max.bytes": 8 * 1024 * 1024,
        **overrides,
    }
    return Producer(conf)


def kafka_consumer(settings: Settings, group: str, **overrides: Any):
    from confluent_kafka import Consumer

    conf = {
        **settings.kafka.client_config(),
        "group.id": group,
        # Offsets are committed by the sink's checkpoint, only after its writes are durable.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # A killed sink's partitions move to the others (or to its restart) after this, not 45 s.
        "session.timeout.ms": 10_000,
        # Bounds what librdkafka prefetches (default 64 MB), so memory does not grow with a backlog.
        "queued.max.messages.kbytes": 16 * 1024,
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        **overrides,
    }
    return Consumer(conf)


def registry_client(settings: Settings):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # Without a timeout the client waits forever on a registry that accepted but never answers.
    conf: dict[str, Any] = {"url": settings.registry.url, "timeout": 30}
    if settings.registry.basic_auth_user_info:
        conf["basic.auth.user.info"] = settings.registry.basic_auth_user_info.get_secret_value()
    return SchemaRegistryClient(conf)


def registry_failure(settings: Settings, action: str, exc: Exception) -> RegistryError:
    return RegistryError(f"schema registry at {settings.registry.url}: {action} failed: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def opensearch_client(settings: Settings):
    from opensearchpy import OpenSearch

    auth = None
    if settings.opensearch.username:
        password = settings.opensearch.password.get_secret_value() if settings.opensearch.password else ""
        auth = (settings.opensearch.username, password)
    return OpenSearch(hosts=[settings.opensearch.url], http_auth=auth, verify_certs=settings.opensearch.verify_certs,
                      timeout=60, max_retries=3, retry_on_timeout=True,
                      http_compress=settings.opensearch.http_compress)


def check_opensearch(client, settings: Settings) -> None:
    from opensearchpy.exceptions import OpenSearchException

    try:
        client.info()
    except OpenSearchException as exc:
        raise SearchError(f"cannot reach OpenSearch at {settings.opensearch.url}: {type(exc).__name__}") from exc
