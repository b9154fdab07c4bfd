"""Registering strongroom's schemas and building encoders/decoders against the registry."""

from __future__ import annotations

from confluent_kafka.schema_registry import Schema

from schemas import serde
from strongroom.clients import registry_client, registry_failure
from strongroom.config import Settings
from strongroom.errors import ConfigError

RECORD_KINDS = ("email", "chat")


def register_schemas(settings: Settings) -> dict[str, int]:
    """Register the current schema for each record topic under BACKWARD compatibility.

    Idempotent: an identical schema gets its existing id. A change that is not backward
    compatible is refused by the registry, and reported as a ConfigError naming the subject.
    """
    client = registry_client(settings)
    schema = Schema(serde.schema_text(), "AVRO")
    ids = {}
    for kind in RECORD_KINDS:
        subject = serde.subject(settings.topic(kind))
        try:
            existing = client.get_subjects()
            if subject in existing and not client.test_compatibility(subject, schema):
                raise ConfigError(f"schemas/{serde.SCHEMA_NAME}.avsc is not backward compatible with "
                                  f"the latest version registered under {subject}")
            ids[kind] = client.register_schema(subject, schema)
            client.set_compatibility(subject, "BACKWARD")
        except ConfigError:
            raise
        except Exception as exc:
            raise registry_failure(settings, f"registering {subject}", exc) from exc
    return ids


def encoder(settings: Settings, kind: str) -> serde.Encoder:
    return serde.Encoder(register_schemas(settings)[kind])


def decoder(settings: Settings) -> serde.Decoder:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = registry_client(settings)

    def fetch(schema_id: int) -> str:
        try:
            return client.get_schema(schema_id).schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise LookupError(f"registry has no schema id {schema_id}") from exc
            raise registry_failure(settings, f"fetching schema id {schema_id}", exc) from exc
        except Exception as exc:  # transport errors: the registry is down or unreachable
            raise registry_failure(settings, f"fetching schema id {schema_id}", exc) from exc

    return serde.Decoder(fetch)
