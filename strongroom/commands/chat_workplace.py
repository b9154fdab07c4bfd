"""`strongroom ingest teams` and `strongroom ingest mattermost`: workplace chat exports (docs/chat-sources.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from strongroom.cli import _run_ingest, ingest_app


@ingest_app.command("teams")
def ingest_teams(ctx: typer.Context,
                 path: Path = typer.Argument(..., help="Teams messages (Graph chatMessage JSON): a .json or .jsonl file, or a folder of them."),
                 users: Optional[Path] = typer.Option(None, "--users", help="A users list (id, displayName, mail) to resolve people to email addresses."),
                 report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input item here.")):
    """Ingest Microsoft Teams chat and channel messages, one chat record per event (created, edited, deleted, reaction)."""
    from producers.chat.teams import TeamsSource

    _run_ingest(ctx, "chat", iter(TeamsSource(path, users)), report)


@ingest_app.command("mattermost")
def ingest_mattermost(ctx: typer.Context,
                      path: Path = typer.Argument(..., help="A Mattermost bulk export: the .jsonl, its folder (with data/), or the export .zip."),
                      report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input item here.")):
    """Ingest a Mattermost bulk export, one chat record per event (created, edited, deleted, reaction)."""
    from producers.chat.mattermost import MattermostSource

    _run_ingest(ctx, "chat", iter(MattermostSource(path)), report)
