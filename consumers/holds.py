"""Legal holds: named cases whose messages are never purged, whatever their retention.

A hold names custodians (addresses or user ids, matched as sender, any recipient, or the
mailbox a copy was taken from), an optional date range (UTC days, inclusive) and an optional
SQL query returning `message_uid`s. Every change is a new, write-once version at
`<ns>/holds/<name>/<version:06d>.json` carrying who, when and why and the sha256 of the version
before, so a hold's history cannot be rewritten quietly; the newest version is its state.

`case_selection` turns a hold into SQL over the warehouse views (consumers/query.py); retention
keeps every message it selects while the hold is active, and export produces a case from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone

from consumers.policy import quote
from strongroom.config import Settings
from strongroom.errors import InputError
from strongroom.storage import ObjectStore, open_store

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Every row, arrival copies included: a copy in a custodian's mailbox is theirs too.
ALL_ROWS = "(SELECT * FROM email_log UNION ALL BY NAME SELECT * FROM chat_log)"


@dataclass(frozen=True)
class Hold:
    name: str
    version: int
    state: str  # active | released
    custodians: list[str]
    since: str | None
    until: str | None
    query: str | None
    reason: str
    who: str
    at: str
    prev_sha256: str | None = None
    created_by: str = ""
    created_at: str = ""
    history: list[dict] = field(default_factory=list, compare=False)

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data.pop("history")
        return json.dumps(data, sort_keys=True, indent=1).encode()


def _prefix(settings: Settings, name: str = "") -> str:
    return f"{settings.namespace}/holds/{name + '/' if name else ''}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(f"hold name {name!r}: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
    return name


def parse_day(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise InputError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from exc


def _versions(store: ObjectStore, settings: Settings, name: str) -> list[tuple[str, bytes]]:
    keys = sorted(k for k in store.list(_prefix(settings, name)) if k.endswith(".json"))
    return [(k, store.get(k)) for k in keys]


def get(settings: Settings, name: str, store: ObjectStore | None = None) -> Hold:
    store = store or open_store(settings.storage)
    versions = _versions(store, settings, check_name(name))
    if not versions:
        raise InputError(f"no hold named {name!r} (see `strongroom hold list`)")
    raw = json.loads(versions[-1][1])
    history = [{k: v for k, v in json.loads(d).items() if k in ("version", "state", "reason", "who", "at")}
               for _k, d in versions]
    return Hold(**raw, history=history)


def all_holds(settings: Settings) -> list[Hold]:
    store = open_store(settings.storage)
    names = sorted({k[len(_prefix(settings)):].split("/", 1)[0] for k in store.list(_prefix(settings))})
    return [get(settings, n, store) for n in names]


def _write(settings: Settings, store: ObjectStore, hold: Hold, prev: bytes | None) -> Hold:
    hold = Hold(**{**asdict(hold), "history": [],
                   "prev_sha256": hashlib.sha256(prev).hexdigest() if prev else None})
    key = f"{_prefix(settings, hold.name)}{hold.version:06d}.json"
    if not store.put_new(key, hold.to_bytes()):
        raise InputError(f"hold {hold.name!r} was changed by someone else meanwhile; look again and retry")
    return hold


def create(settings: Settings, name: str, custodians: list[str], since: str | None, until: str | None,
           query: str | None, reason: str, who: str) -> Hold:
    store = open_store(settings.storage)
    check_name(name)
    if _versions(store, settings, name):
        raise InputError(f"hold {name!r} already exists (release it, or choose another name)")
    if not reason.strip():
        raise InputError("--reason must say why the hold is created")
    people = sorted({c.strip().lower() for c in custodians if c.strip()})
    if not people and not query:
        raise InputError("a hold needs at least one --custodian or a --query")
    since, until = parse_day(since, "--since"), parse_day(until, "--until")
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    hold = Hold(name=name, version=1, state="active", custodians=people, since=since, until=until,
                query=query, reason=reason, who=who, at=now, created_by=who, created_at=now)
    _check_query(settings, hold)
    return _write(settings, store, hold, None)


def release(settings: Settings, name: str, reason: str, who: str) -> Hold:
    store = open_store(settings.storage)
    current = get(settings, name, store)
    if current.state == "released":
        raise InputError(f"hold {name!r} is already released (by {current.who} at {current.at})")
    if not reason.strip():
        raise InputError("--reason must say why the hold is released")
    prev = _versions(store, settings, name)[-1][1]
    hold = Hold(**{**asdict(current), "history": [], "version": current.version + 1, "state": "released",
                   "reason": reason, "who": who, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return _write(settings, store, hold, prev)


def _check_query(settings: Settings, hold: Hold) -> None:
    """A hold whose SQL cannot run would hold nothing: refuse it when it is created."""
    from consumers.query import run_query

    if hold.query:
        columns, _rows = run_query(settings, f"SELECT * FROM ({hold.query}) LIMIT 0")
        if "message_uid" not in columns:
            raise InputError(f"--query must return a message_uid column (it returns {', '.join(columns)})")
    run_query(settings, f"SELECT count(*) FROM ({selection_sql(hold)})")


def selection_sql(hold: Hold) -> str:
    conditions = []
    if hold.custodians:
        people = ", ".join(quote(c) for c in hold.custodians)
        conditions.append(
            f"(lower(coalesce(sender.address, '')) IN ({people}) OR coalesce(sender.user_id, '') IN ({people})"
            f" OR lower(coalesce(workspace, '')) IN ({people})"
            f" OR len(list_filter(recipients, r -> lower(coalesce(r.address, '')) IN ({people})"
            f" OR lower(coalesce(r.user_id, '')) IN ({people}))) > 0"
            f" OR lower(coalesce(sender.user_id, '')) IN ({people}))")
    if hold.since:
        conditions.append(f"date >= DATE {quote(hold.since)}")
    if hold.until:
        conditions.append(f"date <= DATE {quote(hold.until)}")
    if hold.query:
        conditions.append(f"message_uid IN (SELECT message_uid FROM ({hold.query}))")
    return f"SELECT DISTINCT message_uid FROM {ALL_ROWS} WHERE {' AND '.join(conditions)}"


def case_selection(settings: Settings, name: str) -> str:
    """SQL (DuckDB, over the views of consumers/query.py) returning the case's `message_uid`s."""
    return selection_sql(get(settings, name))


def held_sql(settings: Settings) -> tuple[str, list[Hold]]:
    """SQL of every message under any active hold (an empty selection when there is none)."""
    active = [h for h in all_holds(settings) if h.state == "active"]
    if not active:
        return "SELECT NULL::VARCHAR AS message_uid WHERE false", []
    return " UNION ".join(f"({selection_sql(h)})" for h in active), active
