"""Avro in the Confluent wire format, and the Arrow schema derived from the same .avsc.

Wire format: magic byte 0, the 4-byte big-endian schema id from the registry, then the Avro
binary body, so kcat, Kafka Connect, ksqlDB and Flink read the topics with the same registry.
Subjects follow the TopicNameStrategy (`<topic>-value`). The Arrow schema is derived once from
the Avro schema, never inferred from a batch, so every Parquet file of a table has one schema.
"""

from __future__ import annotations

import io
import json
import struct
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

import fastavro
import pyarrow as pa

MAGIC = 0
_HEADER = struct.Struct(">bI")
SCHEMA_NAME = "communication"

# Columns the archiver adds to every row: where in Kafka it came from (the proof of completeness).
KAFKA_COLUMNS = [pa.field("kafka_topic", pa.string(), nullable=False),
                 pa.field("kafka_partition", pa.int32(), nullable=False),
                 pa.field("kafka_offset", pa.int64(), nullable=False)]


class WireFormatError(ValueError):
    """Bytes that are not a Confluent-framed Avro record of a schema we can read."""


def schema_text(name: str = SCHEMA_NAME) -> str:
    return resources.files("schemas").joinpath(f"{name}.avsc").read_text(encoding="utf-8")


def history() -> list[tuple[str, str]]:
    """Every earlier released version of the schemas, oldest first: (file name, text)."""
    folder = resources.files("schemas").joinpath("history")
    return [(entry.name, entry.read_text(encoding="utf-8"))
            for entry in sorted(folder.iterdir(), key=lambda e: e.name) if entry.name.endswith(".avsc")]


@lru_cache(maxsize=None)
def parsed_schema(name: str = SCHEMA_NAME):
    return fastavro.parse_schema(json.loads(schema_text(name)))


def subject(topic: str) -> str:
    return f"{topic}-value"


# -- Avro -> Arrow, derived once --------------------------------------------------------
def _arrow_type(avro: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for an Avro type."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"only [null, T] unions map to Arrow, got {avro}")
        return _arrow_type(branches[0])[0], "null" in avro
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "timestamp-micros":
            return pa.timestamp("us", tz="UTC"), False
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC"), False
        kind = avro["type"]
        if kind == "record":
            return pa.struct([_arrow_field(f) for f in avro["fields"]]), False
        if kind == "array":
            item, nullable = _arrow_type(avro["items"])
            return pa.list_(pa.field("element", item, nullable=nullable)), False
        if kind == "map":
            value, nullable = _arrow_type(avro["values"])
            return pa.map_(pa.string(), pa.field("value", value, nullable=nullable)), False
        return _arrow_type(kind)
    primitive = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(),
                 "double": pa.float64(), "float": pa.float32(), "bytes": pa.binary()}
    return primitive[avro], False


def _arrow_field(field: dict) -> pa.Field:
    kind, nullable = _arrow_type(field["type"])
    return pa.field(field["name"], kind, nullable=nullable)


@lru_cache(maxsize=None)
def arrow_schema(name: str = SCHEMA_NAME) -> pa.Schema:
    """The warehouse schema: every Avro field, then the Kafka coordinates."""
    avro = json.loads(schema_text(name))
    return pa.schema([_arrow_field(f) for f in avro["fields"]] + KAFKA_COLUMNS,
                     metadata={"strongroom.avro_schema": json.dumps(avro, separators=(",", ":"))})


# -- Confluent framing ------------------------------------------------------------------
class Encoder:
    """Encodes records with one registered schema id; register once, then no registry calls."""

    def __init__(self, schema_id: int, schema=None):
        self.schema_id = schema_id
        self.schema = schema or parsed_schema()
        self._header = _HEADER.pack(MAGIC, schema_id)

    def __call__(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()


class Decoder:
    """Decodes framed records; writer schemas are fetched by id once and resolved to ours."""

    def __init__(self, fetch_schema, reader=None):
        # fetch_schema(id) -> schema JSON text, raising LookupError for an unknown id; cached below.
        self._fetch = fetch_schema
        self.reader = reader or parsed_schema()
        self._writers: dict[int, Any] = {}

    def writer(self, schema_id: int):
        if schema_id not in self._writers:
            try:
                text = self._fetch(schema_id)
            except LookupError as exc:
                # Only "no such id" makes the record poison; a registry that does not answer
                # propagates, so the sink stops without committing instead of dead-lettering all.
                raise WireFormatError(f"schema id {schema_id} is not in the registry: {exc}") from exc
            self._writers[schema_id] = fastavro.parse_schema(json.loads(text))
        return self._writers[schema_id]

    def header(self, data: bytes | None) -> int:
        """The schema id of a framed record, checked: right magic byte, an id the registry knows."""
        if not data or len(data) < 5:
            raise WireFormatError("record is empty or shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise WireFormatError(f"unknown magic byte {magic} (not Confluent-framed Avro)")
        self.writer(schema_id)
        return schema_id

    def __call__(self, data: bytes | None) -> dict[str, Any]:
        schema_id = self.header(data)
        writer = self.writer(schema_id)
        try:
            return fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, self.reader)
        except Exception as exc:  # fastavro raises many types for corrupt bodies
            raise WireFormatError(f"undecodable Avro body for schema id {schema_id}: {exc}") from exc


def schema_id(data: bytes) -> int:
    """The schema id of a record whose framing was already checked (Decoder.header)."""
    return _HEADER.unpack_from(data)[1]


def to_arrow(rows: Iterable[dict[str, Any]], name: str = SCHEMA_NAME) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(name))
