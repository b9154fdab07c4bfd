"""The benchmark's corpus: a generated mailbox, made once into the cache and replayed every run.

About 1.5 KB per message on average, like ordinary business mail: a 400-500 byte header block,
a few paragraphs of plain text (some utf-8, some RFC 2047 subjects), replies with In-Reply-To,
and an attachment on one message in ten (base64, a few KB), spread over 30 days so that one day
is a small share of the warehouse. Deterministic: random.Random(seed) and a fixed end date, so
the same arguments give the same bytes and cache key. Generation is never what is measured.

`records.bin` beside the mailbox holds each message's Avro body (what ingest would produce, the
5-byte Confluent header left off because the schema id belongs to a registry), length-prefixed,
for the ceilings that start from pre-encoded bytes.
"""

from __future__ import annotations

import base64
import random
import struct
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

UTC = timezone.utc
END_DAY = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = 30
FORMAT = 1  # bump when the generator changes, so an old cache is not replayed
_LENGTH = struct.Struct(">I")

_DOMAINS = ["northwind.example", "contoso.example", "acme-bank.example", "fabrikam.example", "tailspin.example"]
_FIRST = ["Anna", "Ben", "Chloé", "David", "Emre", "Fatima", "Gustav", "Hana", "Ivan", "José", "Kofi", "Lena",
          "Marta", "Noah", "Olga", "Pierre", "Qiu", "Rosa", "Søren", "Tomás", "Uma", "Viktor", "Wei", "Zoë"]
_LAST = ["Müller", "Smith", "Dubois", "García", "Rossi", "Nowak", "Kim", "Okafor", "Larsen", "Tanaka",
         "Schmidt", "Brown", "Silva", "Novak", "Weber"]
_WORDS = ("the a of to and in for on with is that we this please settlement trade confirm desk client "
          "portfolio attached report figures quarter review compliance policy meeting tomorrow call "
          "invoice payment deadline approval risk limit exposure bond issuance pricing spread basis "
          "points allocation book order syndicate term sheet draft final signed counterparty margin "
          "collateral reconciliation break position update schedule thanks regards best note agenda "
          "minutes action items follow up question answer numbers budget forecast audit evidence").split()
_TOPICS = ["Q4 attestation", "trade break", "Project Halcyon", "client onboarding", "margin call", "budget",
           "audit evidence", "desk limits", "pricing update", "weekly report", "offsite agenda", "KYC refresh"]


@dataclass(frozen=True)
class Corpus:
    mbox: Path
    records: Path
    messages: int
    raw_bytes: int

    @property
    def average_bytes(self) -> float:
        return self.raw_bytes / self.messages


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("STRONGROOM_CACHE_DIR", Path.home() / ".cache" / "strongroom")).expanduser()


def corpus(messages: int, seed: int = 8) -> Corpus:
    """The corpus of `messages` messages, generated into the cache on first use."""
    folder = cache_dir() / "bench" / f"corpus-v{FORMAT}-{messages}-{seed}"
    mbox, records = folder / "mailbox.mbox", folder / "records.bin"
    if not records.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        data = generate_mbox(messages, seed)
        _atomic_write(mbox, data)
        _atomic_write(records, _encode_records(mbox))
    return Corpus(mbox, records, messages, _raw_bytes(mbox))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _raw_bytes(mbox: Path) -> int:
    from producers.email.sources import MboxSource

    return sum(len(m.raw) for m in MboxSource(mbox))


def read_records(path: Path) -> list[bytes]:
    """The Avro bodies of records.bin, in mailbox order."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


def _encode_records(mbox: Path) -> bytes:
    """Each message as ingest encodes it (parse_email, ingested_at stamped), without the header."""
    import io

    import fastavro

    from producers.email import captures
    from schemas import records, serde

    schema = serde.parsed_schema()
    stamp = END_DAY + timedelta(days=1)
    out = io.BytesIO()
    for capture in captures(mbox):
        rec = capture.record
        rec["ingested_at"] = stamp
        rec["arrival_id"] = records.arrival_id(rec)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, rec)
        out.write(_LENGTH.pack(len(body.getvalue())) + body.getvalue())
    return out.getvalue()


# -- the generator --------------------------------------------------------------------------
def _people(rng: random.Random) -> list[tuple[str, str]]:
    people = []
    for n in range(300):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = f"{first}.{last}".lower().encode("ascii", "ignore").decode() + (str(n) if n > 60 else "")
        people.append((f"{first} {last}", f"{local}@{_DOMAINS[n % len(_DOMAINS)]}"))
    return people


def _paragraphs(rng: random.Random, chars: int) -> str:
    paras, total = [], 0
    while total < chars:
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(12, 40)))
        para = textwrap.fill(words[0].upper() + words[1:] + ".", 72)
        paras.append(para)
        total += len(para) + 2
    return "\n\n".join(paras)


def _address(person: tuple[str, str]) -> str:
    name, addr = person
    if name.isascii():
        return f'"{name}" <{addr}>'
    encoded = base64.b64encode(name.encode()).decode()
    return f"=?utf-8?b?{encoded}?= <{addr}>"


def generate_mbox(messages: int, seed: int = 8) -> bytes:
    """An mbox of `messages` messages; the same arguments give the same bytes."""
    rng = random.Random(f"{seed}/bench-mail")
    people = _people(rng)
    sent: list[tuple[str, str]] = []  # (message-id, subject) of earlier messages, for replies
    out = []
    for n in range(messages):
        when = END_DAY - timedelta(seconds=rng.randint(0, DAYS * 86400 - 1))
        sender = rng.choice(people)
        to = rng.sample(people, rng.randint(1, 3))
        cc = rng.sample(people, rng.randint(1, 2)) if rng.random() < 0.5 else []
        msg_id = f"<{when:%Y%m%d%H%M%S}.{n:06d}.{rng.getrandbits(32):08x}@{sender[1].split('@')[1]}>"
        reply = sent[rng.randrange(len(sent))] if sent and rng.random() < 0.4 else None
        subject = f"Re: {reply[1]}" if reply else f"{rng.choice(_TOPICS)} {rng.randint(100, 999)}"
        head = [f"From: {_address(sender)}", f"To: {', '.join(_address(p) for p in to)}"]
        if cc:
            head.append(f"Cc: {', '.join(_address(p) for p in cc)}")
        head += [f"Subject: {subject}", f"Date: {format_datetime(when)}", f"Message-ID: {msg_id}"]
        if reply:
            head += [f"In-Reply-To: {reply[0]}", f"References: {reply[0]}"]
        head += ["MIME-Version: 1.0", "X-Mailer: strongroom-bench"]
        text = _paragraphs(rng, rng.randint(250, 1000))
        if rng.random() < 0.2:
            text += "\n\nGrüße aus Zürich, à bientôt. Ŝŏ — 東京."
        if rng.random() < 0.1:
            boundary = f"=_sb{rng.getrandbits(64):016x}"
            attachment = base64.encodebytes(rng.randbytes(rng.randint(1500, 4000))).decode()
            name = f"{rng.choice(['report', 'confirmation', 'statement', 'minutes'])}-{n}.pdf"
            head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
            body = (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                    f"{text}\n\n--{boundary}\nContent-Type: application/pdf; name=\"{name}\"\n"
                    f"Content-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n"
                    f"{attachment}\n--{boundary}--\n")
        else:
            head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
            body = text + "\n"
        raw = "\n".join(head) + "\n\n" + body
        out.append(f"From {sender[1]} {when.ctime()}\n{raw}\n".encode())
        sent.append((msg_id, subject.removeprefix("Re: ")))
    return b"".join(out)
