"""S3 Object Lock on the local SeaweedFS: archived files carry a retain-until date from the policy,
and the store itself refuses to delete them before it (GOVERNANCE mode, so the test can clean up)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from consumers.query import run_query
from producers.chat.jsonl import ChatJsonlSource
from producers.ingest import ingest
from strongroom.config import load_settings
from strongroom.errors import StorageError
from strongroom.storage import open_store
from tests.services.test_pipeline import archive
from tests.services.test_retention import strongroom


@pytest.fixture
def locked_settings(namespace, tmp_path):
    """A bucket of the test's own, created with Object Lock, and settings that use it."""
    store = open_store(load_settings(environ={}, storage={"url": "s3://strongroom/unused"}).storage)
    client, bucket = store.client, f"{namespace}-lock"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nkeep = "2d"\n')
    yield load_settings(environ={}, namespace=namespace,
                        storage={"url": f"s3://{bucket}/archive", "object_lock": True, "object_lock_mode": "GOVERNANCE"},
                        retention={"policy": str(policy)})
    listing = client.list_object_versions(Bucket=bucket)
    for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"],
                             BypassGovernanceRetention=True)
    client.delete_bucket(Bucket=bucket)


def test_archived_files_are_locked_until_their_first_message_expires(locked_settings, tmp_path):
    """Retain-until = earliest sent_at + 2 days; a delete before then, and a purge, are refused."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sent = [now - timedelta(hours=2), now - timedelta(hours=1)]
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"platform": "teams", "channel": "general", "message_id": i,
                                        "sent_at": when.isoformat(), "sender": "ana", "text": f"m{i}"}) + "\n"
                            for i, when in enumerate(sent)))
    settings = locked_settings.model_copy(update={"kafka": locked_settings.kafka.model_copy(update={"partitions": 1})})
    assert ingest(settings, "chat", iter(ChatJsonlSource(chat))).produced == 2
    archive(settings)
    store = open_store(settings.storage)
    files = [k for k in store.list(f"{settings.namespace}/warehouse/") if k.endswith(".parquet")]
    assert len(files) == 1 or {k.split("date=")[1][:10] for k in files} == {s.date().isoformat() for s in sent}
    first = min(f for f in files)
    head = store.client.head_object(Bucket=store.bucket, Key=store._key(first))
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] == min(s for s in sent
                                                    if s.date().isoformat() in first) + timedelta(days=2)

    with pytest.raises(StorageError, match="AccessDenied"):
        store.delete(first)
    assert store.exists(first)
    assert run_query(settings, "SELECT count(*) FROM chat")[1][0][0] == 2

    # A purge "as of" three days ahead: the policy says expired, the lock says not yet; nothing is purged.
    result = strongroom(settings, "retention", "apply", "--as-of", (now + timedelta(days=3)).isoformat(), "--yes",
                        env={"STRONGROOM__STORAGE__OBJECT_LOCK": "true", "STRONGROOM__STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE",
                             "STRONGROOM__RETENTION__POLICY": settings.retention.policy})
    assert result.returncode == 2
    assert "under S3 Object Lock until" in result.stderr and "nothing of" in result.stderr, result.stderr[-3000:]
    assert run_query(settings, "SELECT count(*) FROM chat")[1][0][0] == 2
