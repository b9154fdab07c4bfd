"""The audit trail on the real services: query, search, verify and hold changes are recorded with who
and how many; `audit-log --verify` names an edited, removed or reordered entry; concurrent writers
never fork the chain."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from producers.email import captures
from producers.ingest import ingest
from strongroom import audit
from strongroom.storage import open_store
from tests.services.test_pipeline import archive, index, write_mbox
from tests.services.test_retention import strongroom


@pytest.fixture
def archived(settings, tmp_path):
    mbox = tmp_path / "box.mbox"
    write_mbox(mbox, 4)
    ingest(settings, "email", captures(mbox))
    archive(settings)
    index(settings)
    return settings


def test_every_access_is_recorded(archived):
    """query, search, verify and a hold create each add one entry: who, what, how many results."""
    assert strongroom(archived, "query", "SELECT subject FROM email WHERE subject LIKE '%n°1%'").returncode == 0
    assert strongroom(archived, "search", "figures", "--kind", "email", "--limit", "3").returncode == 0
    assert strongroom(archived, "verify").returncode == 0
    assert strongroom(archived, "hold", "create", "case-1", "--custodian", "ops@northwind.example",
                      "--reason", "subpoena 42").returncode == 0
    result = strongroom(archived, "audit-log", "--format", "json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [(e["seq"], e["action"], e["results"]) for e in entries] == [
        (1, "query", 1), (2, "search", 3), (3, "verify", 0), (4, "hold.create", 4)]
    assert {e["who"] for e in entries} == {"officer@northwind.example"}
    assert entries[0]["what"] == {"sql": "SELECT subject FROM email WHERE subject LIKE '%n°1%'"}
    assert entries[1]["what"]["text"] == "figures" and entries[1]["what"]["kind"] == "email"
    assert entries[3]["what"]["reason"] == "subpoena 42"
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    verified = strongroom(archived, "audit-log", "--verify")
    assert verified.returncode == 0 and "4 entries" in verified.stdout


def _fill(settings, n: int) -> list[str]:
    for i in range(n):
        audit.record(settings, "query", {"sql": f"SELECT {i}"}, i)
    store = open_store(settings.storage)
    return sorted(store.list(f"{settings.namespace}/audit/"))


def test_edited_entry_is_named(settings):
    """Changing one entry's result count makes --verify exit 5 naming that entry."""
    keys = _fill(settings, 5)
    store = open_store(settings.storage)
    entry = json.loads(store.get(keys[2]))
    entry["results"] = 0 if entry["results"] else 1
    store.put(keys[2], json.dumps(entry).encode())
    result = strongroom(settings, "audit-log", "--verify")
    assert result.returncode == 5
    assert f"audit entry 3 ({keys[2]})" in result.stderr and "edited" in result.stderr


def test_removed_and_reordered_entries_are_named(settings):
    """Deleting an entry, or swapping two (renumbered to fit), breaks the chain at a named entry."""
    keys = _fill(settings, 4)
    store = open_store(settings.storage)
    store.delete(keys[1])
    result = strongroom(settings, "audit-log", "--verify")
    assert result.returncode == 5 and "audit entry 2" in result.stderr and "removed" in result.stderr

    other = settings.model_copy(update={"namespace": settings.namespace + "b"})
    keys = _fill(other, 4)
    a, b = json.loads(store.get(keys[1])), json.loads(store.get(keys[2]))
    a["seq"], b["seq"] = 3, 2  # a forger who renumbers must recompute the hash too
    for entry in (a, b):
        entry["hash"] = audit._digest(entry)
    store.put(keys[1], json.dumps(b).encode())
    store.put(keys[2], json.dumps(a).encode())
    result = strongroom(other, "audit-log", "--verify")
    assert result.returncode == 5 and "audit entry 2" in result.stderr and "previous-entry hash" in result.stderr


def test_concurrent_writers_never_fork_the_chain(s3_settings):
    """Four writers at once on S3: every entry lands with its own seq and the chain verifies."""
    def write(worker: int) -> None:
        for i in range(6):
            audit.record(s3_settings, "search", {"worker": worker, "i": i}, i)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    entries = audit.entries(s3_settings)
    assert [e["seq"] for e in entries] == list(range(1, 25))
    assert sorted((e["what"]["worker"], e["what"]["i"]) for e in entries) == [(w, i) for w in range(4) for i in range(6)]
    assert audit.verify(s3_settings) == 24
