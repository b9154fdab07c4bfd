"""LocalStore: write-once creation, overwrite for control files, listing, and no escaping the root."""

from __future__ import annotations

import pytest

from strongroom.blobs import BlobStore
from strongroom.errors import IntegrityError, StorageError
from strongroom.storage import LocalStore


def test_put_new_writes_once(tmp_path):
    """The second put_new of a key returns False and leaves the first bytes in place."""
    store = LocalStore(tmp_path)
    assert store.put_new("a/b.bin", b"one") is True
    assert store.put_new("a/b.bin", b"two") is False
    assert store.get("a/b.bin") == b"one"
    store.put("a/b.bin", b"three")
    assert store.get("a/b.bin") == b"three"
    assert list(store.list("a")) == ["a/b.bin"]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".tmp-")]


def test_missing_object_and_escaping_key_are_storage_errors(tmp_path):
    """Reading a missing key or a key outside the root is a StorageError."""
    store = LocalStore(tmp_path)
    with pytest.raises(StorageError, match="does not exist"):
        store.get("nope")
    with pytest.raises(StorageError, match="escapes"):
        store.put_new("../outside", b"x")


def test_blob_store_is_content_addressed_and_detects_alteration(tmp_path):
    """A blob lives at its sha256; the same bytes twice are stored once; altered bytes are detected."""
    blobs = BlobStore(LocalStore(tmp_path), "ns")
    sha, new = blobs.put(b"hello")
    assert new and blobs.put(b"hello") == (sha, False)
    path = tmp_path / "ns" / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == b"hello"
    path.write_bytes(b"HELLO")
    with pytest.raises(IntegrityError):
        blobs.get(sha)


def test_put_new_many_creates_each_object_once(tmp_path):
    """A batch creates what is new, refuses what exists (content kept), and leaves no temporary file."""
    store = LocalStore(tmp_path)
    store.put_new("a/x", b"old")
    created = store.put_new_many([("a/x", b"new"), ("a/y", b"y"), ("b/z", b"z")])
    assert created == [False, True, True]
    assert store.get("a/x") == b"old" and store.get("a/y") == b"y" and store.get("b/z") == b"z"
    assert sorted(store.list("")) == ["a/x", "a/y", "b/z"]
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_blob_batch_writes_each_content_once(tmp_path):
    """The same bytes twice in one batch are one blob, reported new only the first time."""
    blobs = BlobStore(LocalStore(tmp_path), "ns")
    (sha, first), (_sha, second), (_other, third) = blobs.put_many([(b"mail", None), (b"mail", None), (b"pdf", None)])
    assert (first, second, third) == (True, False, True)
    assert blobs.get(sha) == b"mail"
    assert blobs.put_many([(b"mail", sha)]) == [(sha, False)]
