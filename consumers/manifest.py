"""Manifests: the archive's ledger of which Kafka offsets landed in which Parquet files.

One manifest per flush of one (topic, partition): the contiguous offset range it covers, the
files it wrote (key, rows, bytes, sha256), the offsets sent to the dead-letter topic instead,
and the sha256 of the previous manifest of that partition, so the manifests form a hash chain
that `verify` can walk to prove completeness and detect tampering.

Keys: `<ns>/manifests/<topic>/<partition>/<first_offset:020d>.json`; the zero padding makes the
lexicographic order the offset order, so the chain head is the last key listed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom.errors import IntegrityError
from strongroom.storage import ObjectStore

PENDING = "_pending.json"


@dataclass(frozen=True)
class ArchivedFile:
    key: str
    rows: int
    bytes: int
    sha256: str
    date: str


@dataclass(frozen=True)
class Manifest:
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int
    files: list[ArchivedFile]
    dead_lettered: list[int] = field(default_factory=list)
    prev_manifest_sha256: str | None = None
    created_at: str = ""
    writer: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        raw: dict[str, Any] = json.loads(data)
        raw["files"] = [ArchivedFile(**f) for f in raw["files"]]
        return cls(**raw)


class ManifestLog:
    """The chain of manifests of one (topic, partition) in one namespace."""

    def __init__(self, store: ObjectStore, namespace: str, topic: str, partition: int):
        self.store = store
        self.prefix = f"{namespace}/manifests/{topic}/{partition}/"

    def key_for(self, first: int) -> str:
        # Named by the first offset alone: two writers that both believe they own a partition
        # (a zombie after a rebalance) race for the same name, and the conditional create lets
        # exactly one of them extend the chain.
        return f"{self.prefix}{first:020d}.json"

    def keys(self) -> list[str]:
        return sorted(k for k in self.store.list(self.prefix) if not k.endswith(PENDING))

    def head(self) -> tuple[Manifest, str] | None:
        """The latest manifest and its sha256, or None for a partition never archived."""
        keys = self.keys()
        if not keys:
            return None
        data = self.store.get(keys[-1])
        return Manifest.from_bytes(data), hashlib.sha256(data).hexdigest()

    def append(self, manifest: Manifest) -> str:
        """Write once; a manifest already at that range means another writer got there first."""
        key = self.key_for(manifest.first_offset)
        if not self.store.put_new(key, manifest.to_bytes()):
            raise IntegrityError(f"manifest {key} already exists: another archiver wrote this range "
                                 f"(a partition owned twice); this flush is abandoned and will be re-read")
        return key

    # -- the in-flight marker that makes a crashed flush recoverable -------------------
    @property
    def pending_key(self) -> str:
        return self.prefix + PENDING

    def mark_pending(self, manifest_key: str, file_keys: list[str]) -> None:
        self.store.put(self.pending_key, json.dumps({"manifest": manifest_key, "files": file_keys}).encode())

    def clear_pending(self) -> None:
        self.store.delete(self.pending_key)

    def recover(self) -> list[str]:
        """Undo a flush that crashed before its manifest landed; returns the orphans removed."""
        if not self.store.exists(self.pending_key):
            return []
        pending = json.loads(self.store.get(self.pending_key))
        removed = []
        if not self.store.exists(pending["manifest"]):
            # Never referenced by a manifest, so never part of the archive: safe to remove.
            for key in pending["files"]:
                if self.store.exists(key):
                    self.store.delete(key)
                    removed.append(key)
        self.clear_pending()
        return removed
