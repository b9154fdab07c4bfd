"""Dead letters: records a sink cannot take, kept on `<ns>.dlq` with where they came from.

The original key and value are kept as they were; headers name the error, the sink, and the
source topic, partition and offset, so `dlq` tools can show and redrive them. A dead letter is
flushed to Kafka before the offset it stands for is committed: it is never only in memory.
"""

from __future__ import annotations

from strongroom import observability as metrics
from strongroom.clients import kafka_producer
from strongroom.config import Settings
from strongroom.errors import DeliveryError


class DeadLetters:
    def __init__(self, settings: Settings, sink: str):
        self.topic = settings.topic("dlq")
        self.sink = sink
        self.producer = kafka_producer(settings, **{"linger.ms": 5})
        self.failures: list[str] = []
        self.count = 0

    def send(self, message, error: str) -> None:
        headers = list(message.headers() or []) + [
            ("strongroom.error", error[:2000].encode()),
            ("strongroom.sink", self.sink.encode()),
            ("strongroom.topic", message.topic().encode()),
            ("strongroom.partition", str(message.partition()).encode()),
            ("strongroom.offset", str(message.offset()).encode()),
        ]
        self.producer.produce(self.topic, key=message.key(), value=message.value(), headers=headers,
                              on_delivery=self._delivered)
        self.count += 1
        metrics.DEAD_LETTERS.labels(self.sink).inc()

    def _delivered(self, err, _msg) -> None:
        if err is not None:
            self.failures.append(err.str())

    def flush(self) -> None:
        remaining = self.producer.flush(60)
        if remaining or self.failures:
            raise DeliveryError(f"dead letters not acknowledged by Kafka ({remaining} pending): "
                                f"{self.failures[:1] or 'timeout'}")

    def close(self) -> None:
        self.producer.flush(30)
