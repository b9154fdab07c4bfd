"""`strongroom demo`: a sample firm's mail and Slack captured, archived, indexed and audited.

The whole product on the local services in about a minute: ingest (blobs + Avro on Kafka),
archive (Parquet + manifests), index (OpenSearch), then the questions a compliance officer asks.
Running it again shows deduplication: the second capture finds every message already kept.
"""

from __future__ import annotations

from pathlib import Path

from consumers.archiver import ParquetArchiver
from consumers.indexer import OpenSearchIndexer
from consumers.query import render, run_query
from consumers.runner import SinkRunner
from consumers.search import search
from producers.chat.slack import SlackExportSource
from producers.email import captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.clients import check_kafka
from strongroom.config import Settings
from strongroom.progress import ingest_progress
from strongroom.registry import register_schemas
from strongroom.sample import write_sample
from strongroom.storage import open_store


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)))


def _sql(settings: Settings, sql: str) -> None:
    print(render(*run_query(settings, sql), "table"))


def run_demo(settings: Settings, workdir: Path) -> None:
    check_kafka(settings)
    sample = write_sample(workdir)
    print(f"strongroom demo: namespace '{settings.namespace}', storage {settings.storage.url}")
    print(f"Sample firm Northwind Capital: {sample.emails} emails in {sample.mbox}, "
          f"{sample.chat_messages} Slack messages in {sample.slack}")
    register_schemas(settings)

    _title("1. Capture: originals to the blob store, records to Kafka")
    for kind, items in (("email", captures(sample.mbox)), ("chat", iter(SlackExportSource(sample.slack)))):
        with ingest_progress(kind) as advance:
            print(ingest(settings, kind, items, progress=advance).line())

    _title("2. Archive (Parquet + manifests) and index (OpenSearch)")
    for sink in (ParquetArchiver(settings), OpenSearchIndexer(settings)):
        SinkRunner(settings, sink, settings.group(sink.name)).run(until_idle=True)
        print(f"{sink.name}: {sink.summary()}")

    _title("3. What was kept, per day (strongroom query)")
    _sql(settings, """SELECT CAST(sent_at AS DATE) AS day, count(*) FILTER (kind = 'email') AS emails,
                             count(*) FILTER (kind = 'chat' AND event_type = 'created') AS chat_messages,
                             count(*) FILTER (kind = 'chat' AND event_type <> 'created') AS chat_edits_reactions,
                             count(*) FILTER (parse_status = 'quarantined') AS quarantined
                      FROM communications GROUP BY day ORDER BY day""")

    _title("4. Who wrote to whom, most often (email, to/cc)")
    _sql(settings, """SELECT sender.address AS sender, r.address AS recipient, count(*) AS messages
                      FROM email, unnest(recipients) AS u(r)
                      WHERE r.role IN ('to', 'cc') GROUP BY ALL ORDER BY messages DESC, sender, recipient LIMIT 8""")

    _title("5. Outside office hours (before 07:00 or after 21:00 UTC)")
    _sql(settings, """SELECT strftime(sent_at, '%Y-%m-%d %H:%M') AS sent_utc, kind,
                             coalesce(sender.address, sender.name) AS sender,
                             left(coalesce(subject, '#' || channel || ': ' || body_text), 60) AS about
                      FROM communications
                      WHERE parse_status = 'ok' AND (hour(sent_at) < 7 OR hour(sent_at) >= 21)
                      ORDER BY sent_at LIMIT 8""")

    _title("6. Search the hot index: \"offline\"")
    print(render(*search(settings, "offline", limit=5), "table"))

    _title("7. Quarantined, but kept: the original bytes are still retrievable")
    columns, rows = run_query(settings, """SELECT message_uid, source_position, raw_sha256, raw_size, parse_error
                                           FROM communications WHERE parse_status = 'quarantined'""")
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    for uid, position, sha, size, error in rows:
        original = blobs.get(sha)
        print(f"{uid} at {position}: {error}\n  original {sha[:16]}… {size} bytes, retrieved and hash-checked: "
              f"{len(original)} bytes")
    if not rows:
        print("(none)")
    print("\nNext: `strongroom query \"SELECT ... FROM communications\"` and `strongroom search WORDS`;"
          " both take --format json|csv.")
