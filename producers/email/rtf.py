"""rtf_to_text: the readable text of an RTF body, as Outlook and Exchange store it (TNEF, .msg).

Bodies that wrap HTML or plain text (`\\fromhtml`, `\\fromtext`) are de-encapsulated by RTFDE,
the library extract-msg uses; native RTF is read by a small tokenizer here that keeps the text,
paragraph breaks, `\\'hh` characters (in the document's ANSI code page) and `\\uN` characters, and
skips destinations that are not text (font and colour tables, pictures, embedded objects).
For search and review, not for rendering: the RTF itself is kept byte for byte.
"""

from __future__ import annotations

import re

from producers.email.mime import decode_text, html_to_text

_TOKEN = re.compile(rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|([^\\{}\r\n]+)|[\r\n]+")
_SKIP = frozenset(b"""fonttbl colortbl stylesheet info pict object header footer headerl headerr footerl
    footerr footnote listtable listoverridetable rsidtbl generator xmlnstbl themedata colorschememapping
    latentstyles datastore revtbl filetbl fldinst""".split())
_BREAKS = {b"par": "\n", b"line": "\n", b"sect": "\n\n", b"page": "\n\n", b"row": "\n", b"cell": "\t",
           b"tab": "\t", b"emdash": "\u2014", b"endash": "\u2013", b"bullet": "\u2022",
           b"lquote": "\u2018", b"rquote": "\u2019", b"ldblquote": "\u201c", b"rdblquote": "\u201d"}
_BLANK_LINES = re.compile(r"\n{3,}")


def rtf_to_text(rtf: bytes) -> str:
    """Plain text of an RTF document; never raises."""
    if b"\\fromhtml" in rtf[:2048] or b"\\fromtext" in rtf[:2048]:
        try:
            from RTFDE.deencapsulate import DeEncapsulator

            found = DeEncapsulator(rtf)
            found.deencapsulate()
            if found.content_type == "html" and found.html:
                html = found.html
                return html_to_text(html if isinstance(html, str) else decode_text(html, None))
            if found.text:
                text = found.text
                return (text if isinstance(text, str) else decode_text(text, None)).replace("\r\n", "\n").strip()
        except Exception:  # noqa: BLE001, S110 - RTFDE refuses damaged input: fall back to the tokenizer
            pass
    return _native(rtf)


def _native(rtf: bytes) -> str:
    codepage = re.search(rb"\\ansicpg(\d+)", rtf[:4096])
    charset = f"cp{codepage.group(1).decode()}" if codepage else "cp1252"
    out: list[str] = []
    pending = bytearray()  # \'hh bytes decode together: one character may take two (CJK code pages)
    stack: list[tuple[bool, int]] = []
    skipping, uc, skip_next = False, 1, 0
    at_group_start = False

    def flush() -> None:
        if pending:
            out.append(decode_text(bytes(pending), charset))
            pending.clear()

    for match in _TOKEN.finditer(rtf):
        word, arg, hexbyte, symbol, brace, text = match.groups()
        starting, at_group_start = at_group_start, False
        if brace == b"{":
            stack.append((skipping, uc))
            at_group_start = True
            continue
        if brace == b"}":
            skipping, uc = stack.pop() if stack else (skipping, uc)
            continue
        if skip_next and (text or hexbyte or symbol):
            # The ANSI fallback after \uN: drop as many characters as \ucN says.
            if text and len(text) > skip_next:
                text, skip_next = text[skip_next:], 0
            else:
                skip_next -= 1 if not text else len(text)
                skip_next = max(skip_next, 0)
                continue
        if symbol == b"*" and starting:
            skipping = True
        if skipping:
            continue
        if word is not None:
            if word in _SKIP:
                skipping = True
            elif word == b"uc" and arg:
                uc = int(arg)
            elif word == b"u" and arg:
                flush()
                out.append(chr(int(arg) % 65536))
                skip_next = uc
            elif word in _BREAKS:
                flush()
                out.append(_BREAKS[word])
        elif hexbyte is not None:
            pending.append(int(hexbyte, 16))
        elif symbol is not None:
            flush()
            out.append({b"~": "\u00a0", b"_": "-", b"-": "", b"\\": "\\", b"{": "{", b"}": "}"}.get(symbol, ""))
        elif text:
            flush()
            out.append(decode_text(text, charset))
    flush()
    lines = (line.rstrip() for line in "".join(out).replace("\0", "").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
