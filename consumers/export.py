"""Export: hand back archived originals byte for byte, as .eml files, one mbox, or a production.

Steps, each one batch: (1) the selection (message uids, a query, a WHERE clause, or a legal-hold
case) becomes SQL returning `message_uid`; (2) DuckDB reads every version of those messages, their
arrivals and their Kafka coordinates in three queries; (3) blobs come from the blob store on a
thread pool, each checked against the sha256 the record holds (blob_fetcher.py); (4) everything is
written into a staging folder that becomes `--out` only when complete (export_folder.py), with
`export-manifest.json` and `SHA256SUMS` last. The production's extras are in production.py.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from consumers import mboxrd
from consumers.blob_fetcher import BlobFetcher
from consumers.export_folder import SUMS_NAME, OutputFolder
from consumers.query import _plain, connect
from strongroom import __version__
from strongroom import audit
from strongroom.config import Settings
from strongroom.errors import InputError
from strongroom.storage import open_store

FORMATS = ("eml", "mbox", "production")
MANIFEST_NAME = "export-manifest.json"


@dataclass(frozen=True)
class Selection:
    """What to export: how the user said it, and the SQL that returns its message_uids."""

    by: str  # message-uid | query | where | case
    value: Any
    sql: str


def select(settings: Settings, *, message_uids: list[str] | None = None, query: str | None = None,
           where: str | None = None, case: str | None = None) -> Selection:
    """Exactly one of the four ways to choose messages, as a Selection."""
    given = [name for name, value in (("--message-uid", message_uids), ("--query", query), ("--where", where),
                                      ("--case", case)) if value]
    if len(given) != 1:
        raise InputError("choose the messages with exactly one of --message-uid, --query, --where or --case"
                         + (f" (got {', '.join(given)})" if given else ""))
    if message_uids:
        quoted = ", ".join("'" + uid.replace("'", "''") + "'" for uid in message_uids)
        return Selection("message-uid", list(message_uids), f"SELECT unnest([{quoted}]) AS message_uid")
    if query:
        return Selection("query", query, query.strip().rstrip(";"))
    if where:
        return Selection("where", where, f"SELECT message_uid FROM communications WHERE {where.strip().rstrip(';')}")
    try:
        from consumers.holds import case_selection
    except ModuleNotFoundError as exc:
        if exc.name not in ("consumers.holds",):
            raise
        raise InputError("legal holds are not available in this version of strongroom, so --case cannot be "
                         "used; select with --query or --where instead") from exc
    return Selection("case", case, case_selection(settings, case).strip().rstrip(";"))


# -- reading the warehouse: three queries --------------------------------------------------
@dataclass
class Records:
    rows: list[dict[str, Any]]  # every version, ordered: email by time, then chat by conversation
    arrivals: dict[str, list[dict[str, Any]]]  # message_uid -> where each copy came from
    coordinates: list[tuple[str, int, int]]  # (topic, partition, offset) of every archived row


def _selected(con: duckdb.DuckDBPyConnection, selection: Selection) -> None:
    """Materialize the selection as table `_selected`; a bad selection is a one-line InputError."""
    try:
        columns = [d[0] for d in con.execute(f"SELECT * FROM ({selection.sql}) AS s LIMIT 0").description]
        if "message_uid" not in columns:
            raise InputError(f"the selection returns no message_uid column "
                             f"(it returns {', '.join(columns) or 'nothing'})")
        con.execute(f"CREATE TEMP TABLE _selected AS SELECT DISTINCT message_uid::VARCHAR AS message_uid "
                    f"FROM ({selection.sql}) AS s WHERE message_uid IS NOT NULL")
    except duckdb.Error as exc:
        raise InputError(f"selection failed: {str(exc).splitlines()[0]}") from exc


def _check_found(selection: Selection, rows: list[dict[str, Any]]) -> None:
    found = {row["message_uid"] for row in rows}
    if selection.by == "message-uid":  # each uid asked for by name must exist
        missing = [uid for uid in selection.value if uid not in found]
        if missing:
            raise InputError(f"no archived message has message_uid {', '.join(missing[:5])}"
                             + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
    if not found:
        raise InputError("the selection matches no archived message")


def read_records(settings: Settings, selection: Selection) -> Records:
    """Every version of the selected messages, their arrivals and Kafka coordinates: one query each."""
    con = connect(settings)
    _selected(con, selection)
    cursor = con.execute("""
        SELECT c.*, min(c.sent_at) OVER (PARTITION BY c.message_uid) AS first_sent
        FROM communications c SEMI JOIN _selected USING (message_uid)
        ORDER BY c.kind DESC, CASE WHEN c.kind = 'chat' THEN c.conversation_id END, first_sent,
                 c.message_uid, c.version""")
    # Through Arrow: timestamps come back as aware UTC datetimes without DuckDB needing pytz.
    rows = cursor.to_arrow_table().to_pylist()
    _check_found(selection, rows)
    arrivals: dict[str, list[dict[str, Any]]] = {}
    cursor = con.execute("SELECT a.* FROM arrivals a SEMI JOIN _selected USING (message_uid) "
                         "ORDER BY message_uid, ingested_at")
    for item in cursor.to_arrow_table().to_pylist():
        arrivals.setdefault(item["message_uid"], []).append(item)
    coordinates = con.execute("""
        SELECT kafka_topic, kafka_partition, kafka_offset FROM email_log SEMI JOIN _selected USING (message_uid)
        UNION ALL
        SELECT kafka_topic, kafka_partition, kafka_offset FROM chat_log SEMI JOIN _selected USING (message_uid)
        ORDER BY ALL""").fetchall()
    return Records(rows, arrivals, coordinates)


# -- the export -------------------------------------------------------------------------------
@dataclass
class ExportSummary:
    out: Path
    format: str
    messages: int = 0
    versions: int = 0
    documents: int = 0
    files: int = 0
    bytes: int = 0
    sums_sha256: str = ""

    def line(self) -> str:
        return (f"export ({self.format}): {self.messages} messages ({self.versions} versions), "
                + (f"{self.documents} documents, " if self.format == "production" else "")
                + f"{self.files} files, {self.bytes / 1e6:.1f} MB in {self.out}; "
                f"sha256 of {SUMS_NAME}: {self.sums_sha256}")


def original_path(row: dict[str, Any]) -> str:
    """Where a version's original goes: `originals/<uid>.eml` for mail, one file per chat version."""
    uid = row["message_uid"]
    if row["kind"] == "email":
        return f"originals/{uid}.eml" if row["version"] == 1 else f"originals/{uid}.v{row['version']}.eml"
    return f"originals/chat/{uid}.v{row['version']}.raw"


def export(settings: Settings, selection: Selection, out: Path, fmt: str | None = None,
           docid_prefix: str = "SR") -> ExportSummary:
    """Export the selection to `out` in `fmt` (default: production for a case, eml otherwise)."""
    fmt = fmt or ("production" if selection.by == "case" else "eml")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    folder = OutputFolder(out)  # first: a used --out is refused before anything is read
    store = open_store(settings.storage)
    fetcher = BlobFetcher(store, settings.namespace)
    try:
        records = read_records(settings, selection)
        originals = _write_originals(folder, fetcher, records.rows, mbox=(fmt == "mbox"))
        copies = _write_copies(folder, fetcher, records)
        documents = 0
        if fmt == "production":
            from consumers.production import write_production

            documents = write_production(folder, fetcher, store, settings.namespace, records, docid_prefix)
        manifest = _manifest(settings, selection, fmt, records, originals, copies, folder, documents)
        folder.write(MANIFEST_NAME, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
        sums = folder.write_sums()
        folder.publish()
    except BaseException:
        folder.discard()
        raise
    finally:
        fetcher.close()
    summary = ExportSummary(out, fmt, messages=len({r["message_uid"] for r in records.rows}),
                            versions=len(records.rows), documents=documents, files=len(folder.files) + 1,
                            bytes=sum(f["size"] for f in folder.files.values()), sums_sha256=sums)
    # The audit entry pins the production: its SHA256SUMS hash covers every file handed over.
    audit.record(settings, "export", {"by": selection.by, "value": selection.value, "sql": selection.sql,
                                      "format": fmt, "out": str(out), "versions": summary.versions,
                                      "files": summary.files, "sha256sums": summary.sums_sha256}, summary.messages)
    return summary


def _write_originals(folder: OutputFolder, fetcher: BlobFetcher, rows: list[dict[str, Any]],
                     mbox: bool) -> list[dict[str, Any]]:
    """Every version's original: .eml files (or one mbox for mail) and one file per chat version."""
    entries: list[dict[str, Any]] = []
    handle = None
    writer = None
    if mbox:
        mbox_path = folder.root / "messages.mbox"
        handle = mbox_path.open("wb")
        writer = mboxrd.MboxWriter(handle)
    try:
        wanted = ((r["raw_sha256"], f"message {r['message_uid']} version {r['version']} (original)", r) for r in rows)
        for row, data in fetcher.fetch(wanted):
            entry = {"message_uid": row["message_uid"], "kind": row["kind"], "version": row["version"],
                     "event_type": row["event_type"], "raw_sha256": row["raw_sha256"], "raw_size": row["raw_size"],
                     "parse_status": row["parse_status"]}
            if writer is not None and row["kind"] == "email":
                sender = (row.get("sender") or {}).get("address")
                start = writer.position
                placed = writer.add(data, sender, row["sent_at"])
                entry |= {"path": "messages.mbox", "mbox_offset": placed.offset, "mbox_length": placed.length,
                          "mbox_appended_newline": placed.appended_newline, "mbox_from_line_offset": start}
            else:
                entry["path"] = folder.write(original_path(row), data)["path"]
            entries.append(entry)
    finally:
        if handle is not None:
            handle.close()
    if writer is not None:
        folder.add_written("messages.mbox", writer.sha256.hexdigest(), writer.position)
    return entries


def _write_copies(folder: OutputFolder, fetcher: BlobFetcher, records: Records) -> list[dict[str, Any]]:
    """Other copies of an email (another mailbox, the journal) whose bytes differ from the one archived.

    Dedup keeps one record per message, but each arrival's raw original is in the blob store, and
    a production must be able to show what each custodian actually held.
    """
    archived = {(r["message_uid"], r["raw_sha256"]) for r in records.rows}
    copies: dict[tuple[str, str], dict[str, Any]] = {}
    for uid, arrivals in records.arrivals.items():
        for arrival in arrivals:
            key = (uid, arrival["raw_sha256"])
            if key in archived:
                continue
            entry = copies.setdefault(key, {"message_uid": uid, "raw_sha256": arrival["raw_sha256"],
                                            "raw_size": arrival["raw_size"], "arrivals": []})
            entry["arrivals"].append({k: arrival.get(k) for k in ("arrival_id", "source", "source_position",
                                                                   "mailbox", "envelope_sender", "ingested_at")})
    wanted = ((sha, f"message {uid} copy {sha} (another arrival's original)", copies[(uid, sha)])
              for uid, sha in copies)
    for entry, data in fetcher.fetch(wanted):
        entry["path"] = folder.write(f"originals/copies/{entry['message_uid']}.{entry['raw_sha256'][:16]}.eml",
                                     data)["path"]
    return list(copies.values())


def _manifest(settings: Settings, selection: Selection, fmt: str, records: Records, originals: list[dict[str, Any]],
              copies: list[dict[str, Any]], folder: OutputFolder, documents: int) -> dict[str, Any]:
    rows = records.rows
    return {
        "tool": f"strongroom {__version__}",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "created_by": _who(),
        "namespace": settings.namespace,
        "storage": settings.storage.url,
        "selection": {"by": selection.by, "value": selection.value, "sql": selection.sql},
        "format": fmt,
        "counts": {"messages": len({r["message_uid"] for r in rows}), "versions": len(rows),
                   "email": sum(r["kind"] == "email" for r in rows), "chat": sum(r["kind"] == "chat" for r in rows),
                   "quarantined": sum(r["parse_status"] != "ok" for r in rows), "copies": len(copies),
                   "documents": documents,
                   "files": len(folder.files)},
        "messages": _plain(originals),
        "copies": _plain(copies),
        "files": sorted(folder.files.values(), key=lambda f: f["path"]),
        "how_to_check": (f"sha256sum -c {SUMS_NAME} in this folder; each message's original has sha256 "
                         f"raw_sha256 (for messages.mbox: mboxrd-unescape mbox_length bytes at mbox_offset, "
                         f"drop the last byte if mbox_appended_newline; see docs/export.md)"),
    }


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME (some containers)
        return f"uid {os.getuid()}"
