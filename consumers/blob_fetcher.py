"""Blobs for an export: fetched on a thread pool in bounded batches, each checked against its sha256.

A blob that is missing or whose bytes do not hash to its name is an IntegrityError naming what it
was for (a message's original, an attachment), never a silent skip. Only FETCH_BATCH blobs are in
memory at once.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator

from strongroom.blobs import BlobStore
from strongroom.errors import IntegrityError, StorageError
from strongroom.storage import ObjectStore

FETCH_BATCH = 64  # blobs in memory at once; a batch is fetched in parallel
FETCH_THREADS = 8


class BlobFetcher:
    """Fetches blobs by sha256 on a thread pool; a missing or altered blob is an IntegrityError naming `what`."""

    def __init__(self, store: ObjectStore, namespace: str):
        self.blobs = BlobStore(store, namespace)
        self.pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="export-blobs")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _one(self, sha256: str, what: str) -> bytes:
        key = self.blobs.key(sha256)
        try:
            data = self.blobs.store.get(key)
        except StorageError:
            if not self.blobs.store.exists(key):
                raise IntegrityError(f"{what}: blob {sha256} is missing from the blob store") from None
            raise
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"{what}: blob {sha256} does not match its sha256 (altered in the blob store)")
        return data

    def fetch(self, wanted: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[Any, bytes]]:
        """(sha256, what, tag) in -> (tag, verified bytes) out, in order, FETCH_BATCH at a time."""
        batch: list[tuple[str, str, Any]] = []
        for item in wanted:
            batch.append(item)
            if len(batch) == FETCH_BATCH:
                yield from self._batch(batch)
                batch = []
        yield from self._batch(batch)

    def _batch(self, batch: list[tuple[str, str, Any]]) -> Iterator[tuple[Any, bytes]]:
        futures = [self.pool.submit(self._one, sha, what) for sha, what, _tag in batch]
        for (_sha, _what, tag), future in zip(batch, futures):
            yield tag, future.result()
