"""ParquetArchiver: Kafka topics -> the Parquet warehouse, the system of record.

Delivery: at-least-once reading, exactly-once archive. Idempotent because every file and
manifest name is derived from offsets and written once (a conditional create), and because on
assignment a partition resumes after the last offset its manifest chain covers, not after the
group's commit; a crashed flush's unreferenced files are removed first (see manifest.py).
So every (topic, partition, offset) lands in exactly one manifest: as a row of one file, or as a
dead letter when it could not be decoded.

Layout: `<ns>/warehouse/<table>/date=YYYY-MM-DD/<topic>+<partition>+<first_offset>.parquet`,
partitioned by the message's own time (UTC), zstd, one fixed Arrow schema from the .avsc.

Speed: records are kept as their framed bytes and decoded a chunk at a time straight to Arrow
(schemas/arrow_decode.py); a chunk that cannot be decoded whole takes the per-record path, so a
bad record is dead-lettered alone, exactly as before. Rows never become Python dicts otherwise.
"""

from __future__ import annotations

import hashlib
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.dlq import DeadLetters
from consumers.manifest import ArchivedFile, Manifest, ManifestLog
from schemas import serde
from schemas.arrow_decode import ArrowDecoder
from strongroom import __version__
from strongroom import observability as metrics
from strongroom.config import Settings
from strongroom.errors import IntegrityError
from strongroom.registry import decoder
from strongroom.storage import open_store

PartitionKey = tuple[str, int]
# Records decoded together: large enough that pyruhvro's per-call cost vanishes, small enough
# that the framed bytes waiting for it stay a few MB.
DECODE_CHUNK = 5000
WRITERS = 4  # files of one flush (one per day) encoded at once


@dataclass
class PartitionBuffer:
    started: float
    first_offset: int | None = None
    last_offset: int = -1
    pending: list = field(default_factory=list)  # messages not yet decoded (framing checked)
    tables: list[pa.Table] = field(default_factory=list)  # decoded rows, offset order
    rows: int = 0  # rows decoded or pending
    dead: list[int] = field(default_factory=list)
    bytes: int = 0
    attempted: bool = False  # a flush of this buffer was tried and failed part-way


def table_of(topic: str) -> str:
    """`<namespace>.email` -> `email`."""
    return topic.rsplit(".", 1)[-1]


class ParquetArchiver:
    name = "archiver"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.limits = settings.archiver
        self.store = open_store(settings.storage)
        self.decode = decoder(settings)
        self.arrow = ArrowDecoder(self.decode)
        self.schema = serde.arrow_schema()
        self.buffers: dict[PartitionKey, PartitionBuffer] = {}
        self.logs: dict[PartitionKey, ManifestLog] = {}
        self.heads: dict[PartitionKey, str | None] = {}
        self.files_written = 0
        self.rows_written = 0
        # Under S3 Object Lock each file is locked until its first message expires by the policy.
        self.policy = None
        if settings.storage.object_lock and settings.retention.policy:
            from consumers.policy import load_policy

            self.policy = load_policy(settings.retention.policy)[0]
        self.dead_letters: DeadLetters | None = None  # the runner's, seen at the first add
        self._pool: ThreadPoolExecutor | None = None

    # -- assignment: recover, then resume after the manifest chain -------------------------
    def assigned(self, partitions: list[PartitionKey]) -> dict[PartitionKey, int | None]:
        starts: dict[PartitionKey, int | None] = {}
        for key in partitions:
            log = self.logs[key] = ManifestLog(self.store, self.settings.namespace, *key)
            log.recover()
            head = log.head()
            self.heads[key] = head[1] if head else None
            starts[key] = head[0].last_offset + 1 if head else None
        return starts

    def forget(self, key: PartitionKey) -> None:
        self.buffers.pop(key, None)

    def finish(self) -> None:
        """Every flush is already durable when it returns; only the writer threads are left."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def commit_metadata(self, key: PartitionKey) -> str | None:
        """The hash of the partition's newest manifest, committed with the offset: an edit of the
        chain's last manifest, which no later manifest vouches for, still shows against it."""
        return self.heads.get(key)

    def summary(self) -> str:
        return f"wrote {self.rows_written} rows in {self.files_written} Parquet files"

    # -- buffering -------------------------------------------------------------------------
    def add(self, message, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        key = (message.topic(), message.partition())
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = PartitionBuffer(started=time.monotonic())
        offset = message.offset()
        if buf.first_offset is None:
            buf.first_offset = offset
        buf.last_offset = offset
        value = message.value()
        buf.bytes += len(value or b"")
        try:
            self.decode.header(value)
        except serde.WireFormatError as exc:
            dead_letters.send(message, f"archiver: {exc}")
            buf.dead.append(offset)
            return
        buf.pending.append(message)
        buf.rows += 1
        if len(buf.pending) >= DECODE_CHUNK:
            self._decode_pending(key, buf, dead_letters)

    def _decode_pending(self, key: PartitionKey, buf: PartitionBuffer, dead_letters: DeadLetters | None) -> None:
        """Decode the waiting records to Arrow: the whole chunk at once, or record by record."""
        messages, buf.pending = buf.pending, []
        if not messages:
            return
        values = [m.value() for m in messages]
        table = None
        try:
            if all(self.arrow.batchable(serde.schema_id(v)) for v in values):
                table = self.arrow.batch(values)
        except serde.WireFormatError:
            table = None  # an unknown id or a bad body somewhere: find it record by record
        offsets = [m.offset() for m in messages]
        if table is None:
            rows, offsets = [], []
            for message, value in zip(messages, values):
                try:
                    rows.append(self.decode(value))
                except serde.WireFormatError as exc:
                    if dead_letters is None:
                        raise
                    dead_letters.send(message, f"archiver: {exc}")
                    buf.dead.append(message.offset())
                    buf.rows -= 1
                    continue
                offsets.append(message.offset())
            table = self.arrow.rows(rows)
        n = table.num_rows
        table = table.append_column(serde.KAFKA_COLUMNS[0], pa.array([key[0]] * n, pa.string()))
        table = table.append_column(serde.KAFKA_COLUMNS[1], pa.array([key[1]] * n, pa.int32()))
        table = table.append_column(serde.KAFKA_COLUMNS[2], pa.array(offsets, pa.int64()))
        buf.tables.append(table.replace_schema_metadata(self.schema.metadata))

    def full(self, key: PartitionKey) -> bool:
        buf = self.buffers.get(key)
        return buf is not None and (buf.rows >= self.limits.max_rows or buf.bytes >= self.limits.max_bytes)

    def due(self, now: float) -> list[PartitionKey]:
        return [key for key, buf in self.buffers.items()
                if self.full(key) or now - buf.started >= self.limits.idle_seconds]

    def buffered(self) -> list[PartitionKey]:
        return [key for key, buf in self.buffers.items() if buf.first_offset is not None]

    # -- flush: files, then manifest; the runner commits after ------------------------------
    def _encode(self, table: pa.Table) -> tuple[bytes, dict]:
        out = io.BytesIO()
        pq.write_table(table, out, compression="zstd", row_group_size=self.limits.row_group_rows)
        if self.policy is None:
            return out.getvalue(), {}
        from consumers.judgement import retain_until

        return out.getvalue(), {"retain_until": retain_until(self.policy, table)}

    def _write_files(self, planned: list[tuple[str, str, pa.Table]]) -> list[ArchivedFile]:
        """Encode the files (several at a time: Arrow works without the GIL), then create them all
        with one durability barrier (locally) or concurrent puts (S3)."""
        if len(planned) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="archiver-encode")
            encoded = list(self._pool.map(lambda item: self._encode(item[2]), planned))
        else:
            encoded = [self._encode(item[2]) for item in planned]
        locks = {file_key: lock["retain_until"] for (file_key, _d, _r), (_data, lock) in zip(planned, encoded) if lock}
        created = self.store.put_new_many([(file_key, data) for (file_key, _d, _r), (data, _lock) in zip(planned, encoded)],
                                          locks)
        for (file_key, _date, _rows), new in zip(planned, created):
            if not new:
                raise IntegrityError(f"{file_key} already exists but no manifest covers it; "
                                     f"restart the archiver so recovery can resolve it")
        return [ArchivedFile(file_key, rows.num_rows, len(data), hashlib.sha256(data).hexdigest(), date)
                for (file_key, date, rows), (data, _lock) in zip(planned, encoded)]

    def flush(self, key: PartitionKey) -> int | None:
        buf = self.buffers.get(key)
        if buf is None or buf.first_offset is None:
            self.buffers.pop(key, None)
            return None
        topic, partition = key
        log = self.logs.get(key) or ManifestLog(self.store, self.settings.namespace, topic, partition)
        manifest_key = log.key_for(buf.first_offset)
        if buf.attempted:
            # An earlier try of this same flush failed part-way (storage down); the runner kept the
            # buffer and paused the partition. Finish what landed, or undo it and write again.
            done = self._adopt(key, log, manifest_key, buf)
            if done is not None:
                return done
            log.recover()
        buf.attempted = True
        self._decode_pending(key, buf, self.dead_letters)
        table = pa.concat_tables(buf.tables) if buf.tables else self.schema.empty_table()
        buf.tables, buf.rows = [table], table.num_rows
        dates = table.column("sent_at").cast(pa.date32())  # UTC: the timestamps carry tz=UTC
        planned = []
        for day in sorted(pc.unique(dates).to_pylist()):
            rows = table.filter(pc.equal(dates, pa.scalar(day, pa.date32())))
            date = day.isoformat()
            first = pc.min(rows.column("kafka_offset")).as_py()
            file_key = (f"{self.settings.namespace}/warehouse/{table_of(topic)}/date={date}/"
                        f"{topic}+{partition}+{first}.parquet")
            planned.append((file_key, date, rows))
        # 1. say what is about to be written, so a crash from here on can be undone;
        log.mark_pending(manifest_key, [f[0] for f in planned])
        # 2. each file encoded and written once, all durable before the manifest;
        files = self._write_files(planned)
        manifest = Manifest(
            topic=topic, partition=partition, first_offset=buf.first_offset, last_offset=buf.last_offset,
            rows=buf.rows, files=files, dead_lettered=sorted(buf.dead), prev_manifest_sha256=self.heads.get(key),
            created_at=datetime.now(timezone.utc).isoformat(), writer=f"strongroom {__version__} archiver")
        # 3. the manifest makes the files part of the archive (and extends the hash chain);
        log.append(manifest)
        self.heads[key] = hashlib.sha256(manifest.to_bytes()).hexdigest()
        log.clear_pending()
        del self.buffers[key]
        self.files_written += len(files)
        self.rows_written += buf.rows
        metrics.RECORDS_OUT.labels(self.name).inc(buf.rows)
        # 4. the runner commits this offset only now.
        return buf.last_offset + 1

    def _adopt(self, key: PartitionKey, log: ManifestLog, manifest_key: str, buf: PartitionBuffer) -> int | None:
        """If the failed try's manifest did land (the error came after it), that flush is done."""
        if not self.store.exists(manifest_key):
            return None
        data = self.store.get(manifest_key)
        manifest = Manifest.from_bytes(data)
        if manifest.last_offset != buf.last_offset:
            raise IntegrityError(f"{manifest_key} covers up to {manifest.last_offset}, this flush up to "
                                 f"{buf.last_offset}: another archiver wrote this range")
        self.heads[key] = hashlib.sha256(data).hexdigest()
        log.clear_pending()
        del self.buffers[key]
        self.files_written += len(manifest.files)
        self.rows_written += manifest.rows
        return manifest.last_offset + 1
