"""DuckDB over the warehouse: the views `email`, `chat`, `communications`, `chat_latest`,
`chat_first` and `arrivals`, local or on S3.

Each view keeps one row per (message_uid, version): the warehouse itself keeps every Kafka
offset it archived (that is the completeness proof), so a record produced twice after a crash
is one row here. `email_log` and `chat_log` show every archived offset. Offline: the httpfs
extension comes from the `duckdb-extension-httpfs` wheel, never from the network.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from schemas import serde
from strongroom.config import Settings
from strongroom.errors import InputError, IntegrityError, StorageError
from strongroom.storage import open_store

TABLES = ("email", "chat")


def _load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb_extension_httpfs

    folder = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = sorted(folder.glob(f"v{duckdb.__version__}/httpfs.duckdb_extension"))
    if not found:
        raise StorageError(f"the httpfs extension for DuckDB {duckdb.__version__} is not installed "
                           f"(duckdb-extension-httpfs=={duckdb.__version__})")
    con.execute(f"LOAD '{found[0]}'")


def _s3_secret(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    storage = settings.storage
    endpoint = storage.s3_endpoint.split("://", 1)[-1].rstrip("/")
    con.execute(
        "CREATE OR REPLACE SECRET strongroom_s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
        "URL_STYLE 'path', USE_SSL ?)",
        [storage.s3_access_key, storage.s3_secret_key.get_secret_value(), storage.s3_region, endpoint,
         storage.s3_endpoint.startswith("https")])


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the warehouse views defined."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    store = open_store(settings.storage)
    if settings.storage.is_s3:
        _load_httpfs(con)
        _s3_secret(con, settings)
    empty = serde.arrow_schema().empty_table()
    # A DuckDB table, not a registered Arrow scan: a join pushes a bloom filter into its scans,
    # which an Arrow scan refuses ("Pushdown Filter Type BLOOM_FILTER is not ... supported").
    con.register("_strongroom_empty_arrow", empty)
    con.execute("CREATE TEMP TABLE _strongroom_empty AS SELECT * FROM _strongroom_empty_arrow")
    con.unregister("_strongroom_empty_arrow")
    for table in TABLES:
        prefix = f"{settings.namespace}/warehouse/{table}/"
        has_files = any(key.endswith(".parquet") for key in store.list(prefix))
        if has_files:
            glob = store.uri(prefix.rstrip("/")) + "/*/*.parquet"
            # hive_partitioning adds `date` (the partition), so WHERE date = ... prunes files.
            # union_by_name: files written before a schema change lack its new columns (NULL there).
            source = (f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{'date': DATE}}, "
                      f"union_by_name = true)")
        else:
            source = "(SELECT *, NULL::DATE AS date FROM _strongroom_empty)"
        try:
            con.execute(f"CREATE VIEW {table}_log AS SELECT * FROM {source}")
        except duckdb.Error as exc:
            raise IntegrityError(f"the {table} warehouse cannot be read ({str(exc).splitlines()[0]}); "
                                 f"`strongroom verify` names damaged files") from exc
        con.execute(f"""CREATE VIEW {table} AS
            SELECT * FROM {table}_log WHERE event_type <> 'arrival'
            QUALIFY row_number() OVER (PARTITION BY message_uid, version
                                       ORDER BY kafka_partition, kafka_offset) = 1""")
    con.execute("CREATE VIEW communications AS SELECT * FROM email UNION ALL BY NAME SELECT * FROM chat")
    _history_views(con)
    return con


def _history_views(con: duckdb.DuckDBPyConnection) -> None:
    """Derived views: every copy of each email, and chat messages as first sent and as last seen."""
    # Each email's first capture is its first arrival; later copies are `arrival` records.
    con.execute("""CREATE VIEW arrivals AS
        SELECT message_uid, arrival_id, source, source_position, workspace AS mailbox, envelope_sender,
               list_filter(recipients, r -> r.role = 'envelope') AS envelope_recipients,
               raw_sha256, raw_size, ingested_at, event_type = 'arrival' AS repeated, date
        FROM email_log WHERE arrival_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY message_uid, arrival_id ORDER BY kafka_partition, kafka_offset) = 1""")
    # Reactions are events about a message, not versions of its text: both views skip them.
    for name, order in (("chat_latest", "version DESC"), ("chat_first", "version")):
        con.execute(f"""CREATE VIEW {name} AS
            SELECT *, event_type = 'deleted' AS is_deleted,
                   CASE WHEN event_type = 'deleted' THEN coalesce(event_at, sent_at) END AS deleted_at
            FROM chat WHERE event_type IN ('created', 'edited', 'deleted')
            QUALIFY row_number() OVER (PARTITION BY message_uid ORDER BY {order}) = 1""")


def run_query(settings: Settings, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(settings)
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise InputError(f"query failed: {str(exc).splitlines()[0]}") from exc
    columns = [d[0] for d in result.description or []]
    return columns, result.fetchall()


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """Rows as `json` (an array of objects), `csv`, or a plain-text `table`."""
    if fmt == "json":
        return json.dumps([{c: _plain(v) for c, v in zip(columns, row)} for row in rows],
                          ensure_ascii=False, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([json.dumps(_plain(v), ensure_ascii=False) if isinstance(v, (dict, list)) else _plain(v)
                             for v in row])
        return out.getvalue()
    if fmt != "table":
        raise InputError(f"unknown format {fmt!r}: use table, json or csv")
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    body = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(body) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def _cell(value: Any, limit: int = 60) -> str:
    plain = _plain(value)
    text = "" if plain is None else (json.dumps(plain, ensure_ascii=False) if isinstance(plain, (dict, list)) else str(plain))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
