"""XMPP message stanzas -> one chat record per stanza (files here; a live archive in xmpp_mam.py).

A file is any sequence of stanzas: an XML stream log (`<stream:stream>` ... with or without its
end tag), stanzas one after another, or XEP-0313 (MAM) result messages, whose `<forwarded>`
message is the item and whose `<result id>` is the archive's id. Carbons (XEP-0280) are unwrapped
the same way. Only `<message>` stanzas are messages: presence and iq are not read.

Parsed with the standard library's expat-based ElementTree (no third-party parser): a DOCTYPE is
refused (RFC 6120 forbids one in XMPP, and it is the door to entity expansion), and external
entities are never fetched by ElementTree. A file that stops parsing part way keeps what came
before; the rest of it is quarantined with the error.

Mapping: chat / groupchat / normal bodies -> created; XEP-0308 `<replace id>` -> edited;
XEP-0424 `<retract id>` (and the older fastening form, and a MAM tombstone `<retracted>`) ->
deleted; XEP-0444 `<reactions id>` -> reaction, body = the reactor's reactions now (space
separated; none -> flagged `reaction-removed`); XEP-0461 `<reply id>` -> parent; `<thread>` ->
thread_id; XEP-0203 `<delay stamp>` -> the time; `jabber:x:oob` URLs -> link attachments;
`<subject>` alone -> a system record. Other payloads (chat states, receipts, markers) are kept as
records flagged `system` without text, so every stanza is accounted for.

Identity: a message is known by the id its sender gave it (`origin-id`, else the `id`
attribute), because corrections, retractions and reactions in a 1:1 chat point at that id and
it is the same in both parties' archives; the server's `stanza-id` (XEP-0359), which group
chat retractions and reactions point at, is kept as an alias and a header. Without either, the
stanza-id or a digest of the stanza is used. Conversation: the room's bare JID for groupchat,
the two bare JIDs sorted and joined by a space for a 1:1 chat. People: bare JID as user_id and
address; in a room, the occupant JID `room/nick` with the nick as name (the real JID as address
when the room tells it).
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from producers.capture import Capture
from producers.chat import quarantined
from producers.chat.events import FLAG_REACTION_REMOVED, FLAG_SYSTEM, ChatEvent, VersionLedger
from schemas.records import attachment, participant
from strongroom.errors import InputError

PLATFORM = "xmpp"
NS_MAM = ("urn:xmpp:mam:2", "urn:xmpp:mam:1", "urn:xmpp:mam:0", "urn:xmpp:mam:tmp")
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_RETRACT = ("urn:xmpp:message-retract:1", "urn:xmpp:message-retract:0")
NS_FASTEN = "urn:xmpp:fasten:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_REPLY = "urn:xmpp:reply:0"
NS_OOB = "jabber:x:oob"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
STREAM_NS = "http://etherx.jabber.org/streams"

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")


def local(tag: str) -> tuple[str, str]:
    """'{ns}name' -> (ns, name)."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def child(elem: ET.Element, name: str, namespaces: str | tuple[str, ...] | None = None) -> ET.Element | None:
    for sub in elem:
        ns, tag = local(sub.tag)
        if tag == name and (namespaces is None or ns == namespaces or (isinstance(namespaces, tuple) and ns in namespaces)):
            return sub
    return None


def bare(jid: str | None) -> str | None:
    return jid.partition("/")[0].lower() if jid else None


def parse_stamp(value: str | None) -> datetime | None:
    """XEP-0082 date-time ('2010-07-10T23:08:25Z', fractions, offsets) -> aware UTC; None if absent or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.utcoffset() is not None else moment.replace(tzinfo=timezone.utc)


def stanza_bytes(elem: ET.Element) -> bytes:
    """The stanza's canonical XML (C14N 2.0): one spelling however it was serialized or prefixed."""
    return ET.canonicalize(ET.tostring(elem, encoding="unicode")).encode("utf-8")


@dataclass
class XmppReader:
    """Turns message stanzas into ChatEvents; holds what links them (versions, id aliases)."""

    owner: str | None = None  # the archive's account, for stanzas without 'from' (its own messages)
    ledger: VersionLedger = field(default_factory=VersionLedger)
    aliases: dict[str, str] = field(default_factory=dict)  # "conversation id" -> the message's id

    def event(self, outer: ET.Element, source: str, position: str, fallback: datetime) -> ChatEvent:
        message, archive_id, stamp = self._unwrap(outer)
        kind = message.get("type") or "normal"
        sender_jid = message.get("from") or self.owner
        to_jid = message.get("to")
        if kind == "groupchat":
            conversation = bare(sender_jid if message.get("from") else to_jid) or ""
        else:
            conversation = " ".join(sorted(j for j in {bare(sender_jid), bare(to_jid)} if j))
        ids = self._ids(message, archive_id, conversation)
        own_id = ids[0] if ids else "sha256:" + hashlib.sha256(stanza_bytes(message)).hexdigest()[:32]
        for alias in ids[1:]:
            self.aliases.setdefault(f"{conversation} {alias}", own_id)
        stamp = stamp or parse_stamp(_attr(child(message, "delay", NS_DELAY), "stamp"))
        at = stamp or fallback
        raw = stanza_bytes(outer)
        ev = ChatEvent(platform=PLATFORM, source=source, position=position, raw=raw,
                       workspace=(conversation.partition("@")[2] or None) if kind == "groupchat" else None,
                       conversation_id=conversation, channel=conversation, message_id=own_id, sent_at=at,
                       sender=self._person(message, sender_jid, kind), thread_is_message=False,
                       headers={"xmpp.type": kind, "xmpp.id": message.get("id"), "xmpp.archive_id": archive_id,
                                "xmpp.to": to_jid})
        if stamp is None:  # no delay stamp: the time of the stanza before it, or the file's
            ev.headers["xmpp.time"] = "estimated"
        body = _text(child(message, "body"))
        thread = child(message, "thread")
        ev.thread_id = _text(thread)
        reply = child(message, "reply", NS_REPLY)
        if reply is not None and reply.get("id"):
            ev.parent_id = self._resolve(conversation, reply.get("id"))
        ev.attachments = [attachment("application/octet-stream", name=_text(child(x, "desc")), url=_text(child(x, "url")))
                          for x in message if local(x.tag) == (NS_OOB, "x") and _text(child(x, "url"))]
        replace = child(message, "replace", NS_CORRECT)
        retract = child(message, "retract", NS_RETRACT)
        fastened = child(message, "apply-to", NS_FASTEN)
        if retract is None and fastened is not None and child(fastened, "retract", NS_RETRACT) is not None:
            retract = fastened
        tombstone = child(message, "retracted", NS_RETRACT)
        reactions = child(message, "reactions", NS_REACTIONS)
        if replace is not None and replace.get("id"):
            return ev.follow(self.ledger, self._resolve(conversation, replace.get("id")), "edited", at, body)
        if retract is not None and retract.get("id"):
            return ev.follow(self.ledger, self._resolve(conversation, retract.get("id")), "deleted", at)
        if tombstone is not None:
            ev.headers["xmpp.retracted_by"] = tombstone.get("id")
            return ev.follow(self.ledger, own_id, "deleted", parse_stamp(tombstone.get("stamp")) or at)
        if reactions is not None and reactions.get("id"):
            keys = [r.text for r in reactions if local(r.tag)[1] == "reaction" and r.text]
            if not keys:
                ev.flags.append(FLAG_REACTION_REMOVED)
            return ev.follow(self.ledger, self._resolve(conversation, reactions.get("id")), "reaction", at,
                             " ".join(keys) or None)
        subject = child(message, "subject")
        if body is None and subject is not None:
            ev.flags.append(FLAG_SYSTEM)
            ev.body_text = f"subject: {_text(subject) or ''}".rstrip()
        elif body is None and not ev.attachments:
            ev.flags.append(FLAG_SYSTEM)
            ev.headers["xmpp.payload"] = " ".join(local(c.tag)[1] for c in message) or "empty"
        else:
            ev.body_text, ev.subject = body, _text(subject)
        if kind == "error":
            ev.flags.append("error")
        return ev.record_created(self.ledger)

    def _unwrap(self, outer: ET.Element) -> tuple[ET.Element, str | None, datetime | None]:
        """The message inside a MAM result or a carbon, with the archive id and the forwarded delay."""
        for wrapper in outer:
            ns, tag = local(wrapper.tag)
            if (ns in NS_MAM and tag == "result") or (ns == NS_CARBONS and tag in ("sent", "received")):
                forwarded = child(wrapper, "forwarded", NS_FORWARD)
                inner = child(forwarded, "message") if forwarded is not None else None
                if inner is not None:
                    stamp = parse_stamp(_attr(child(forwarded, "delay", NS_DELAY), "stamp"))
                    return inner, wrapper.get("id") if tag == "result" else None, stamp
        return outer, None, None

    def _ids(self, message: ET.Element, archive_id: str | None, conversation: str) -> list[str]:
        """The message's own id first, then its aliases (stanza-ids, the archive id)."""
        origin = child(message, "origin-id", NS_SID)
        ids = [_attr(origin, "id"), message.get("id")]
        ids += [s.get("id") for s in message if local(s.tag) == (NS_SID, "stanza-id")]
        ids.append(archive_id)
        return list(dict.fromkeys(i for i in ids if i))

    def _resolve(self, conversation: str, ref: str) -> str:
        return self.aliases.get(f"{conversation} {ref}", ref)

    def _person(self, message: ET.Element, jid: str | None, kind: str) -> dict:
        if kind == "groupchat" and jid and "/" in jid:
            muc = child(message, "x", NS_MUC_USER)
            item = child(muc, "item") if muc is not None else None
            return participant(jid, jid.partition("/")[2], bare(_attr(item, "jid")))
        return participant(bare(jid), None, bare(jid))


class XmppFileSource:
    """Iterate message stanzas in XMPP files (a file, or *.xml / *.log under a folder) as Captures."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        root = Path(path)
        if root.is_dir():
            self.files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in (".xml", ".log", ".txt"))
            if not self.files:
                raise InputError(f"{os.fspath(path)} holds no .xml, .log or .txt files.")
        elif root.is_file():
            self.files = [root]
        else:
            raise InputError(f"XMPP path {os.fspath(path)} does not exist.")
        self.reader = XmppReader()

    def __iter__(self) -> Iterator[Capture]:
        for file in self.files:
            yield from self._file(os.fspath(file), file.read_bytes(),
                                  datetime.fromtimestamp(file.stat().st_mtime, timezone.utc))

    def _file(self, source: str, data: bytes, mtime: datetime) -> Iterator[Capture]:
        if b"<!DOCTYPE" in data:
            yield quarantined(platform=PLATFORM, source=source, position="file", raw=data, sent_at=mtime,
                              error=f"{source}: a DOCTYPE is not allowed in XMPP (RFC 6120); not parsed")
            return
        # Same length as the declaration, so the parser's line and column still point into the file.
        body = _DECLARATION.sub(lambda m: b" " * len(m.group(0)), data, count=1)
        if b"<stream:stream" in body and b"</stream:stream>" not in body:
            body += b"</stream:stream>"  # a log of a stream still open when it was written
        parser = ET.XMLPullParser(events=("start", "end"))
        parser.feed(f'<log xmlns:stream="{STREAM_NS}">'.encode())
        depth_in_message, count, last = 0, 0, None
        try:
            for chunk in (body, b"</log>"):
                parser.feed(chunk)
                for event, elem in parser.read_events():
                    if local(elem.tag)[1] != "message":
                        continue
                    if event == "start":
                        depth_in_message += 1
                        continue
                    depth_in_message -= 1
                    if depth_in_message:
                        continue
                    count += 1
                    position = f"stanza#{count}"
                    try:
                        ev = self.reader.event(elem, source, position, last or mtime)
                    except (ValueError, TypeError, KeyError, AttributeError) as exc:
                        yield quarantined(platform=PLATFORM, source=source, position=position,
                                          raw=stanza_bytes(elem), error=f"{position}: {exc}", sent_at=last or mtime)
                        continue
                    last = ev.event_at or ev.sent_at
                    yield ev.capture()
                    elem.clear()
        except ET.ParseError as exc:
            line = exc.position[0] if exc.position else 1
            rest = b"".join(data.splitlines(keepends=True)[max(line - 1, 0):]) or data
            yield quarantined(platform=PLATFORM, source=source, position=f"line {line}", raw=rest,
                              sent_at=last or mtime,
                              error=f"{source}: not well-formed XML from line {line} on ({exc}); {count} stanzas before it were read")


def _attr(elem: ET.Element | None, name: str) -> str | None:
    return elem.get(name) if elem is not None else None


def _text(elem: ET.Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    # Pretty-printed logs indent bodies; the words, not the indentation around them, were said.
    return elem.text.strip() or None
