"""Operator tools on the real services: status, replay, and the dead-letter list and redrive."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from consumers import replay
from consumers.lag import group_lag
from consumers.redrive import read_all, redrive
from consumers.verify import Verifier
from producers.email import captures
from producers.ingest import ingest
from strongroom.errors import InputError
from tests.conftest import consume
from tests.services.test_pipeline import archive, count_docs, index, scalar, write_mbox


@pytest.fixture
def ingested(settings, tmp_path):
    """A namespace with 6 mails on the email topic, nothing consumed yet."""
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 5)
    ingest(settings, "email", captures(mbox))
    return settings


def test_status_shows_lag_per_group_and_partition(ingested):
    """Before archiving every record is lag; after, the archiver's lag is zero and its last write is shown."""
    settings = ingested
    before = {(r.group, r.topic): 0 for r in group_lag(settings)}
    for row in group_lag(settings):
        before[(row.group, row.topic)] += row.lag
    assert before[(settings.group("archiver"), settings.topic("email"))] == 6
    archive(settings)
    rows = [r for r in group_lag(settings) if r.group == settings.group("archiver") and r.topic == settings.topic("email")]
    assert sum(r.lag for r in rows) == 0 and sum(r.committed or 0 for r in rows) == 6
    assert all(r.last_write for r in rows if r.end > 0)
    indexer = [r for r in group_lag(settings) if r.group == settings.group("indexer") and r.topic == settings.topic("email")]
    assert sum(r.lag for r in indexer) == 6 and all(r.committed is None for r in indexer)


def test_replay_rereads_without_duplicating(ingested):
    """Moving both groups back to the beginning re-reads everything and changes no count; verify stays complete."""
    settings = ingested
    archive(settings)
    index(settings)
    for sink in ("archiver", "indexer"):
        group, topic, moves = replay.plan(settings, sink, "email", from_beginning=True)
        assert sum(m.rereads for m in moves) == 6
        replay.apply(settings, group, topic, moves)
    assert archive(settings).rows_written == 0
    assert index(settings).indexed == 6
    assert scalar(settings, "SELECT count(*) FROM email_log") == 6 and count_docs(settings) == 6
    assert Verifier(settings).run().complete


def test_replay_needs_exactly_one_starting_point(ingested):
    """A replay with no or two starting points is refused with a clear message."""
    with pytest.raises(InputError, match="exactly one"):
        replay.plan(ingested, "archiver", "email")
    with pytest.raises(InputError, match="exactly one"):
        replay.plan(ingested, "archiver", "email", from_beginning=True, from_offset=3)


def test_dead_letters_are_listed_and_redriven_once(ingested):
    """Poison records show in the DLQ with their origin; redrive sends each back once, marked, and not twice."""
    settings = ingested
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for i in range(2):
        producer.produce(settings.topic("email"), key=f"bad-{i}".encode(), value=b"garbage", partition=i)
    producer.flush(10)
    archive(settings)
    letters = read_all(settings)
    assert sorted(d.key for d in letters) == [b"bad-0", b"bad-1"]
    assert {d.header("strongroom.topic") for d in letters} == {settings.topic("email")}
    assert all("magic byte" in d.header("strongroom.error") for d in letters)
    assert redrive(settings, letters) == (2, 0)
    assert redrive(settings, letters) == (0, 2)
    back = [m for m in consume(settings, settings.topic("email"), "redrive-check", 10)
            if dict(m.headers() or []).get("strongroom.redriven-from")]
    assert sorted(m.key() for m in back) == [b"bad-0", b"bad-1"]


def test_archiver_serves_metrics_while_running(ingested):
    """A running archiver's /metrics counts what it consumed and archived, and /healthz says ok."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "STRONGROOM_NAMESPACE": ingested.namespace, "STRONGROOM_STORAGE_URL": ingested.storage.url,
           "STRONGROOM__ARCHIVER__IDLE_SECONDS": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "strongroom.cli", "--log-format", "json", "archive",
                             "--metrics-port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        text = ""
        for _ in range(60):
            time.sleep(0.5)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                continue
            if 'strongroom_records_out_total{sink="archiver"} 6.0' in text:
                break
        assert 'strongroom_records_out_total{sink="archiver"} 6.0' in text, text[-2000:]
        assert f'strongroom_records_in_total{{sink="archiver",topic="{ingested.topic("email")}"}} 6.0' in text
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read() == b"ok\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
