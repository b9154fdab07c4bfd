"""conversation_id for an email: the thread root's Message-ID, or its subject and people.

The root is the first References id (RFC 5322: References starts at the thread's first message),
else In-Reply-To, else the message's own Message-ID, so the first message and every reply share
it. Mail without any id (some mailers, exports and scanners) falls back to "subj-<hash>" of the
normalized subject (reply and forward markers stripped, case-folded, blanks collapsed) plus the
sorted addresses of everyone on it, so two unrelated "Invoice" mails between other people stay
in separate threads while a reply (the same people) joins its original.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from producers.email.text import clean
from schemas.records import normalize_message_id, sha256_hex

# Reply and forward markers, English and the common translations (AW/WG German, SV Nordic, Antw
# Dutch, TR/RV French and Spanish, VS Finnish, R Italian); "Re[2]:" and "RE :" too.
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|sv|wg|antw|antwort|tr|rv|vs|r)\s*(?:\[\d+\])?\s*:)+\s*",
                           re.IGNORECASE)


def normalized_subject(subject: str | None) -> str:
    """'RE: AW: Fwd:  Quarterly   Numbers' -> 'quarterly numbers'."""
    return " ".join(_REPLY_PREFIX.sub("", subject or "").casefold().split())


def conversation_id(first: dict[str, str], message_id: str | None, subject: str | None,
                    participants: Iterable[str | None]) -> str | None:
    """The thread root's normalized Message-ID, else subj-<sha256 of subject and people>[:40]."""
    references = clean(first.get("references", "")).split()
    for candidate in (" ".join(references), references[0] if references else "", first.get("in-reply-to")):
        root = normalize_message_id(clean(candidate or ""))
        if root:
            return root
    if message_id:
        return message_id
    topic = normalized_subject(subject)
    if not topic:
        return None
    people = "\x1e".join(sorted({address.lower() for address in participants if address}))
    return "subj-" + sha256_hex(f"{topic}\x1f{people}".encode("utf-8"))[:40]
