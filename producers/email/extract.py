"""Text of an attachment for search (attachments[].text): text, HTML, PDF, Office, invites, DSNs.

Caps: at most TEXT_CAP characters per attachment (200,000, about 60 pages of prose) and
MESSAGE_TEXT_BUDGET characters for all attachments of one message (1,000,000), so a record
stays far below Kafka's 8 MiB message limit whatever was attached. PDFs are read with pypdf
(pure Python), at most PDF_MAX_PAGES pages; Office documents (docx, pptx, xlsx, OpenDocument)
with the stdlib (office.py). The blob always keeps the whole attachment.

Extraction never fails a message: any error gives no text and the "text-extraction-failed" flag.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

from producers.email.invites import invite_text
from producers.email.office import is_office, office_text
from producers.email.text import decode_text, html_to_text

TEXT_CAP = 200_000
MESSAGE_TEXT_BUDGET = 1_000_000
PDF_MAX_PAGES = 500
EXTRACTION_FAILED = "text-extraction-failed"
TEXT_CAPPED = "attachment-text-capped"

_TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".md", ".log", ".json", ".xml", ".eml", ".vcf")
_TEXT_APPLICATIONS = frozenset(("application/json", "application/xml", "application/csv",
                                "application/x-sh", "application/javascript"))
# pypdf logs every repaired cross-reference table; malformed PDFs are normal in mail.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass
class TextBudget:
    """What is left of one message's attachment-text allowance, and the flags extraction raised."""

    left: int = MESSAGE_TEXT_BUDGET
    flags: set[str] = field(default_factory=set)

    def take(self, text: str | None) -> str | None:
        if not text:
            return None
        cap = min(TEXT_CAP, self.left)
        if len(text) > cap:
            self.flags.add(TEXT_CAPPED)
            text = text[:cap]
        self.left -= len(text)
        return text or None


def attachment_text(content_type: str, name: str | None, data: bytes, charset: str | None,
                    budget: TextBudget) -> str | None:
    """Searchable text of one attachment, capped; None for kinds without text (images, archives)."""
    if budget.left <= 0 or not data:
        if budget.left <= 0 and _kind(content_type, (name or "").lower(), data):
            budget.flags.add(TEXT_CAPPED)
        return None
    kind = _kind(content_type, (name or "").lower(), data)
    if kind is None:
        return None
    try:
        if kind == "pdf":
            text = _pdf_text(data, min(TEXT_CAP, budget.left) + 1)
        elif kind == "office":
            text = office_text(data, min(TEXT_CAP, budget.left) + 1)
        else:
            text = decode_text(data, charset)
            if kind == "html":
                text = html_to_text(text)
            elif kind == "calendar":
                text = invite_text(text) or text
    except Exception:  # noqa: BLE001 - a hostile attachment costs its text, never the message
        budget.flags.add(EXTRACTION_FAILED)
        return None
    return budget.take(text.replace("\r\n", "\n").replace("\x00", "").strip())


def _kind(content_type: str, name: str, data: bytes) -> str | None:
    if content_type in ("text/calendar", "application/ics") or name.endswith((".ics", ".vcs")):
        return "calendar"
    if content_type == "application/pdf" or name.endswith(".pdf") or data[:5] == b"%PDF-":
        return "pdf"
    if is_office(content_type, name, data):
        return "office"
    if content_type in ("text/html", "application/xhtml+xml") or name.endswith((".htm", ".html")):
        return "html"
    if (content_type.startswith("text/") or content_type in _TEXT_APPLICATIONS
            or content_type in ("message/delivery-status", "message/global-delivery-status",
                                "message/disposition-notification", "message/feedback-report")
            or name.endswith(_TEXT_SUFFIXES)):
        return "text"
    return None


def _pdf_text(data: bytes, limit: int) -> str:
    from pypdf import PdfReader  # imported on first PDF: most runs never see one

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")  # many "encrypted" PDFs only restrict printing, with an empty user password
    parts: list[str] = []
    size = 0
    for index, page in enumerate(reader.pages):
        if index >= PDF_MAX_PAGES or size >= limit:
            break
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text) + 1
    return "\n".join(parts)
