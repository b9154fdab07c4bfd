"""S3: the local SeaweedFS server, through the same store the pipeline writes with."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from strongroom import storage
from strongroom.errors import StorageError
from strongroom.storage import S3Store


def test_put_get_list_and_write_once(s3_settings):
    """put_new creates an object once and refuses the second time; get and list see exactly it."""
    store = S3Store(s3_settings.storage)
    assert store.put_new("a/b/one.txt", b"first") is True
    assert store.put_new("a/b/one.txt", b"second") is False
    assert store.get("a/b/one.txt") == b"first"
    store.put_new("a/two.txt", b"2")
    assert sorted(store.list("a/")) == ["a/b/one.txt", "a/two.txt"]
    assert store.exists("a/two.txt") and not store.exists("a/none.txt")
    store.delete("a/two.txt")
    assert list(store.list("a/")) == ["a/b/one.txt"]


def test_multipart_upload_is_conditional_too(s3_settings, monkeypatch):
    """A large object goes up in parts; completing a second upload of the same key is refused."""
    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    store = S3Store(s3_settings.storage)
    data = os.urandom(11 * 1024 * 1024)
    assert store.put_new("big.bin", data) is True
    assert store.get("big.bin") == data
    assert store.put_new("big.bin", os.urandom(11 * 1024 * 1024)) is False
    assert store.get("big.bin") == data


def test_wrong_secret_is_refused(s3_settings):
    """A wrong secret key gets a StorageError, not data."""
    wrong = s3_settings.storage.model_copy(update={"s3_secret_key": SecretStr("not-the-secret")})
    with pytest.raises(StorageError, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        S3Store(wrong).put_new("x.txt", b"x")
