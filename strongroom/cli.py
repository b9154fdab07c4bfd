"""The `strongroom` command: one root app with sub-apps; heavy imports stay inside commands.

`main()` is the one place errors become exit codes and one line on stderr: a StrongroomError
prints its message, never a traceback or locals (settings hold credentials). Exit codes:
2 bad input or config, 3 a service unreachable, 4 records not acknowledged, 5 integrity,
1 any other strongroom error, 70 a bug (set STRONGROOM_DEBUG=1 for its traceback).
The core commands' signatures and help live here, their work in the modules they import; command
groups of one capability (journaling, export, retention, ...) live in strongroom/commands/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from strongroom.errors import (ConfigError, DeliveryError, InputError, IntegrityError, ServiceError,
                               StrongroomError)

app = typer.Typer(help="strongroom: capture, keep and find a company's email and chat.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
ingest_app = typer.Typer(help="Read mail or chat, keep the originals, produce records to Kafka.", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro schemas in the schema registry.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: records a sink could not take.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(schemas_app, name="schemas")
app.add_typer(config_app, name="config")
app.add_typer(dlq_app, name="dlq")

FORMATS = ("table", "json", "csv")


@app.callback()
def root(ctx: typer.Context,
         config: Optional[Path] = typer.Option(None, "--config", help="strongroom.toml to read (default: ./strongroom.toml, STRONGROOM_CONFIG)."),
         namespace: Optional[str] = typer.Option(None, "--namespace", help="Prefix of every topic, group, index and storage path (STRONGROOM_NAMESPACE)."),
         log_format: str = typer.Option("text", "--log-format", help="text or json (one object per line), on stderr.")):
    from strongroom.observability import configure_logging

    if log_format not in ("text", "json"):
        raise InputError(f"--log-format {log_format!r}: use text or json")
    configure_logging(log_format)
    ctx.obj = {"config": config, "namespace": namespace}


def settings_of(ctx: typer.Context):
    from strongroom.config import load_settings

    opts = ctx.find_root().obj or {}
    return load_settings(opts.get("config"), namespace=opts.get("namespace"))


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


# -- config and schemas ---------------------------------------------------------------------
@config_app.command("show")
def config_show(ctx: typer.Context):
    """Print the effective settings as TOML-like JSON, secrets masked."""
    import json

    print(json.dumps(settings_of(ctx).redacted(), indent=2))


@schemas_app.command("register")
def schemas_register(ctx: typer.Context):
    """Register schemas/communication.avsc for the email and chat topics (BACKWARD compatible)."""
    from strongroom.registry import register_schemas

    settings = settings_of(ctx)
    for kind, schema_id in register_schemas(settings).items():
        print(f"{settings.topic(kind)}-value: schema id {schema_id}")


# -- ingest ---------------------------------------------------------------------------------
def _run_ingest(ctx: typer.Context, kind: str, captures, report: Optional[Path]) -> None:
    from producers.ingest import ingest
    from strongroom.progress import ingest_progress

    settings = settings_of(ctx)
    with ingest_progress(kind) as advance:
        summary = ingest(settings, kind, captures, report, progress=advance)
    print(summary.line())


@ingest_app.command("email")
def ingest_email(ctx: typer.Context,
                 paths: list[Path] = typer.Argument(..., help="mbox files, Maildirs, .eml or Outlook .msg files, folders of them, or PST files."),
                 format: Optional[str] = typer.Option(None, "--format", help="mbox, maildir, eml, emldir, msg or pst (default: detected)."),
                 report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input item here.")):
    """Ingest email: originals and attachments to the blob store, one record each to Kafka."""
    from producers.email import captures
    from producers.email.formats import detect_format

    for path in paths:  # every path is checked before anything is produced
        detect_format(path, format)
    items = (capture for path in paths for capture in captures(path, format))
    _run_ingest(ctx, "email", items, report)


@ingest_app.command("slack")
def ingest_slack(ctx: typer.Context,
                 path: Path = typer.Argument(..., help="A Slack workspace export: .zip or unpacked folder."),
                 report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input item here.")):
    """Ingest a Slack workspace export, one chat record per event (created, edited, deleted, reaction)."""
    from producers.chat.slack import SlackExportSource

    _run_ingest(ctx, "chat", iter(SlackExportSource(path)), report)


@ingest_app.command("chat-jsonl")
def ingest_chat_jsonl(ctx: typer.Context,
                      path: Path = typer.Argument(..., help="A .jsonl file or a folder of them (docs/chat-jsonl.md)."),
                      report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input item here.")):
    """Ingest chat from the documented JSON-lines format, for platforms without a reader yet."""
    from producers.chat.jsonl import ChatJsonlSource

    _run_ingest(ctx, "chat", iter(ChatJsonlSource(path)), report)


# -- consumers ------------------------------------------------------------------------------
def _run_sink(ctx: typer.Context, name: str, until_idle: bool, metrics_port: Optional[int]) -> None:
    from consumers.runner import SinkRunner
    from strongroom.observability import serve

    if name == "archiver":
        from consumers.archiver import ParquetArchiver as Sink
    else:
        from consumers.indexer import OpenSearchIndexer as Sink
    settings = settings_of(ctx)
    sink = Sink(settings)
    runner = SinkRunner(settings, sink, settings.group(sink.name))
    if metrics_port:
        try:
            serve(metrics_port, runner.health)
        except OSError as exc:
            raise InputError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from exc
    consumed = runner.run(until_idle=until_idle)
    print(f"{sink.name}: consumed {consumed}, {sink.summary()}")


@app.command("archive")
def archive(ctx: typer.Context,
            until_idle: bool = typer.Option(False, "--until-idle", help="Stop once every partition is caught up and archived."),
            metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve /metrics and /healthz on this port.")):
    """Run the archiver: Kafka -> Parquet warehouse with manifests (SIGTERM: flush, commit, exit 0)."""
    _run_sink(ctx, "archiver", until_idle, metrics_port)


@app.command("index")
def index(ctx: typer.Context,
          until_idle: bool = typer.Option(False, "--until-idle", help="Stop once every partition is caught up and indexed."),
          metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve /metrics and /healthz on this port.")):
    """Run the indexer: Kafka -> OpenSearch in bulk (SIGTERM: flush, commit, exit 0)."""
    _run_sink(ctx, "indexer", until_idle, metrics_port)


@app.command("query")
def query(ctx: typer.Context, sql: str = typer.Argument(..., help="SQL over the views email, chat, communications."),
          format: str = typer.Option("table", "--format", help="table, json or csv.")):
    """Ask the warehouse anything in SQL (DuckDB)."""
    from consumers.query import render, run_query
    from strongroom import audit

    settings = settings_of(ctx)
    columns, rows = run_query(settings, sql)
    audit.record(settings, "query", {"sql": sql}, len(rows))
    print(render(columns, rows, _check_format(format)))


@app.command("search")
def search(ctx: typer.Context, text: str = typer.Argument("", help="Words to find (simple query syntax)."),
           kind: Optional[str] = typer.Option(None, "--kind", help="email or chat."),
           sender: Optional[str] = typer.Option(None, "--sender", help="Sender address, user id or name."),
           participant: Optional[str] = typer.Option(None, "--participant", help="Anyone on the message: address or user id."),
           since: Optional[str] = typer.Option(None, "--since", help="ISO date or time."),
           until: Optional[str] = typer.Option(None, "--until", help="ISO date or time."),
           limit: int = typer.Option(20, "--limit", min=1, max=10_000),
           format: str = typer.Option("table", "--format", help="table, json or csv.")):
    """Search the hot index."""
    from consumers.query import render
    from consumers.search import search as run_search
    from strongroom import audit

    settings = settings_of(ctx)
    filters = dict(kind=kind, sender=sender, participant=participant, since=since, until=until)
    columns, rows = run_search(settings, text, limit=limit, **filters)
    audit.record(settings, "search", {"text": text, "limit": limit, **filters}, len(rows))
    print(render(columns, rows, _check_format(format)))


@app.command("verify")
def verify(ctx: typer.Context,
           since: Optional[str] = typer.Option(None, "--since", help="Check files of messages from this date (YYYY-MM-DD)."),
           until: Optional[str] = typer.Option(None, "--until", help="...up to this date."),
           skip_index: bool = typer.Option(False, "--skip-index", help="Do not compare the hot index."),
           format: str = typer.Option("table", "--format", help="table or json.")):
    """Prove the archive complete and unaltered: Kafka offsets, manifest chains, file hashes, index counts."""
    import json
    from datetime import date

    from consumers.query import render
    from consumers.verify import Verifier

    def day(value: Optional[str], name: str):
        try:
            return date.fromisoformat(value) if value else None
        except ValueError as exc:
            raise InputError(f"--{name} {value!r} is not a date (YYYY-MM-DD)") from exc

    from strongroom import audit

    settings = settings_of(ctx)
    report = Verifier(settings, day(since, "since"), day(until, "until")).run(check_index=not skip_index)
    audit.record(settings, "verify", {"since": since, "until": until, "skip_index": skip_index,
                                      "complete": report.complete, "problems": sorted({f.problem for f in report.findings})},
                 len(report.findings))
    if format == "json":
        print(json.dumps(report.to_json(), indent=1))
    else:
        _check_format(format)
        print(render(["topic", "partition", "earliest", "latest", "archived_through", "lag", "manifests", "rows",
                      "dead_letters", "purged"],
                     [(p.topic, p.partition, p.earliest, p.latest, p.archived_through, p.lag, p.manifests, p.rows,
                       p.dead_lettered, p.purged) for p in report.partitions], "table"))
        for finding in report.findings:
            print(f"PROBLEM {finding.problem}: {finding.where}: {finding.detail}")
        lag = sum(p.lag for p in report.partitions)
        print(f"{'complete' if report.complete else 'NOT complete'}: {report.files_checked} files checked, "
              f"{len(report.findings)} problems" + (f", {lag} offsets not yet archived" if lag else ""))
    if not report.complete:
        raise IntegrityError(f"verify found {len(report.findings)} problems "
                             f"({', '.join(sorted({f.problem for f in report.findings}))})")


@app.command("status")
def status(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table, json or csv.")):
    """Per sink group and partition: committed offset, end offset, lag, last write."""
    from consumers.lag import as_rows, group_lag
    from consumers.query import render

    print(render(*as_rows(group_lag(settings_of(ctx))), _check_format(format)))


@app.command("replay")
def replay(ctx: typer.Context,
           group: str = typer.Option(..., "--group", help="archiver or indexer."),
           topic: str = typer.Option(..., "--topic", help="email, chat, or a full topic name."),
           from_beginning: bool = typer.Option(False, "--from-beginning"),
           from_offset: Optional[int] = typer.Option(None, "--from-offset", help="The same offset in every partition."),
           from_time: Optional[str] = typer.Option(None, "--from-time", help="ISO time; UTC unless it says otherwise."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be re-read; change nothing.")):
    """Move a stopped sink group's offsets so it re-reads a topic (never duplicating)."""
    from consumers.query import render
    from consumers import replay as replays

    settings = settings_of(ctx)
    group_name, topic_name, moves = replays.plan(settings, group, topic, from_beginning=from_beginning,
                                                 from_offset=from_offset, from_time=from_time)
    print(render(["partition", "committed", "new_offset", "end", "to_reread"],
                 [(m.partition, m.committed, m.target, m.end, m.rereads) for m in moves], "table"))
    total = sum(m.rereads for m in moves)
    if dry_run:
        print(f"dry run: {group_name} would re-read {total} records of {topic_name}; nothing changed")
        return
    replays.apply(settings, group_name, topic_name, moves)
    print(f"{group_name} will re-read {total} records of {topic_name} when it next starts")


@dlq_app.command("list")
def dlq_list(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table, json or csv.")):
    """Every dead letter: when, which sink, where from, why."""
    from consumers.query import render
    from consumers.redrive import COLUMNS, read_all

    print(render(COLUMNS, [d.row() for d in read_all(settings_of(ctx))], _check_format(format)))


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, ref: str = typer.Argument(..., help="The dlq_ref from `dlq list`, e.g. 0:12.")):
    """One dead letter in full: headers, key, and the value's first bytes."""
    from consumers.redrive import find, read_all

    letter = find(read_all(settings_of(ctx)), ref)
    for name, value in letter.headers:
        print(f"{name}: {value.decode('utf-8', 'replace')}")
    print(f"key: {letter.key!r}\nvalue ({len(letter.value or b'')} bytes): {(letter.value or b'')[:200]!r}")


@dlq_app.command("redrive")
def dlq_redrive(ctx: typer.Context,
                ref: Optional[list[str]] = typer.Argument(None, help="dlq_refs to send back (default: all)."),
                sink: Optional[str] = typer.Option(None, "--sink", help="Only letters from this sink.")):
    """Send dead letters back to their origin topic, each once, after fixing the cause."""
    from consumers.redrive import find, read_all, redrive

    settings = settings_of(ctx)
    letters = read_all(settings)
    if ref:
        letters = [find(letters, r) for r in ref]
    if sink:
        letters = [d for d in letters if d.header("strongroom.sink") == sink]
    sent, skipped = redrive(settings, letters)
    print(f"redrive: sent {sent} back to their topics, {skipped} already redriven before")


@app.command("demo")
def demo(ctx: typer.Context, workdir: Path = typer.Option(Path(".strongroom/demo"), "--workdir", help="Where the sample corpus is written.")):
    """Capture a sample firm's mail and Slack, archive, index, and answer audit questions."""
    from strongroom.demo import run_demo

    run_demo(settings_of(ctx), workdir)


# Command groups in modules of their own (strongroom/commands/), declared on the apps above.
from strongroom.commands import load_all as _load_command_modules  # noqa: E402

_load_command_modules()


# -- the one place errors become exit codes ---------------------------------------------------
def exit_code(exc: StrongroomError) -> int:
    if isinstance(exc, (ConfigError, InputError)):
        return 2
    if isinstance(exc, ServiceError):
        return 3
    if isinstance(exc, DeliveryError):
        return 4
    if isinstance(exc, IntegrityError):
        return 5
    return 1


def main() -> None:
    try:
        app(prog_name="strongroom")
    except StrongroomError as exc:
        print(f"strongroom: error: {exc}", file=sys.stderr)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        print("strongroom: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("STRONGROOM_DEBUG"):
            raise
        print(f"strongroom: internal error: {type(exc).__name__}: {exc} (STRONGROOM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        sys.exit(70)


if __name__ == "__main__":
    # `python -m strongroom.cli` runs this file as __main__, a second copy of the module; the
    # command groups in strongroom/commands/ register on the importable strongroom.cli, so run that.
    from strongroom import cli

    cli.main()
