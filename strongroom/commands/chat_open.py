"""`strongroom ingest matrix|xmpp|xmpp-mam|whatsapp|telegram|irc`: open protocols and the chat
exports people hand over (docs/chat-open-sources.md)."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from strongroom.cli import _run_ingest, ingest_app, settings_of
from strongroom.errors import InputError

REPORT = typer.Option(None, "--report", help="Write one JSON line per input item here.")
TIMEZONE = typer.Option(None, "--timezone", help="IANA zone the export's local times are in (default UTC).")


@ingest_app.command("matrix")
def ingest_matrix(ctx: typer.Context,
                  path: Path = typer.Argument(..., help="Room events: a /messages or /sync response, an event list or JSON lines; or a folder of them."),
                  report: Optional[Path] = REPORT):
    """Ingest Matrix room events: messages, edits, redactions, reactions, threads, membership."""
    from producers.chat.matrix import MatrixEventsSource

    _run_ingest(ctx, "chat", iter(MatrixEventsSource(path)), report)


@ingest_app.command("xmpp")
def ingest_xmpp(ctx: typer.Context,
                path: Path = typer.Argument(..., help="XMPP message stanzas: a stream log, stanzas, MAM result pages; or a folder of them."),
                report: Optional[Path] = REPORT):
    """Ingest XMPP message stanzas: chat, groupchat, corrections, retractions, reactions."""
    from producers.chat.xmpp import XmppFileSource

    _run_ingest(ctx, "chat", iter(XmppFileSource(path)), report)


@ingest_app.command("xmpp-mam")
def ingest_xmpp_mam(ctx: typer.Context,
                    jid: str = typer.Option(..., "--jid", help="The account whose archive is read, USER@HOST."),
                    password_env: str = typer.Option(..., "--password-env", help="Name of the environment variable holding its password."),
                    server: Optional[str] = typer.Option(None, "--server", help="HOST:PORT to connect to (default: the JID's domain, 5222)."),
                    with_jid: Optional[str] = typer.Option(None, "--with", help="Only the conversation with this JID."),
                    since: Optional[str] = typer.Option(None, "--since", help="Only messages from this ISO time on (first run; later runs resume)."),
                    insecure: bool = typer.Option(False, "--allow-unencrypted", help="Allow a connection without TLS (test servers on 127.0.0.1)."),
                    report: Optional[Path] = REPORT):
    """Pull an account's message archive (XEP-0313) from its server, incrementally, and ingest it."""
    from producers.chat.xmpp_mam import MamPull

    password = os.environ.get(password_env)
    if not password:
        raise InputError(f"--password-env {password_env}: that environment variable is not set.")
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as exc:
            raise InputError(f"--since {since!r} is not an ISO date or time.") from exc
        start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    settings = settings_of(ctx)
    pull = MamPull(settings, jid, password, server=server, with_jid=with_jid, since=start, allow_unencrypted=insecure)
    _run_ingest(ctx, "chat", pull.captures(), report)
    pull.commit()
    print(f"xmpp-mam: {pull.fetched} archived messages fetched, checkpoint {pull.checkpoint_state()}")


@ingest_app.command("whatsapp")
def ingest_whatsapp(ctx: typer.Context,
                    path: Path = typer.Argument(..., help="A WhatsApp chat export: the .txt, or its .zip or folder with media."),
                    timezone_name: Optional[str] = TIMEZONE,
                    date_order: Optional[str] = typer.Option(None, "--date-order", help="dmy, mdy or ymd when the file cannot tell."),
                    channel: Optional[str] = typer.Option(None, "--channel", help="The chat's name (default: from the file name)."),
                    report: Optional[Path] = REPORT):
    """Ingest a WhatsApp chat export."""
    from producers.chat.events import time_zone
    from producers.chat.whatsapp import WhatsAppExportSource

    source = WhatsAppExportSource(path, zone=time_zone(timezone_name), date_order=date_order, channel=channel)
    _run_ingest(ctx, "chat", iter(source), report)


@ingest_app.command("telegram")
def ingest_telegram(ctx: typer.Context,
                    path: Path = typer.Argument(..., help="A Telegram Desktop JSON export: result.json or its folder."),
                    timezone_name: Optional[str] = TIMEZONE,
                    report: Optional[Path] = REPORT):
    """Ingest a Telegram Desktop JSON export (all chats, or one)."""
    from producers.chat.events import time_zone
    from producers.chat.telegram import TelegramExportSource

    _run_ingest(ctx, "chat", iter(TelegramExportSource(path, zone=time_zone(timezone_name))), report)


@ingest_app.command("irc")
def ingest_irc(ctx: typer.Context,
               path: Path = typer.Argument(..., help="An IRC log file, or a folder of them."),
               channel: Optional[str] = typer.Option(None, "--channel", help="The channel (default: from the path)."),
               network: Optional[str] = typer.Option(None, "--network", help="The IRC network, kept as workspace."),
               day: Optional[str] = typer.Option(None, "--date", help="YYYY-MM-DD, for logs whose lines and name carry no date."),
               timezone_name: Optional[str] = TIMEZONE,
               report: Optional[Path] = REPORT):
    """Ingest IRC channel logs (irssi, WeeChat, Textual, ZNC and [HH:MM] <nick> styles)."""
    from producers.chat.events import time_zone
    from producers.chat.irc import IrcLogSource

    try:
        start = date.fromisoformat(day) if day else None
    except ValueError as exc:
        raise InputError(f"--date {day!r} is not YYYY-MM-DD.") from exc
    source = IrcLogSource(path, channel=channel, network=network, day=start, zone=time_zone(timezone_name))
    _run_ingest(ctx, "chat", iter(source), report)
