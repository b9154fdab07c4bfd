"""A deterministic sample corpus for `strongroom demo`: one mbox file and one unpacked Slack export.

The story: Northwind Capital (northwind.example), a small regulated firm, over the ten days before
2026-11-20. A bond deal (Project Halcyon), the quarterly compliance attestation, a client complaint,
trade confirmations with a break, an off-hours "let's take this offline" exchange, an out-of-office
reply, and routine mail and chat around them. Everything comes from random.Random seeded by `seed`
and a fixed end date (never the clock), so the same arguments give byte-identical files.

The corpus carries the awkward parts of real data on purpose, so the demo exercises the parsers:
RFC 2047 subjects, RFC 2231 file names, utf-8 and 8bit latin-1 bodies, HTML alternatives, a
branching thread, mboxrd ">From " quoting, one message that cannot be parsed at all (quarantine),
and Slack threads, edits, reactions, a file share, a join, a bot and \\u-escaped non-ASCII text.

Standard library only. About 530 lines, over the ~300 aimed for: some 200 are the story's data tables.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import random
import re
import textwrap
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

UTC = timezone.utc
END_DAY = datetime(2026, 11, 20, tzinfo=UTC)  # fixed, so output never depends on when it runs
MAIL_DAYS = 10
DOMAIN = "northwind.example"
TEAM = "T0NORTHWND"


@dataclass(frozen=True)
class SampleInfo:
    mbox: Path
    slack: Path
    emails: int  # every mbox entry, the broken one included
    chat_messages: int
    broken_emails: int


@dataclass(frozen=True)
class _Person:
    name: str
    email: str
    title: str
    utc_offset: int  # hours in November; Date headers carry the sender's own zone
    slack_id: str | None = None


PEOPLE: dict[str, _Person] = {
    "zoe": _Person("Zoë Müller", f"zoe.mueller@{DOMAIN}", "Chief Compliance Officer", 1, "U01ZMUELLER"),
    "jose": _Person("José Álvarez", f"jose.alvarez@{DOMAIN}", "Head of Fixed Income", 0, "U02JALVAREZ"),
    "soren": _Person("Søren Kierkegaard-Lund", f"soren.kl@{DOMAIN}", "Credit Trader", 0, "U03SKLUND"),
    "lina": _Person("李娜", f"li.na@{DOMAIN}", "Analyst, Tokyo office", 9, "U04LINA"),
    "priya": _Person("Priya Raman", f"priya.raman@{DOMAIN}", "Operations", 0, "U05PRAMAN"),
    "tom": _Person("Tom O'Brien", f"tom.obrien@{DOMAIN}", "Institutional Sales", 0, "U06TOBRIEN"),
    "amelie": _Person("Amélie Dubois", f"amelie.dubois@{DOMAIN}", "Client Services", 1, "U07ADUBOIS"),
    "marcus": _Person("Marcus Webb", f"marcus.webb@{DOMAIN}", "General Counsel", -5, "U08MWEBB"),
    "hannah": _Person("Hannah Schmidt", "h.schmidt@acme-bank.example", "Syndicate, Acme Bank AG", 1),
    "lukas": _Person("Lukas Brenner", "l.brenner@acme-bank.example", "Operations, Acme Bank AG", 1),
    "confirm": _Person("Acme Bank Confirmations", "confirmations@acme-bank.example", "", 1),
    "raj": _Person("Raj Patel", "raj.patel@contoso.example", "Treasurer, Contoso Ltd", 0),
}
STAFF = [k for k, p in PEOPLE.items() if p.slack_id]
BOT = {"id": "U09ATTEST", "bot_id": "B09ATTEST", "name": "attestation-bot", "real_name": "Attestation Bot"}

# A thread: subject, first sender's To and Cc, steps (sender, body, flags), and a fixed local start
# ("YYYY-MM-DD HH:MM" in the first sender's zone) for story threads whose text names dates.
# Flags: html (add an HTML alternative), latin1 (8bit iso-8859-1 body), pdf/csv/docx (attachment),
# ooo (an auto-reply to the thread's first message, so the thread branches there).
_Step = tuple[str, str, str]
_Thread = tuple[str, list[str], list[str], list[_Step], str | None]

STORY: list[_Thread] = [
    ("Project Halcyon — final terms & allocations", ["hannah"], ["soren", "zoe"], [
        ("jose", "Hannah,\n\nAttached is v3 of the Halcyon term sheet: EUR 500m 7-year senior unsecured, "
                 "IPT mid-swaps +145 area. Please confirm your syndicate desk is happy with the timetable: "
                 "books open Tuesday 08:00 CET and close Wednesday 14:00 CET.\n\nWe have wall-crossed three "
                 "accounts so far; the insider list is with Zoë.", "html pdf"),
        ("hannah", "Hallo José,\n\nthe timetable works for us. We will send the announcement once you "
                   "confirm the final size. Please keep the wall-crossing log up to date, our Compliance "
                   "will ask for it.\n\nGrüße aus München,\nHannah", "latin1"),
        ("jose", "Thanks Hannah. Size is EUR 500m, no upsizing. Søren runs the book on our side.", ""),
        ("soren", "From our side the book is covered 2.3x at IPT. We are guiding to +130 area and expect "
                  "final terms this afternoon.", ""),
        ("hannah", "Confirmed at +125, EUR 500m. Allocations to follow by 16:00 CET.", ""),
        ("jose", "Final allocations attached. Contoso gets 15m, not the 25m they asked for. Please do not "
                 "discuss allocations outside this thread.", "docx"),
    ], "2026-11-16 09:05"),
    ("Q4 compliance attestation — Bestätigung fällig bis 27.11.",
     ["jose", "soren", "lina", "priya", "tom", "amelie", "marcus"], [], [
        ("zoe", "Hello all,\n\nIt is time for the quarterly compliance attestation. Please confirm by "
                "Friday 27 November that you have (1) disclosed all personal account dealing, (2) used only "
                "approved channels for client communication, and (3) reported gifts and entertainment above "
                "EUR 100.\n\nThe form is pinned in #compliance. Thank you!", ""),
        ("marcus", "I am out of the office until Monday 23 November with limited access to email. For "
                   f"urgent legal matters please contact legal@{DOMAIN}.", "ooo"),
        ("lina", "Zoë,\n\n已完成。Attestation submitted for the 東京オフィス team. One question: does a "
                 "dinner with a Contoso analyst (JPY 18,000, about EUR 110) count?\n\n李娜", ""),
        ("zoe", "Li Na, yes: anything above EUR 100 goes in the gifts register. Please add it with the "
                "names of everyone who attended.", ""),
        ("priya", "Submitted. Is the operations checklist the same as last quarter?", ""),
        ("zoe", "Mostly. The reviewer's checklist is attached; section 4 on record keeping is new.", "docx"),
    ], "2026-11-11 10:00"),
    ("Complaint: order 44817 executed at wrong price", ["amelie"], ["tom"], [
        ("raj", "Dear Ms Dubois,\n\nOn 12 November we placed a limit order (ref. 44817) to buy EUR 5m of "
                "the Halden Energy 2031 bonds at 98.40 or better. Your confirmation shows execution at "
                "98.95. This is outside our limit and we did not agree to it.\n\nPlease treat this as a "
                "formal complaint and reverse the trade or compensate us for the difference.", "html"),
        ("amelie", "Dear Mr Patel,\n\nThank you for your message. I have logged it as complaint "
                   "CMP-2026-0193 and passed it to our Compliance team, who will reply within five "
                   "business days.", ""),
        ("zoe", "Dear Mr Patel,\n\nWe have reviewed the order log and the call recording. The order was "
                "entered with a limit of 98.95 instead of 98.40, an input error on our side. We will "
                "cancel and rebook the trade at 98.40 today and bear the difference.", "html"),
        ("raj", "Thank you. Please send the corrected confirmation to our operations team.", ""),
        ("amelie", "The corrected confirmation has gone to your operations team and complaint "
                   "CMP-2026-0193 is closed. If you are not satisfied with the outcome you may refer it "
                   "to the Financial Ombudsman Service.", ""),
    ], "2026-11-13 08:12"),
    ("Handelsbestätigungen / trade confirmations 18.11.2026", ["priya"], ["jose"], [
        ("confirm", "Please find attached the confirmations for trades executed with Acme Bank AG today. "
                    "Report any discrepancy within 24 hours.\n\nThis message was sent automatically.", "csv"),
        ("priya", "Hello, trade NW-26-1118-004 shows settlement T+3; we booked T+2. Could you check?", ""),
        ("lukas", "Our error, corrected to T+2. The amended file is attached.", "csv"),
        ("priya", "Thanks, matched. All confirmations for 18.11. are now reconciled.", ""),
    ], "2026-11-18 17:30"),
    ("quick one", ["tom"], [], [
        ("soren", "Tom, about the Contoso allocation. Let's take this offline. Call my personal mobile, "
                  "not the desk line.", ""),
        ("tom", "ok. whatsapp?", ""),
        ("soren", "Yes. And delete this.", ""),
    ], "2026-11-17 23:41"),
]

# Routine mail, drawn at random to fill up to `messages`; {n}, {topic} and {client} vary each use.
FILLERS: list[_Thread] = [
    ("Market colour: {topic}", ["soren", "tom", "lina"], [], [
        ("jose", "Colour from the desk: {topic}. Flows were light overnight, Asian real money "
                 "buying the belly. Watch the 10:00 CET auction.", ""),
        ("lina", "Tokyo saw lifers selling long-end JGBs again; credit spreads unchanged at the close.", ""),
    ], None),
    ("KYC refresh due: {client}", ["amelie"], ["zoe"], [
        ("priya", "The periodic KYC review for {client} is due this month. We still need a current "
                  "register extract and the ownership chart.", ""),
        ("amelie", "Requested both from the client today; I will chase on Friday.", ""),
        ("zoe", "Thanks. No new business with {client} until the file is complete, please.", ""),
    ], None),
    ("Expense claim {n} – client dinner", ["priya"], [], [
        ("tom", "Dinner with the {client} treasury team, four people, GBP 312. Receipt attached to the "
                "expense system as claim {n}.", ""),
        ("priya", "Approved. Please also add it to the gifts and entertainment register.", ""),
    ], None),
    ("Pre-clearance request PAD-{n}", ["zoe"], [], [
        ("soren", "Requesting pre-clearance to sell 200 shares of Halden Energy held since 2023 in my "
                  "personal account.", ""),
        ("zoe", "Not approved: Halden Energy is on the restricted list while Halcyon is live.", ""),
    ], None),
    ("Desk cover while I am at the {client} offsite", ["soren", "tom"], ["priya"], [
        ("jose", "I am with {client} on Thursday. Søren covers the book and signs off limits; Tom has "
                 "client calls. Anything above EUR 25m waits for me.", ""),
        ("soren", "Fine. I will send the risk summary at the close.", ""),
    ], None),
    ("Research note: {topic}", ["jose", "soren", "tom", "amelie"], [], [
        ("lina", "Our weekly note on {topic} is published on the portal. Clients may receive the PDF; "
                 "please do not paraphrase the conclusions in chat.", "html"),
    ], None),
    ("Chat export request for {client} audit", ["marcus"], ["zoe"], [
        ("priya", "{client}'s auditors ask for our chat and email with them from Q3. Can we release it?", ""),
        ("marcus", "Yes, from the archive only, and log the export under request {n}.", ""),
        ("zoe", "I will run the export and send it to you for review first.", ""),
    ], None),
    ("Call notes: {client}, {topic}", ["jose"], ["amelie"], [
        ("tom", "Spoke to {client} this morning about {topic}. They want indications for EUR 10-25m and "
                "asked about our research on the sector.", ""),
        ("jose", "Send them the published note only, nothing from the Halcyon wall-crossing.", ""),
        ("tom", "Understood.", ""),
    ], None),
    ("Lunch & learn: record keeping for WhatsApp and Signal", STAFF[1:], [], [
        ("zoe", "Thursday 12:30, room 3. Regulators fined several banks this year for business "
                "conversations on personal messaging apps. Twenty minutes, sandwiches provided.", "html"),
    ], None),
    ("Settlement fail {n}", ["priya"], ["jose"], [
        ("lukas", "Trade ref {n} failed to settle: the SSI on file for {client} is out of date.", ""),
        ("priya", "Updated SSIs sent via SWIFT MT599 just now; please retry tomorrow.", ""),
    ], None),
]
TOPICS = ["EUR rates and the ECB", "Bund auction", "IG credit supply", "USD swap spreads", "JGB curve"]
CLIENTS = ["Contoso", "Fabrikam Pension Fund", "Tailspin Insurance", "Woodgrove Trust"]

# Slack chatter per channel: (person, text); <@{key}> becomes a mention of that person.
CHANNELS: dict[str, tuple[str, str, list[str], list[tuple[str, str]]]] = {
    "general": ("C01GENERAL", "Company-wide announcements and work-based matters", STAFF, [
        ("jose", "Welcome <@{lina}>, our new analyst in the Tokyo office!"),
        ("priya", "Reminder: the fire drill is at 11:00 today."),
        ("amelie", "Café au lait machine on 2 is fixed, merci <@{priya}>!"),
        ("tom", "Anyone have the dial-in for the Contoso quarterly review?"),
        ("marcus", "New NDA template is on the intranet; please stop using the 2024 one."),
    ]),
    "fixed-income-desk": ("C02FIDESK", "Fixed income trading. Recorded and archived.", STAFF, [
        ("soren", "Bunds +4bp on the open, IG primary busy: three deals in the market."),
        ("tom", "Contoso asking for levels on the 2031s, 10m."),
        ("lina", "JGB 30y auction tail was 0.4bp, softer than expected."),
        ("soren", "can we move this to whatsapp?"),
        ("jose", "Keep client talk on this channel or recorded lines, please. <@{zoe}> FYI"),
    ]),
    "compliance": ("C03COMPLY", "Questions for the compliance team", STAFF, [
        ("zoe", "Reminder: gifts and entertainment above EUR 100 go in the register."),
        ("tom", "Is a conference ticket from Acme Bank a gift?"),
        ("zoe", "<@{tom}> yes, if they pay for it. Register it and I will review."),
        ("priya", "Where do I find the Q4 attestation form?"),
    ]),
}


def write_sample(dest: Path, *, seed: int = 7, messages: int = 60, chat_days: int = 5) -> SampleInfo:
    """Write dest/mail/archive.mbox and the Slack export dest/slack/; the same arguments give the same bytes."""
    if messages < 1 or chat_days < 1:
        raise ValueError("messages and chat_days must be at least 1")
    dest = Path(dest)
    mbox = dest / "mail" / "archive.mbox"
    mbox.parent.mkdir(parents=True, exist_ok=True)
    # Separate generators, so changing the mail size does not reshuffle the chat, and the other way round.
    mbox.write_bytes(_mbox(random.Random(f"{seed}/mail"), messages))
    chat = _slack(dest / "slack", random.Random(f"{seed}/chat"), chat_days)
    return SampleInfo(mbox, dest / "slack", messages, chat, 1)


# ---- mail ---------------------------------------------------------------------------------------

def _mbox(rng: random.Random, messages: int) -> bytes:
    threads = list(STORY)
    window = sum(len(t[3]) for t in threads)
    pool: list[_Thread] = []
    while window < messages:  # the story first, then routine mail until the count is reached
        pool = pool or rng.sample(FILLERS, len(FILLERS))  # each kind once before any repeats
        subject, to, cc, steps, _ = pool.pop()
        fill = {"n": rng.randint(1000, 9999), "topic": rng.choice(TOPICS), "client": rng.choice(CLIENTS)}
        threads.append((subject.format(**fill), to, cc, [(s, b.format(**fill), f) for s, b, f in steps], None))
        window += len(steps)
    entries: list[tuple[datetime, str, bytes]] = []
    budget = messages - 1  # one slot is the broken message
    for thread in threads:
        built = _thread(rng, thread, len(entries))[:budget]
        budget -= len(built)
        entries += built
    # A spool fragment that is gzip bytes, not a message: no header block at all, so it must quarantine.
    junk = (b"\x1f\x8b\x08\x00" + rng.randbytes(240)).replace(b"\nFrom ", b"\nfrom ")
    entries.append((END_DAY - timedelta(days=3, hours=rng.randint(0, 23)), "MAILER-DAEMON", junk))
    out = io.BytesIO()
    for when, envelope, raw in sorted(entries, key=lambda e: e[0]):  # mailboxes hold arrival order
        raw = _FROM_LINE.sub(rb">\1", raw)  # mboxrd: quote ">*From " lines so they cannot split
        out.write(f"From {envelope} {when.astimezone(UTC).ctime()}\n".encode() + raw.rstrip(b"\n") + b"\n\n")
    return out.getvalue()


_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def _start(rng: random.Random, sender: _Person, fixed: str | None) -> datetime:
    zone = timezone(timedelta(hours=sender.utc_offset))
    if fixed:
        return datetime.strptime(fixed, "%Y-%m-%d %H:%M").replace(tzinfo=zone) + timedelta(minutes=rng.randint(0, 4))
    weekdays = [d for d in (END_DAY - timedelta(days=n) for n in range(1, MAIL_DAYS + 1)) if d.weekday() < 5]
    day = rng.choice(weekdays).replace(tzinfo=zone)
    return day.replace(hour=rng.randint(8, 16), minute=rng.randint(0, 59), second=rng.randint(0, 59))


def _thread(rng: random.Random, thread: _Thread, serial: int) -> list[tuple[datetime, str, bytes]]:
    """Build one thread's messages: replies go reply-all to the previous one (auto-replies to the first)."""
    subject, to, cc, steps, fixed = thread
    out: list[tuple[datetime, str, bytes]] = []
    when = _start(rng, PEOPLE[steps[0][0]], fixed)
    late = when.hour >= 20  # a late-night exchange goes back and forth within minutes
    first: dict[str, Any] | None = None
    parent: dict[str, Any] | None = None
    for i, (key, body, flags) in enumerate(steps):
        person = PEOPLE[key]
        msg = EmailMessage(policy=policy.default)
        reply_to = first if "ooo" in flags else parent
        if reply_to is None:
            recipients, copies, subj = to, cc, subject
        else:
            everyone = [reply_to["key"], *reply_to["to"], *reply_to["cc"]]
            recipients = [reply_to["key"]]
            copies = [] if "ooo" in flags else [k for k in dict.fromkeys(everyone) if k not in (key, reply_to["key"])]
            subj = ("Automatic reply: " if "ooo" in flags else "Re: ") + subject
            when += timedelta(minutes=1 if "ooo" in flags else rng.randint(3, 12) if late else rng.randint(12, 240))
        local = when.astimezone(timezone(timedelta(hours=person.utc_offset)))
        msg_id = f"<{local.astimezone(UTC):%Y%m%d%H%M%S}.{serial + i:04d}.{rng.getrandbits(32):08x}@{DOMAIN}>"
        msg["Message-ID"] = msg_id
        msg["Date"] = format_datetime(local)
        msg["From"] = formataddr((person.name, person.email))
        msg["To"] = _addresses(recipients)
        if copies:
            msg["Cc"] = _addresses(copies)
        msg["Subject"] = subj
        if reply_to is not None:
            msg["In-Reply-To"] = reply_to["id"]
            msg["References"] = " ".join([*reply_to["refs"], reply_to["id"]])
        if "ooo" in flags:
            msg["Auto-Submitted"] = "auto-replied"  # RFC 3834, what filters and the archive key on
        text = _body(person, body, reply_to, "ooo" in flags)
        msg.set_content(text, charset="latin-1" if "latin1" in flags else "utf-8")
        if "html" in flags:
            paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
            msg.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
        for kind in ("pdf", "csv", "docx"):
            if kind in flags:
                data, maintype, subtype, name = _ATTACHMENTS[kind](rng, subject, reply_to is not None)
                msg.add_attachment(data, maintype, subtype, filename=name)
        for n, part in enumerate(msg.walk()):
            if part is not msg:
                del part["MIME-Version"]  # the stdlib copies it into every attached part
            if part.is_multipart():  # the stdlib draws boundaries from the clock; ours come from the seed
                part.set_boundary(f"=_nw{n}_{rng.getrandbits(64):016x}")
        out.append((when, person.email, msg.as_bytes()))
        record = {"key": key, "to": recipients, "cc": copies, "id": msg_id,
                  "refs": [*reply_to["refs"], reply_to["id"]] if reply_to else [],
                  "name": person.name, "local": local, "text": text}
        first = first or record
        if "ooo" not in flags:  # people answer the conversation, not the auto-reply
            parent = record
    return out


def _addresses(keys: list[str]) -> str:
    return ", ".join(formataddr((PEOPLE[k].name, PEOPLE[k].email)) for k in keys)


def _body(person: _Person, body: str, reply_to: dict[str, Any] | None, auto: bool) -> str:
    """Wrap like a mail client, sign internal mail, and quote the message replied to."""
    text = "\n\n".join(p if "\n" in p else textwrap.fill(p, 72) for p in body.split("\n\n"))
    if person.email.endswith(DOMAIN) and not auto:
        text += f"\n\n-- \n{person.name}\n{person.title}, Northwind Capital"
    if reply_to is not None and not auto:
        quoted = "\n".join(("> " + line).rstrip() for line in reply_to["text"].splitlines())
        text += f"\n\nOn {format_datetime(reply_to['local'])}, {reply_to['name']} wrote:\n{quoted}"
    return text + "\n"


def _pdf(rng: random.Random, subject: str, amended: bool) -> tuple[bytes, str, str, str]:
    # Enough of a PDF for `file` and content sniffers; nobody needs to render it.
    body = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
            + f"% Halcyon term sheet v3, draft {rng.getrandbits(32):08x}\n".encode()
            + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return body, "application", "pdf", "Halcyon_term_sheet_v3.pdf"


def _csv(rng: random.Random, subject: str, amended: bool) -> tuple[bytes, str, str, str]:
    bonds = [("XS2931004417", "Halcyon Capital 3.875% 2033"), ("XS2710558231", "Halden Energy 4.25% 2031"),
             ("DE000BU2Z031", "Bund 2.60% 2035"), ("FR001400QMF9", "OAT 3.00% 2034")]
    rows = ["trade_id,trade_date,settle_date,isin,security,side,nominal_eur,price,counterparty"]
    for n in range(1, 7):
        isin, name = rng.choice(bonds)
        settle = "2026-11-23" if n == 4 and not amended else "2026-11-20"  # the T+3 break in the story
        rows.append(f'NW-26-1118-{n:03d},2026-11-18,{settle},{isin},"{name}",{rng.choice(["BUY", "SELL"])},'
                    f"{rng.randint(1, 25) * 1_000_000},{rng.uniform(94, 102):.3f},Acme Bank AG")
    name = "Handelsbestätigungen_2026-11-18" + ("_korrigiert" if amended else "")
    return ("\r\n".join(rows) + "\r\n").encode(), "text", "csv", name + ".csv"


def _docx(rng: random.Random, subject: str, amended: bool) -> tuple[bytes, str, str, str]:
    name, line = (("Halcyon – Zuteilungsübersicht.docx", "Final allocations, EUR 500m")
                  if "Halcyon" in subject else ("Prüfbericht Q4 2026.docx", "Reviewer checklist, Q4 2026"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, xml in (
            ("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                                    '<Override PartName="/word/document.xml" ContentType="application/'
                                    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'),
            ("word/document.xml", '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/'
                                  f'main"><w:body><w:p><w:r><w:t>{line}</w:t></w:r></w:p></w:body></w:document>'),
        ):
            # A fixed timestamp: ZipFile would otherwise stamp the current time and break determinism.
            zf.writestr(zipfile.ZipInfo(member, date_time=(2026, 11, 17, 9, 0, 0)), xml)
    return (buf.getvalue(), "application", "vnd.openxmlformats-officedocument.wordprocessingml.document", name)


_ATTACHMENTS = {"pdf": _pdf, "csv": _csv, "docx": _docx}


# ---- Slack --------------------------------------------------------------------------------------

# A group is one top-level message and its thread replies: (person or "bot", text, flags).
_Group = list[tuple[str, str, str]]


def _specials(channel: str, day: int, last: int) -> list[_Group]:
    """The story's fixed chat moments, on the dates the mail has them or the nearest day there is."""
    out: list[_Group] = []
    halcyon = max(0, last - 4)  # Monday 16 November, when the books in the mail close
    if channel == "general" and day == 0:
        out.append([("zoe", "Grüße aus München! Back in the office Monday.", "react")])
    if channel == "general" and day == last:
        out.append([("lina", "東京オフィスは月曜日休みです (Tokyo office closed Monday 23 Nov, "
                             "Labour Thanksgiving Day)", "")])
    if channel == "fixed-income-desk" and day == 0:
        out.append([("lina", "<@{lina}> has joined the channel", "join")])
    if channel == "fixed-income-desk" and day == halcyon:
        out.append([("jose", "<@{soren}> Halcyon books close at 14:00 CET, where are we?", ""),
                    ("soren", "2.3x covered at IPT, guiding +130 area", ""),
                    ("tom", "Contoso wants 25m, can we do it?", "edited"),
                    ("jose", "15m max. Keep allocation talk on recorded channels, <@{tom}>.", "react")])
    if channel == "compliance" and day == 0:
        out.append([("zoe", "Q4 attestation form attached, due Friday 27 Nov <!channel>", "file")])
    if channel == "compliance" and day == last:
        out.append([("bot", "Reminder: the Q4 attestation is due Friday 27 November. 5 of 8 people have "
                            "not submitted yet, including <@{priya}>.", "")])
    return out


def _slack(root: Path, rng: random.Random, chat_days: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    users = [_user(k) for k in STAFF] + [{
        "id": BOT["id"], "team_id": TEAM, "name": BOT["name"], "deleted": False, "real_name": BOT["real_name"],
        "is_bot": True, "is_app_user": False, "updated": 1767600000,
        "profile": {"real_name": BOT["real_name"], "display_name": "", "bot_id": BOT["bot_id"], "team": TEAM}}]
    _dump(root / "users.json", users)
    _dump(root / "channels.json", [{
        "id": cid, "name": name, "created": 1735689600 + 3600 * i, "creator": PEOPLE["zoe"].slack_id,
        "is_archived": False, "is_general": name == "general",
        "members": [PEOPLE[k].slack_id for k in members] + ([BOT["id"]] if name == "compliance" else []),
        "pins": [], "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": purpose, "creator": PEOPLE["zoe"].slack_id, "last_set": 1735689600 + 3600 * i},
    } for i, (name, (cid, purpose, members, _)) in enumerate(CHANNELS.items())])
    total = 0
    for name, (_, _, _, lines) in CHANNELS.items():
        folder = root / name
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink()  # a run with fewer days must not leave an earlier run's days behind
        for d in range(chat_days):
            day = END_DAY - timedelta(days=chat_days - 1 - d)
            groups: list[_Group] = [[(*rng.choice(lines), "")] for _ in range(rng.randint(3, 6))]
            groups += _specials(name, d, chat_days - 1)
            rng.shuffle(groups)
            groups.sort(key=lambda g: g[0][2] != "join")  # a join comes before the joiner speaks
            messages = _day(rng, day, groups)
            _dump(folder / f"{day:%Y-%m-%d}.json", messages)
            total += len(messages)
    return total


def _day(rng: random.Random, day: datetime, groups: list[_Group]) -> list[dict[str, Any]]:
    ids = {k: PEOPLE[k].slack_id for k in STAFF}
    starts = sorted(rng.sample(range(7 * 3600, 17 * 3600, 60), len(groups)))  # office hours, UTC
    messages: list[dict[str, Any]] = []
    for start, group in zip(starts, groups):
        sec = int(day.timestamp()) + start
        thread: list[dict[str, Any]] = []
        for key, text, flags in group:
            ts = f"{sec}.{rng.randrange(1_000_000):06d}"
            msg = _chat_message(rng, key, text.format(**ids), ts, flags)
            if thread:  # a reply: points at its parent, and the parent lists it
                msg.update(thread_ts=thread[0]["ts"], parent_user_id=thread[0]["user"])
            thread.append(msg)
            sec += rng.randint(40, 900)
        if len(thread) > 1:
            parent, replies = thread[0], thread[1:]
            users = list(dict.fromkeys(r["user"] for r in replies))
            parent.update(thread_ts=parent["ts"], reply_count=len(replies), reply_users_count=len(users),
                          latest_reply=replies[-1]["ts"], reply_users=users,
                          replies=[{"user": r["user"], "ts": r["ts"]} for r in replies], is_locked=False)
        messages += thread
    return sorted(messages, key=lambda m: tuple(map(int, m["ts"].split("."))))


def _chat_message(rng: random.Random, key: str, text: str, ts: str, flags: str) -> dict[str, Any]:
    sec = int(ts.split(".")[0])
    if key == "bot":
        return {"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "bot_id": BOT["bot_id"],
                "username": BOT["real_name"]}
    person, profile = PEOPLE[key], _user(key)["profile"]
    if flags == "join":  # what Slack writes when someone joins: no profile, no client id
        return {"type": "message", "subtype": "channel_join", "ts": ts, "user": person.slack_id, "text": text}
    msg: dict[str, Any] = {
        "client_msg_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": "message", "text": text,
        "user": person.slack_id, "ts": ts, "team": TEAM, "user_team": TEAM, "source_team": TEAM,
        "user_profile": {k: profile[k] for k in ("avatar_hash", "image_72", "first_name", "real_name",
                                                  "display_name", "team")}
        | {"name": profile["display_name"], "is_restricted": False, "is_ultra_restricted": False}}
    if "edited" in flags:
        msg["edited"] = {"user": person.slack_id, "ts": f"{sec + 95}.000000"}
    if "file" in flags:
        fid = "F0Q4ATTEST1"
        msg.update(upload=True, display_as_bot=False, files=[{
            "id": fid, "created": sec, "timestamp": sec, "name": "Q4_attestation_form.pdf",
            "title": "Q4 attestation form", "mimetype": "application/pdf", "filetype": "pdf", "pretty_type": "PDF",
            "user": person.slack_id, "size": 48213, "mode": "hosted", "is_external": False, "is_public": True,
            "url_private": f"https://files.slack.com/files-pri/{TEAM}-{fid}/q4_attestation_form.pdf",
            "url_private_download": f"https://files.slack.com/files-pri/{TEAM}-{fid}/download/q4_attestation_form.pdf",
            "permalink": f"https://northwind-capital.slack.com/files/{person.slack_id}/{fid}/q4_attestation_form.pdf"}])
    if "react" in flags or rng.random() < 0.2:
        others = rng.sample([PEOPLE[k].slack_id for k in STAFF if k != key], rng.randint(1, 3))
        msg["reactions"] = [{"name": rng.choice(["+1", "eyes", "white_check_mark", "pray"]), "users": others,
                             "count": len(others)}]
    return msg


def _user(key: str) -> dict[str, Any]:
    person = PEOPLE[key]
    handle = person.email.split("@")[0]
    avatar = hashlib.md5(person.email.encode()).hexdigest()[:12]  # stable stand-in for Slack's avatar hash
    return {
        "id": person.slack_id, "team_id": TEAM, "name": handle, "deleted": False, "real_name": person.name,
        "tz_offset": person.utc_offset * 3600, "is_admin": key == "zoe", "is_bot": False, "is_app_user": False,
        "updated": 1767600000,
        "profile": {"title": person.title, "real_name": person.name, "display_name": handle,
                    "first_name": person.name.split()[0], "email": person.email, "avatar_hash": avatar,
                    "image_72": f"https://avatars.slack-edge.com/2026-01-05/{avatar}_72.png", "team": TEAM}}


def _dump(path: Path, data: Any) -> None:
    # As Slack writes exports: indented, non-ASCII as \u escapes, "/" as "\/".
    path.write_text(json.dumps(data, indent=4, ensure_ascii=True).replace("/", "\\/") + "\n", encoding="ascii")
