"""strongroom's own stages, each run in its own subprocess by measure.py.

    ingest   the mailbox to Kafka (parse, blobs, encode, produce), as `strongroom ingest email`
    archive  Kafka to Parquet + manifests, as `strongroom archive`, local or S3
    index    Kafka to OpenSearch, as `strongroom index`; OpenSearch's own CPU measured beside it
    e2e      ingest, archive and index at once on a fresh namespace, mailbox to searchable
    query    an audit query over the warehouse, with and without partition pruning

The sinks stop once they have taken every message of the corpus (not on an idle timer), so the
clock stops when the last file or bulk is durable. Ceilings live in ceilings.py.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from strongroom.bench.measure import Clock, Result, timed
from strongroom.config import Settings, load_settings


def bench_settings(config: str | None, namespace: str, storage: str) -> Settings:
    return load_settings(config, namespace=namespace, storage={"url": storage})


def ingest_stage(config: str | None, namespace: str, storage: str, mbox: str, messages: int, raw_bytes: int) -> Result:
    from producers.email import captures
    from producers.ingest import ingest

    settings = bench_settings(config, namespace, storage)

    def work() -> dict[str, Any]:
        summary = ingest(settings, "email", captures(mbox))
        return {"produced": summary.produced, "quarantined": summary.quarantined}

    return timed("ingest", messages, raw_bytes, work)


def _sink_stage(name: str, settings: Settings, sink, group: str, messages: int, **extra: Any) -> tuple[Result, Any]:
    """Run a sink until it has taken `messages` records and made them durable."""
    from consumers.runner import SinkRunner

    runner = SinkRunner(settings, sink, group)
    clock = Clock()
    seen = {"n": 0, "bytes": 0}
    add = sink.add

    def counted_add(message, dead_letters) -> None:
        clock.start()
        seen["n"] += 1
        seen["bytes"] += len(message.value() or b"")
        add(message, dead_letters)
        if seen["n"] >= messages:
            runner.stopping = True  # the runner then checkpoints every partition and returns

    sink.add = counted_add
    runner.run()
    clock.stop()
    return clock.result(name, seen["n"], seen["bytes"], **extra), runner


def _timing(obj, method: str, totals: dict[str, float], key: str) -> None:
    """Wrap obj.method to add its wall time to totals[key]."""
    inner = getattr(obj, method)

    def wrapped(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - started

    setattr(obj, method, wrapped)


def archive_stage(config: str | None, namespace: str, storage: str, group: str, messages: int, name: str) -> Result:
    from consumers.archiver import ParquetArchiver

    settings = bench_settings(config, namespace, storage)
    sink = ParquetArchiver(settings)
    parts: dict[str, float] = {}
    _timing(sink, "_decode_pending", parts, "decode_s")
    _timing(sink, "_write_files", parts, "write_files_s")  # encode + put, wall time
    _timing(sink, "flush", parts, "flush_s")
    result, _runner = _sink_stage(name, settings, sink, settings.group(group), messages)
    result.extra.update(parts, rows=sink.rows_written, files=sink.files_written)
    return result


def opensearch_process():
    """OpenSearch's JVM on this machine, if it runs here (for its CPU time); None otherwise."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if any("org.opensearch.bootstrap.OpenSearch" in part for part in proc.info["cmdline"] or []):
            return proc
    return None


def server_cpu(proc) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return times.user + times.system


def index_stage(config: str | None, namespace: str, storage: str, messages: int) -> Result:
    from consumers.indexer import OpenSearchIndexer

    settings = bench_settings(config, namespace, storage)
    sink = OpenSearchIndexer(settings)
    parts: dict[str, float] = {}
    _timing(sink, "_bulk", parts, "bulk_s")
    server = opensearch_process()
    before = server_cpu(server)
    result, _runner = _sink_stage("index", settings, sink, settings.group("indexer"), messages)
    result.extra.update(parts, indexed=sink.indexed, server_cpu_seconds=server_cpu(server) - before)
    return result


def e2e_stage(config: str | None, namespace: str, storage: str, mbox: str, messages: int, raw_bytes: int) -> Result:
    """Ingest, archive and index at once, each its own process: mailbox to archived and searchable."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from strongroom.bench.measure import run_stage

    common = {"config": config, "namespace": namespace, "storage": storage}
    started = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(run_stage, "archive", {**common, "group": "archiver", "messages": messages, "name": "archive"}),
                   pool.submit(run_stage, "index", {**common, "messages": messages}),
                   pool.submit(run_stage, "ingest", {**common, "mbox": mbox, "messages": messages, "raw_bytes": raw_bytes})]
        results = [f.result() for f in futures]
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Result("e2e", messages, raw_bytes, seconds, usage.ru_utime + usage.ru_stime,
                  max(r.peak_rss_mb for r in results), {r.name: round(r.seconds, 2) for r in results})


def query_stage(config: str | None, namespace: str, storage: str, day: str, repeats: int = 5) -> Result:
    """The same audit query over the whole email warehouse and over one day of it.

    Share is that day's part of the warehouse's bytes; the pruned query should cost about that
    share of the full scan (the goal allows twice). Each is run `repeats` times, median kept."""
    from consumers.query import connect
    from strongroom.storage import open_store

    settings = bench_settings(config, namespace, storage)
    store = open_store(settings.storage)
    prefix = f"{namespace}/warehouse/email/"
    sizes = {key: Path(store.uri(key)).stat().st_size for key in store.list(prefix) if key.endswith(".parquet")}
    total = sum(sizes.values())
    share = sum(size for key, size in sizes.items() if f"/date={day}/" in key) / total
    con = connect(settings)
    audit = ("SELECT sender.address AS sender, count(*) AS messages, sum(raw_size) AS bytes, "
             "count(*) FILTER (len(attachments) > 0) AS with_attachments "
             "FROM email_log {where} GROUP BY ALL ORDER BY messages DESC LIMIT 20")

    def median(sql: str) -> float:
        con.execute(sql).fetchall()  # warm: file metadata and the OS cache, like a second query
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    full = median(audit.format(where=""))
    pruned = median(audit.format(where=f"WHERE date = DATE '{day}'"))
    rows = con.execute("SELECT count(*) FROM email_log").fetchone()[0]
    return Result("query", rows, total, full, 0.0, 0.0,
                  {"full_s": full, "pruned_s": pruned, "share": share, "day": day, "files": len(sizes)})


def _ceiling(name: str):
    def call(**kwargs: Any) -> Result:
        from strongroom.bench import ceilings

        return getattr(ceilings, name)(**kwargs)
    return call


STAGES = {
    "ingest": ingest_stage,
    "archive": archive_stage,
    "index": index_stage,
    "e2e": e2e_stage,
    "query": query_stage,
    "parse": _ceiling("parse"),
    "ingest_parts": _ceiling("ingest_parts"),
    "produce": _ceiling("produce"),
    "consume": _ceiling("consume"),
    "decode": _ceiling("decode"),
    "parquet": _ceiling("parquet"),
    "bulk": _ceiling("bulk"),
}
