"""`strongroom ingest imap`: pull a mailbox's folders incrementally, leaving the mailbox as it was.

Delivery guarantee: at-least-once, through producers/ingest.py, with a checkpoint per (server,
user, folder): UIDVALIDITY and the last UID captured, at `<ns>/checkpoints/imap/<host>/<user>/<folder>.json`
in the object store. The port is left out of both the checkpoint and a copy's identity: it is
how the mailbox was reached (993 with TLS, 143 with STARTTLS), not which mailbox it is. For each
folder:

1. EXAMINE it (read-only) and read its UIDVALIDITY; with the checkpoint's UIDVALIDITY the run
   starts after the checkpoint's UID, otherwise (first run, or the server renumbered the folder)
   from the start;
2. UID SEARCH for the newer UIDs and UID FETCH them in batches with BODY.PEEK[] (\\Seen stays
   as it was), each message parsed into a record of the folder;
3. after each batch, wait until Kafka acknowledged every record of it, then move the checkpoint
   to the batch's last UID. A crash re-reads at most one batch, and those come back as duplicates.

A copy's identity (arrival_id) is the mailbox, not its UID: a refetch after a UIDVALIDITY change
finds every message already captured from that folder and reports it a duplicate, while the same
message in another user's mailbox or another folder is recorded as one more arrival.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from producers.capture import Capture
from producers.email import with_nested
from producers.email.mime import parse_email
from producers.ingest import Ingest, IngestSummary
from schemas.records import arrival_id
from strongroom.config import Settings
from strongroom.errors import DeliveryError, InputError, MailServerError
from strongroom.storage import ObjectStore

log = logging.getLogger("strongroom.imap")
_SKIP_FOLDER = {b"\\noselect", b"\\nonexistent"}


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    security: str  # tls, starttls or plain
    user: str
    password: str = field(repr=False)
    ca_file: Path | None = None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


class ImapCheckpoints:
    """UIDVALIDITY and last captured UID per folder, one small JSON object each (overwritten)."""

    def __init__(self, store: ObjectStore, namespace: str, account: ImapAccount):
        self.store = store
        self.prefix = f"{namespace}/checkpoints/imap/{quote(account.host, safe='')}/{quote(account.user, safe='')}/"

    def _key(self, folder: str) -> str:
        return f"{self.prefix}{quote(folder, safe='')}.json"

    def get(self, folder: str) -> tuple[int, int] | None:
        if not self.store.exists(self._key(folder)):
            return None
        data = json.loads(self.store.get(self._key(folder)))
        return int(data["uidvalidity"]), int(data["last_uid"])

    def put(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self.store.put(self._key(folder), json.dumps({
            "folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid,
            "updated_at": datetime.now(timezone.utc).isoformat()}).encode())


class ImapMailbox:
    """One IMAP connection; IMAP and socket errors become MailServerError, a refused login InputError."""

    def __init__(self, account: ImapAccount, timeout: float):
        self.account = account
        self.timeout = timeout
        self.client = None

    def __enter__(self) -> ImapMailbox:
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        account = self.account
        context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file else None)
        with self._translated(f"connecting to {account.server}"):
            self.client = IMAPClient(account.host, account.port, ssl=account.security == "tls",
                                     ssl_context=context, timeout=self.timeout)
            if account.security == "starttls":
                self.client.starttls(context)
        try:
            with self._translated("login"):
                self.client.login(account.user, account.password)
        except MailServerError as exc:
            if isinstance(exc.__cause__, LoginError):
                raise InputError(f"IMAP login as {account.user} at {account.server} refused: "
                                 f"{_reason(exc.__cause__)}") from exc
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a connection that may already be gone
            pass

    def _translated(self, action: str):
        return _Translate(f"IMAP server {self.account.server}: {action}")

    def folders(self) -> list[str]:
        with self._translated("LIST"):
            listed = self.client.list_folders()
        return [name for flags, _delim, name in listed if not {f.lower() for f in flags} & _SKIP_FOLDER]

    def examine(self, folder: str) -> int:
        """Open `folder` read-only; returns its UIDVALIDITY."""
        from imapclient.exceptions import IMAPClientError

        try:
            status = self.client.select_folder(folder, readonly=True)
        except IMAPClientError as exc:
            raise InputError(f"IMAP folder {folder!r} at {self.account.server} cannot be opened: {_reason(exc)}") from exc
        except OSError as exc:
            raise MailServerError(f"IMAP server {self.account.server}: EXAMINE {folder}: {_reason(exc)}") from exc
        return int(status[b"UIDVALIDITY"])

    def uids_after(self, last_uid: int) -> list[int]:
        with self._translated("UID SEARCH"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even one below n.
        return sorted(uid for uid in found if uid > last_uid)

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        with self._translated("UID FETCH"):
            answer = self.client.fetch(uids, [b"BODY.PEEK[]"])
        bodies = {}
        for uid, data in answer.items():
            body = data.get(b"BODY[]")
            if body is None:
                raise MailServerError(f"IMAP server {self.account.server}: UID {uid} came without its body")
            bodies[uid] = bytes(body)
        return bodies


class _Translate:
    """The one boundary where imapclient's and the socket's errors become ours."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, _tb) -> bool:
        from imapclient.exceptions import IMAPClientError

        if exc is not None and isinstance(exc, (IMAPClientError, OSError)):
            raise MailServerError(f"{self.what}: {_reason(exc)}") from exc
        return False


def _reason(exc: BaseException) -> str:
    # An OSError's first argument is its errno; its str() names the failure (and SSL's reason).
    text = exc.args[0] if exc.args and not isinstance(exc, OSError) else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split()) or type(exc).__name__


def captures_of(raw: bytes, account: ImapAccount, folder: str, uidvalidity: int, uid: int) -> list[Capture]:
    """The records of one fetched message (forwarded and bounced mail inside it are records of
    their own), each marked with the mailbox it was found in."""
    found = list(with_nested(parse_email(raw, source=f"imap://{account.user}@{account.server}/{folder}",
                                         position=f"{uidvalidity}:{uid}")))
    mailbox = f"imap://{account.user}@{account.host}/{folder}"
    for capture in found:
        rec = capture.record
        rec["workspace"] = f"{account.user}@{account.host}/{folder}"
        # The copy's identity is the mailbox and its place in the message, not the UID.
        place = (rec.get("source_position") or "").partition("/")[2]
        rec["arrival_id"] = arrival_id({**rec, "source": mailbox, "source_position": place or None})
    return found


def ingest_imap(settings: Settings, account: ImapAccount, folders: list[str] | None = None,
                report_path: Path | None = None, progress=None) -> IngestSummary:
    """Capture what is new in each folder (every selectable folder by default); raises
    DeliveryError, with the checkpoints left before the unacknowledged batch, if Kafka did not
    acknowledge everything."""
    handle = open(report_path, "w", encoding="utf-8") if report_path else None
    started = time.monotonic()
    try:
        # The mailbox first: a wrong password or host should not wait on Kafka's timeouts.
        with ImapMailbox(account, settings.imap.timeout_seconds) as mailbox:
            ingest = Ingest(settings, "email", handle, progress)
            ingest.begin()
            checkpoints = ImapCheckpoints(ingest.store, settings.namespace, account)
            for folder in folders or mailbox.folders():
                _pull_folder(ingest, mailbox, checkpoints, account, folder, settings.imap.batch_messages)
        ingest.settle()
    finally:
        if handle:
            handle.close()
    summary = ingest.summary
    summary.seconds = time.monotonic() - started
    return summary


def _pull_folder(ingest: Ingest, mailbox: ImapMailbox, checkpoints: ImapCheckpoints, account: ImapAccount,
                 folder: str, batch: int) -> None:
    uidvalidity = mailbox.examine(folder)
    saved = checkpoints.get(folder)
    last_uid = saved[1] if saved and saved[0] == uidvalidity else 0
    if saved and saved[0] != uidvalidity:
        log.warning("%s: UIDVALIDITY changed (%d -> %d): reading the folder again", folder, saved[0], uidvalidity)
    uids = mailbox.uids_after(last_uid)
    for start in range(0, len(uids), batch):
        wanted = uids[start:start + batch]
        bodies = mailbox.fetch(wanted)
        if len(bodies) < len(wanted):  # expunged between SEARCH and FETCH: no longer there to keep
            log.warning("%s: %d messages vanished before they could be fetched", folder, len(wanted) - len(bodies))
        for uid in sorted(bodies):
            for capture in captures_of(bodies[uid], account, folder, uidvalidity, uid):
                ingest.add(capture)
        if ingest.settle():
            summary = ingest.summary
            raise DeliveryError(f"{summary.line()}; {summary.failed} not acknowledged, {folder} checkpoint left "
                                f"at UID {last_uid} (first error: {summary.errors[0] if summary.errors else 'unknown'})")
        last_uid = wanted[-1]
        checkpoints.put(folder, uidvalidity, last_uid)
    if not uids and (saved is None or saved[0] != uidvalidity):
        checkpoints.put(folder, uidvalidity, last_uid)  # remember the folder's numbering even when empty
