"""Pull one account's message archive (XEP-0313, MAM) from its XMPP server, incrementally.

Delivery: at-least-once, without gaps. A run asks the server for the archived messages after the
last archive id the previous run kept (RSM `after`, oldest first, pages of PAGE), turns them into
records with the same reader as XMPP files (producers/chat/xmpp.py), and only after the ingest
has had every record acknowledged does `commit()` write the checkpoint
`<namespace>/checkpoints/xmpp/<jid>/<all | with-JID>.json`. A run that fails or crashes before
that leaves the old checkpoint, so the next run fetches the same messages again and the
receipts report them as duplicates.

The checkpoint also carries what links a later event to an earlier message: each message's
version, send time and last text, and the id aliases (stanza-id -> the sender's id). Without it
a correction fetched in a later run could not get the next version. It grows with the archive
(about 100 bytes a message); that is the price of versions that stay right across runs.

The fetched page is held in memory for the run (the messages since the last run).
"""

from __future__ import annotations

import asyncio
import copy
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from producers.capture import Capture
from producers.chat import quarantined
from producers.chat.events import MessageState, VersionLedger
from producers.chat.xmpp import PLATFORM, XmppReader, stanza_bytes
from strongroom.config import Settings
from strongroom.errors import InputError, ServiceError, StorageError
from strongroom.storage import open_store

PAGE = 100
TIMEOUT_S = 30.0


@dataclass
class Checkpoint:
    last_id: str | None
    ledger: VersionLedger
    aliases: dict[str, str]

    def to_json(self, jid: str, with_jid: str | None) -> bytes:
        states = {uid: [s.version, s.sent_at.isoformat() if s.sent_at else None, s.text, s.known]
                  for uid, s in self.ledger.states.items()}
        return json.dumps({"jid": jid, "with": with_jid, "last_id": self.last_id,
                           "written_at": datetime.now(timezone.utc).isoformat(),
                           "messages": states, "aliases": self.aliases}, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "Checkpoint":
        doc = json.loads(data)
        states = {uid: MessageState(v, datetime.fromisoformat(at) if at else None, text, None, known)
                  for uid, (v, at, text, known) in doc.get("messages", {}).items()}
        return cls(doc.get("last_id"), VersionLedger(states), dict(doc.get("aliases", {})))


class MamPull:
    """One incremental pull of `jid`'s archive; `captures()` fetches, `commit()` keeps the position."""

    def __init__(self, settings: Settings, jid: str, password: str, *, server: str | None = None,
                 with_jid: str | None = None, since: datetime | None = None, allow_unencrypted: bool = False) -> None:
        if "@" not in jid or jid.startswith("@") or jid.endswith("@"):
            raise InputError(f"--jid {jid!r} is not USER@HOST.")
        self.jid, self.password, self.with_jid, self.since = jid.lower(), password, with_jid, since
        self.allow_unencrypted = allow_unencrypted
        self.host, self.port = _server(server, jid)
        self.store = open_store(settings.storage)
        self.key = (f"{settings.namespace}/checkpoints/xmpp/{self.jid.partition('/')[0]}/"
                    f"{'with-' + with_jid.lower() if with_jid else 'all'}.json")
        self.checkpoint = self._load()
        self.fetched = 0
        self._new_last: str | None = None

    def _load(self) -> Checkpoint:
        try:
            if not self.store.exists(self.key):
                return Checkpoint(None, VersionLedger(), {})
            return Checkpoint.from_json(self.store.get(self.key))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"checkpoint {self.key} is unreadable ({exc}); move it away to start over.") from exc

    def checkpoint_state(self) -> str:
        return f"after archive id {self.checkpoint.last_id}" if self.checkpoint.last_id else "empty"

    def captures(self) -> Iterator[Capture]:
        stanzas = asyncio.run(self._fetch())
        self.fetched = len(stanzas)
        reader = XmppReader(owner=self.jid, ledger=self.checkpoint.ledger, aliases=self.checkpoint.aliases)
        source = f"xmpp://{self.host}:{self.port}/{self.jid}"
        last_time = self.since or datetime.now(timezone.utc)
        for archive_id, stanza in stanzas:
            position = f"mam:{archive_id}"
            try:
                ev = reader.event(stanza, source, position, last_time)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                yield quarantined(platform=PLATFORM, source=source, position=position, raw=stanza_bytes(stanza),
                                  error=f"{position}: {exc}", sent_at=last_time)
            else:
                last_time = ev.event_at or ev.sent_at
                yield ev.capture()
            self._new_last = archive_id

    def commit(self) -> None:
        """Keep the position; call only after every record of this run was acknowledged."""
        if self._new_last is None:
            return
        self.checkpoint.last_id = self._new_last
        try:
            self.store.put(self.key, self.checkpoint.to_json(self.jid, self.with_jid))
        except OSError as exc:
            raise StorageError(f"checkpoint {self.key} could not be written ({exc})") from exc

    async def _fetch(self) -> list[tuple[str, ET.Element]]:
        import slixmpp
        from slixmpp.exceptions import IqError, IqTimeout

        client = slixmpp.ClientXMPP(self.jid, self.password)
        for plugin in ("xep_0030", "xep_0059", "xep_0297", "xep_0313"):
            client.register_plugin(plugin)
        if self.allow_unencrypted:
            # Test servers on 127.0.0.1 have no certificate; a real server must use TLS.
            client.enable_direct_tls = client.enable_starttls = False
            client.enable_plaintext = True
            client.plugin["feature_mechanisms"].unencrypted_plain = True
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def settle(result: str) -> None:
            if not outcome.done():
                outcome.set_result(result)

        client.add_event_handler("session_start", lambda _e: settle("ok"))
        client.add_event_handler("failed_all_auth", lambda _e: settle("auth"))
        client.add_event_handler("connection_failed", lambda e: settle(f"connection: {e}"))
        client.connect(self.host, self.port)
        try:
            try:
                state = await asyncio.wait_for(outcome, TIMEOUT_S)
            except asyncio.TimeoutError:
                state = f"no session within {TIMEOUT_S:.0f}s"
            if state == "auth":
                raise InputError(f"{self.jid}: the server refused the password.")
            if state != "ok":
                raise ServiceError(f"XMPP server {self.host}:{self.port} for {self.jid}: {state}")
            return await self._pages(client, IqError, IqTimeout)
        finally:
            client.disconnect(wait=1.0)
            if outcome.done() and outcome.result() == "ok":
                try:  # close the stream politely; a server that does not answer is not our failure
                    await asyncio.wait_for(client.disconnected, 5.0)
                except asyncio.TimeoutError:
                    pass

    async def _pages(self, client: Any, iq_error: type, iq_timeout: type) -> list[tuple[str, ET.Element]]:
        found: list[tuple[str, ET.Element]] = []
        after = self.checkpoint.last_id
        while True:
            rsm: dict[str, Any] = {"max": PAGE}
            if after:
                rsm["after"] = after
            try:
                iq = await client.plugin["xep_0313"].retrieve(
                    start=None if after else self.since, with_jid=self.with_jid, rsm=rsm, timeout=TIMEOUT_S)
            except iq_error as exc:
                condition = exc.iq["error"]["condition"]
                if after and condition == "item-not-found":
                    raise InputError(f"the server no longer knows archive id {after} (expired?); move "
                                     f"{self.key} away and pull again with --since.") from exc
                raise ServiceError(f"MAM query for {self.jid} refused: {condition} {exc.iq['error']['text']}") from exc
            except iq_timeout as exc:
                raise ServiceError(f"MAM query for {self.jid}: no answer within {TIMEOUT_S:.0f}s") from exc
            page = [(m["mam_result"]["id"], copy.deepcopy(m.xml)) for m in iq["mam"]["results"]]
            found.extend(page)
            fin = iq["mam_fin"]
            last = fin["rsm"]["last"]
            if not page or str(fin["complete"]).lower() in ("true", "1") or not last or last == after:
                return found
            after = last


def _server(server: str | None, jid: str) -> tuple[str, int]:
    if not server:
        return jid.partition("@")[2].partition("/")[0], 5222
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--server {server!r} is not HOST:PORT.")
    return host, int(port)
