"""Services going down under a running pipeline: nothing lost, nothing duplicated.

This file sorts after tests/services on purpose: it stops and starts the services the others use
(through infra/local), and always brings them back up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from consumers.lag import group_lag
from consumers.verify import Verifier
from tests.conftest import REPO
from tests.services.test_pipeline import count_docs, scalar, write_mbox
from tests.services.test_faults import _env

BIG = 3000  # large enough that the broker stops while the ingest is still producing


def _stack(action: str, service: str) -> None:
    result = subprocess.run([str(REPO / "infra" / "local" / action), service], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def restore():
    """Whatever a test stops is started again, even when the test fails."""
    stopped: list[str] = []
    yield stopped
    for service in stopped:
        _stack("up", service)


def _cli(settings, *args: str, storage: str | None = None, **env: str) -> subprocess.Popen:
    environment = _env(settings, **env)
    if storage:
        environment["STRONGROOM_STORAGE_URL"] = storage
    return subprocess.Popen([sys.executable, "-m", "strongroom.cli", *args], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_caught_up(settings, sink: str, total: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = [r for r in group_lag(settings) if r.group == settings.group(sink) and r.topic == settings.topic("email")]
        if sum(r.committed or 0 for r in rows) == total:
            return
        time.sleep(1)
    raise AssertionError(f"{sink} did not catch up to {total} within {seconds}s")


def _stop(proc: subprocess.Popen) -> str:
    assert proc.poll() is None, proc.communicate()[1]  # still alive: it waited out the outage
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def _ingest(settings, tmp_path, name: str, count: int, storage: str | None = None) -> None:
    mbox = tmp_path / f"{name}.mbox"
    write_mbox(mbox, count - 1)
    mbox.write_bytes(mbox.read_bytes().replace(b"@northwind.example>", f".{name}@northwind.example>".encode())
                     .replace(b"not a mail message", f"not a mail message {name}".encode()))
    proc = _cli(settings, "ingest", "email", str(mbox), storage=storage)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"produced {count}," in out, out + err


def test_opensearch_down_for_a_minute(settings, tmp_path, restore, services):
    """The indexer pauses and resumes by itself; the archiver never notices; the end counts are exact."""
    _ingest(settings, tmp_path, "before", 40)
    archiver, indexer = _cli(settings, "archive"), _cli(settings, "index")
    _wait_caught_up(settings, "indexer", 40)
    _stack("down", "opensearch")
    restore.append("opensearch")
    down_at = time.monotonic()
    _ingest(settings, tmp_path, "during", 40)
    _wait_caught_up(settings, "archiver", 80)  # archiving goes on while the index is down
    time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
    _stack("up", "opensearch")
    restore.remove("opensearch")
    _wait_caught_up(settings, "indexer", 80)
    _stop(indexer), _stop(archiver)
    assert count_docs(settings) == 80
    assert scalar(settings, "SELECT count(*) FROM email_log") == 80
    assert Verifier(settings).run().complete


def test_object_store_down_while_archiving(s3_settings, tmp_path, restore, services):
    """With S3 stopped mid-run the archiver retries with backoff and commits nothing until files are durable."""
    settings = s3_settings
    archiver = _cli(settings, "archive")
    _ingest(settings, tmp_path, "warmup", 10, storage=str(tmp_path / "blobs"))
    _wait_caught_up(settings, "archiver", 10)
    _stack("down", "s3")
    restore.append("s3")
    _ingest(settings, tmp_path, "outage", 50, storage=str(tmp_path / "blobs"))  # blobs elsewhere: S3 is down
    time.sleep(12)
    rows = [r for r in group_lag(settings) if r.group == settings.group("archiver") and r.topic == settings.topic("email")]
    assert sum(r.committed or 0 for r in rows) == 10  # nothing committed while the store is down
    _stack("up", "s3")
    restore.remove("s3")
    _wait_caught_up(settings, "archiver", 60)
    _stop(archiver)
    assert scalar(settings, "SELECT count(*) FROM email_log") == 60
    assert Verifier(settings).run(check_index=False).complete


def test_broker_restarted_under_producer_and_consumer(settings, tmp_path, restore, services):
    """Kafka stopped and started while an ingest and the archiver run: every record acknowledged and archived once."""
    archiver = _cli(settings, "archive")
    _ingest(settings, tmp_path, "first", 30)
    mbox, report = tmp_path / "big.mbox", tmp_path / "report.jsonl"
    write_mbox(mbox, BIG - 1)
    mbox.write_bytes(mbox.read_bytes().replace(b"@northwind.example>", b".big@northwind.example>")
                     .replace(b"not a mail message", b"not a mail message big"))
    ingest = _cli(settings, "ingest", "email", str(mbox), "--report", str(report))
    # Stop the broker only once records are being acknowledged, so it goes down mid-ingest.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (report.exists() and report.stat().st_size > 0):
        time.sleep(0.05)
    assert ingest.poll() is None, "the ingest finished before the broker could be stopped"
    _stack("down", "kafka")
    restore.append("kafka")
    time.sleep(5)
    _stack("up", "kafka")
    restore.remove("kafka")
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0 and "failed 0" in out, out + err
    _wait_caught_up(settings, "archiver", 30 + BIG)
    _stop(archiver)
    assert scalar(settings, "SELECT count(*) FROM email_log") == 30 + BIG
    assert scalar(settings, "SELECT count(DISTINCT message_uid) FROM email") == 30 + BIG
    assert Verifier(settings).run(check_index=False).complete
