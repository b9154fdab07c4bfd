"""The record contract: backward compatibility with every released schema, Arrow derivation, framing."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import fastavro
import pyarrow as pa
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from schemas import records, serde

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


def sample_record(**over) -> dict:
    return records.new_record(message_uid="em-1", kind="email", platform="email", source="box.mbox",
                              sent_at=NOW, raw_sha256="ab" * 32, raw_size=10, ingested_at=NOW, **over)


def _defaults_of(schema: dict) -> dict:
    return {f["name"]: f.get("default", "<required>") for f in schema["fields"]}


@pytest.mark.parametrize("name, text", serde.history())
def test_current_schema_reads_every_released_version(name, text):
    """Data written with any earlier schema is readable with the current one (BACKWARD)."""
    old = json.loads(text)
    current = json.loads(serde.schema_text())
    added = set(_defaults_of(current)) - set(_defaults_of(old))
    assert all(_defaults_of(current)[f] != "<required>" for f in added), f"fields added since {name} need defaults"
    buf = io.BytesIO()
    old_record = {k: v for k, v in sample_record().items() if k in _defaults_of(old)}
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), old_record)
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(current))
    assert read["message_uid"] == "em-1" and read["sent_at"] == NOW


def test_arrow_schema_is_derived_not_inferred():
    """Every Avro field maps to one Arrow column of a fixed type, plus the Kafka coordinates."""
    schema = serde.arrow_schema()
    avro_fields = [f["name"] for f in json.loads(serde.schema_text())["fields"]]
    assert schema.names == avro_fields + ["kafka_topic", "kafka_partition", "kafka_offset"]
    assert schema.field("sent_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("subject").nullable and not schema.field("message_uid").nullable
    assert schema.field("recipients").type.value_type.names == ["role", "user_id", "name", "address"]
    assert schema.field("version").type == pa.int32()


text = st.text(max_size=40)
optional = st.none() | text


@hsettings(max_examples=60, deadline=None)
@given(subject=optional, body=optional, names=st.lists(text, max_size=4), version=st.integers(1, 2**31 - 1))
def test_confluent_framing_round_trips(subject, body, names, version):
    """Encoder output carries magic byte 0 and the schema id, and the Decoder gives the record back."""
    record = sample_record(subject=subject, body_text=body, version=version,
                           recipients=[records.recipient("to", name=n, address=f"{i}@x.example") for i, n in enumerate(names)])
    data = serde.Encoder(42)(record)
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == 42
    decoded = serde.Decoder(lambda i: serde.schema_text())(data)
    assert decoded == record


@pytest.mark.parametrize("data, message", [
    (b"", "shorter than"), (b"\x01\x00\x00\x00\x01abc", "magic byte"),
    (b"\x00\x00\x00\x00\x07\xff\xff\xff", "undecodable"),
])
def test_poison_bytes_are_wire_format_errors(data, message):
    """Bytes that are not a record of ours raise WireFormatError, which sinks send to the DLQ."""
    with pytest.raises(serde.WireFormatError, match=message):
        serde.Decoder(lambda i: serde.schema_text())(data)


def test_unknown_schema_id_is_a_wire_format_error():
    """A schema id the registry does not know is a WireFormatError, not a crash."""
    def missing(_id):
        raise KeyError("not found")
    with pytest.raises(serde.WireFormatError, match="not in the registry"):
        serde.Decoder(missing)(serde.Encoder(99)(sample_record()))


def test_identities_are_stable_and_distinct():
    """The same Message-ID, sender and date give one uid; another date or no Message-ID another."""
    a = records.email_uid("x@y.example", "a@y.example", NOW, "00" * 32)
    assert a == records.email_uid("x@y.example", "A@Y.example", NOW, "11" * 32)
    assert a != records.email_uid("x@y.example", "a@y.example", NOW.replace(hour=1), "00" * 32)
    assert records.email_uid(None, "a", NOW, "ab" * 32).startswith("em-raw-abab")
    assert records.normalize_message_id(" <Foo@Example.COM> ") == "Foo@example.com"
    assert records.chat_uid("slack", "T1", "C1", "1.2") != records.chat_uid("slack", "T1", "C2", "1.2")
