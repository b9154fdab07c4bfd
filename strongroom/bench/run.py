"""One bench run, in order: ceilings and stages on a namespace of its own, the peer, then clean-up.

Order matters only where a stage reads what an earlier one wrote: ingest fills `<ns>.email`,
which consume, archive (local and S3), the peer and index all read from the start, each in a
consumer group of its own. The raw bulk uses a second namespace (same template), so the indexer
writes new documents rather than overwriting the ceiling's; end to end a third, fresh one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from strongroom.bench.corpus import cache_dir, corpus, read_records
from strongroom.bench.measure import Result, run_stage
from strongroom.bench.peer import run_peer
from strongroom.bench.report import ratios, render, write_json
from strongroom.config import Settings


def run_bench(settings: Settings, config: str | None, messages: int, json_path: Path, s3_url: str, keep: bool,
              say: Callable[[str], None] = print) -> dict[str, float]:
    from strongroom.clients import check_kafka
    from strongroom.registry import register_schemas

    check_kafka(settings)
    ns = f"bench{uuid.uuid4().hex[:8]}"
    work = cache_dir() / "bench" / "runs" / ns
    local = str(work / "storage")
    s3 = f"{s3_url.rstrip('/')}/{ns}"
    say(f"corpus: {messages:,} messages (generated once into {cache_dir() / 'bench'})")
    data = corpus(messages)
    avro_bytes = sum(map(len, read_records(data.records))) / messages
    load = os.getloadavg()[0]
    register_schemas(settings.model_copy(update={"namespace": ns}))
    base = {"config": config, "namespace": ns, "storage": local}
    mail = {"mbox": str(data.mbox), "messages": messages, "raw_bytes": data.raw_bytes}
    results: dict[str, Result] = {}

    def stage(key: str, stage_name: str, **args) -> Result:
        say(f"  {key} ...")
        results[key] = res = run_stage(stage_name, args)
        say(f"  {key}: {res.rate:,.0f} msgs/s")
        return res

    try:
        stage("parse", "parse", **mail)
        stage("ingest_parts", "ingest_parts", **{**base, "storage": str(work / "parts"), **mail})
        stage("ingest", "ingest", **base, **mail)
        stage("produce", "produce", **base, records=str(data.records), messages=messages)
        stage("consume", "consume", **base, messages=messages)
        stage("decode", "decode", records=str(data.records), messages=messages)
        stage("parquet_local", "parquet", **base, records=str(data.records), messages=messages, name="parquet_local")
        stage("parquet_s3", "parquet", **{**base, "storage": s3}, records=str(data.records), messages=messages,
              name="parquet_s3")
        stage("archive_local", "archive", **base, group="archiver", messages=messages, name="archive_local")
        stage("archive_s3", "archive", **{**base, "storage": s3}, group="archiver-s3", messages=messages,
              name="archive_s3")
        say("  quix ...")
        results["quix"] = run_peer(settings, f"{ns}.email", f"{ns}-quix", work / "quix", messages,
                                   results["consume"].bytes)
        say(f"  quix: {results['quix'].rate:,.0f} msgs/s")
        stage("bulk", "bulk", **{**base, "namespace": f"{ns}r"}, records=str(data.records), messages=messages)
        stage("index", "index", **base, messages=messages)
        stage("query", "query", **base, day=_busiest_day(work / "storage", ns))
        stage("e2e", "e2e", **{**base, "namespace": f"{ns}e", "storage": str(work / "e2e")}, **mail)
    finally:
        if not keep:
            cleanup(settings, [ns, f"{ns}r", f"{ns}e"], work, s3)
    values = ratios(results)
    meta = {"messages": messages, "average_bytes": data.average_bytes, "avro_bytes": avro_bytes,
            "cpus": os.cpu_count(), "load": load, "namespace": ns}
    say("")
    say(render(results, values, meta))
    write_json(json_path, results, values, meta)
    say(f"\nwrote {json_path}{'' if not keep else f'; kept namespace {ns} and {work}'}")
    return values


def _busiest_day(storage: Path, ns: str) -> str:
    """A day with files from every partition, the typical one-day audit."""
    days = sorted(p.name.split("=", 1)[1] for p in (storage / ns / "warehouse" / "email").glob("date=*"))
    return days[len(days) // 2]


def cleanup(settings: Settings, namespaces: list[str], work: Path, s3: str) -> None:
    """Topics, consumer groups, indices, templates, schema subjects, storage: all the run made."""
    from strongroom.clients import kafka_admin, opensearch_client, registry_client
    from strongroom.storage import open_store

    admin = kafka_admin(settings)
    topics = [t for t in admin.list_topics(timeout=10).topics if any(t.startswith(f"{n}.") for n in namespaces)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            _quietly(future.result)
    groups = [g.group_id for g in admin.list_consumer_groups().result().valid
              if any(g.group_id.startswith(f"{n}-") for n in namespaces)]
    if groups:
        for future in admin.delete_consumer_groups(groups).values():
            _quietly(future.result)
    client = opensearch_client(settings)
    for n in namespaces:
        _quietly(lambda: client.indices.delete(index=f"{n}-*", params={"ignore_unavailable": "true"}))
        _quietly(lambda: client.indices.delete_index_template(name=f"{n}-communications"))
    registry = registry_client(settings)
    for subject in _quietly(registry.get_subjects) or []:
        if any(subject.startswith(f"{n}.") for n in namespaces):
            _quietly(lambda: registry.delete_subject(subject, permanent=False))
    store = open_store(settings.storage.model_copy(update={"url": s3}))
    for key in list(store.list("")):
        store.delete(key)
    shutil.rmtree(work, ignore_errors=True)


def _quietly(call):
    """Clean-up does its best: something already gone is not a failure of the bench."""
    try:
        return call()
    except Exception:
        return None
