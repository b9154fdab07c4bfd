"""`verify` says complete after a clean run, and names each kind of damage done by hand."""

from __future__ import annotations

import json

import pytest

from consumers.manifest import ManifestLog
from consumers.verify import Verifier
from producers.email import captures
from producers.ingest import ingest
from strongroom.storage import open_store
from tests.services.test_pipeline import archive, index, write_mbox


@pytest.fixture
def archived(settings, tmp_path):
    """A namespace with 8 mails archived and indexed."""
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 7)
    ingest(settings, "email", captures(mbox))
    archive(settings)
    index(settings)
    return settings


def problems(settings) -> list[tuple[str, str]]:
    return [(f.problem, f.where) for f in Verifier(settings).run().findings]


def _files(settings) -> list[str]:
    store = open_store(settings.storage)
    return sorted(k for k in store.list(f"{settings.namespace}/warehouse/") if k.endswith(".parquet"))


def test_clean_archive_is_complete(archived):
    """Every offset in a manifest, every file as recorded, the index in step: complete, no lag."""
    report = Verifier(archived).run()
    assert report.complete, report.findings
    email = [p for p in report.partitions if p.topic == archived.topic("email")]
    assert sum(p.rows for p in email) == 8 and sum(p.lag for p in email) == 0
    assert report.files_checked == len(_files(archived))


def test_altered_deleted_and_added_files_are_named(archived):
    """A changed file, a removed file and a file added by hand are each reported by name."""
    store = open_store(archived.storage)
    files = _files(archived)
    assert len(files) >= 3
    store.put(files[0], store.get(files[0]) + b"tampered")
    store.delete(files[1])
    store.put_new(files[2].replace(".parquet", "-copy.parquet"), store.get(files[2]))
    found = problems(archived)
    assert ("altered_file", files[0]) in found
    assert ("missing_file", files[1]) in found
    assert ("unreferenced_file", files[2].replace(".parquet", "-copy.parquet")) in found


def test_index_drift_is_reported(archived):
    """Documents missing from the hot index show as drift for their day."""
    from strongroom.clients import opensearch_client

    client = opensearch_client(archived)
    # The test distribution has no delete-by-query (reindex module): find the document, delete it.
    hit = client.search(index=f"{archived.namespace}-email-*",
                         body={"query": {"term": {"message_id": "msg-3@northwind.example"}}})["hits"]["hits"][0]
    client.delete(index=hit["_index"], id=hit["_id"], params={"refresh": "true"})
    assert problems(archived) == [("index_drift", "email 2026-11-03")]  # msg-3 was sent at 05:00 that day


def test_consistent_edit_of_the_newest_manifest_is_caught(archived):
    """Rewriting a file and its newest manifest to match still shows against the hash committed with the offset."""
    store = open_store(archived.storage)
    for partition in range(archived.kafka.partitions):
        log = ManifestLog(store, archived.namespace, archived.topic("email"), partition)
        if log.keys():
            break
    key = log.keys()[-1]
    manifest = json.loads(store.get(key))
    manifest["created_at"] = "2020-01-01T00:00:00+00:00"
    store.put(key, json.dumps(manifest, sort_keys=True, indent=1).encode())
    assert ("chain", f"{archived.topic('email')}[{partition}]") in problems(archived)
