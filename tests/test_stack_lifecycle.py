"""infra/local: `up` is idempotent and `down` then `up` keeps every service's data.

This file sorts after tests/services on purpose: it restarts the services the others use.
"""

from __future__ import annotations

import json
import subprocess

from confluent_kafka.schema_registry import Schema

from strongroom.clients import ensure_topics, kafka_producer, opensearch_client, registry_client
from strongroom.storage import S3Store
from tests.conftest import REPO, consume


def _stack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "infra" / "local" / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=600)


def _pids() -> dict[str, int]:
    infra = REPO / ".strongroom"
    return {p.parent.name: json.loads(p.read_text())["pid"] for p in infra.glob("*/service.json")}


def test_second_up_changes_nothing(services):
    """A second `up` finds all four services healthy and starts nothing new."""
    before = _pids()
    result = _stack("up")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already up") == 4
    assert _pids() == before
    status = _stack("status")
    assert status.returncode == 0
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        ["kafka", "up"], ["s3", "up"], ["registry", "up"], ["opensearch", "up"]]


def test_down_then_up_keeps_data(services, s3_settings):
    """Data written before `down` (a record, a schema, an object, a document) is all there after `up`."""
    settings = s3_settings
    (topic,) = ensure_topics(settings, kinds=("email",))
    producer = kafka_producer(settings)
    producer.produce(topic, key=b"k", value=b"kept")
    assert producer.flush(15) == 0
    subject = f"{settings.namespace}.kept-value"
    schema_id = registry_client(settings).register_schema(
        subject, Schema(json.dumps({"type": "record", "name": "Kept", "fields": [{"name": "a", "type": "int"}]}), "AVRO"))
    S3Store(settings.storage).put_new("kept.txt", b"kept")
    search = opensearch_client(settings)
    index = f"{settings.namespace}-kept"
    search.index(index=index, id="1", body={"a": 1}, refresh=True)

    assert _stack("down").returncode == 0
    assert _stack("status").returncode != 0
    result = _stack("up")
    assert result.returncode == 0, result.stdout + result.stderr

    assert S3Store(settings.storage).get("kept.txt") == b"kept"
    assert registry_client(settings).get_schema(schema_id).schema_str.find('"Kept"') >= 0
    assert opensearch_client(settings).get(index=index, id="1")["_source"] == {"a": 1}
    assert [m.value() for m in consume(settings, topic, "kept", 1)] == [b"kept"]
