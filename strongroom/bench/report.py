"""The bench's answer: one table of rates, the ratios (each key ends in `_ratio`) and the goals.

Absolute figures from a shared machine move from run to run; ratios of two things measured in
the same run on the same machine mostly do not, so the goals of the performance issue are
stated as ratios, each with the side it must stay on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from strongroom.bench.measure import Result

# name shown, what it measures
ROWS = [
    ("parse", "ceiling: Python email parse of the mailbox"),
    ("ingest_parts", "parts: parse_email + blobs + encode"),
    ("ingest", "strongroom ingest (mailbox -> Kafka)"),
    ("produce", "ceiling: produce pre-encoded values"),
    ("consume", "ceiling: consume, touch each value"),
    ("decode", "part: Avro -> Arrow (pyruhvro chunks)"),
    ("parquet_local", "ceiling: Parquet write, local dir"),
    ("parquet_s3", "ceiling: Parquet write, S3"),
    ("archive_local", "strongroom archive, local dir"),
    ("archive_s3", "strongroom archive, S3"),
    ("quix", "peer: Quix Streams FileSink (Parquet)"),
    ("bulk", "ceiling: OpenSearch bulk of prebuilt NDJSON"),
    ("index", "strongroom index (Kafka -> OpenSearch)"),
    ("e2e", "end to end: ingest + archive + index at once"),
]

# ratio key: (goal, True if the ratio must be at least the goal, False if at most)
GOALS: dict[str, tuple[float, bool]] = {
    "archive_vs_quix_ratio": (3.0, True),
    "archive_vs_raw_consume_ratio": (0.45, True),
    "archive_vs_parts_ratio": (0.8, True),
    "parquet_vs_raw_parquet_ratio": (0.85, True),
    "archive_s3_vs_local_ratio": (0.8, True),
    "index_vs_raw_bulk_ratio": (0.7, True),
    "index_client_vs_server_cpu_ratio": (0.15, False),
    "index_vs_parts_ratio": (0.8, True),
    "ingest_vs_parse_ratio": (0.5, True),
    "ingest_vs_parts_ratio": (0.8, True),
    "query_pruned_vs_share_ratio": (2.0, False),
}


def _per_msg(result: Result) -> float:
    return result.seconds / result.messages


def _predicted(*seconds_per_message: float) -> float:
    """The rate a stage would reach if it cost exactly the sum of its parts, nothing more."""
    return 1.0 / sum(seconds_per_message)


def ratios(r: dict[str, Result]) -> dict[str, float]:
    out: dict[str, float] = {}
    arch, arch_s3 = r["archive_local"], r["archive_s3"]
    out["archive_vs_quix_ratio"] = arch.rate / r["quix"].rate
    out["archive_vs_raw_consume_ratio"] = arch.rate / r["consume"].rate
    out["archive_vs_parts_ratio"] = arch.rate / _predicted(_per_msg(r["consume"]), _per_msg(r["decode"]),
                                                           _per_msg(r["parquet_local"]))
    out["parquet_vs_raw_parquet_ratio"] = (arch.extra["rows"] / arch.extra["write_files_s"]) / r["parquet_local"].rate
    out["archive_s3_vs_local_ratio"] = arch_s3.rate / arch.rate
    out["parquet_s3_vs_raw_parquet_s3_ratio"] = (arch_s3.extra["rows"] / arch_s3.extra["write_files_s"]) / r["parquet_s3"].rate
    out["raw_parquet_s3_vs_local_ratio"] = r["parquet_s3"].rate / r["parquet_local"].rate
    index, bulk = r["index"], r["bulk"]
    out["index_vs_raw_bulk_ratio"] = index.rate / bulk.rate
    if index.extra.get("server_cpu_seconds"):
        out["index_client_vs_server_cpu_ratio"] = index.cpu_seconds / index.extra["server_cpu_seconds"]
    if bulk.extra.get("server_cpu_seconds"):
        out["raw_bulk_client_vs_server_cpu_ratio"] = bulk.cpu_seconds / bulk.extra["server_cpu_seconds"]
    client_us = r["decode"].extra["fastavro_us"] + r["decode"].extra["document_us"]
    out["index_vs_parts_ratio"] = index.rate / _predicted(_per_msg(r["consume"]), client_us / 1e6, _per_msg(bulk))
    out["ingest_vs_parse_ratio"] = r["ingest"].rate / r["parse"].rate
    parts = r["ingest_parts"].extra
    ingest_us = parts["parse_us"] + parts["blobs_us"] + parts["encode_us"]
    out["ingest_vs_parts_ratio"] = r["ingest"].rate / _predicted(ingest_us / 1e6, _per_msg(r["produce"]))
    out["e2e_vs_slowest_stage_ratio"] = r["e2e"].rate / min(r["ingest"].rate, arch.rate, index.rate)
    query = r["query"].extra
    out["query_pruned_vs_share_ratio"] = query["pruned_s"] / (query["share"] * query["full_s"])
    return out


def goal_lines(values: dict[str, float]) -> list[str]:
    lines = []
    for key, value in values.items():
        if key in GOALS:
            goal, at_least = GOALS[key]
            met = value >= goal if at_least else value <= goal
            lines.append(f"  {key:<38} {value:8.2f}   goal {'>=' if at_least else '<='} {goal:<5}  "
                         f"{'met' if met else 'MISSED'}")
        else:
            lines.append(f"  {key:<38} {value:8.2f}   (for reading the others)")
    return lines


def table(results: dict[str, Result]) -> str:
    head = f"{'stage':<15} {'what':<46} {'msgs/s':>9} {'MB/s':>7} {'CPU s/1k':>9} {'peak RSS MB':>11}"
    lines = [head, "-" * len(head)]
    for name, what in ROWS:
        if name not in results:
            continue
        res = results[name]
        rss = f"{res.peak_rss_mb:.0f}" if res.peak_rss_mb else "-"
        lines.append(f"{name:<15} {what:<46} {res.rate:>9,.0f} {res.mb_per_s:>7.1f} {res.cpu_per_1k:>9.3f} {rss:>11}")
    return "\n".join(lines)


def render(results: dict[str, Result], values: dict[str, float], meta: dict[str, Any]) -> str:
    q = results["query"].extra
    return "\n".join([
        f"strongroom bench: {meta['messages']:,} messages, {meta['average_bytes']:.0f} bytes average raw "
        f"({meta['avro_bytes']:.0f} as Avro), {meta['cpus']} CPUs, load {meta['load']:.1f} at start",
        "",
        table(results),
        "",
        f"query over {q['files']} files: full scan {q['full_s'] * 1000:.1f} ms, one day ({q['day']}, "
        f"{q['share']:.1%} of the bytes) {q['pruned_s'] * 1000:.1f} ms",
        f"OpenSearch CPU: {results['index'].extra.get('server_cpu_seconds', 0):.1f} s during index, "
        f"{results['bulk'].extra.get('server_cpu_seconds', 0):.1f} s during raw bulk",
        "",
        "ratios (same run):",
        *goal_lines(values),
    ])


def write_json(path: Path, results: dict[str, Result], values: dict[str, float], meta: dict[str, Any]) -> None:
    goals = {}
    for key, (goal, at_least) in GOALS.items():
        if key in values:
            goals[key] = {"goal": goal, "at_least": at_least,
                          "met": values[key] >= goal if at_least else values[key] <= goal}
    data = {"meta": meta,
            "results": {name: {**asdict(res), "messages_per_s": res.rate, "mb_per_s": res.mb_per_s,
                               "cpu_s_per_1k": res.cpu_per_1k} for name, res in results.items()},
            **{key: round(value, 4) for key, value in values.items()},
            "goals": goals}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
