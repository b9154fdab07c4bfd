"""Object storage: a local directory (embedded default) or any S3 endpoint, written once.

Archived objects (blobs, Parquet files, manifests) are created with `put_new`, which never
replaces an existing object: on S3 a conditional put (`If-None-Match: *`), locally a hard link
from a fully written, fsynced temporary file (link fails if the name exists). Retries of the same
write therefore cannot clobber what is already archived. `put` (overwrite) is only for control
files such as an in-flight flush marker.

With `storage.object_lock` on an S3 bucket created with Object Lock, `put_new(..., retain_until=)`
stores the object with that retain-until date (mode `storage.object_lock_mode`), and deletes
remove every version of a key, so the store itself refuses a deletion before that date (a plain
delete on a versioned bucket would only hide the object behind a delete marker). A local
directory has no such lock: `retain_until` is accepted and ignored there.

`put_new_many` creates many small objects (ingest's blobs) with the same guarantees at a fraction
of the cost: locally, every temporary file is written, one `syncfs` makes them all durable, the
names are linked, and a second `syncfs` makes the names durable (on ext4 each fsync is a journal
commit, ~5 ms here; two syncfs per batch replace two fsyncs per object); on S3, concurrent puts.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator, Protocol

from strongroom.config import StorageSettings
from strongroom.errors import ConfigError, StorageError

# Above this size S3 writes go multipart (parts of this size), still conditional on completion.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
S3_PUT_THREADS = 8  # concurrent puts of put_new_many


def _syncfs():
    """libc's syncfs(fd) (Linux), or None where there is none."""
    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    return call


_SYNCFS = _syncfs()


class ObjectStore(Protocol):
    def put_new(self, key: str, data: bytes, retain_until: datetime | None = None) -> bool: ...
    def put_new_many(self, items: list[tuple[str, bytes]],
                     locks: dict[str, datetime] | None = None) -> list[bool]: ...
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_many(self, keys: list[str]) -> None: ...
    def locked_until(self, key: str) -> datetime | None: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def uri(self, key: str) -> str: ...


class LocalStore:
    """A directory tree; durable writes (fsync of file and directory) and atomic create."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StorageError(f"object key {key!r} escapes the storage root")
        return path

    def _write_temp(self, path: Path, data: bytes, sync: bool = True) -> str:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            return tmp
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc

    @staticmethod
    def _sync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_new(self, key: str, data: bytes, retain_until: datetime | None = None) -> bool:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
        finally:
            os.unlink(tmp)
        self._sync_dir(path.parent)
        return True

    def put_new_many(self, items: list[tuple[str, bytes]],
                     locks: dict[str, datetime] | None = None) -> list[bool]:
        """put_new for each item; every object is durable when this returns (a local directory
        has no retention lock: `locks` is accepted and ignored, as in put_new)."""
        if _SYNCFS is None or len(items) < 2:
            return [self.put_new(key, data) for key, data in items]
        paths = [self._path(key) for key, _data in items]
        temps: list[str] = []
        try:
            for path, (_key, data) in zip(paths, items):
                temps.append(self._write_temp(path, data, sync=False))
            self._sync_fs()  # 1. the contents, before any name points at them
            created = []
            for path, tmp in zip(paths, temps):
                try:
                    os.link(tmp, path)
                    created.append(True)
                except FileExistsError:
                    created.append(False)
                except OSError as exc:
                    raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
        finally:
            for tmp in temps:
                os.unlink(tmp)
        self._sync_fs()  # 2. the names
        return created

    def _sync_fs(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise StorageError(f"cannot sync {self.root}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        os.replace(tmp, path)
        self._sync_dir(path.parent)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"object {key} does not exist in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            self.delete(key)

    def locked_until(self, key: str) -> datetime | None:
        return None  # a directory has no retention lock

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(".tmp-"):
                    yield str(Path(dirpath, name).relative_to(self.root))

    def uri(self, key: str) -> str:
        return str(self.root / key)


class S3Store:
    """An S3 bucket (any endpoint) through boto3; `put_new` is a conditional put."""

    def __init__(self, settings: StorageSettings):
        import boto3
        from botocore.config import Config

        bucket, _, prefix = settings.url[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f"storage url {settings.url!r} names no bucket (s3://bucket/prefix)")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.settings = settings
        self.client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint, region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """The one boundary where boto's errors become StorageErrors naming the object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 {action} s3://{self.bucket}/{self._key(key)} at {self.settings.s3_endpoint} "
                               f"failed: {_s3_reason(exc)}") from exc

    def _lock_args(self, retain_until: datetime | None) -> dict:
        if not self.settings.object_lock or retain_until is None:
            return {}
        return {"ObjectLockMode": self.settings.object_lock_mode, "ObjectLockRetainUntilDate": retain_until}

    def put_new(self, key: str, data: bytes, retain_until: datetime | None = None) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("put", key):
            try:
                if len(data) > MULTIPART_THRESHOLD:
                    self._multipart_new(key, data, self._lock_args(retain_until))
                else:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*",
                                           **self._lock_args(retain_until))
            except ClientError as exc:
                if _s3_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                    return False
                raise
        return True

    def put_new_many(self, items: list[tuple[str, bytes]],
                     locks: dict[str, datetime] | None = None) -> list[bool]:
        """put_new for each item, several at a time (each put is a round trip); `locks` gives
        some keys a retain-until date."""
        locks = locks or {}
        if len(items) < 2:
            return [self.put_new(key, data, locks.get(key)) for key, data in items]
        with ThreadPoolExecutor(min(S3_PUT_THREADS, len(items))) as pool:
            futures = [pool.submit(self.put_new, key, data, locks.get(key)) for key, data in items]
        return [future.result() for future in futures]


    def _multipart_new(self, key: str, data: bytes, lock: dict) -> None:
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key), **lock)
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), MULTIPART_THRESHOLD), start=1):
                part = self.client.upload_part(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                                               PartNumber=number, Body=data[start:start + MULTIPART_THRESHOLD])
                parts.append({"ETag": part["ETag"], "PartNumber": number})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except Exception:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            raise

    def put(self, key: str, data: bytes) -> None:
        with self._translated("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        with self._translated("get", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("head", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if _s3_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                    return False
                raise
        return True

    def delete(self, key: str) -> None:
        if self.settings.object_lock:
            self.delete_many([key])
            return
        with self._translated("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_many(self, keys: list[str]) -> None:
        """Batches of up to 1000 keys per request; under Object Lock every version of each key."""
        targets: list[dict] = []
        for key in keys:
            if not self.settings.object_lock:
                targets.append({"Key": self._key(key)})
                continue
            with self._translated("list versions of", key):
                listing = self.client.list_object_versions(Bucket=self.bucket, Prefix=self._key(key))
            targets.extend({"Key": v["Key"], "VersionId": v["VersionId"]}
                           for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])
                           if v["Key"] == self._key(key))
        for start in range(0, len(targets), 1000):
            batch = targets[start:start + 1000]
            with self._translated("delete", batch[0]["Key"][len(self.prefix) + 1 if self.prefix else 0:]):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(f"S3 delete s3://{self.bucket}/{first['Key']} at {self.settings.s3_endpoint} "
                                   f"refused: {first.get('Code')}: {first.get('Message', '')} "
                                   f"({len(errors)} of {len(batch)} objects refused)")

    def locked_until(self, key: str) -> datetime | None:
        """The Object Lock retain-until date of the key's current version, if that is still ahead."""
        from datetime import timezone

        if not self.settings.object_lock:
            return None
        with self._translated("head", key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        until = head.get("ObjectLockRetainUntilDate")
        return until if until and until > datetime.now(timezone.utc) else None

    def list(self, prefix: str) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._translated("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def _s3_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _s3_reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code')}: {error.get('Message', '')}".strip(": ")
    return str(exc).splitlines()[0]


def open_store(settings: StorageSettings) -> ObjectStore:
    if settings.is_s3:
        return S3Store(settings)
    if "://" in settings.url:
        raise ConfigError(f"storage url {settings.url!r}: use a local path or s3://bucket/prefix")
    return LocalStore(settings.url)
