"""Test-only writers for the Outlook formats no tool on this machine can produce: a compound file
(MS-CFB v3) holding an Outlook message (MS-OXMSG), and a TNEF stream (MS-OXTNEF).

Written from the specifications, small on purpose: enough structure for extract-msg and
tnefparse to read what a real Outlook or Exchange wrote (properties, recipients, attachments,
an embedded message, a TNEF attachment with its checksum). tests/fixtures/email/outlook/generate.py
uses it to write the committed fixtures; tests also build variants in memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone

SECTOR = 512
MINI_SECTOR = 64
MINI_CUTOFF = 4096
FREESECT, ENDOFCHAIN, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Property types (MS-OXCDATA 2.11.1).
PT_LONG, PT_BOOLEAN, PT_OBJECT, PT_SYSTIME = 0x0003, 0x000B, 0x000D, 0x0040
PT_STRING8, PT_UNICODE, PT_BINARY = 0x001E, 0x001F, 0x0102


# ---------------------------------------------------------------- compound file (MS-CFB)

@dataclass
class _Entry:
    name: str
    data: bytes | None = None  # None: a storage
    children: list["_Entry"] = field(default_factory=list)
    sid: int = 0
    start: int = ENDOFCHAIN
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM


def _cfb_key(name: str) -> tuple[int, str]:
    # MS-CFB 2.6.4: shorter names sort first, then by upper-cased code points.
    return len(name), name.upper()


def _tree(node: _Entry) -> list[_Entry]:
    """`node` and everything below it, in directory order."""
    out = [node]
    for child in node.children:
        out.extend(_tree(child))
    return out


def _link(entries: list[_Entry]) -> int:
    """A balanced binary search tree of sibling entries; returns its root's id."""
    if not entries:
        return NOSTREAM
    middle = len(entries) // 2
    root = entries[middle]
    root.left, root.right = _link(entries[:middle]), _link(entries[middle + 1:])
    return root.sid


def _chain(fat: list[int], first: int, count: int) -> None:
    for i in range(count):
        fat[first + i] = first + i + 1 if i < count - 1 else ENDOFCHAIN


def compound_file(streams: dict[str, object]) -> bytes:
    """A compound file from a nested dict: str -> bytes is a stream, str -> dict a storage."""
    def build(name: str, content: object) -> _Entry:
        if isinstance(content, dict):
            return _Entry(name, None, [build(k, v) for k, v in sorted(content.items(), key=lambda kv: _cfb_key(kv[0]))])
        return _Entry(name, bytes(content))

    root = build("Root Entry", streams)
    entries = _tree(root)
    for sid, entry in enumerate(entries):
        entry.sid = sid
    for entry in entries:
        entry.child = _link(entry.children)

    mini = bytearray()
    minifat: list[int] = []
    big: list[_Entry] = []
    for entry in entries[1:]:
        if entry.data is None or not entry.data:
            continue
        if len(entry.data) < MINI_CUTOFF:
            entry.start = len(mini) // MINI_SECTOR
            count = -(-len(entry.data) // MINI_SECTOR)
            minifat.extend([0] * count)
            _chain(minifat, entry.start, count)
            mini += entry.data + b"\0" * (count * MINI_SECTOR - len(entry.data))
        else:
            big.append(entry)

    def sectors(size: int) -> int:
        return -(-size // SECTOR)

    n_dir = sectors(len(entries) * 128)
    n_minifat = sectors(len(minifat) * 4)
    n_mini = sectors(len(mini))
    n_big = sum(sectors(len(e.data)) for e in big)  # type: ignore[arg-type]
    n_fat = 1
    while n_fat * (SECTOR // 4) < n_fat + n_dir + n_minifat + n_mini + n_big:
        n_fat += 1
    assert n_fat <= 109, "fixture too large for a header-only DIFAT"
    total = n_fat + n_dir + n_minifat + n_mini + n_big
    fat = [FREESECT] * (n_fat * SECTOR // 4)
    for i in range(n_fat):
        fat[i] = FATSECT
    dir_start = n_fat
    _chain(fat, dir_start, n_dir)
    minifat_start = dir_start + n_dir
    _chain(fat, minifat_start, n_minifat)
    mini_start = minifat_start + n_minifat
    _chain(fat, mini_start, n_mini)
    body = bytearray()
    next_sector = mini_start + n_mini
    for entry in big:
        count = sectors(len(entry.data))  # type: ignore[arg-type]
        entry.start = next_sector
        _chain(fat, next_sector, count)
        body += entry.data + b"\0" * (count * SECTOR - len(entry.data))  # type: ignore[operator]
        next_sector += count
    assert next_sector == total
    root.start = mini_start if mini else ENDOFCHAIN

    directory = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-16-le")
        assert len(name) <= 62, entry.name
        kind = 5 if entry is root else (1 if entry.data is None else 2)
        size = len(mini) if entry is root else len(entry.data or b"")
        start = entry.start if (entry is root or entry.data) else (0 if kind == 1 else ENDOFCHAIN)
        directory += struct.pack("<64sHBBIII16sIQQIQ", name + b"\0\0", len(name) + 2, kind, 1,
                                 entry.left, entry.right, entry.child, b"\0" * 16, 0, 0, 0, start, size)
    while len(directory) % SECTOR:  # unused directory entries are empty, with no siblings
        directory += struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                                 b"\0" * 16, 0, 0, 0, 0, 0)
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_bytes += b"\xff" * (n_minifat * SECTOR - len(minifat_bytes))
    difat = list(range(n_fat)) + [FREESECT] * (109 - n_fat)
    header = (CFB_MAGIC + b"\0" * 16 + struct.pack("<HHHHH6sIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6, 0,
                                                    n_fat, dir_start, 0, MINI_CUTOFF,
                                                    minifat_start if n_minifat else ENDOFCHAIN, n_minifat,
                                                    ENDOFCHAIN, 0)
              + b"".join(struct.pack("<I", v) for v in difat))
    assert len(header) == SECTOR
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    out = header + fat_bytes + bytes(directory) + minifat_bytes + bytes(mini)
    out += b"\0" * (n_mini * SECTOR - len(mini)) + bytes(body)
    assert len(out) == SECTOR * (1 + total)
    return out


# ---------------------------------------------------------------- Outlook message (MS-OXMSG)

def filetime(when: datetime) -> int:
    """100-nanosecond intervals since 1601-01-01 UTC."""
    delta = when.astimezone(timezone.utc) - datetime(1601, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


@dataclass
class Recipient:
    kind: int  # 1 To, 2 Cc, 3 Bcc
    name: str
    address: str
    addrtype: str = "SMTP"
    smtp: str | None = None


@dataclass
class Attachment:
    name: str
    data: bytes | None = None
    mime: str | None = None
    message: "Message | None" = None  # an embedded .msg (attach method 5)


@dataclass
class Message:
    subject: str
    sender_name: str
    sender_address: str
    body: str | None = None
    html: bytes | None = None
    rtf_compressed: bytes | None = None  # PR_RTF_COMPRESSED, as compressed_rtf.compress writes it
    submit_time: datetime | None = None
    delivery_time: datetime | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    transport_headers: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    message_class: str = "IPM.Note"
    sender_addrtype: str = "SMTP"
    sender_smtp: str | None = None


def _props(items: list[tuple[int, int, object]], header: bytes) -> dict[str, object]:
    """The property stream plus one __substg1.0_ stream per variable-length property."""
    streams: dict[str, object] = {}
    table = bytearray(header)
    for prop_id, prop_type, value in items:
        tag = (prop_id << 16) | prop_type
        if prop_type in (PT_LONG, PT_BOOLEAN):
            raw = struct.pack("<IQ", 6, int(value))  # flags: readable | writable
        elif prop_type == PT_SYSTIME:
            raw = struct.pack("<IQ", 6, filetime(value))  # type: ignore[arg-type]
        elif prop_type == PT_OBJECT:
            streams[f"__substg1.0_{prop_id:04X}{prop_type:04X}"] = value
            raw = struct.pack("<III", 6, 0xFFFFFFFF, 4)
        else:
            data = (value.encode("utf-16-le") if prop_type == PT_UNICODE else
                    value.encode("cp1252") if prop_type == PT_STRING8 else bytes(value))  # type: ignore[union-attr]
            streams[f"__substg1.0_{prop_id:04X}{prop_type:04X}"] = data
            length = len(data) + (2 if prop_type == PT_UNICODE else 1 if prop_type == PT_STRING8 else 0)
            raw = struct.pack("<III", 6, length, 0)
        table += struct.pack("<I", tag) + raw
    streams["__properties_version1.0"] = bytes(table)
    return streams


def _message_streams(msg: Message, embedded: bool) -> dict[str, object]:
    text: list[tuple[int, int, object]] = [
        (0x001A, PT_UNICODE, msg.message_class), (0x0037, PT_UNICODE, msg.subject),
        (0x0C1A, PT_UNICODE, msg.sender_name), (0x0C1F, PT_UNICODE, msg.sender_address),
        (0x0C1E, PT_UNICODE, msg.sender_addrtype),
        (0x0042, PT_UNICODE, msg.sender_name), (0x0065, PT_UNICODE, msg.sender_address),
        (0x0E04, PT_UNICODE, "; ".join(r.name for r in msg.recipients if r.kind == 1)),
        (0x0E03, PT_UNICODE, "; ".join(r.name for r in msg.recipients if r.kind == 2)),
        (0x0E02, PT_UNICODE, "; ".join(r.name for r in msg.recipients if r.kind == 3)),
        (0x0E07, PT_LONG, 1 if embedded else 9),  # PR_MESSAGE_FLAGS: read (and unsent for a draft)
    ]
    optional = [(0x5D01, PT_UNICODE, msg.sender_smtp), (0x1000, PT_UNICODE, msg.body), (0x1013, PT_BINARY, msg.html),
                (0x1009, PT_BINARY, msg.rtf_compressed),
                (0x0039, PT_SYSTIME, msg.submit_time), (0x0E06, PT_SYSTIME, msg.delivery_time),
                (0x1035, PT_UNICODE, msg.message_id), (0x1042, PT_UNICODE, msg.in_reply_to),
                (0x1039, PT_UNICODE, msg.references), (0x007D, PT_UNICODE, msg.transport_headers)]
    text += [item for item in optional if item[2] is not None]
    counts = struct.pack("<8sIIII", b"", len(msg.recipients), len(msg.attachments),
                         len(msg.recipients), len(msg.attachments))
    streams = _props(text, counts if embedded else counts + b"\0" * 8)
    for i, r in enumerate(msg.recipients):
        items = [(0x0C15, PT_LONG, r.kind), (0x3001, PT_UNICODE, r.name), (0x3003, PT_UNICODE, r.address),
                 (0x3002, PT_UNICODE, r.addrtype), (0x3000, PT_LONG, i)]
        if r.smtp:
            items.append((0x39FE, PT_UNICODE, r.smtp))
        streams[f"__recip_version1.0_#{i:08X}"] = _props(items, b"\0" * 8)
    for i, a in enumerate(msg.attachments):
        items = [(0x3707, PT_UNICODE, a.name), (0x3704, PT_UNICODE, a.name[:12]), (0x3001, PT_UNICODE, a.name),
                 (0x0E21, PT_LONG, i)]
        if a.message is not None:
            items += [(0x3705, PT_LONG, 5), (0x3701, PT_OBJECT, _message_streams(a.message, embedded=True))]
        else:
            items += [(0x3705, PT_LONG, 1), (0x3701, PT_BINARY, a.data or b"")]
        if a.mime:
            items.append((0x370E, PT_UNICODE, a.mime))
        streams[f"__attach_version1.0_#{i:08X}"] = _props(items, b"\0" * 8)
    if not embedded:
        # Named-property mapping: empty, but readers expect the storage and its three streams.
        streams["__nameid_version1.0"] = {"__substg1.0_00020102": b"", "__substg1.0_00030102": b"",
                                          "__substg1.0_00040102": b""}
    return streams


def msg_file(msg: Message) -> bytes:
    """The bytes of an Outlook .msg file holding `msg`."""
    return compound_file(_message_streams(msg, embedded=False))


# ---------------------------------------------------------------- TNEF (MS-OXTNEF)

TNEF_SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
# attribute ids with their type in the high word (MS-OXTNEF 2.1.3.1)
ATT_TNEF_VERSION, ATT_OEM_CODEPAGE, ATT_MESSAGE_CLASS = 0x00089006, 0x00069007, 0x00078008
ATT_SUBJECT, ATT_BODY, ATT_MESSAGE_ID = 0x00018004, 0x0002800C, 0x00018009
ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACH_DATA = 0x00069002, 0x00018010, 0x0006800F


def tnef_attribute(level: int, attribute: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attribute, len(data)) + data + struct.pack("<H", checksum)


def tnef_file(subject: str, body: str | None, files: list[tuple[str, bytes]], key: int = 0x0102) -> bytes:
    """A winmail.dat as Exchange writes it for a message with `files` attached (legacy attributes)."""
    out = bytearray(struct.pack("<IH", TNEF_SIGNATURE, key))
    out += tnef_attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += tnef_attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1252, 0))
    out += tnef_attribute(LVL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\0")
    out += tnef_attribute(LVL_MESSAGE, ATT_SUBJECT, subject.encode("cp1252") + b"\0")
    if body is not None:
        out += tnef_attribute(LVL_MESSAGE, ATT_BODY, body.encode("cp1252"))
    for name, data in files:
        # attRendData: attachment type 1 (file), position, width/height, flags
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0))
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, name.encode("cp1252") + b"\0")
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, data)
    return bytes(out)
