"""Purge records: the ledger of what retention removed from the warehouse, per (topic, partition).

The archive's manifests are never touched (their hash chain and the hash committed with each
offset stay valid). A retention run that rewrites files of a partition appends one purge record
`<ns>/purges/<topic>/<partition>/<seq:08d>.json` (written once) saying, for each file it
replaced: the manifest that named it (and that manifest's sha256), the old file's key, sha256 and
rows, the new file (or none when nothing was left), and every purged offset with its message and
rule. The records form a hash chain of their own. `verify` follows them: an archived file
superseded by a purge is checked as its replacement, and its purged offsets count as accounted for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from consumers.manifest import ArchivedFile
from strongroom.storage import ObjectStore


@dataclass(frozen=True)
class Replacement:
    manifest: str
    manifest_sha256: str
    old: ArchivedFile
    new: ArchivedFile | None
    purged: list[dict]  # {"offset", "message_uid", "rule"}


@dataclass(frozen=True)
class PurgeRecord:
    topic: str
    partition: int
    seq: int
    replacements: list[Replacement]
    as_of: str
    policy_sha256: str
    at: str
    who: str
    prev_sha256: str | None = None
    writer: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PurgeRecord":
        raw = json.loads(data)
        raw["replacements"] = [Replacement(**{**r, "old": ArchivedFile(**r["old"]),
                                              "new": ArchivedFile(**r["new"]) if r["new"] else None})
                               for r in raw["replacements"]]
        return cls(**raw)


class PurgeLog:
    """The purge records of one (topic, partition)."""

    def __init__(self, store: ObjectStore, namespace: str, topic: str, partition: int):
        self.store = store
        self.prefix = f"{namespace}/purges/{topic}/{partition}/"

    def key_for(self, seq: int) -> str:
        return f"{self.prefix}{seq:08d}.json"

    def records(self) -> list[tuple[str, bytes, PurgeRecord]]:
        # `_pending.json` is a retention run's in-flight marker, not a record.
        keys = sorted(k for k in self.store.list(self.prefix) if k.endswith(".json") and "/_" not in k[len(self.prefix) - 1:])
        out = []
        for key in keys:
            data = self.store.get(key)
            out.append((key, data, PurgeRecord.from_bytes(data)))
        return out

    def current_files(self, records=None) -> dict[str, tuple[ArchivedFile | None, list[dict]]]:
        """Original archived key -> (the file standing for it now, or None; every offset purged from it)."""
        state: dict[str, tuple[ArchivedFile | None, list[dict]]] = {}
        origin: dict[str, str] = {}  # current key -> original key
        for _key, _data, record in (self.records() if records is None else records):
            for rep in record.replacements:
                first = origin.pop(rep.old.key, rep.old.key)
                purged = state.get(first, (None, []))[1] + rep.purged
                state[first] = (rep.new, purged)
                if rep.new:
                    origin[rep.new.key] = first
        return state


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
