"""Live email capture: `strongroom serve smtp` (journaling) and `strongroom ingest imap` (mailbox pull)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from strongroom.cli import app, ingest_app, settings_of
from strongroom.errors import InputError

serve_app = typer.Typer(help="Long-lived capture services.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


@serve_app.command("smtp")
def serve_smtp(ctx: typer.Context,
               host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (smtp.host, default 127.0.0.1)."),
               port: Optional[int] = typer.Option(None, "--port", help="Port (smtp.port, default 2525; 0 picks a free one)."),
               tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate chain: offer STARTTLS."),
               tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
               auth_file: Optional[Path] = typer.Option(None, "--auth-file", help="Require AUTH PLAIN/LOGIN by the users of this file (user:password lines).")):
    """Accept mail over SMTP (journaling) and answer 250 only once Kafka has its record; SIGTERM stops cleanly."""
    from producers.email.smtp import Users, serve, tls_context

    settings = settings_of(ctx)
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    tls = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    users = Users(auth_file) if auth_file else None
    line = serve(settings, host or settings.smtp.host, settings.smtp.port if port is None else port, tls, users,
                 announce=lambda text: print(text, flush=True))
    print(line, flush=True)


@ingest_app.command("imap")
def ingest_imap(ctx: typer.Context,
                host: str = typer.Option(..., "--host", help="IMAP server."),
                port: Optional[int] = typer.Option(None, "--port", help="Default 993 with --tls, else 143."),
                tls: bool = typer.Option(False, "--tls", help="Implicit TLS (the default)."),
                starttls: bool = typer.Option(False, "--starttls", help="Plain connection upgraded with STARTTLS."),
                plain: bool = typer.Option(False, "--plain", help="No encryption at all (the password travels in clear)."),
                ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="PEM CA certificates to verify the server with (default: the system's)."),
                user: str = typer.Option(..., "--user", help="Login name."),
                password_env: Optional[str] = typer.Option(None, "--password-env", help="Environment variable holding the password or app password."),
                password_file: Optional[Path] = typer.Option(None, "--password-file", help="File holding the password (first line)."),
                folder: Optional[list[str]] = typer.Option(None, "--folder", help="Folder to read; repeat for more (default: every folder)."),
                report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per message here.")):
    """Pull new mail from an IMAP mailbox incrementally (UIDVALIDITY/UID checkpoints; \\Seen untouched)."""
    from producers.email.imap import ImapAccount, ingest_imap as run
    from strongroom.progress import ingest_progress

    if sum((tls, starttls, plain)) > 1:
        raise InputError("choose one of --tls, --starttls, --plain")
    security = "starttls" if starttls else "plain" if plain else "tls"
    account = ImapAccount(host=host, port=port or (993 if security == "tls" else 143), security=security,
                          user=user, password=_password(password_env, password_file), ca_file=ca_file)
    settings = settings_of(ctx)
    with ingest_progress("email") as advance:
        summary = run(settings, account, folder or None, report, progress=advance)
    print(summary.line())


def _password(env: Optional[str], file: Optional[Path]) -> str:
    if bool(env) == bool(file):
        raise InputError("give exactly one of --password-env and --password-file")
    if env:
        value = os.environ.get(env)
        if not value:
            raise InputError(f"--password-env {env}: the variable is not set or empty")
        return value
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"--password-file {file}: {exc.strerror or exc}") from exc
    if not lines or not lines[0]:
        raise InputError(f"--password-file {file}: the first line is empty")
    return lines[0]
