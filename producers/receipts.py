"""Receipts: which (message_uid, version) pairs a namespace has already captured.

Written after the broker acknowledged the records, in batches (one small Parquet file per batch,
never one object per message), and read once when an ingest starts. They make a re-run report
"duplicate" instead of producing the same message again. A crash between the acknowledgement and
the receipt can still let a record through twice; the warehouse views then keep one row per
(message_uid, version), so a duplicate on Kafka never becomes a duplicate answer.
"""

from __future__ import annotations

import io
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from strongroom.storage import ObjectStore

SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False)])


def receipt_key(message_uid: str, version: int) -> str:
    return f"{message_uid}|{version}"


class Receipts:
    def __init__(self, store: ObjectStore, namespace: str, kind: str, batch: int = 50_000):
        self.store = store
        self.prefix = f"{namespace}/receipts/{kind}/"
        self.batch = batch
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self._pending: list[str] = []
        self._seq = 0

    def load(self) -> set[str]:
        seen: set[str] = set()
        for key in self.store.list(self.prefix):
            if key.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(self.store.get(key)))
                seen.update(table.column("key").to_pylist())
        return seen

    def add(self, key: str) -> None:
        self._pending.append(key)
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        buf = io.BytesIO()
        pq.write_table(pa.table({"key": self._pending}, schema=SCHEMA), buf, compression="zstd")
        self.store.put_new(f"{self.prefix}{self.run_id}-{self._seq:06d}.parquet", buf.getvalue())
        self._seq += 1
        self._pending = []
