"""`strongroom verify`: prove the archive complete and unaltered, or name what is not.

Reconciles three independent records of the same history:

1. Kafka: each partition's earliest and latest offsets, and the archiver group's committed
   offset, whose metadata carries the hash of the partition's newest manifest;
2. the manifests: a hash chain per partition whose offset ranges must be contiguous (no gap, no
   overlap), each offset accounted for as a row or a dead letter, starting no later than the
   earliest offset Kafka still holds;
3. the files: each file a manifest names must exist with its recorded sha256 and row count, and
   no Parquet file may sit in the warehouse without a manifest naming it. Where retention purged
   rows (consumers/purges.py), the file standing for the archived one is its replacement, and
   the purged offsets count as accounted for; the purge records must form their own unbroken
   chain, each naming the manifest and the file it replaced as they were, and each must be
   vouched for by a `retention.purge` entry of the audit trail.

Then the hot index: documents per day and kind against the warehouse's rows (`index drift`),
for the days inside the hot window only (older documents are dropped from the index on purpose).
Offsets past the last manifest are lag (not yet archived), reported but not a failure.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone

import pyarrow.parquet as pq

from consumers.manifest import Manifest, ManifestLog
from consumers.purges import PurgeLog
from consumers.query import run_query
from consumers.search_mapping import index_pattern
from strongroom.clients import kafka_admin, kafka_consumer, opensearch_client
from strongroom.config import Settings
from strongroom.errors import KafkaError, StorageError
from strongroom.storage import ObjectStore, open_store

KINDS = ("email", "chat")


@dataclass
class Finding:
    problem: str  # gap, overlap, chain, unaccounted, missing_file, altered_file, row_count, unreferenced_file,
    # purge, index_drift
    where: str
    detail: str


@dataclass
class PartitionReport:
    topic: str
    partition: int
    earliest: int
    latest: int
    archived_through: int  # next offset after the last manifest
    manifests: int
    rows: int
    dead_lettered: int
    purged: int = 0

    @property
    def lag(self) -> int:
        return max(0, self.latest - self.archived_through)


@dataclass
class VerifyReport:
    partitions: list[PartitionReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    files_checked: int = 0

    @property
    def complete(self) -> bool:
        return not self.findings

    def to_json(self) -> dict:
        return {"complete": self.complete, "files_checked": self.files_checked,
                "partitions": [dict(asdict(p), lag=p.lag) for p in self.partitions],
                "findings": [asdict(f) for f in self.findings]}


def _in_range(day: str, since: date | None, until: date | None) -> bool:
    d = date.fromisoformat(day)
    return (since is None or d >= since) and (until is None or d <= until)


class Verifier:
    def __init__(self, settings: Settings, since: date | None = None, until: date | None = None):
        self.settings = settings
        self.store: ObjectStore = open_store(settings.storage)
        self.since, self.until = since, until
        self.report = VerifyReport()
        self.referenced: set[str] = set()
        self._vouched: set[str] | None = None

    def find(self, problem: str, where: str, detail: str) -> None:
        self.report.findings.append(Finding(problem, where, detail))

    def run(self, check_index: bool = True) -> VerifyReport:
        from confluent_kafka import KafkaException, TopicPartition

        admin = kafka_admin(self.settings)
        consumer = kafka_consumer(self.settings, self.settings.group("archiver"))
        try:
            topics = admin.list_topics(timeout=10).topics
            for kind in KINDS:
                topic = self.settings.topic(kind)
                if topic not in topics:
                    continue
                partitions = sorted(topics[topic].partitions)
                committed = {tp.partition: tp for tp in consumer.committed(
                    [TopicPartition(topic, p) for p in partitions], timeout=10)}
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    self._partition(topic, p, low, high, committed.get(p))
        except KafkaException as exc:
            raise KafkaError(f"verify could not read Kafka at {self.settings.kafka.bootstrap_servers}: "
                             f"{exc.args[0].str() if exc.args else exc}") from exc
        finally:
            consumer.close()
        self._unreferenced()
        # Counting rows needs every file readable; damaged files are already findings.
        damaged = any(f.problem in {"altered_file", "missing_file", "row_count"} for f in self.report.findings)
        if check_index and not damaged:
            self._index_drift()
        return self.report

    # -- one partition's chain ---------------------------------------------------------------
    def _partition(self, topic: str, partition: int, low: int, high: int, committed) -> None:
        where = f"{topic}[{partition}]"
        log = ManifestLog(self.store, self.settings.namespace, topic, partition)
        prev_sha: str | None = None
        expected: int | None = None
        rows = dead = count = purged_total = 0
        manifest_shas: dict[str, str] = {}
        current, replaced = self._purges(topic, partition)
        for key in log.keys():
            data = self.store.get(key)
            manifest = Manifest.from_bytes(data)
            manifest_shas[key] = hashlib.sha256(data).hexdigest()
            count += 1
            if manifest.prev_manifest_sha256 != prev_sha:
                self.find("chain", key, "previous-manifest hash does not match: a manifest before it was "
                                        "changed, removed or inserted")
            start = low if expected is None else expected
            if manifest.first_offset > start:
                self.find("gap", where, f"offsets {start}..{manifest.first_offset - 1} were never archived")
            elif expected is not None and manifest.first_offset < expected:
                self.find("overlap", where, f"offsets {manifest.first_offset}..{expected - 1} archived twice ({key})")
            span = manifest.last_offset - manifest.first_offset + 1
            if manifest.rows + len(manifest.dead_lettered) != span or sum(f.rows for f in manifest.files) != manifest.rows:
                self.find("unaccounted", key, f"{span} offsets, {manifest.rows} rows, "
                                              f"{len(manifest.dead_lettered)} dead letters")
            for archived in manifest.files:
                standing, purged = current.pop(archived.key, (archived, []))
                if purged:
                    outside = [p["offset"] for p in purged
                               if not manifest.first_offset <= p["offset"] <= manifest.last_offset]
                    if outside or (standing.rows if standing else 0) + len(purged) != archived.rows:
                        self.find("unaccounted", archived.key,
                                  f"{archived.rows} rows archived, {standing.rows if standing else 0} left and "
                                  f"{len(purged)} purged" + (f"; offsets {outside[:5]} outside {key}" if outside else ""))
                    purged_total += len(purged)
                if standing is None:
                    continue
                self.referenced.add(standing.key)
                if _in_range(archived.date, self.since, self.until):
                    self._file(standing, key)
            rows += manifest.rows
            dead += len(manifest.dead_lettered)
            prev_sha = hashlib.sha256(data).hexdigest()
            expected = manifest.last_offset + 1
        if committed is not None and committed.offset >= 0 and prev_sha and committed.metadata \
                and committed.metadata != prev_sha and committed.offset == expected:
            self.find("chain", where, "the newest manifest does not match the hash committed with its offset: "
                                      "it was changed after it was written")
        for original in current:
            self.find("purge", original, f"a purge record of {where} replaced a file no manifest names")
        for record_key, manifest_key, manifest_sha in replaced:
            if manifest_shas.get(manifest_key) != manifest_sha:
                self.find("purge", record_key, f"names {manifest_key} as it was not: the manifest changed "
                                               f"after the purge, or the record was forged")
        self.report.partitions.append(PartitionReport(topic, partition, low, high, expected if expected is not None else low,
                                                      count, rows, dead, purged_total))

    def _purges(self, topic: str, partition: int):
        """Walk the partition's purge records: their chain, what each replaced, and the audit entry
        vouching for it. Returns original file key -> (file standing for it now, offsets purged),
        and (record, manifest key, manifest sha256) for each replacement, to check against the chain."""
        log = PurgeLog(self.store, self.settings.namespace, topic, partition)
        records = log.records()
        prev_sha = None
        standing: dict[str, str] = {}  # key of the file standing now -> its sha256
        replaced: list[tuple[str, str, str]] = []
        for key, data, record in records:
            if record.prev_sha256 != prev_sha:
                self.find("purge", key, "previous-purge hash does not match: a purge record before it was "
                                        "changed, removed or inserted")
            prev_sha = hashlib.sha256(data).hexdigest()
            if prev_sha not in self._audited_purges():
                self.find("purge", key, "no retention.purge entry of the audit trail vouches for this purge record: "
                                        "it was changed or added by hand")
            for rep in record.replacements:
                replaced.append((key, rep.manifest, rep.manifest_sha256))
                expected = standing.pop(rep.old.key, None)
                if expected is not None and expected != rep.old.sha256:
                    self.find("purge", key, f"replaced {rep.old.key} with a sha256 other than the file it superseded")
                if rep.new:
                    standing[rep.new.key] = rep.new.sha256
        return log.current_files(records), replaced

    def _audited_purges(self) -> set[str]:
        if self._vouched is None:
            from strongroom import audit

            self._vouched = {entry["what"].get("sha256") for entry in audit.entries(self.settings)
                             if entry["action"] == "retention.purge"}
        return self._vouched

    def _file(self, archived, manifest_key: str) -> None:
        self.report.files_checked += 1
        try:
            data = self.store.get(archived.key)
        except StorageError:
            self.find("missing_file", archived.key, f"named by {manifest_key} but not in storage")
            return
        if hashlib.sha256(data).hexdigest() != archived.sha256:
            self.find("altered_file", archived.key, f"sha256 differs from {manifest_key}: the file was changed")
            return
        rows = pq.read_metadata(io.BytesIO(data)).num_rows
        if rows != archived.rows:
            self.find("row_count", archived.key, f"{rows} rows, manifest says {archived.rows}")

    def _unreferenced(self) -> None:
        prefix = f"{self.settings.namespace}/warehouse/"
        for key in self.store.list(prefix):
            if not key.endswith(".parquet") or key in self.referenced:
                continue
            day = key.split("date=", 1)[1][:10] if "date=" in key else None
            if day is None or _in_range(day, self.since, self.until):
                self.find("unreferenced_file", key, "in the warehouse but named by no manifest (added by hand, "
                                                     "or left by a crash the archiver has not yet recovered)")

    # -- the hot index against the warehouse -----------------------------------------------------
    def _index_drift(self) -> None:
        window = (datetime.now(timezone.utc) - timedelta(days=self.settings.opensearch.hot_window_days)).date()
        since = max(self.since, window) if self.since else window
        where = [f"date >= DATE '{since}'"]
        if self.until:
            where.append(f"date <= DATE '{self.until}'")
        _cols, rows = run_query(self.settings, f"""SELECT kind, CAST(CAST(sent_at AS DATE) AS VARCHAR), count(*)
                                                   FROM communications WHERE {' AND '.join(where)} GROUP BY ALL""")
        warehouse = {(k, d): n for k, d, n in rows}
        client = opensearch_client(self.settings)
        body = {"size": 0, "query": {"range": {"sent_at": {k: str(v) for k, v in
                                                         (("gte", since), ("lte", self.until)) if v}}},
                "aggs": {"kind": {"terms": {"field": "kind", "size": 10},
                                  "aggs": {"day": {"date_histogram": {"field": "sent_at", "calendar_interval": "day",
                                                                      "format": "yyyy-MM-dd", "min_doc_count": 1}}}}}}
        response = client.search(index=index_pattern(self.settings), body=body,
                                 params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        indexed = {(k["key"], d["key_as_string"]): d["doc_count"]
                   for k in response.get("aggregations", {}).get("kind", {}).get("buckets", [])
                   for d in k["day"]["buckets"]}
        for key in sorted(set(warehouse) | set(indexed)):
            if warehouse.get(key, 0) != indexed.get(key, 0):
                self.find("index_drift", f"{key[0]} {key[1]}",
                          f"warehouse has {warehouse.get(key, 0)}, index has {indexed.get(key, 0)}")
