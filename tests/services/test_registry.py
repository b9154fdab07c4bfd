"""Schema registry: Apicurio's Confluent-compatible API, through confluent-kafka's serde."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from strongroom.clients import registry_client

V1 = {"type": "record", "name": "Probe", "namespace": "io.strongroom.test",
      "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}]}


def test_avro_round_trip_with_confluent_framing(settings):
    """A record serialized with AvroSerializer starts with magic byte 0 and a schema id, and reads back equal."""
    client = registry_client(settings)
    subject = f"{settings.namespace}.probe-value"
    serializer = AvroSerializer(client, json.dumps(V1), conf={"auto.register.schemas": True})
    ctx = SerializationContext(f"{settings.namespace}.probe", MessageField.VALUE)
    data = serializer({"id": "東京", "n": 42}, ctx)
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    assert client.get_latest_version(subject).schema_id == schema_id
    assert AvroDeserializer(client)(data, ctx) == {"id": "東京", "n": 42}


def test_incompatible_change_is_refused(settings):
    """Under BACKWARD compatibility a new required field without default is refused; one with a default is taken."""
    client = registry_client(settings)
    subject = f"{settings.namespace}.compat-value"
    client.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    client.set_compatibility(subject, "BACKWARD")
    bad = {**V1, "fields": V1["fields"] + [{"name": "extra", "type": "string"}]}
    good = {**V1, "fields": V1["fields"] + [{"name": "extra", "type": "string", "default": ""}]}
    assert client.test_compatibility(subject, Schema(json.dumps(bad), "AVRO")) is False
    with pytest.raises(SchemaRegistryError):
        client.register_schema(subject, Schema(json.dumps(bad), "AVRO"))
    assert client.test_compatibility(subject, Schema(json.dumps(good), "AVRO")) is True
    client.register_schema(subject, Schema(json.dumps(good), "AVRO"))
    assert len(client.get_versions(subject)) == 2
