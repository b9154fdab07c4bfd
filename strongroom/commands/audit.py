"""`strongroom audit-log`: who did what, when, with how many results; `--verify` checks the chain."""

from __future__ import annotations

import json

import typer

from strongroom.cli import _check_format, app, settings_of


@app.command("audit-log")
def audit_log(ctx: typer.Context,
              verify: bool = typer.Option(False, "--verify", help="Check the hash chain; exit 5 naming the first bad entry."),
              format: str = typer.Option("table", "--format", help="table, json (an array of entries) or csv.")):
    """The audit trail of every query, search, export, hold change, policy check and purge."""
    from consumers.query import render
    from strongroom import audit

    settings = settings_of(ctx)
    if verify:
        count = audit.verify(settings)
        print(f"audit log intact: {count} entries, each hash-chained to the one before")
        return
    found = audit.entries(settings)
    if format == "json":
        print(json.dumps(found, indent=1, ensure_ascii=False))
        return
    print(render(["seq", "time", "who", "action", "what", "results"],
                 [(e["seq"], e["time"], e["who"], e["action"],
                   json.dumps({k: v for k, v in e["what"].items() if v not in (None, [], {})}, ensure_ascii=False),
                   e["results"]) for e in found], _check_format(format)))
