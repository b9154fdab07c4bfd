"""An eDiscovery production: load file, natives, text, chat transcripts, manifests, verification.

Documents, numbered `<prefix>-000001` on in order: each email (its native is the original .eml),
each of its attachments right after it (PARENT_DOCID = the email), then each version of each
chat message (created, edited, deleted, reaction: one document per event, its native the
event's original bytes), with the chat message's stored attachments after it. A nested message
archived as its own email record points at its enclosing message through PARENT_DOCID.
The load file `loadfile.csv` is RFC 4180 CSV, UTF-8, one row per document; multi-valued fields
are joined with "; ". Everything else a third party needs is in README.txt and verification.json.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from consumers.blob_fetcher import BlobFetcher
from consumers.export import Records, original_path
from consumers.export_folder import SUMS_NAME, OutputFolder
from consumers.manifest import Manifest, ManifestLog
from consumers.transcripts import event_time, iso, write_transcripts
from strongroom.errors import IntegrityError
from strongroom.storage import ObjectStore

COLUMNS = ["DOCID", "BEGDOC", "ENDDOC", "PARENT_DOCID", "MESSAGE_UID", "KIND", "PLATFORM", "EVENT", "VERSION",
           "CUSTODIAN", "FROM", "TO", "CC", "BCC", "SUBJECT", "DATESENT", "EVENTDATE", "FILENAME", "FILESIZE",
           "MIMETYPE", "NATIVEPATH", "TEXTPATH", "MD5HASH", "SHA256", "THREAD", "CONVERSATION", "CHANNEL",
           "MESSAGEID", "PARSE_STATUS"]
LOADFILE = "loadfile.csv"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Document:
    docid: str
    row: dict[str, Any]
    attachment: dict[str, Any] | None = None
    parent: str | None = None
    native: str = ""
    text: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def write_production(folder: OutputFolder, fetcher: BlobFetcher, store: ObjectStore, namespace: str,
                     records: Records, prefix: str) -> int:
    """Write everything but the originals (already there); returns the number of documents."""
    docs = _documents(records.rows, prefix)
    _natives(folder, fetcher, docs)
    for doc in docs:
        text = _text(doc)
        if text:
            doc.text = folder.write(f"text/{doc.docid}.txt", text.encode("utf-8"))["path"]
    transcripts = write_transcripts(folder, [(d.docid, d.native, d.row) for d in docs
                                              if d.row["kind"] == "chat" and d.attachment is None])
    manifests = _copy_manifests(folder, store, namespace, records.coordinates)
    folder.write(LOADFILE, _loadfile(folder, docs, records.arrivals))
    folder.write("verification.json", json.dumps(_verification(docs, transcripts, manifests), indent=1).encode())
    folder.write("README.txt", README.format(sums=SUMS_NAME, loadfile=LOADFILE, documents=len(docs)).encode())
    return len(docs)


def _documents(rows: list[dict[str, Any]], prefix: str) -> list[Document]:
    docs: list[Document] = []
    by_uid: dict[str, str] = {}

    def add(row: dict[str, Any], attachment: dict[str, Any] | None = None, parent: str | None = None) -> Document:
        doc = Document(f"{prefix}-{len(docs) + 1:06d}", row, attachment, parent)
        docs.append(doc)
        return doc

    for row in rows:
        doc = add(row)
        doc.native = original_path(row)
        by_uid.setdefault(row["message_uid"], doc.docid)
        for item in row.get("attachments") or []:
            if item.get("sha256"):  # a link-only attachment has no bytes to produce (url in the transcript)
                add(row, item, doc.docid)
    for doc in docs:  # nested mail: its enclosing message, where that is produced too
        if doc.attachment is None and doc.row["kind"] == "email" and doc.row.get("parent_uid"):
            doc.parent = by_uid.get(doc.row["parent_uid"])
    return docs


def _natives(folder: OutputFolder, fetcher: BlobFetcher, docs: list[Document]) -> None:
    wanted = ((d.attachment["sha256"], f"message {d.row['message_uid']} attachment {d.attachment.get('name')!r}", d)
              for d in docs if d.attachment is not None)
    for doc, data in fetcher.fetch(wanted):
        default = "message.eml" if doc.attachment.get("content_type") == "message/rfc822" else "attachment"
        name = _UNSAFE.sub("_", doc.attachment.get("name") or default).strip("._")[:100] or "attachment"
        doc.native = folder.write(f"natives/{doc.docid}_{name}", data)["path"]


def _text(doc: Document) -> str:
    row = doc.row
    if doc.attachment is not None:
        return doc.attachment.get("text") or ""
    if row["kind"] == "chat":
        return row.get("body_text") or ""
    lines = [f"From: {_person(row.get('sender'))}"]
    for role in ("to", "cc", "bcc"):
        people = _people(row, role)
        if people:
            lines.append(f"{role.capitalize()}: {people}")
    lines += [f"Date: {iso(row.get('sent_at'))}", f"Subject: {row.get('subject') or ''}", ""]
    if row["parse_status"] != "ok":
        lines.append(f"[not parsed, kept as received: {row.get('parse_error')}]")
    lines.append(row.get("body_text") or "")
    return "\n".join(lines)


# -- manifests: the archive's own ledger for every row produced --------------------------
def _copy_manifests(folder: OutputFolder, store: ObjectStore, namespace: str,
                    coordinates: list[tuple[str, int, int]]) -> list[str]:
    """Copy each manifest that covers an archived row of the production (one listing per partition)."""
    wanted: dict[str, tuple[str, int, int]] = {}
    partitions: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in coordinates:
        partitions.setdefault((topic, partition), []).append(offset)
    for (topic, partition), offsets in partitions.items():
        log = ManifestLog(store, namespace, topic, partition)
        keys = log.keys()
        firsts = [int(k.rsplit("/", 1)[-1].split(".")[0]) for k in keys]
        for offset in offsets:
            at = bisect.bisect_right(firsts, offset) - 1
            if at < 0:
                raise IntegrityError(f"{topic} partition {partition} offset {offset} is in the warehouse "
                                     f"but in no manifest (run strongroom verify)")
            wanted.setdefault(keys[at], (topic, partition, offset))
    copied = []
    for key, (topic, partition, offset) in sorted(wanted.items()):
        data = store.get(key)
        manifest = Manifest.from_bytes(data)
        if not manifest.first_offset <= offset <= manifest.last_offset:
            raise IntegrityError(f"{topic} partition {partition} offset {offset} is in the warehouse "
                                 f"but in no manifest (run strongroom verify)")
        copied.append(folder.write("manifests/" + key.split("/manifests/", 1)[1], data)["path"])
    return copied


# -- the load file ------------------------------------------------------------------------
def _loadfile(folder: OutputFolder, docs: list[Document], arrivals: dict[str, list[dict[str, Any]]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    people = _known_people(docs)
    channels = {d.row["conversation_id"]: d.row["channel"] for d in docs
                if d.row.get("channel") and d.row["channel"] != d.row.get("conversation_id")}
    for doc in docs:
        row, item = doc.row, doc.attachment
        sender = _completed(row.get("sender"), people)
        native = folder.files.get(doc.native, {})
        writer.writerow([
            doc.docid, doc.docid, doc.docid, doc.parent or "", row["message_uid"], row["kind"] if item is None else "attachment",
            row["platform"], row["event_type"], row["version"], _custodian(row, arrivals, sender),
            _person(sender), _people(row, "to"), _people(row, "cc"), _people(row, "bcc"),
            row.get("subject") or "", iso(row.get("sent_at")), event_time(row),
            (item.get("name") or "") if item else doc.native.rsplit("/", 1)[-1], native.get("size", ""),
            item["content_type"] if item else ("message/rfc822" if row["kind"] == "email" else "application/octet-stream"),
            doc.native, doc.text, folder.md5.get(doc.native, ""), native.get("sha256", ""),
            row.get("thread_id") or "", row.get("conversation_id") or "",
            channels.get(row.get("conversation_id"), row.get("channel")) or "",
            row.get("message_id") or "", row["parse_status"]])
    return out.getvalue().encode("utf-8")


def _custodian(row: dict[str, Any], arrivals: dict[str, list[dict[str, Any]]], sender: dict[str, Any]) -> str:
    """Whose data this is: the mailboxes it was found in, else its sender (chat: always the sender)."""
    if row["kind"] == "email":
        mailboxes = sorted({a["mailbox"] for a in arrivals.get(row["message_uid"], []) if a.get("mailbox")})
        if mailboxes:
            return "; ".join(mailboxes)
    return sender.get("address") or sender.get("user_id") or sender.get("name") or ""


def _known_people(docs: list[Document]) -> dict[str, dict[str, Any]]:
    """user_id -> the fullest name and address any event of the production gave it.

    A chat edit or reaction often names its sender by user id only; completing it from the
    other events makes one person one custodian in the load file.
    """
    people: dict[str, dict[str, Any]] = {}
    for doc in docs:
        sender = doc.row.get("sender") or {}
        if sender.get("user_id"):
            known = people.setdefault(sender["user_id"], dict(sender))
            known["name"] = known.get("name") or sender.get("name")
            known["address"] = known.get("address") or sender.get("address")
    return people


def _completed(sender: dict[str, Any] | None, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sender = dict(sender or {})
    known = people.get(sender.get("user_id") or "", {})
    sender["name"] = sender.get("name") or known.get("name")
    sender["address"] = sender.get("address") or known.get("address")
    return sender


def _person(person: dict[str, Any] | None) -> str:
    person = person or {}
    name, address = person.get("name"), person.get("address") or person.get("user_id")
    if name and address and name != address:
        return f"{name} <{address}>"
    return name or address or ""


def _people(row: dict[str, Any], role: str) -> str:
    return "; ".join(_person(r) for r in row.get("recipients") or [] if r.get("role") == role)


def _verification(docs: list[Document], transcripts: list[dict[str, str]], manifests: list[str]) -> dict[str, Any]:
    return {
        "checksums": {"file": SUMS_NAME, "algorithm": "sha256", "command": f"sha256sum -c {SUMS_NAME}",
                      "covers": "every file of the production except SHA256SUMS itself"},
        "loadfile": {"file": LOADFILE, "format": "CSV (RFC 4180), UTF-8, CRLF, header row", "columns": COLUMNS,
                     "multi_value_separator": "; ", "rows": len(docs),
                     "check": "for each row, the file at NATIVEPATH has the SHA256 column's hash"},
        "originals": "originals/*.eml are the archived email originals byte for byte; originals/chat/ holds each "
                     "chat event's original bytes; SHA256 in the load file equals the archive's raw_sha256 "
                     "(export-manifest.json, messages[])",
        "transcripts": transcripts,
        "manifests": {"files": manifests,
                      "meaning": "the archive's own ledger entries (Kafka offset ranges, Parquet file sha256, "
                                 "hash of the previous manifest) covering every record produced"},
    }


README = """This folder is an eDiscovery production made by strongroom ({documents} documents).

What is in it
  loadfile.csv          one row per document (CSV, UTF-8, header row; multi-valued fields joined with "; ")
  originals/*.eml       each email exactly as captured (byte for byte)
  originals/chat/       each chat event (message, edit, deletion, reaction) exactly as captured
  originals/copies/     other copies of an email (another mailbox, the journal) whose bytes differ
  natives/              attachments, named <DOCID>_<file name>
  text/<DOCID>.txt      extracted text of each document that has text
  transcripts/          each chat conversation as HTML (to read) and JSON (to process), every version
  manifests/            the archive's ledger entries covering these records
  export-manifest.json  who exported what, when, with which selection; every file with sha256 and size
  verification.json     the same checks, machine-readable
  {sums}            sha256 of every other file

How to check it (needs only sha256sum and a CSV reader)
  1. In this folder run:   sha256sum -c {sums}
     Every line must end in "OK"; any "FAILED" or missing file means the production was altered.
  2. Compare the sha256 of {sums} itself (sha256sum {sums}) with the value the producing party
     sent separately: it pins every file listed in it.
  3. Open {loadfile}: for each row, the file at NATIVEPATH must have the hash in the SHA256 column
     (the same hash appears in {sums}); PARENT_DOCID links attachments and nested messages to their parent.
  4. For email, SHA256 is also the hash the archive recorded when it captured the message
     (raw_sha256 in export-manifest.json), so the .eml files are the captured originals unaltered.
"""
