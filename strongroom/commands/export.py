"""`strongroom export`: originals byte for byte (.eml or mbox), or an eDiscovery production."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from strongroom.cli import app, settings_of


@app.command("export")
def export(ctx: typer.Context,
           message_uid: Optional[list[str]] = typer.Option(None, "--message-uid", help="A message to export (repeat the option for more)."),
           query: Optional[str] = typer.Option(None, "--query", help="SQL over the views returning a message_uid column."),
           where: Optional[str] = typer.Option(None, "--where", help="A WHERE clause over the communications view."),
           case: Optional[str] = typer.Option(None, "--case", help="A legal-hold case: its saved query, custodians and dates."),
           out: Path = typer.Option(..., "--out", help="A new (or empty) folder to write the export into."),
           format: Optional[str] = typer.Option(None, "--format", help="eml, mbox or production (default: production for --case, else eml)."),
           docid_prefix: str = typer.Option("SR", "--docid-prefix", help="Prefix of the production's document numbers.")):
    """Export archived messages: every version, originals checked against their sha256."""
    from consumers.export import export as run_export, select
    from strongroom.errors import InputError

    if not docid_prefix or not docid_prefix.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"--docid-prefix {docid_prefix!r}: use letters, digits, - or _")
    settings = settings_of(ctx)
    selection = select(settings, message_uids=message_uid, query=query, where=where, case=case)
    print(run_export(settings, selection, out, format, docid_prefix).line())
