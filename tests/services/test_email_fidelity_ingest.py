"""The hard-case mail through the real pipeline: every input item and every nested message is
accounted for in the ingest report, archived with its flags and links, and its original and
attachments come back byte for byte from the blob store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from consumers.archiver import ParquetArchiver
from consumers.indexer import OpenSearchIndexer
from consumers.query import run_query
from consumers.runner import SinkRunner
from consumers.search import search
from producers.email import captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.storage import open_store
from tests.conftest import assert_fits_schema

HARD = Path(__file__).resolve().parent.parent / "fixtures" / "email" / "hard"


def test_hard_mail_is_reported_archived_and_linked(settings, tmp_path) -> None:
    """One report line per record (nested ones at "<file>/<n>"), rows with flags and parent links, exact originals."""
    items = list(captures(HARD))
    assert_fits_schema(items)
    report = tmp_path / "report.jsonl"
    summary = ingest(settings, "email", iter(items), report_path=report)
    assert (summary.read, summary.produced, summary.quarantined, summary.failed) == (len(items), len(items), 1, 0)

    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(line["position"] for line in lines) == sorted(c.position for c in items)
    files = {p.name for p in HARD.iterdir()}
    assert {line["position"].split("/")[0] for line in lines} == files
    assert {line["position"] for line in lines if "/" in line["position"]} == {
        "dsn.eml/1", "forwarded-nested.eml/1", "forwarded-nested.eml/1/1", "forwarded-nested.eml/2"}

    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)
    _cols, rows = run_query(settings, """SELECT c.source_position, p.source_position, c.flags
        FROM email c JOIN email p ON c.parent_uid = p.message_uid ORDER BY 1""")
    assert rows == [("dsn.eml/1", "dsn.eml", ["nested"]),
                    ("forwarded-nested.eml/1", "forwarded-nested.eml", ["nested"]),
                    ("forwarded-nested.eml/1/1", "forwarded-nested.eml/1", ["nested"]),
                    ("forwarded-nested.eml/2", "forwarded-nested.eml", ["nested"])]
    _cols, flagged = run_query(settings, """SELECT source_position, flags FROM email
        WHERE len(flags) > 0 AND parent_uid IS NULL ORDER BY 1""")
    assert dict(flagged)["invite.eml"] == ["calendar"]
    assert dict(flagged)["smime-opaque-signed.eml"] == ["signed:smime"]
    _cols, texts = run_query(settings, """SELECT a.name, a.text FROM email, unnest(attachments) AS u(a)
        WHERE source_position = 'attachment-text.eml' AND a.name = 'invoice.pdf'""")
    assert texts == [("invoice.pdf", "Invoice 4711 total EUR 1250")]

    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    for capture in items:
        assert blobs.get(capture.record["raw_sha256"]) == capture.raw
        for sha, data in capture.blobs.items():
            assert hashlib.sha256(blobs.get(sha)).hexdigest() == sha == hashlib.sha256(data).hexdigest()


def test_attachment_text_is_searchable(settings) -> None:
    """Words only inside a PDF attachment find the message in the hot index."""
    ingest(settings, "email", captures(HARD / "attachment-text.eml"))
    SinkRunner(settings, OpenSearchIndexer(settings), settings.group("indexer")).run(until_idle=True)
    columns, rows = search(settings, "4711 1250", limit=10)
    found = [dict(zip(columns, row)) for row in rows]
    assert [hit["message_uid"] for hit in found] == [captures(HARD / "attachment-text.eml").__next__().record["message_uid"]]
