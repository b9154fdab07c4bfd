"""Outlook inputs through the real pipeline: a .msg and a winmail.dat mail ingested, archived,
queried, and their originals and attachments read back byte for byte from the blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

from consumers.query import run_query
from consumers.runner import SinkRunner
from consumers.archiver import ParquetArchiver
from producers.email import captures
from producers.ingest import ingest
from strongroom.blobs import BlobStore
from strongroom.storage import open_store

OUTLOOK = Path(__file__).resolve().parent.parent / "fixtures" / "email" / "outlook"


def test_msg_and_tnef_mail_are_archived_with_their_exact_bytes(settings) -> None:
    """A .msg (with an embedded message), its journal copy and a winmail.dat mail become rows; blobs match."""
    paths = [OUTLOOK / "received.msg", OUTLOOK / "journal-copy.eml", OUTLOOK / "sent.msg", OUTLOOK / "winmail.eml"]
    summary = ingest(settings, "email", (c for p in paths for c in captures(p)))
    # received.msg and journal-copy.eml are one message: the second is recorded as an arrival.
    assert (summary.read, summary.produced, summary.arrivals, summary.quarantined, summary.failed) == (5, 5, 1, 0, 0)
    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)

    _cols, rows = run_query(settings, """SELECT source_position, subject, raw_sha256, parent_uid IS NOT NULL,
        len(attachments), flags FROM email ORDER BY source_position""")
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("received.msg", "Q3 figures — final", False, 1),
        ("sent.msg", "Fwd: Board minutes — vertraulich", False, 2),
        ("sent.msg/embedded:0", "Board minutes", True, 1),
        ("winmail.eml", "Contract draft", False, 3)]
    assert rows[3][5] == ["tnef-expanded:winmail.dat:2", "body-from-tnef:winmail.dat"]
    _cols, arrivals = run_query(settings, "SELECT source_position, repeated FROM arrivals ORDER BY source_position")
    assert ("journal-copy.eml", True) in arrivals and ("received.msg", False) in arrivals

    blobs = BlobStore(open_store(settings.storage), settings.namespace)
    by_position = {r[0]: r[2] for r in rows}
    for name in ("received.msg", "sent.msg", "winmail.eml"):
        data = (OUTLOOK / name).read_bytes()
        assert by_position[name] == hashlib.sha256(data).hexdigest()
        assert blobs.get(by_position[name]) == data
    _cols, files = run_query(settings, """SELECT a.name, a.sha256 FROM email, unnest(attachments) AS u(a)
        WHERE source_position = 'winmail.eml'""")
    assert {name for name, _sha in files} == {"winmail.dat", "contract-v2.docx", "notes.txt"}
    for _name, sha in files:
        assert hashlib.sha256(blobs.get(sha)).hexdigest() == sha
