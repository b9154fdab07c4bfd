"""The signed content inside an opaque S/MIME message (application/pkcs7-mime; smime-type=signed-data).

Opaque signing wraps the MIME entity in a CMS SignedData structure (RFC 5652), so its text is
not readable without reading the BER: ContentInfo -> [0] SignedData -> encapContentInfo ->
[0] eContent, an OCTET STRING (possibly constructed from chunks, with indefinite lengths, as
streaming signers write it). This reads only that path; it does not verify the signature (the
.p7m blob is kept for that). Anything unexpected gives None, never an exception.
"""

from __future__ import annotations

_SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_MAX_DEPTH = 32


class _Malformed(Exception):
    pass


def signed_content(data: bytes) -> bytes | None:
    """The encapsulated content of a CMS SignedData, or None if `data` is not one or holds none."""
    try:
        info = _children(data, _read(data, 0, len(data)), expect=0x30)
        if len(info) < 2 or _primitive(data, info[0]) != _SIGNED_DATA_OID:
            return None
        signed = _children(data, info[1], expect=0xA0)[0]
        fields = _children(data, signed, expect=0x30)
        encapsulated = _children(data, fields[2], expect=0x30)
        if len(encapsulated) < 2:
            return None  # detached signature: the content travels beside it
        content = _children(data, encapsulated[1], expect=0xA0)[0]
        return _octets(data, content, 0)
    except (_Malformed, IndexError, ValueError):
        return None


# A TLV as (tag, content start, content end, end of the whole element).
_Tlv = tuple[int, int, int, int]


def _read(data: bytes, position: int, limit: int, depth: int = 0) -> _Tlv:
    if depth > _MAX_DEPTH or position + 2 > limit:
        raise _Malformed("truncated")
    tag = data[position]
    if tag & 0x1F == 0x1F:
        raise _Malformed("high tag numbers do not occur on this path")
    length = data[position + 1]
    start = position + 2
    if length == 0x80:  # indefinite: children up to the end-of-contents octets
        if not tag & 0x20:
            raise _Malformed("indefinite primitive")
        cursor = start
        while data[cursor:cursor + 2] != b"\x00\x00":
            cursor = _read(data, cursor, limit, depth + 1)[3]
        return tag, start, cursor, cursor + 2
    if length & 0x80:
        count = length & 0x7F
        if count > 4 or start + count > limit:
            raise _Malformed("length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > limit:
        raise _Malformed("overrun")
    return tag, start, start + length, start + length


def _children(data: bytes, element: _Tlv, expect: int) -> list[_Tlv]:
    """The elements inside `element`, which must have tag `expect`."""
    tag, inner, inner_end, _ = element
    if tag != expect:
        raise _Malformed(f"tag {tag:#x}")
    found = []
    cursor = inner
    while cursor < inner_end:
        element = _read(data, cursor, inner_end)
        found.append(element)
        cursor = element[3]
    return found


def _primitive(data: bytes, element: _Tlv) -> bytes:
    return data[element[1]:element[2]]


def _octets(data: bytes, element: _Tlv, depth: int) -> bytes:
    """An OCTET STRING's bytes, joining the chunks of a constructed one."""
    tag, start, end, _ = element
    if tag == 0x04:
        return data[start:end]
    if tag != 0x24 or depth > _MAX_DEPTH:
        raise _Malformed(f"not an octet string: {tag:#x}")
    chunks = []
    cursor = start
    while cursor < end:
        chunk = _read(data, cursor, end)
        chunks.append(_octets(data, chunk, depth + 1))
        cursor = chunk[3]
    return b"".join(chunks)
