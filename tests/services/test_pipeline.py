"""The pipeline end to end on the real services: ingest, archive, index, query, search, replay.

Each test runs in a namespace of its own, with storage either in a local directory or on the
local S3 server (every test runs on both).
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from consumers.archiver import ParquetArchiver
from consumers.indexer import OpenSearchIndexer
from consumers.manifest import ManifestLog
from consumers.query import run_query
from consumers.runner import SinkRunner
from consumers.search import search
from producers.chat.slack import SlackExportSource
from producers.email import captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.clients import opensearch_client
from strongroom.storage import open_store
from tests.conftest import consume

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SLACK_MESSAGES = 13  # tests/fixtures/slack: 8 messages (10 events: one edit, one reaction) and 3 quarantined items
BROKEN = b"\x00\x01\x02 this is not a mail message \xff\xfe\n\n\x89PNG garbage\n"
PDF = b"%PDF-1.4\n% strongroom test attachment\n" + bytes(range(256))


def _message(i: int, when: datetime, reply_to: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Zoë Müller <Zoe.Mueller@Northwind.example>"
    msg["To"] = "ops@northwind.example, José Álvarez <jose@contoso.example>"
    msg["Cc"] = "audit@northwind.example"
    msg["Subject"] = f"Rapport trimestriel n°{i} — Grüße"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<msg-{i}@northwind.example>"
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(f"Body of message {i}: the figures are attached. Übersicht.\n")
    if i % 3 == 0:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"Bericht-{i}-Ü.pdf")
    return msg


def write_mbox(path: Path, count: int) -> list[EmailMessage]:
    """An mbox of `count` good messages (replies, attachments, non-ASCII) and one broken one."""
    start = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
    messages = [_message(i, start + timedelta(hours=7 * i), f"<msg-{i - 1}@northwind.example>" if i else None)
                for i in range(count)]
    with open(path, "wb") as out:
        for msg in messages:
            out.write(b"From zoe@northwind.example Mon Nov  2 08:00:00 2026\n")
            out.write(msg.as_bytes(policy=msg.policy.clone(linesep="\n")).replace(b"\nFrom ", b"\n>From "))
            out.write(b"\n")
        out.write(b"From MAILER-DAEMON Mon Nov  2 08:00:00 2026\n" + BROKEN + b"\n")
    return messages


@pytest.fixture(params=["local", "s3"])
def pipeline_settings(request, settings, s3_settings):
    return settings if request.param == "local" else s3_settings


def archive(settings, group: str = "archiver") -> ParquetArchiver:
    sink = ParquetArchiver(settings)
    SinkRunner(settings, sink, settings.group(group)).run(until_idle=True)
    return sink


def index(settings, group: str = "indexer") -> OpenSearchIndexer:
    sink = OpenSearchIndexer(settings)
    SinkRunner(settings, sink, settings.group(group)).run(until_idle=True)
    return sink


def count_docs(settings) -> int:
    client = opensearch_client(settings)
    client.indices.refresh(index=f"{settings.namespace}-*")
    return client.count(index=f"{settings.namespace}-*")["count"]


def scalar(settings, sql: str):
    return run_query(settings, sql)[1][0][0]


def test_mail_and_chat_end_to_end(pipeline_settings, tmp_path):
    """N mails + M chat messages become exactly N+M rows and documents, with values and originals intact."""
    settings = pipeline_settings
    n = 12
    mbox = tmp_path / "box.mbox"
    sent = write_mbox(mbox, n)
    mail = ingest(settings, "email", captures(mbox))
    chat = ingest(settings, "chat", iter(SlackExportSource(FIXTURES / "slack")))
    assert (mail.read, mail.produced, mail.quarantined, mail.failed) == (n + 1, n + 1, 1, 0)
    assert (chat.read, chat.produced, chat.failed) == (SLACK_MESSAGES, SLACK_MESSAGES, 0)

    archiver = archive(settings)
    assert archiver.rows_written == n + 1 + SLACK_MESSAGES
    assert scalar(settings, "SELECT count(*) FROM communications") == n + 1 + SLACK_MESSAGES
    assert scalar(settings, "SELECT count(*) FROM email") == n + 1
    assert scalar(settings, "SELECT count(*) FROM chat") == SLACK_MESSAGES
    assert index(settings).indexed == n + 1 + SLACK_MESSAGES
    assert count_docs(settings) == n + 1 + SLACK_MESSAGES

    cols, rows = run_query(settings, """SELECT subject, sender.address, sender.name, conversation_id,
        [r.address FOR r IN recipients IF r.role = 'to'] AS to_, [r.address FOR r IN recipients IF r.role = 'cc'] AS cc,
        attachments, raw_sha256 FROM email WHERE message_id = 'msg-3@northwind.example'""")
    subject, address, name, conversation, to, cc, attachments, raw_sha = rows[0]
    assert subject == "Rapport trimestriel n°3 — Grüße"
    assert (address, name) == ("zoe.mueller@northwind.example", "Zoë Müller")
    assert conversation == "msg-2@northwind.example"
    assert to == ["ops@northwind.example", "jose@contoso.example"] and cc == ["audit@northwind.example"]
    assert [(a["name"], a["sha256"], a["size"]) for a in attachments] == [
        ("Bericht-3-Ü.pdf", hashlib.sha256(PDF).hexdigest(), len(PDF))]
    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    assert blobs.get(hashlib.sha256(PDF).hexdigest()) == PDF
    original = blobs.get(raw_sha)
    assert b"Message-ID: <msg-3@northwind.example>" in original
    assert original.rstrip(b"\n") == sent[3].as_bytes(policy=sent[3].policy.clone(linesep="\n")).rstrip(b"\n")

    cols, rows = run_query(settings, "SELECT raw_sha256, parse_error FROM email WHERE parse_status = 'quarantined'")
    assert len(rows) == 1 and rows[0][1]
    assert blobs.get(rows[0][0]).startswith(BROKEN.rstrip(b"\n"))

    _, hits = search(settings, "Grüße", kind="chat")
    assert [h[4] for h in hits] == ["#general"]
    _, hits = search(settings, "trimestriel", participant="audit@northwind.example", limit=100)
    assert len(hits) == n


def test_replay_into_fresh_groups_adds_nothing(pipeline_settings, tmp_path):
    """Reading both topics again from the beginning in new consumer groups adds no rows and no documents."""
    settings = pipeline_settings
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 6)
    ingest(settings, "email", captures(mbox))
    ingest(settings, "chat", iter(SlackExportSource(FIXTURES / "slack")))
    archive(settings)
    index(settings)
    total = 7 + SLACK_MESSAGES
    assert scalar(settings, "SELECT count(*) FROM communications") == total
    assert count_docs(settings) == total

    replayed = archive(settings, group="archiver-replay")
    assert replayed.rows_written == 0
    assert scalar(settings, "SELECT count(*) FROM email_log") + scalar(settings, "SELECT count(*) FROM chat_log") == total
    assert index(settings, group="indexer-replay").indexed == total  # overwrites, by _id
    assert count_docs(settings) == total


def test_same_mailbox_twice_is_kept_once(pipeline_settings, tmp_path):
    """A second ingest of the same mailbox reports every message as a duplicate and archives nothing new."""
    settings = pipeline_settings
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 5)
    first = ingest(settings, "email", captures(mbox))
    second = ingest(settings, "email", captures(mbox), report_path=tmp_path / "report.jsonl")
    assert (first.produced, second.produced, second.duplicates) == (6, 0, 6)
    report = (tmp_path / "report.jsonl").read_text().splitlines()
    assert len(report) == 6 and all('"status": "duplicate"' in line for line in report)
    archive(settings)
    assert scalar(settings, "SELECT count(*) FROM email_log") == 6


def test_copy_from_another_mailbox_is_archived_once_and_recorded_as_an_arrival(pipeline_settings, tmp_path):
    """The same messages found in a second mailbox: no new message, one arrival each, with its source."""
    settings = pipeline_settings
    first_box, second_box = tmp_path / "alice.mbox", tmp_path / "bob.mbox"
    write_mbox(first_box, 4)
    second_box.write_bytes(first_box.read_bytes())
    first = ingest(settings, "email", captures(first_box))
    second = ingest(settings, "email", captures(second_box))
    again = ingest(settings, "email", captures(second_box))
    assert (first.produced, second.arrivals, second.duplicates) == (5, 5, 0)
    assert (again.produced, again.duplicates) == (0, 5)
    archive(settings)
    assert scalar(settings, "SELECT count(*) FROM email") == 5
    assert scalar(settings, "SELECT count(*) FROM email_log") == 10
    _cols, rows = run_query(settings, "SELECT source, count(*), count(DISTINCT message_uid), sum(repeated::INT) "
                                      "FROM arrivals GROUP BY source ORDER BY source")
    assert rows == [(str(first_box), 5, 5, 0), (str(second_box), 5, 5, 5)]
    assert index(settings).indexed == 5


def test_crash_between_files_and_manifest_leaves_no_trace(settings, tmp_path, monkeypatch):
    """An archiver that dies after writing files but before its manifest commits nothing; the rerun archives each offset once."""
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 9)
    ingest(settings, "email", captures(mbox))

    def crash(self, manifest):
        raise RuntimeError("simulated crash before the manifest")

    with monkeypatch.context() as patch:
        patch.setattr(ManifestLog, "append", crash)
        with pytest.raises(RuntimeError):
            archive(settings)
    store = open_store(settings.storage)
    orphans = [k for k in store.list(f"{settings.namespace}/warehouse/") if k.endswith(".parquet")]
    assert orphans  # files were written, but nothing was committed
    archive(settings)
    assert scalar(settings, "SELECT count(*) FROM email_log") == 10
    assert scalar(settings, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM email_log") == 10
    referenced = set()
    for partition in range(settings.kafka.partitions):
        log = ManifestLog(store, settings.namespace, settings.topic("email"), partition)
        for key in log.keys():
            from consumers.manifest import Manifest

            referenced.update(f.key for f in Manifest.from_bytes(store.get(key)).files)
    on_disk = {k for k in store.list(f"{settings.namespace}/warehouse/") if k.endswith(".parquet")}
    assert on_disk == referenced


def test_poison_records_go_to_the_dead_letter_topic(settings, tmp_path):
    """Undecodable bytes and an unknown schema id are dead-lettered with their origin; good records still land."""
    from confluent_kafka import Producer

    from strongroom.clients import ensure_topics

    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 3)
    ingest(settings, "email", captures(mbox))
    topic, _chat, dlq = ensure_topics(settings)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(topic, key=b"poison-1", value=b"not avro at all", partition=0)
    producer.produce(topic, key=b"poison-2", value=b"\x00\x7f\xff\xff\xf0" + b"\x02", partition=1)
    assert producer.flush(10) == 0

    archiver = archive(settings)
    assert archiver.rows_written == 4
    assert scalar(settings, "SELECT count(*) FROM email_log") == 4
    store = open_store(settings.storage)
    from consumers.manifest import Manifest

    dead = [(p, o) for p in range(settings.kafka.partitions)
            for key in ManifestLog(store, settings.namespace, topic, p).keys()
            for o in Manifest.from_bytes(store.get(key)).dead_lettered]
    assert len(dead) == 2

    letters = consume(settings, dlq, "dlq-reader", 2)
    found = sorted((m.key(), dict(m.headers())) for m in letters)
    assert [k for k, _ in found] == [b"poison-1", b"poison-2"]
    headers = found[0][1]
    assert headers["strongroom.topic"] == topic.encode() and headers["strongroom.sink"] == b"archiver"
    assert b"magic byte" in headers["strongroom.error"]
    assert b"not in the registry" in found[1][1]["strongroom.error"]
    assert sorted((int(h["strongroom.partition"]), int(h["strongroom.offset"])) for _, h in found) == sorted(dead)


def test_archiver_service_flushes_and_exits_cleanly_on_sigterm(settings, tmp_path):
    """`strongroom archive` as a long-lived service archives what arrives and, on SIGTERM, flushes, commits and exits 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "STRONGROOM_NAMESPACE": settings.namespace, "STRONGROOM_STORAGE_URL": settings.storage.url,
           "STRONGROOM__ARCHIVER__IDLE_SECONDS": "3600"}
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 4)
    ingest(settings, "email", captures(mbox))
    service = subprocess.Popen([sys.executable, "-m", "strongroom.cli", "archive"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # joins the group and buffers; the idle timer is an hour, so nothing is flushed yet
        assert service.poll() is None
        service.send_signal(signal.SIGTERM)
        out, err = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    assert "wrote 5 rows" in out
    assert scalar(settings, "SELECT count(*) FROM email_log") == 5
    from strongroom.clients import kafka_consumer
    from confluent_kafka import TopicPartition

    consumer = kafka_consumer(settings, settings.group("archiver"))
    committed = consumer.committed([TopicPartition(settings.topic("email"), p) for p in range(settings.kafka.partitions)],
                                   timeout=10)
    consumer.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 5


def test_topics_are_readable_by_the_confluent_deserializer(settings, tmp_path):
    """Records on the topics decode with confluent-kafka's own AvroDeserializer and registry, as Connect or Flink would."""
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from strongroom.clients import registry_client

    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 2)
    ingest(settings, "email", captures(mbox))
    deserialize = AvroDeserializer(registry_client(settings))
    values = []
    for msg in consume(settings, settings.topic("email"), "interop", 3):
        record = deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        assert msg.key().decode() == record["message_uid"]
        values.append(record)
    assert sorted(v["subject"] or "" for v in values) == ["", "Rapport trimestriel n°0 — Grüße", "Rapport trimestriel n°1 — Grüße"]
