"""Building Communication records (schemas/communication.avsc) and their stable identities."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

EMAIL_TOPIC_KIND = "email"
CHAT_TOPIC_KIND = "chat"
KINDS = (EMAIL_TOPIC_KIND, CHAT_TOPIC_KIND)

_MSGID = re.compile(r"<([^<>\s]+)>")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(*parts: str) -> str:
    # A separator that cannot occur in the parts keeps ("a", "bc") apart from ("ab", "c").
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def normalize_message_id(value: str | None) -> str | None:
    """`<Foo@Example.COM>` -> `Foo@example.com`: the domain part is case-insensitive, the local part is not."""
    if not value:
        return None
    match = _MSGID.search(value)
    token = match.group(1) if match else value.strip().strip("<>").strip()
    if not token or any(ch.isspace() for ch in token):
        return None
    local, at, domain = token.rpartition("@")
    return f"{local}@{domain.lower()}" if at else token


def email_uid(message_id: str | None, sender: str | None, sent_at: datetime | None, raw_sha256: str,
              content: str = "") -> str:
    """Email identity: normalized Message-ID with sender, date and content digest; the raw hash
    where the Message-ID is missing.

    Copies of one message (a journal copy and the IMAP copy, two mailboxes) differ only in trace
    headers, so they share the identity and are kept once. A Message-ID reused for another
    message (another sender, date, or content: buggy mailers and test generators do this) gets
    another identity, so it is never mistaken for a duplicate and dropped.
    """
    if not message_id:
        return "em-raw-" + raw_sha256[:40]
    when = sent_at.astimezone(timezone.utc).isoformat() if sent_at else ""
    return "em-" + _digest(message_id, (sender or "").lower(), when, content)


def email_content_digest(record: dict[str, Any]) -> str:
    """What a message says, independent of how it travelled: subject, recipients, body text
    (line endings and trailing blanks folded) and attachments (by content hash)."""
    body = "\n".join(line.rstrip() for line in (record.get("body_text") or "").splitlines()).strip()
    recipients = sorted(f"{r['role']}:{r.get('address') or r.get('name') or ''}" for r in record.get("recipients", []))
    files = sorted(a.get("sha256") or f"{a.get('name')}:{a.get('size')}" for a in record.get("attachments", []))
    return _digest(record.get("subject") or "", "\x1e".join(recipients), body, "\x1e".join(files))


def chat_uid(platform: str, workspace: str | None, channel: str | None, message_id: str) -> str:
    """Chat identity: platform + workspace + channel + the platform's message id."""
    return "ch-" + _digest(platform, workspace or "", channel or "", message_id)


def participant(user_id: str | None = None, name: str | None = None, address: str | None = None) -> dict[str, Any]:
    return {"user_id": user_id, "name": name, "address": address.lower() if address else None}


def recipient(role: str, user_id: str | None = None, name: str | None = None, address: str | None = None) -> dict[str, Any]:
    return {"role": role, **participant(user_id, name, address)}


def attachment(content_type: str, name: str | None = None, size: int | None = None,
               sha256: str | None = None, url: str | None = None, text: str | None = None) -> dict[str, Any]:
    return {"name": name, "content_type": content_type, "size": size, "sha256": sha256, "url": url, "text": text}


def arrival_id(record: dict[str, Any]) -> str:
    """Where a copy came from and what it was: source, position in it, mailbox, SMTP envelope, and
    the copy's own bytes.

    A re-run over the same file is the same arrival (a duplicate, recorded nothing more); the
    journal copy and the IMAP copy of one message, or two mailboxes holding it, are two arrivals.
    The raw hash is part of it so that bytes are never thrown away: two different originals that
    parse to the same message (same ids and text, another MIME structure) both stay retrievable.
    """
    envelope = sorted(r.get("address") or "" for r in record.get("recipients", []) if r.get("role") == "envelope")
    return "ar-" + _digest(record.get("source") or "", record.get("source_position") or "",
                           record.get("workspace") or "", record.get("envelope_sender") or "", "\x1e".join(envelope),
                           record.get("raw_sha256") or "")


def new_record(**fields: Any) -> dict[str, Any]:
    """A record with every optional field at its default; required fields must be given."""
    record: dict[str, Any] = {
        "source_position": None, "workspace": None, "conversation_id": None, "channel": None,
        "thread_id": None, "parent_uid": None, "message_id": None, "event_type": "created",
        "version": 1, "event_at": None, "sender": participant(), "envelope_sender": None, "recipients": [],
        "subject": None, "body_text": None, "attachments": [], "headers": [], "arrival_id": None,
        "parse_status": "ok", "parse_error": None, "flags": [],
    }
    record.update(fields)
    return record
