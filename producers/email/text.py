"""Bytes and header values to clean text: charsets, RFC 2047 encoded words, transfer encodings, HTML.

Nothing here raises on bad input. Text decoding is one fallback chain: the declared charset (with
the superset a mailer really meant, as browsers decode it, WHATWG Encoding), then UTF-8, then
cp1252 with replacement characters. A label Python does not know, or one naming a codec that is
not a text encoding (base64, rot13, zlib), counts as no charset. The result never holds lone
surrogates, so it always encodes as UTF-8 (Avro strings).

HTML becomes text with the stdlib html.parser (scripts, styles and the head's title dropped, a
line break at every block element): no native dependency, it never gives up on broken markup, and
mail HTML is small enough that a C parser's speed does not matter next to parsing the MIME.
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache
from html.parser import HTMLParser

# Labels that mailers use for a superset encoding (as browsers decode them, WHATWG Encoding).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
                    "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "x-sjis": "cp932",
                    "iso-8859-8-i": "iso-8859-8", "tis-620": "cp874", "unicode-1-1-utf-7": "utf-7",
                    "unicode": "utf-16", "ucs-2": "utf-16", "iso-10646-ucs-2": "utf-16", "gbk": "gb18030",
                    "iso-2022-jp-ms": "iso2022_jp_ext", "iso-2022-jp-3": "iso2022_jp_3"}
# Label spellings seen in the wild that name a codec Python has: "cp-1252", "win-1251",
# "windows-874", "x-mac-cyrillic", "x-gbk".
_WINDOWS_LABEL = re.compile(r"(?:cp|win|windows|x-cp|ms)[-_]?(\d{3,4})")
_MAC_LABEL = re.compile(r"(?:x-)?mac-?([a-z]+)")
# Encoded text cannot hold "?" (RFC 2047); [^?]* also keeps the scan linear on hostile headers.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = bytes(b for b in range(256) if not (chr(b).isalnum() and b < 128) and b not in b"+/")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table td th tr ul".split())
_HIDDEN_TAGS = frozenset(("script", "style", "title", "template"))


@lru_cache(maxsize=512)
def codec_name(charset: str) -> str | None:
    """The Python codec for a MIME charset label, or None if there is none (or it is not text)."""
    label = charset.strip().strip("\"'").lower()
    info = None
    for candidate in _candidates(label):
        try:
            info = codecs.lookup(candidate)
            break
        except (LookupError, ValueError):
            continue
    if info is None:
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None  # not base64, rot13, zlib


def _candidates(label: str) -> list[str]:
    bare = label[2:] if label.startswith("x-") else label
    found = [_CHARSET_ALIASES.get(label, label), _CHARSET_ALIASES.get(bare, bare)]
    if windows := _WINDOWS_LABEL.fullmatch(label):
        found.append("cp" + windows.group(1))
    if mac := _MAC_LABEL.fullmatch(label):
        found.append("mac_" + mac.group(1))
    return found


def decode_text(data: bytes, charset: str | None) -> str:
    """`data` as text: the declared charset, else UTF-8, else cp1252 with replacement characters."""
    codec = codec_name(charset) if charset else None
    if codec:
        try:
            return clean(data.decode(codec))
        except (ValueError, LookupError, TypeError):  # UnicodeDecodeError is a ValueError
            pass
    if codec != "utf-8":
        try:
            return data.decode("utf-8")  # also what "us-ascii" mail with 8-bit bytes usually is
        except UnicodeDecodeError:
            pass
    return data.decode("cp1252", "replace")


def clean(text: str) -> str:
    """`text` without lone surrogates: raw 8-bit header bytes are decoded like a body of unknown charset."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return decode_text(text.encode("utf-8", "surrogateescape"), None)
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")


def decode_header_value(value: str) -> str:
    """An unfolded header value with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return clean(value)
    out: list[str] = []
    run = bytearray()  # adjacent words of one charset decode together: a character may span two
    run_charset = ""
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        data = _decode_word(match.group(2), match.group(3))
        if data is None:
            continue  # not decodable: stays in the text as written
        gap = value[position:match.start()]
        if gap and not (position and gap.isspace()):  # blanks between two encoded words vanish
            if run:
                out.append(decode_text(bytes(run), run_charset))
                run.clear()
            out.append(clean(gap))
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 allows "charset*language"
        if run and charset != run_charset:
            out.append(decode_text(bytes(run), run_charset))
            run.clear()
        run += data
        run_charset = charset
        position = match.end()
    if run:
        out.append(decode_text(bytes(run), run_charset))
    out.append(clean(value[position:]))
    return "".join(out)


def _decode_word(encoding: str, text: str) -> bytes | None:
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    return binascii.a2b_qp(data, header=True) if encoding in "qQ" else b64decode(data)


def b64decode(data: bytes) -> bytes:
    """Base64 decoded leniently: stray characters dropped, a bad tail trimmed, padding added."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        cleaned = data.translate(None, _NOT_BASE64)
        cleaned = cleaned[: len(cleaned) - 1] if len(cleaned) % 4 == 1 else cleaned
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))


class _HtmlText(HTMLParser):
    """Visible text of an HTML document, with a line break at every block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <body> ends the head even if a <title> or <style> there was never closed.
        self._hidden = 0 if tag == "body" else self._hidden + (tag in _HIDDEN_TAGS)
        self._pre += tag == "pre"
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data if self._pre else _SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Plain text of an HTML body: scripts and styles dropped, blocks on their own lines."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001 - html.parser has raised on hostile markup; strip tags instead
        text = _TAG.sub(" ", html)
    lines = (line.strip() for line in text.split("\n"))
    return clean(_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip())
