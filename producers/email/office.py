"""Text of Office documents (docx, pptx, xlsx, and OpenDocument odt/odp/ods) for search.

These are zip files of XML: the text is every element's character data, one line per paragraph
(or spreadsheet string). Read with the stdlib only: zipfile, and a tag strip rather than an XML
parser, since only the words matter and a damaged document should still give what it has.
Each member is read to at most MEMBER_LIMIT decompressed bytes and all of them to TOTAL_LIMIT,
so a zip bomb costs its cap.
"""

from __future__ import annotations

import html
import io
import re
import zipfile

MEMBER_LIMIT = 8 * 1024 * 1024
TOTAL_LIMIT = 32 * 1024 * 1024
_MEMBERS = (re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml"),
            re.compile(r"ppt/slides/slide\d+\.xml"), re.compile(r"xl/sharedStrings\.xml"),
            re.compile(r"content\.xml"))
_PARAGRAPH_END = re.compile(r"</(?:w:p|a:p|text:p|text:h|si)>|<(?:w:br|w:tab|text:line-break)\b[^>]*/>")
_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n{3,}")
OFFICE_SUFFIXES = (".docx", ".docm", ".pptx", ".xlsx", ".xlsm", ".odt", ".odp", ".ods")


def is_office(content_type: str, name: str, data: bytes) -> bool:
    """An OOXML or OpenDocument file, by type or name, that is a zip file."""
    named = name.endswith(OFFICE_SUFFIXES) or "officedocument" in content_type or "opendocument" in content_type
    return named and data[:4] == b"PK\x03\x04"


def office_text(data: bytes, limit: int) -> str:
    """The document's words, paragraphs on their own lines, in member order, up to `limit` characters."""
    parts: list[str] = []
    size = 0
    budget = TOTAL_LIMIT
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted((n for n in archive.namelist() if any(p.fullmatch(n) for p in _MEMBERS)), key=_slide_order)
        for name in names:
            if budget <= 0:
                break
            with archive.open(name) as member:
                raw = member.read(min(MEMBER_LIMIT, budget))
            budget -= len(raw)
            xml = raw.decode("utf-8", "replace")
            text = html.unescape(_TAG.sub("", _PARAGRAPH_END.sub("\n", xml)))
            parts.append(_BLANK_LINES.sub("\n\n", text).strip())
            size += len(parts[-1])
            if size >= limit:
                break
    return "\n\n".join(part for part in parts if part)


def _slide_order(name: str) -> tuple[str, int]:
    """slide2 before slide10; the document body before its headers and footers."""
    number = re.search(r"(\d+)\.xml$", name)
    return (re.sub(r"\d+\.xml$", "", name).replace("word/document", "word/!document"),
            int(number.group(1)) if number else 0)
