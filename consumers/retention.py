"""Retention: plan and apply a policy's purges over the warehouse, the blob store and the index.

A message expires when its applicable rule's period has passed since it was sent; an expired
message under an active legal hold is kept. Applying a plan, for each affected (topic, partition):

1. note the files about to be written (`_pending.json`), so a crash can be finished or undone;
2. rewrite each affected Parquet file without the purged rows (a new, write-once object);
3. append a purge record (consumers/purges.py): old file, new file, every purged offset with its
   message and rule; this is the commit point, after which `verify` accounts for those offsets;
4. delete the old files;
then delete the blobs no kept row points at any more (blobs are shared: an attachment sent twice
is one blob), and the purged messages' documents from the hot index. The archive's manifests
are never rewritten, so their hash chain and the hash committed with Kafka's offsets stay valid.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.holds import ALL_ROWS
from consumers.judgement import judge
from consumers.manifest import ArchivedFile, Manifest, ManifestLog
from consumers.policy import Policy
from consumers.purges import PurgeLog, PurgeRecord, Replacement, sha256
from strongroom import __version__, audit
from strongroom.blobs import BlobStore
from strongroom.config import Settings
from strongroom.errors import InputError, IntegrityError
from strongroom.storage import ObjectStore, open_store

PENDING = "_pending.json"


@dataclass
class Plan:
    as_of: str
    by_rule_day: list[tuple]  # rule, day, messages to purge, rows, held (expired but kept)
    totals: dict[str, dict] = field(default_factory=dict)  # rule -> messages, expired, held, purge
    holds: list[str] = field(default_factory=list)

    @property
    def purge_messages(self) -> int:
        return sum(t["purge"] for t in self.totals.values())

    @property
    def held_messages(self) -> int:
        return sum(t["held"] for t in self.totals.values())


@dataclass
class ApplyReport:
    messages: int = 0
    rows: int = 0
    files_rewritten: int = 0
    files_removed: int = 0
    blobs_deleted: int = 0
    blobs_kept_shared: int = 0
    documents_deleted: int = 0
    held_kept: int = 0
    purge_records: dict[str, str] = field(default_factory=dict)  # key -> sha256
    hot_window: dict = field(default_factory=dict)


def plan(settings: Settings, policy: Policy, as_of: datetime) -> Plan:
    con, holds = judge(settings, policy, as_of)
    rows = con.execute("""SELECT rule, CAST(day AS VARCHAR), count(*) FILTER (WHERE NOT held),
                                 sum(n_rows) FILTER (WHERE NOT held), count(*) FILTER (WHERE held)
                          FROM judged WHERE expired GROUP BY ALL ORDER BY 1, 2""").fetchall()
    totals = {rule: {"messages": n, "expired": e, "held": h, "purge": e - h} for rule, n, e, h in con.execute(
        """SELECT rule, count(*), count(*) FILTER (WHERE expired), count(*) FILTER (WHERE expired AND held)
           FROM judged GROUP BY ALL ORDER BY 1""").fetchall()}
    return Plan(as_of.isoformat(), [(r, d, p, int(n or 0), h) for r, d, p, n, h in rows], totals,
                [h.name for h in holds])


def apply(settings: Settings, policy: Policy, policy_sha: str, as_of: datetime, who: str) -> ApplyReport:
    from consumers.index_purge import delete_documents

    store = open_store(settings.storage)
    recover(settings, store)
    con, _holds = judge(settings, policy, as_of)
    report = ApplyReport(held_kept=con.execute("SELECT count(*) FROM judged WHERE expired AND held").fetchone()[0])
    con.execute(f"""CREATE TEMP TABLE purge_rows AS
        SELECT r.message_uid, j.rule, r.kind, r.version, r.event_type, strftime(r.sent_at, '%Y.%m') AS month,
               r.kafka_topic, r.kafka_partition, r.kafka_offset, CAST(r.date AS VARCHAR) AS day, r.raw_sha256,
               list_transform(r.attachments, a -> a.sha256) AS attachment_sha256
        FROM {ALL_ROWS} r JOIN judged j USING (message_uid) WHERE j.expired AND NOT j.held""")
    purge = con.execute("SELECT * FROM purge_rows").arrow().read_all().to_pylist()
    if not purge:
        return report
    report.messages = len({r["message_uid"] for r in purge})
    report.rows = len(purge)
    by_partition: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in purge:
        by_partition[(row["kafka_topic"], row["kafka_partition"])].append(row)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for (topic, partition), rows in sorted(by_partition.items()):
        _purge_partition(settings, store, topic, partition, rows, report,
                         dict(as_of=as_of.isoformat(), policy_sha256=policy_sha, at=now, who=who))
    _purge_blobs(settings, store, con, report)
    report.documents_deleted = delete_documents(settings, [
        (f"{settings.index_prefix(r['kind'])}-{r['month']}", f"{r['message_uid']}:{r['version']}")
        for r in purge if r["event_type"] != "arrival"])
    return report


_PURGED_NAME = re.compile(r"(\.purge\d+)?\.parquet$")


def _purge_partition(settings: Settings, store: ObjectStore, topic: str, partition: int, rows: list[dict],
                     report: ApplyReport, stamp: dict) -> None:
    by_offset = {r["kafka_offset"]: r for r in rows}
    days = {r["day"] for r in rows}
    manifests = ManifestLog(store, settings.namespace, topic, partition)
    purges = PurgeLog(store, settings.namespace, topic, partition)
    records = purges.records()
    current = purges.current_files(records)
    seq = (records[-1][2].seq + 1) if records else 1
    replacements, writes, found = [], [], set()
    for key in manifests.keys():
        data = store.get(key)
        manifest = Manifest.from_bytes(data)
        wanted = [o for o in by_offset if manifest.first_offset <= o <= manifest.last_offset]
        if not wanted:
            continue
        for archived in manifest.files:
            if archived.date not in days:
                continue
            now_file = current[archived.key][0] if archived.key in current else archived
            if now_file is None:
                continue
            locked = store.locked_until(now_file.key)
            if locked:
                raise InputError(f"{now_file.key} is under S3 Object Lock until {locked.isoformat()}, but the policy "
                                 f"purges it as of {stamp['as_of']} (a shorter policy than it was archived under, "
                                 f"or --as-of ahead of the clock); nothing of {topic}[{partition}] was purged")
            content = store.get(now_file.key)
            if sha256(content) != now_file.sha256:
                raise IntegrityError(f"{now_file.key} does not match its recorded sha256; run `strongroom verify` "
                                     f"before purging anything")
            table = pq.read_table(io.BytesIO(content))
            drop = pc.is_in(table["kafka_offset"], value_set=pa.array(wanted, type=table.schema.field("kafka_offset").type))
            removed = table.filter(drop)["kafka_offset"].to_pylist()
            if not removed:
                continue
            found.update(removed)
            kept = table.filter(pc.invert(drop))
            new = None
            if kept.num_rows:
                out = io.BytesIO()
                pq.write_table(kept, out, compression="zstd", row_group_size=settings.archiver.row_group_rows)
                new_key = _PURGED_NAME.sub(f".purge{seq:08d}.parquet", now_file.key)
                payload = out.getvalue()
                new = ArchivedFile(new_key, kept.num_rows, len(payload), sha256(payload), archived.date)
                writes.append((new_key, payload, kept))
            replacements.append(Replacement(
                key, sha256(data), now_file, new,
                [{"offset": o, "message_uid": by_offset[o]["message_uid"], "rule": by_offset[o]["rule"]}
                 for o in sorted(removed)]))
    missing = set(by_offset) - found
    if missing:
        raise IntegrityError(f"{topic}[{partition}]: offsets {sorted(missing)[:5]} are in the warehouse views but in "
                             f"no file the manifests name; run `strongroom verify`")
    if not replacements:
        return
    record = PurgeRecord(topic, partition, seq, replacements, prev_sha256=sha256(records[-1][1]) if records else None,
                          writer=f"strongroom {__version__} retention", **stamp)
    record_key = purges.key_for(seq)
    pending_key = purges.prefix + PENDING
    # 1. what is about to be written, for recovery;
    store.put(pending_key, json.dumps({"record": record_key, "new": [w[0] for w in writes],
                                       "old": [r.old.key for r in replacements]}).encode())
    for new_key, payload, kept in writes:  # 2. the rewritten files, written once;
        if not store.put_new(new_key, payload, **_lock(settings, kept)):
            raise IntegrityError(f"{new_key} already exists but no purge record names it")
    data = record.to_bytes()
    # 3. the purge record commits the purge;
    if not store.put_new(record_key, data):
        raise IntegrityError(f"purge record {record_key} already exists: another retention run is purging")
    report.purge_records[record_key] = sha256(data)
    # The audit trail vouches for each purge record (verify checks it), so a record forged or
    # edited later shows even though nothing after it in its own chain does.
    audit.record(settings, "retention.purge", {"record": record_key, "sha256": sha256(data), "topic": topic,
                                               "partition": partition, "as_of": stamp["as_of"],
                                               "policy_sha256": stamp["policy_sha256"],
                                               "files": [r.old.key for r in replacements]},
                 sum(len(r.purged) for r in replacements))
    # 4. the old files go.
    store.delete_many([r.old.key for r in replacements])
    store.delete(pending_key)
    report.files_rewritten += len(writes)
    report.files_removed += len(replacements) - len(writes)


def _lock(settings: Settings, kept: pa.Table) -> dict:
    """Object Lock retain-until for a rewritten file: when its first remaining message expires."""
    if not settings.storage.object_lock or not settings.retention.policy:
        return {}
    from consumers.judgement import retain_until
    from consumers.policy import load_policy

    return {"retain_until": retain_until(load_policy(settings.retention.policy)[0], kept)}


def recover(settings: Settings, store: ObjectStore) -> list[str]:
    """Finish a purge that crashed after its record (delete the old files) or undo one that crashed before."""
    done = []
    for key in store.list(f"{settings.namespace}/purges/"):
        if not key.endswith("/" + PENDING):
            continue
        pending = json.loads(store.get(key))
        stale = pending["old"] if store.exists(pending["record"]) else pending["new"]
        store.delete_many(stale)
        store.delete(key)
        done.extend(stale)
    return done


def _purge_blobs(settings: Settings, store: ObjectStore, con, report: ApplyReport) -> None:
    """Blobs of purged rows that no row left in the warehouse points at; shared ones stay."""
    from consumers.query import connect

    candidates = con.execute("""SELECT DISTINCT s FROM (SELECT raw_sha256 AS s FROM purge_rows UNION ALL
                                SELECT unnest(attachment_sha256) FROM purge_rows) WHERE s IS NOT NULL""").arrow().read_all()
    if not candidates.num_rows:
        return
    after = connect(settings)  # the warehouse as rewritten
    after.register("candidates", candidates)
    # NOT IN over a set holding a NULL is never true: attachments without a hash are left out.
    gone = [r[0] for r in after.execute(f"""SELECT s FROM candidates WHERE s NOT IN (
        SELECT s FROM (SELECT raw_sha256 AS s FROM {ALL_ROWS} UNION ALL
                       SELECT unnest(list_transform(attachments, a -> a.sha256)) FROM {ALL_ROWS})
        WHERE s IS NOT NULL)""").fetchall()]
    blobs = BlobStore(store, settings.namespace)
    store.delete_many([blobs.key(s) for s in gone])
    report.blobs_deleted = len(gone)
    report.blobs_kept_shared = candidates.num_rows - len(gone)
