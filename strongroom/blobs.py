"""The blob store: originals and attachments, content-addressed and written once.

Key: `<namespace>/blobs/sha256/ab/cd/<sha256>`. The same bytes always land on the same key, so
a second capture of a message or attachment costs one conditional put and stores nothing new.
"""

from __future__ import annotations

import hashlib

from strongroom.errors import IntegrityError
from strongroom.storage import ObjectStore


class BlobStore:
    def __init__(self, store: ObjectStore, namespace: str):
        self.store = store
        self.prefix = f"{namespace}/blobs/sha256"

    def key(self, sha256: str) -> str:
        return f"{self.prefix}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def put(self, data: bytes, sha256: str | None = None) -> tuple[str, bool]:
        """Store bytes; returns (sha256, newly_written)."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        return digest, self.store.put_new(self.key(digest), data)

    def put_many(self, items: list[tuple[bytes, str | None]]) -> list[tuple[str, bool]]:
        """Store many (bytes, sha256 or None) at once, all durable on return; (sha256, newly_written) each."""
        digests = [sha or hashlib.sha256(data).hexdigest() for data, sha in items]
        unique = {digest: data for digest, (data, _sha) in zip(digests, items)}  # one write per content
        created = dict(zip(unique, self.store.put_new_many([(self.key(d), data) for d, data in unique.items()])))
        seen: set[str] = set()
        out = []
        for digest in digests:
            out.append((digest, created[digest] and digest not in seen))
            seen.add(digest)
        return out

    def get(self, sha256: str) -> bytes:
        data = self.store.get(self.key(sha256))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"blob {sha256} does not match its hash: it was altered")
        return data
