"""Framed Avro records straight to Arrow, a batch at a time, in the warehouse's fixed schema.

The per-record path (fastavro to dicts, then dicts to Arrow) costs ~12 + ~5 us a record; pyruhvro
decodes a whole batch of Avro bodies to one Arrow RecordBatch in Rust, an order of magnitude
faster. It only knows the schema it is given (no writer/reader resolution), so it is used only
for records whose writer schema is exactly ours (same Parsing Canonical Form); records written
with another version, and any batch it cannot decode (a corrupt body), take the per-record path,
where each bad record raises its own WireFormatError and can be dead-lettered alone.
Its output differs from `arrow_schema()` only in names and nullability of list items and in the
timestamps' zone (Avro's timestamp-micros is UTC), so one cast gives the fixed schema.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from schemas import serde


def _canonical(schema: Any) -> str:
    from fastavro.schema import to_parsing_canonical_form

    return to_parsing_canonical_form(schema)


class ArrowDecoder:
    """Decodes lists of framed records to Arrow tables of `serde.arrow_schema()` minus the Kafka columns."""

    def __init__(self, decoder: serde.Decoder, name: str = serde.SCHEMA_NAME):
        self.decoder = decoder
        self.text = serde.schema_text(name)
        full = serde.arrow_schema(name)
        self.schema = pa.schema([f for f in full if f.name not in {k.name for k in serde.KAFKA_COLUMNS}],
                                metadata=full.metadata)
        self._ours = _canonical(json.loads(self.text))
        self._same: dict[int, bool] = {}

    def batchable(self, schema_id: int) -> bool:
        """Whether records of this schema id were written with exactly our schema.

        Raises WireFormatError for an id the registry does not know (as the per-record path does)."""
        if schema_id not in self._same:
            self._same[schema_id] = _canonical(self.decoder.writer(schema_id)) == self._ours
        return self._same[schema_id]

    def batch(self, values: list[bytes]) -> pa.Table:
        """One table for framed records whose ids are all batchable; raises ValueError if any body is bad."""
        import pyruhvro

        bodies = [value[5:] for value in values]
        try:
            decoded = pyruhvro.deserialize_array(bodies, self.text)
        except Exception as exc:  # ValueError for truncated or corrupt bodies
            raise serde.WireFormatError(f"batch of {len(values)} records not decodable as a whole: {exc}") from exc
        if decoded.num_rows != len(values):
            raise serde.WireFormatError(f"batch decoded to {decoded.num_rows} rows, not {len(values)}")
        return pa.Table.from_batches([decoded]).cast(self.schema)

    def rows(self, rows: list[dict[str, Any]]) -> pa.Table:
        """The per-record path's dicts as a table of the same schema."""
        return pa.Table.from_pylist(rows, schema=self.schema)
