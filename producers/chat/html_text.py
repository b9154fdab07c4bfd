"""Chat message HTML (Teams bodies) -> the text a reader sees, for search and review.

Block elements become line breaks, `<at>` mentions and links keep their words, emoji elements
become their alt text (`<customemoji alt="tick">` -> `:tick:`), scripts and styles are dropped.
The HTML itself stays in the raw original; this is only its readable form.
"""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr"})
_SKIP = frozenset({"script", "style", "head", "title"})


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in ("emoji", "customemoji", "img"):
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f":{alt}:" if tag == "customemoji" else alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    lines = (" ".join(line.split()) for line in "".join(reader.parts).replace("\xa0", " ").splitlines())
    return "\n".join(line for line in lines if line)
