"""The ceilings: the raw speed of each part strongroom is built from, on the same corpus and services.

    parse         Python's email parser (compat32, as mime.py uses) over the same mailbox
    ingest_parts  per-message cost of ingest's own steps: parse_email, blob writes, Avro encode
    produce       pre-encoded Avro values to Kafka, ingest's producer settings
    consume       the archiver's topic read with the sinks' consumer settings, each value touched
    decode        framed Avro to Arrow in the archiver's chunks (pyruhvro), plus per-record fastavro
    parquet       a prebuilt Arrow table written as the archiver lays it out (zstd), local or S3
    bulk          prebuilt NDJSON into OpenSearch, same template, 10 MB bodies, concurrent requests

Set-up (reading the corpus, building tables and bodies) happens before the clock starts.
"""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from strongroom.bench.corpus import read_records
from strongroom.bench.measure import Clock, Result, timed
from strongroom.bench.stages import opensearch_process, bench_settings, server_cpu


def parse(mbox: str, messages: int, raw_bytes: int) -> Result:
    from email.parser import BytesParser
    from email import policy

    from producers.email.sources import MboxSource

    parser = BytesParser(policy=policy.compat32)

    def work() -> None:
        for message in MboxSource(Path(mbox)):
            parser.parsebytes(message.raw)

    return timed("parse", messages, raw_bytes, work)


def ingest_parts(config: str | None, namespace: str, storage: str, mbox: str, messages: int, raw_bytes: int) -> Result:
    """Ingest's own steps one at a time; extra holds microseconds per message of each."""
    from datetime import datetime, timezone

    from producers.email import captures
    from schemas import records, serde
    from strongroom.blobs import BlobStore
    from strongroom.storage import open_store

    settings = bench_settings(config, namespace, storage)
    clock = Clock()
    clock.start()
    t0 = time.perf_counter()
    items = list(captures(mbox))
    t1 = time.perf_counter()
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    from producers.ingest import BLOB_BATCH

    for start in range(0, len(items), BLOB_BATCH):  # as ingest writes them: a batch per barrier
        batch: list[tuple[bytes, str | None]] = []
        for capture in items[start:start + BLOB_BATCH]:
            batch.append((capture.raw, capture.record.get("raw_sha256")))
            batch.extend((payload, sha) for sha, payload in capture.blobs.items())
        blobs.put_many(batch)
    t2 = time.perf_counter()
    encode = serde.Encoder(1)
    now = datetime.now(timezone.utc)
    for capture in items:
        capture.record["ingested_at"] = now
        capture.record["arrival_id"] = records.arrival_id(capture.record)
        encode(capture.record)
    t3 = time.perf_counter()
    clock.stop()
    per = 1e6 / messages
    return clock.result("ingest_parts", messages, raw_bytes, parse_us=(t1 - t0) * per,
                        blobs_us=(t2 - t1) * per, encode_us=(t3 - t2) * per)


def _framed(records_path: str, schema_id: int) -> list[bytes]:
    import struct

    header = struct.pack(">bI", 0, schema_id)
    return [header + body for body in read_records(Path(records_path))]


def produce(config: str | None, namespace: str, storage: str, records: str, messages: int) -> Result:
    from strongroom.clients import ensure_topics, kafka_producer
    from strongroom.registry import register_schemas

    settings = bench_settings(config, namespace, storage)
    values = _framed(records, register_schemas(settings)["email"])[:messages]
    keys = [str(i).encode() for i in range(len(values))]
    topic = ensure_topics(settings, kinds=("bench",))[0]
    producer = kafka_producer(settings)
    failed = []

    def report(err, _msg) -> None:
        if err is not None:
            failed.append(err.str())

    def work() -> dict[str, Any]:
        for key, value in zip(keys, values):
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.5)
            producer.poll(0)
        producer.flush(120)
        return {"failed": len(failed)}

    return timed("produce", len(values), sum(map(len, values)), work)


def consume(config: str | None, namespace: str, storage: str, messages: int) -> Result:
    from strongroom.clients import kafka_consumer

    settings = bench_settings(config, namespace, storage)
    consumer = kafka_consumer(settings, settings.group("bench-consume"), **{"enable.partition.eof": True})
    consumer.subscribe([settings.topic("email")])
    clock = Clock()
    count = nbytes = 0
    try:
        while count < messages:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    clock.start()
                    count += 1
                    nbytes += len(message.value())
        clock.stop()
    finally:
        consumer.close()
    return clock.result("consume", count, nbytes)


class _OwnSchema:
    """A Decoder stand-in whose every schema id is strongroom's own schema (no registry needed)."""

    def __init__(self) -> None:
        from schemas import serde

        self.schema = serde.parsed_schema()

    def writer(self, _schema_id: int):
        return self.schema


def decode(records: str, messages: int) -> Result:
    """The archiver's decode alone: framed values to Arrow in chunks of DECODE_CHUNK, Kafka columns added."""
    import pyarrow as pa

    from consumers.archiver import DECODE_CHUNK
    from schemas import serde
    from schemas.arrow_decode import ArrowDecoder

    values = _framed(records, 1)[:messages]
    arrow = ArrowDecoder(_OwnSchema())  # type: ignore[arg-type]

    def work() -> None:
        for start in range(0, len(values), DECODE_CHUNK):
            chunk = values[start:start + DECODE_CHUNK]
            table = arrow.batch(chunk)
            n = table.num_rows
            table = table.append_column(serde.KAFKA_COLUMNS[0], pa.array(["t"] * n, pa.string()))
            table = table.append_column(serde.KAFKA_COLUMNS[1], pa.array([0] * n, pa.int32()))
            table.append_column(serde.KAFKA_COLUMNS[2], pa.array(range(start, start + n), pa.int64()))

    result = timed("decode", len(values), sum(map(len, values)), work)
    # The per-record path it replaced, on a sample: fastavro to dicts, then dicts to Arrow.
    import fastavro

    sample, schema = values[:3000], serde.parsed_schema()
    t0 = time.perf_counter()
    rows = [fastavro.schemaless_reader(io.BytesIO(v[5:]), schema, schema) for v in sample]
    t1 = time.perf_counter()
    arrow.rows(rows)
    t2 = time.perf_counter()
    # What the indexer does per record after decoding: the document and its bulk lines.
    from consumers.search_mapping import document

    for row in rows:
        json.dumps({"index": {"_index": "x", "_id": f"{row['message_uid']}:{row['version']}"}})
        json.dumps(document(row), ensure_ascii=False, default=str)
    t3 = time.perf_counter()
    result.extra.update(fastavro_us=(t1 - t0) / len(sample) * 1e6, from_pylist_us=(t2 - t1) / len(sample) * 1e6,
                        document_us=(t3 - t2) / len(sample) * 1e6)
    return result


def _warehouse_table(records: str, messages: int, partitions: int):
    """The corpus as the archiver would hold it: one Arrow table per (partition, date)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from schemas import serde
    from schemas.arrow_decode import ArrowDecoder

    values = _framed(records, 1)[:messages]
    table = ArrowDecoder(_OwnSchema()).batch(values)  # type: ignore[arg-type]
    n = table.num_rows
    table = table.append_column(serde.KAFKA_COLUMNS[0], pa.array(["bench.email"] * n, pa.string()))
    table = table.append_column(serde.KAFKA_COLUMNS[1], pa.array([i % partitions for i in range(n)], pa.int32()))
    table = table.append_column(serde.KAFKA_COLUMNS[2], pa.array(range(n), pa.int64()))
    table = table.replace_schema_metadata(serde.arrow_schema().metadata)
    parts = []
    for partition in range(partitions):
        mine = table.filter(pc.equal(table.column("kafka_partition"), partition))
        mine_dates = mine.column("sent_at").cast(pa.date32())
        for day in pc.unique(mine_dates).to_pylist():
            parts.append((partition, day.isoformat(), mine.filter(pc.equal(mine_dates, pa.scalar(day, pa.date32())))))
    return parts, sum(map(len, values))


def parquet(config: str | None, namespace: str, storage: str, records: str, messages: int, name: str) -> Result:
    """Each (partition, date) table encoded (zstd, same row groups) and written as plainly as the
    destination allows: a file write locally (no fsync), one unconditional boto3 put on S3."""
    import pyarrow.parquet as pq

    settings = bench_settings(config, namespace, storage)
    parts, nbytes = _warehouse_table(records, messages, settings.kafka.partitions)
    row_group = settings.archiver.row_group_rows
    if settings.storage.is_s3:
        from strongroom.storage import S3Store

        s3 = S3Store(settings.storage)

        def write(key: str, data: bytes) -> None:
            s3.client.put_object(Bucket=s3.bucket, Key=s3._key(key), Body=data)
    else:
        root = Path(settings.storage.url).resolve()

        def write(key: str, data: bytes) -> None:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def work() -> None:
        for partition, date, table in parts:
            out = io.BytesIO()
            pq.write_table(table, out, compression="zstd", row_group_size=row_group)
            write(f"{namespace}/raw-parquet/date={date}/bench+{partition}.parquet", out.getvalue())

    return timed(name, sum(t.num_rows for _p, _d, t in parts), nbytes, work, files=len(parts))


def bulk(config: str | None, namespace: str, storage: str, records: str, messages: int,
         body_bytes: int = 10 * 1024 * 1024, concurrency: int = 2) -> Result:
    """The indexer's documents, prebuilt as NDJSON, bulk-loaded into a namespace of their own."""
    import fastavro
    from concurrent.futures import ThreadPoolExecutor

    from consumers.search_mapping import document, ensure_template, index_name
    from schemas import serde
    from strongroom.clients import opensearch_client

    settings = bench_settings(config, namespace, storage)
    client = opensearch_client(settings)
    ensure_template(client, settings)
    schema = serde.parsed_schema()
    bodies, body, size = [], [], 0
    for value in read_records(Path(records))[:messages]:
        record = fastavro.schemaless_reader(io.BytesIO(value), schema, schema)
        action = json.dumps({"index": {"_index": index_name(settings, record),
                                       "_id": f"{record['message_uid']}:{record['version']}"}})
        doc = json.dumps(document(record), ensure_ascii=False, default=str)
        body += [action, doc]
        size += len(action) + len(doc) + 2
        if size >= body_bytes:
            bodies.append(("\n".join(body) + "\n").encode())
            body, size = [], 0
    if body:
        bodies.append(("\n".join(body) + "\n").encode())
    errors = defaultdict(int)

    def send(data: bytes) -> None:
        response = client.bulk(body=data)
        for item in response["items"]:
            status = item.get("index", {}).get("status", 500)
            if status >= 300:
                errors[status] += 1

    server = opensearch_process()
    before = server_cpu(server)

    def work() -> dict[str, Any]:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, bodies))
        return {"bodies": len(bodies), "rejected": dict(errors)}

    result = timed("bulk", messages, sum(map(len, bodies)), work)
    result.extra["server_cpu_seconds"] = server_cpu(server) - before
    return result
