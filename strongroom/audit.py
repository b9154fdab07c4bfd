"""The audit trail: who looked at what, and who changed or deleted what, append-only and hash-chained.

One object per entry, `<ns>/audit/<seq:012d>.json`, written once (a conditional create), beside
the warehouse. Each entry holds seq, time, who, action, details (the arguments), results (how
many), the sha256 of the entry before it, and its own sha256 over all of that. Two writers at
once both try the next seq; the create lets one win and the other re-reads the head and takes
the next, so the chain never forks silently. `verify()` walks the chain and names the first
entry that was edited, removed, inserted or reordered.

Who is `retention.identity` when configured, else the OS user.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from strongroom.config import Settings
from strongroom.errors import IntegrityError, StorageError
from strongroom.storage import ObjectStore, open_store

RETRIES = 20


def who(settings: Settings) -> str:
    if settings.retention.identity:
        return settings.retention.identity
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        import os

        return f"uid:{os.getuid()}"


def _prefix(settings: Settings) -> str:
    return f"{settings.namespace}/audit/"


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _keys(store: ObjectStore, settings: Settings) -> list[str]:
    return sorted(k for k in store.list(_prefix(settings)) if k.endswith(".json"))


def record(settings: Settings, action: str, details: dict[str, Any], results: int | None) -> dict[str, Any]:
    """Append one entry; returns it. Raises StorageError if it cannot be written: an action that
    cannot be audited should not be reported as done."""
    store = open_store(settings.storage)
    for _ in range(RETRIES):
        keys = _keys(store, settings)
        prev = json.loads(store.get(keys[-1])) if keys else None
        entry = {"seq": (prev["seq"] + 1) if prev else 1,
                 "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                 "who": who(settings), "action": action, "what": details, "results": results,
                 "prev_hash": prev["hash"] if prev else None}
        entry["hash"] = _digest(entry)
        key = f"{_prefix(settings)}{entry['seq']:012d}.json"
        if store.put_new(key, json.dumps(entry, sort_keys=True, ensure_ascii=False, indent=1, default=str).encode()):
            return entry
    raise StorageError(f"audit log {_prefix(settings)}: {RETRIES} writers raced for the next entry; try again")


def entries(settings: Settings) -> list[dict[str, Any]]:
    store = open_store(settings.storage)
    return [json.loads(store.get(k)) for k in _keys(store, settings)]


def verify(settings: Settings) -> int:
    """Check the whole chain; returns the number of entries, or raises IntegrityError at the first bad one."""
    store = open_store(settings.storage)
    prev_hash = None
    keys = _keys(store, settings)
    for position, key in enumerate(keys, start=1):
        try:
            entry = json.loads(store.get(key))
        except ValueError as exc:
            raise IntegrityError(f"audit entry {key} is not valid JSON: it was edited") from exc
        name = f"audit entry {position} ({key})"
        if entry.get("seq") != position or not key.endswith(f"{position:012d}.json"):
            raise IntegrityError(f"{name}: has seq {entry.get('seq')}, expected {position}: "
                                 f"an entry before it was removed, or entries were reordered")
        if entry.get("hash") != _digest(entry):
            raise IntegrityError(f"{name}: its content does not match its hash: it was edited")
        if entry.get("prev_hash") != prev_hash:
            raise IntegrityError(f"{name}: its previous-entry hash does not match entry {position - 1}: "
                                 f"an entry was replaced or the chain reordered")
        prev_hash = entry["hash"]
    return len(keys)
