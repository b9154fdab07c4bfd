"""Batch decoding straight to Arrow (pyruhvro) gives exactly the per-record path's table, or refuses."""

from __future__ import annotations

import json

import pytest

from schemas import records, serde
from schemas.arrow_decode import ArrowDecoder
from tests.unit.test_schemas import NOW, sample_record

V1 = 7  # a schema id whose writer schema is the first released version


def _decoder() -> serde.Decoder:
    texts = {1: serde.schema_text(), V1: serde.history()[0][1]}
    return serde.Decoder(lambda schema_id: texts[schema_id])


def _values(n: int) -> list[bytes]:
    encode = serde.Encoder(1)
    return [encode(sample_record(
        subject=f"Grüße {i}", body_text="ok" * i, flags=["auto-replied"] if i % 2 else [],
        recipients=[records.recipient("to", address=f"r{i}@example.com")],
        attachments=[records.attachment("application/pdf", name=f"{i}.pdf", size=i)] if i % 3 == 0 else []))
        for i in range(n)]


def test_batch_equals_the_per_record_path():
    """Every column and value matches fastavro + from_pylist, in the warehouse's fixed schema."""
    decoder = _decoder()
    arrow = ArrowDecoder(decoder)
    values = _values(25)
    batch = arrow.batch(values)
    assert batch.schema.equals(arrow.schema) and batch.num_rows == 25
    assert batch.equals(arrow.rows([decoder(v) for v in values]))
    assert batch.column("sent_at")[0].as_py() == NOW  # Avro timestamp-micros is UTC


def test_a_corrupt_body_fails_the_batch_and_only_its_record():
    """The batch refuses as a whole; record by record, only the corrupt one raises."""
    decoder = _decoder()
    values = _values(5)
    values[2] = values[2][:20]
    with pytest.raises(serde.WireFormatError):
        ArrowDecoder(decoder).batch(values)
    failed = []
    for i, value in enumerate(values):
        try:
            decoder(value)
        except serde.WireFormatError:
            failed.append(i)
    assert failed == [2]


def test_only_our_exact_schema_is_batched():
    """Records written with an earlier schema version take the resolving per-record path."""
    arrow = ArrowDecoder(_decoder())
    assert arrow.batchable(1) is True
    assert arrow.batchable(V1) is False
    assert json.loads(serde.history()[0][1]) != json.loads(serde.schema_text())
