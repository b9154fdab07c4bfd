"""Delivery under faults, on the real services: processes killed mid-batch, several archivers in one group.

Each test drives a known number of records and checks the end state exactly: every offset
archived once (verify complete), every message indexed once. Kill points come from a seeded
random generator, so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from consumers.lag import group_lag
from consumers.verify import Verifier
from producers.email import captures
from producers.ingest import ingest
from tests.services.test_pipeline import archive, count_docs, scalar, write_mbox

N = 240


def _env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM")}
    env.update(STRONGROOM_NAMESPACE=settings.namespace, STRONGROOM_STORAGE_URL=settings.storage.url,
               # Small batches, so a kill lands between and inside many flushes.
               STRONGROOM__ARCHIVER__MAX_ROWS="15", STRONGROOM__ARCHIVER__IDLE_SECONDS="0.5",
               STRONGROOM__OPENSEARCH__BULK_MAX_DOCS="15", STRONGROOM__INDEXER__IDLE_SECONDS="0.5")
    env.update(extra)
    return env


def _start(settings, command: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "strongroom.cli", command, *args], env=_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_repeatedly(settings, command: str, seed: int, kills: int = 6) -> None:
    rng = random.Random(seed)
    for _ in range(kills):
        proc = _start(settings, command, "--until-idle")
        time.sleep(rng.uniform(1.5, 4.0))  # start-up takes ~1.5 s: kills land while it consumes and flushes
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    final = _start(settings, command, "--until-idle")
    out, err = final.communicate(timeout=240)
    assert final.returncode == 0, err


@pytest.fixture
def backlog(settings, tmp_path):
    """N mails on the email topic (N-1 good, one quarantined)."""
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, N - 1)
    assert ingest(settings, "email", captures(mbox)).produced == N
    return settings


def test_archiver_killed_mid_batch_archives_every_offset_once(backlog):
    """SIGKILL at random points, restarted each time: every offset lands in exactly one file, verify complete."""
    _kill_repeatedly(backlog, "archive", seed=11)
    assert scalar(backlog, "SELECT count(*) FROM email_log") == N
    assert scalar(backlog, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM email_log") == N
    report = Verifier(backlog).run(check_index=False)
    assert report.complete, report.findings
    assert sum(p.rows for p in report.partitions) == N and sum(p.lag for p in report.partitions) == 0


def test_indexer_killed_mid_batch_indexes_every_message_once(backlog):
    """SIGKILL at random points, restarted each time: exactly N documents, the group caught up, verify complete."""
    _kill_repeatedly(backlog, "index", seed=23)
    assert count_docs(backlog) == N
    lag = [r for r in group_lag(backlog) if r.group == backlog.group("indexer") and r.topic == backlog.topic("email")]
    assert sum(r.lag for r in lag) == 0
    archive(backlog)  # so verify can hold the index against the warehouse
    report = Verifier(backlog).run()
    assert report.complete, report.findings


def test_three_archivers_share_the_work_and_archive_each_offset_once(settings, tmp_path):
    """Three archivers in one group, one killed and one added while records arrive: exact result, work spread."""
    procs = [_start(settings, "archive") for _ in range(3)]
    try:
        for wave in range(4):
            mbox = tmp_path / f"wave{wave}.mbox"
            write_mbox(mbox, 29)
            # Distinct Message-IDs per wave: each wave's mails are new messages (the broken one
            # is the same bytes every time: later waves record it as an arrival from a new mailbox).
            mbox.write_bytes(mbox.read_bytes().replace(b"@northwind.example>", f".w{wave}@northwind.example>".encode()))
            summary = ingest(settings, "email", captures(mbox))
            assert (summary.produced, summary.arrivals) == (30, 0 if wave == 0 else 1)
            if wave == 1:
                procs[0].send_signal(signal.SIGKILL)  # partitions move to the other two
            if wave == 2:
                procs.append(_start(settings, "archive"))  # and spread again
            time.sleep(2)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = [r for r in group_lag(settings) if r.group == settings.group("archiver") and r.topic == settings.topic("email")]
            if rows and sum(r.lag for r in rows) == 0:
                break
            time.sleep(1)
    finally:
        outputs = []
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            out, _err = proc.communicate(timeout=60)
            outputs.append(out)
    assert scalar(settings, "SELECT count(*) FROM email_log") == 120
    assert scalar(settings, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM email_log") == 120
    assert scalar(settings, "SELECT count(*) FROM email") == 117
    assert Verifier(settings).run(check_index=False).complete
    workers = [out for out in outputs if "wrote" in out and "wrote 0 rows" not in out]
    assert len(workers) >= 2, outputs


def _peak_rss_kb(proc: subprocess.Popen) -> int:
    """The process's peak resident memory (VmHWM), read until it exits."""
    peak = 0
    while proc.poll() is None:
        try:
            for line in open(f"/proc/{proc.pid}/status"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.05)
    return peak


def _backlog_of(settings, tmp_path, count: int) -> None:
    from email.message import EmailMessage

    body = ("Quarterly figures, line by line. " * 450)  # ~15 KB of text per record
    with open(tmp_path / f"big-{count}.mbox", "wb") as out:
        for i in range(count):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@northwind.example", "b@northwind.example", f"report {i}"
            msg["Message-ID"], msg["Date"] = f"<big-{count}-{i}@northwind.example>", "Mon, 02 Nov 2026 08:00:00 +0000"
            msg.set_content(body + str(i))
            out.write(b"From a@northwind.example Mon Nov  2 08:00:00 2026\n" + msg.as_bytes() + b"\n")
    assert ingest(settings, "email", captures(tmp_path / f"big-{count}.mbox")).produced == count


def test_memory_stays_bounded_whatever_the_backlog(settings, tmp_path, namespace):
    """Archiving a backlog 48x the batch limit peaks at about the memory of one half as large."""
    from strongroom.config import load_settings

    peaks = []
    for count in (2400, 4800):
        scoped = load_settings(environ={}, namespace=f"{namespace}m{count}", storage={"url": str(tmp_path / f"s{count}")})
        _backlog_of(scoped, tmp_path, count)
        proc = subprocess.Popen([sys.executable, "-m", "strongroom.cli", "archive", "--until-idle"],
                                env=_env(scoped, STRONGROOM__ARCHIVER__MAX_ROWS="100",
                                         STRONGROOM__ARCHIVER__IDLE_SECONDS="5"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peaks.append(_peak_rss_kb(proc))
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0 and f"wrote {count} rows" in out, err
    print("peak RSS kB", peaks)
    # 2x the records (~72 MB of bodies against ~36 MB) may not cost more than a quarter more memory:
    # what is held is bounded by the batch limits and the consumer's prefetch, not by the backlog.
    # (Measured 2026-12-04 with 15 KB records: 174, 188, ~215, 254 MB peak at 1.2k, 2.4k, 4.8k and
    # 9.6k records: still a slow growth, under investigation; below 2.4k the whole backlog fits in
    # the consumer's prefetch, so it is no fair baseline.)
    assert peaks[1] < peaks[0] * 1.25, peaks
