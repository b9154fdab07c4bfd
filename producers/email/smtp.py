"""`strongroom serve smtp`: an SMTP server that journals every message delivered to it.

Delivery guarantee: a message is answered 250 only after its record is acknowledged by Kafka,
its original and attachments stored before (producers/live.py). Anything short of that
(broker down or slow past the delivery timeout, storage or registry unreachable, a bug) is
answered 451, so the sending MTA keeps the message queued and retries: nothing accepted is lost.
A retry of a message that was in fact captured is reported as a duplicate, never doubled.

The SMTP envelope is kept, because BCC recipients and expanded lists exist only there:
MAIL FROM becomes `envelope_sender`, each RCPT TO a recipient with role "envelope". An Exchange
journal report (journal.py) becomes the record of the original it carries, with the report's
recipients as envelope (and bcc) recipients, flag "journal-report", and the whole report kept
as an attachment. The raw blob is the message data exactly as received (dot-unstuffed, nothing
added: no Received line).

SIGTERM or SIGINT: stop listening, answer every message in progress, wait for the outstanding
delivery reports, write the receipts, exit 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from producers.capture import Capture
from producers.email import with_nested
from producers.email.journal import is_journal_report, read_report
from producers.email.mime import parse_email
from producers.live import LiveIngest
from schemas.records import attachment, recipient, sha256_hex
from strongroom.config import Settings
from strongroom.errors import InputError, StrongroomError

log = logging.getLogger("strongroom.smtp")
JOURNAL_FLAG = "journal-report"


def capture_of(raw: bytes, mail_from: str | None, rcpt_tos: list[str], source: str) -> Capture:
    """The Capture for one delivered message, its envelope (or its journal report's) attached."""
    if is_journal_report(raw):
        report = read_report(raw)
        if report.original is not None:
            capture = parse_email(report.original, source=source, position=None)
            rec = capture.record
            rec["flags"] = [*rec["flags"], JOURNAL_FLAG]
            report_sha = sha256_hex(raw)
            capture.blobs[report_sha] = raw
            rec["attachments"] = [*rec["attachments"], attachment(
                "message/rfc822", name="journal-report.eml", size=len(raw), sha256=report_sha)]
            # Who delivered the report (the journaling agent, to the journal mailbox) is kept
            # as a trace, apart from the message's own headers.
            rec["headers"] = [*rec["headers"], {"name": "X-Strongroom-Journal-Envelope",
                                                "value": _envelope_text(mail_from, rcpt_tos)}]
            _add_envelope(rec, report.sender or mail_from, [a for _, a in report.recipients])
            bcc = {r["address"] for r in rec["recipients"] if r["role"] == "bcc"}
            rec["recipients"] += [recipient("bcc", address=a) for role, a in report.recipients
                                  if role == "bcc" and a not in bcc]
            return capture
        # A report without an original is still kept whole, and says so.
        capture = parse_email(raw, source=source, position=None)
        capture.record["flags"] = [*capture.record["flags"], JOURNAL_FLAG, "journal-report-without-original"]
        _add_envelope(capture.record, mail_from, rcpt_tos)
        return capture
    capture = parse_email(raw, source=source, position=None)
    _add_envelope(capture.record, mail_from, rcpt_tos)
    return capture


def records_of(capture: Capture) -> list[Capture]:
    """Every record one delivered message makes (forwarded and bounced mail inside it are
    records of their own); the answer waits for all of them. A nested one's position is its
    place in the message ("1", "1/2"): the delivery itself has none."""
    found = list(with_nested(capture))
    for nested in found[1:]:
        nested.record["source_position"] = (nested.record["source_position"] or "").partition("/")[2] or None
    return found


def _add_envelope(rec: dict, sender: str | None, recipients: list[str]) -> None:
    rec["envelope_sender"] = sender.lower() if sender else None  # "<>" (a bounce) has none
    seen: set[str] = set()
    for address in recipients:
        if address.lower() not in seen:
            seen.add(address.lower())
            rec["recipients"].append(recipient("envelope", address=address))


def _envelope_text(mail_from: str | None, rcpt_tos: list[str]) -> str:
    return f"MAIL FROM:<{mail_from or ''}> " + " ".join(f"RCPT TO:<{r}>" for r in rcpt_tos)


class Users:
    """Who may AUTH: a file of `user:password` lines, or `user:{PBKDF2-SHA256}iterations$salt_hex$hash_hex`."""

    def __init__(self, path: Path):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"--auth-file {path}: {exc.strerror or exc}") from exc
        self.entries: dict[str, str] = {}
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                user, sep, secret = line.partition(":")
                if not sep or not user:
                    raise InputError(f"--auth-file {path}:{number}: expected user:password")
                self.entries[user] = secret

    def check(self, user: str, password: str) -> bool:
        secret = self.entries.get(user)
        if secret is None:
            return False
        if secret.startswith("{PBKDF2-SHA256}"):
            try:
                rounds, salt, expected = secret[len("{PBKDF2-SHA256}"):].split("$")
                digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds)).hex()
            except ValueError:
                return False
            return hmac.compare_digest(digest, expected.lower())
        return hmac.compare_digest(secret.encode(), password.encode())

    def __call__(self, _server, _session, _envelope, mechanism: str, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.check(
            auth_data.login.decode("utf-8", "replace"), auth_data.password.decode("utf-8", "replace"))
        # handled=False: aiosmtpd answers the failure (535) itself.
        return AuthResult(success=ok, handled=False)


class JournalHandler:
    """aiosmtpd handler: every DATA becomes a capture; the answer waits for Kafka's acknowledgement."""

    def __init__(self, live: LiveIngest, pool: ThreadPoolExecutor, source: str):
        self.live = live
        self.pool = pool
        self.source = source
        self.stopping = False
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.stopping:
            return "421 4.3.2 Shutting down, try again later"
        self.active += 1
        self.idle.clear()
        try:
            return await self._capture(session, envelope)
        finally:
            self.active -= 1
            if not self.active:
                self.idle.set()

    async def _capture(self, session: Session, envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        raw = envelope.original_content or b""
        try:
            capture = await loop.run_in_executor(self.pool, capture_of, raw, envelope.mail_from,
                                                 list(envelope.rcpt_tos), self.source)
            futures = [await loop.run_in_executor(self.pool, self.live.submit, item) for item in records_of(capture)]
            # Each future fails by itself after librdkafka's message timeout; the margin only
            # guards against a report that never comes.
            statuses = await asyncio.wait_for(asyncio.gather(
                *(asyncio.shield(asyncio.wrap_future(f)) for f in futures)), self.live.timeout + 15)
            status = statuses[0]
        except (StrongroomError, asyncio.TimeoutError) as exc:
            reason = " ".join(str(exc).split())[:200] or "no acknowledgement from Kafka in time"
            log.warning("451 for a message from %s (%d bytes): %s", session.peer, len(raw), reason)
            return f"451 4.3.0 Not captured, try again later: {reason}"
        except Exception:  # a bug must not lose mail either: the sender keeps it and retries
            log.exception("451 for a message from %s: internal error", session.peer)
            return "451 4.3.0 Not captured (internal error), try again later"
        uid = capture.record["message_uid"]
        log.info("250 %s %s (%d bytes, %d envelope recipients)", status, uid, len(raw), len(envelope.rcpt_tos))
        return f"250 2.0.0 Captured {uid} ({status})"


class _JournalSMTP(SMTP):
    def __init__(self, *args, line_limit: int, **kwargs):
        # Real mail breaks the 1000-byte line limit (unwrapped HTML, base64 without folds); a
        # journal must take it rather than bounce it, so a line may be as long as a message.
        self.line_length_limit = line_limit
        super().__init__(*args, **kwargs)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"--tls-cert {cert} / --tls-key {key}: {exc}") from exc
    return context


def serve(settings: Settings, host: str, port: int, tls: ssl.SSLContext | None = None, users: Users | None = None,
          announce: Callable[[str], None] = print) -> str:
    """Run until SIGTERM/SIGINT; returns the summary line."""
    return asyncio.run(_serve(settings, host, port, tls, users, announce))


async def _serve(settings: Settings, host: str, port: int, tls: ssl.SSLContext | None, users: Users | None,
                 announce: Callable[[str], None]) -> str:
    loop = asyncio.get_running_loop()
    live = LiveIngest(settings, "email", settings.smtp.delivery_timeout_seconds)
    pool = ThreadPoolExecutor(settings.smtp.workers, thread_name_prefix="smtp-capture")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sessions: list[SMTP] = []
    handler = JournalHandler(live, pool, "")
    hostname = socket.gethostname()  # getfqdn() may wait on DNS

    def session() -> SMTP:
        smtp = _JournalSMTP(handler, line_limit=settings.smtp.max_message_bytes, loop=loop, hostname=hostname, ident="strongroom journal",
                            data_size_limit=settings.smtp.max_message_bytes, enable_SMTPUTF8=True,
                            decode_data=False, tls_context=tls, require_starttls=False,
                            authenticator=users, auth_required=users is not None,
                            auth_require_tls=tls is not None)
        sessions[:] = [s for s in sessions if s.transport is not None] + [smtp]
        return smtp

    try:
        server = await loop.create_server(session, host, port)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound = server.sockets[0].getsockname()[1]
    handler.source = f"smtp://{host}:{bound}"
    announce(f"strongroom smtp: listening on {host}:{bound}"
             f"{' (STARTTLS)' if tls else ''}{' (AUTH required)' if users else ''}")
    connecting = loop.run_in_executor(pool, _connect_early, live)
    try:
        await stop.wait()
    finally:
        server.close()
        handler.stopping = True
        try:  # every message in progress gets its answer before the sessions close
            await asyncio.wait_for(handler.idle.wait(), settings.smtp.delivery_timeout_seconds + 20)
        except asyncio.TimeoutError:
            log.warning("stopping with %d messages unanswered; their senders will retry", handler.active)
        for smtp in sessions:
            if smtp.transport is not None:
                smtp.transport.close()
        await connecting
        await loop.run_in_executor(None, live.close)
        pool.shutdown()
    return live.summary_line()


def _connect_early(live: LiveIngest) -> None:
    """Reach Kafka, the registry and storage now, so the first sender does not wait for it."""
    try:
        live.connect()
    except StrongroomError as exc:
        log.warning("not connected yet (messages get 451 until it works): %s", exc)
