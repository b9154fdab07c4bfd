"""The peer: Quix Streams' FileSink archiving the same topic as Parquet, in a virtualenv of its own.

Its pins are not ours: the virtualenv lives in the cache (`<cache>/bench-quix-venv`) and gets
`quixstreams[avro,parquet]` from PyPI once. The script it runs is quix_peer.py.

Fairness: Quix reads our Confluent-framed Avro with its own AvroDeserializer (registry-aware,
fastavro to dicts) and writes Parquet with pyarrow from those dicts, the same work our archiver
does (decode every field, write typed columns, zstd), so both produce queryable Parquet of the
same records; a raw-bytes passthrough would compare an archive with a byte copy. It commits
offsets after its sink flushes, as ours does, but has no manifests, hash chain or dead letters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from strongroom.bench.corpus import cache_dir
from strongroom.bench.measure import Result
from strongroom.errors import StrongroomError

QUIX = "quixstreams[avro,parquet]==3.28.1"


def venv() -> Path:
    """The peer's interpreter, creating its virtualenv on first use."""
    folder = cache_dir() / "bench-quix-venv"
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    if marker.is_file() and marker.read_text() == QUIX:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", QUIX], capture_output=True, text=True)
    if done.returncode != 0:
        raise StrongroomError(f"cannot install {QUIX} into {folder}: "
                              f"{(done.stderr.strip().splitlines() or ['pip failed'])[-1]}")
    marker.write_text(QUIX)
    return python


def run_peer(settings, topic: str, group: str, out: Path, messages: int, nbytes: int) -> Result:
    from schemas import serde

    schema = out.parent / "communication.avsc"
    schema.parent.mkdir(parents=True, exist_ok=True)
    schema.write_text(serde.schema_text(), encoding="utf-8")
    args = {"broker": settings.kafka.bootstrap_servers, "registry": settings.registry.url, "topic": topic,
            "group": group, "out": str(out), "messages": messages, "bytes": nbytes, "schema": str(schema)}
    proc = subprocess.run([str(venv()), str(Path(__file__).with_name("quix_peer.py")), json.dumps(args)],
                          capture_output=True, text=True, timeout=900)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StrongroomError(f"the Quix Streams peer failed (exit {proc.returncode}): {tail}")
    return Result(**json.loads(lines[-1]))
