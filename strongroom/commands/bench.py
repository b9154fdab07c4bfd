"""`strongroom bench`: the pipeline beside its own ceilings and a peer, as ratios measured in one run."""

from __future__ import annotations

from pathlib import Path

import typer

from strongroom.cli import app, settings_of
from strongroom.errors import InputError


@app.command("bench")
def bench(ctx: typer.Context,
          messages: int = typer.Option(20_000, "--messages", help="Size of the generated corpus (cached per size)."),
          json_path: Path = typer.Option(Path("bench-results.json"), "--json", help="Write the results here too."),
          s3_url: str = typer.Option("s3://strongroom/bench", "--s3-url", help="Where the S3 stages write (a prefix per run)."),
          keep: bool = typer.Option(False, "--keep", help="Keep the run's topics, indices and storage.")):
    """Measure ingest, archive, index and query beside their ceilings and Quix Streams (a few minutes)."""
    from strongroom.bench.run import run_bench

    if messages < 1000:
        raise InputError(f"--messages {messages}: use at least 1000, or the fixed costs are all that is measured")
    if not s3_url.startswith("s3://"):
        raise InputError(f"--s3-url {s3_url!r}: use s3://bucket/prefix")
    opts = ctx.find_root().obj or {}
    config = str(opts["config"]) if opts.get("config") else None
    run_bench(settings_of(ctx), config, messages, json_path, s3_url, keep)
