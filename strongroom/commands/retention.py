"""`strongroom policy check`, `hold create|release|list`, `retention plan|apply`: keeping and purging
by policy, and legal holds that override it. Every command is recorded in the audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from strongroom.cli import _check_format, app, settings_of
from strongroom.errors import InputError

policy_app = typer.Typer(help="Retention policies as code.", no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds: cases whose messages are never purged.", no_args_is_help=True)
retention_app = typer.Typer(help="Plan and apply a retention policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(hold_app, name="hold")
app.add_typer(retention_app, name="retention")

POLICY_HELP = "The policy file (TOML, docs/retention.md); default: retention.policy in the configuration."
AS_OF_HELP = "Judge as of this date or time (UTC unless it says otherwise); default: now."


def _policy(settings, path: Optional[Path]):
    from consumers.policy import load_policy

    chosen = path or settings.retention.policy
    if not chosen:
        raise InputError("no policy: pass --policy FILE or set retention.policy in strongroom.toml")
    policy, digest = load_policy(chosen)
    return policy, digest, str(chosen)


@policy_app.command("check")
def policy_check(ctx: typer.Context,
                 policy: Optional[Path] = typer.Option(None, "--policy", help=POLICY_HELP),
                 message_uid: Optional[str] = typer.Option(None, "--message-uid", help="The message to explain."),
                 query: Optional[str] = typer.Option(None, "--query", help="SQL returning message_uid: explain each (up to --limit)."),
                 as_of: Optional[str] = typer.Option(None, "--as-of", help=AS_OF_HELP),
                 limit: int = typer.Option(20, "--limit", min=1, max=1000),
                 format: str = typer.Option("table", "--format", help="table or json.")):
    """Explain which rules match a message, which one applies and why, and whether a hold keeps it."""
    from consumers.judgement import as_of_time, explain
    from consumers.policy import quote
    from strongroom import audit

    settings = settings_of(ctx)
    rules, digest, path = _policy(settings, policy)
    if bool(message_uid) == bool(query):
        raise InputError("give one of --message-uid UID or --query SQL")
    selection = f"SELECT {quote(message_uid)} AS message_uid" if message_uid else query
    found = explain(settings, rules, as_of_time(as_of), selection, limit)
    audit.record(settings, "policy.check", {"policy": path, "policy_sha256": digest, "message_uid": message_uid,
                                            "query": query, "as_of": as_of}, len(found))
    if message_uid and not found:
        raise InputError(f"message {message_uid!r} is not in the warehouse")
    if format == "json":
        print(json.dumps(found, indent=1, ensure_ascii=False))
        return
    _check_format(format)
    for item in found:
        print(f"{item['message_uid']}  sent {item['sent_at']}")
        for rule in item["rules"]:
            fields = ", ".join(f"{f} {'=' if c['matched'] else '!='} {'|'.join(c['patterns'])}"
                               for f, c in rule["fields"].items())
            print(f"  {'MATCH' if rule['matches'] else 'no   '}  {rule['rule']} ({rule['keep']}): {fields}")
        state = "EXPIRED" if item["expired"] else "kept"
        print(f"  applies: {item['applies']}: {item['why']}; expires {item['expires_at'] or 'never'} ({state})")
        if item["held_by"]:
            print(f"  held by: {', '.join(item['held_by'])}: never purged while held")


@hold_app.command("create")
def hold_create(ctx: typer.Context, name: str = typer.Argument(..., help="The case name, e.g. acme-v-northwind."),
                custodian: list[str] = typer.Option([], "--custodian", help="Address or user id (sender, recipient or mailbox); repeat."),
                since: Optional[str] = typer.Option(None, "--since", help="First day held (YYYY-MM-DD, UTC)."),
                until: Optional[str] = typer.Option(None, "--until", help="Last day held (YYYY-MM-DD, UTC)."),
                query: Optional[str] = typer.Option(None, "--query", help="SQL returning message_uid: only these."),
                reason: str = typer.Option(..., "--reason", help="Why: recorded with the hold.")):
    """Place a legal hold: matching messages are never purged until it is released."""
    from consumers import holds
    from strongroom import audit

    settings = settings_of(ctx)
    hold = holds.create(settings, name, custodian, since, until, query, reason, audit.who(settings))
    from consumers.query import run_query

    count = run_query(settings, f"SELECT count(*) FROM ({holds.selection_sql(hold)})")[1][0][0]
    audit.record(settings, "hold.create", {"name": name, "custodians": hold.custodians, "since": hold.since,
                                           "until": hold.until, "query": query, "reason": reason}, count)
    print(f"hold {name} created by {hold.who}: {count} messages held now (and any matching message archived later)")


@hold_app.command("release")
def hold_release(ctx: typer.Context, name: str = typer.Argument(...),
                 reason: str = typer.Option(..., "--reason", help="Why: recorded with the release.")):
    """Release a legal hold; its history stays in the store."""
    from consumers import holds
    from strongroom import audit

    settings = settings_of(ctx)
    hold = holds.release(settings, name, reason, audit.who(settings))
    audit.record(settings, "hold.release", {"name": name, "reason": reason}, None)
    print(f"hold {name} released by {hold.who}")


@hold_app.command("list")
def hold_list(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table, json or csv.")):
    """Every hold: state, custodians, range, who created or changed it last and why."""
    from dataclasses import asdict

    from consumers import holds
    from consumers.query import render
    from strongroom import audit

    settings = settings_of(ctx)
    found = holds.all_holds(settings)
    audit.record(settings, "hold.list", {}, len(found))
    if format == "json":
        print(json.dumps([asdict(h) for h in found], indent=1, ensure_ascii=False))
        return
    print(render(["name", "state", "custodians", "since", "until", "query", "by", "at", "reason"],
                 [(h.name, h.state, ", ".join(h.custodians), h.since, h.until, h.query, h.who, h.at, h.reason)
                  for h in found], _check_format(format)))


@retention_app.command("plan")
def retention_plan(ctx: typer.Context, policy: Optional[Path] = typer.Option(None, "--policy", help=POLICY_HELP),
                   as_of: Optional[str] = typer.Option(None, "--as-of", help=AS_OF_HELP),
                   format: str = typer.Option("table", "--format", help="table or json.")):
    """What `apply` would purge: messages per rule and day, and what holds keep; changes nothing."""
    from consumers.index_purge import hot_window
    from consumers.judgement import as_of_time
    from consumers.retention import plan
    from strongroom import audit

    settings = settings_of(ctx)
    rules, digest, path = _policy(settings, policy)
    when = as_of_time(as_of)
    result = plan(settings, rules, when)
    window = hot_window(settings, when, apply=False)
    audit.record(settings, "retention.plan", {"policy": path, "policy_sha256": digest, "as_of": when.isoformat()},
                 result.purge_messages)
    _print_plan(result, window, format)


def _print_plan(result, window: dict, format: str) -> None:
    from consumers.query import render

    if format == "json":
        print(json.dumps({"as_of": result.as_of, "holds": result.holds, "totals": result.totals,
                          "purge": [dict(zip(("rule", "day", "messages", "rows", "held"), r)) for r in result.by_rule_day],
                          "purge_messages": result.purge_messages, "held_messages": result.held_messages,
                          "hot_window": window}, indent=1))
        return
    _check_format(format)
    print(render(["rule", "day", "purge_messages", "purge_rows", "held_kept"], result.by_rule_day, "table"))
    print(render(["rule", "messages", "expired", "held_kept", "purge"],
                 [(r, t["messages"], t["expired"], t["held"], t["purge"]) for r, t in result.totals.items()], "table"))
    print(f"as of {result.as_of}: {result.purge_messages} messages to purge, {result.held_messages} expired but held "
          f"({', '.join(result.holds) or 'no active holds'}); hot index: {window['documents']} documents sent before "
          f"{window['cutoff'][:10]} leave it (purged or not; the warehouse keeps the unpurged)")


@retention_app.command("apply")
def retention_apply(ctx: typer.Context, policy: Optional[Path] = typer.Option(None, "--policy", help=POLICY_HELP),
                    as_of: Optional[str] = typer.Option(None, "--as-of", help=AS_OF_HELP),
                    yes: bool = typer.Option(False, "--yes", help="Really purge (there is no undo)."),
                    format: str = typer.Option("table", "--format", help="table or json.")):
    """Purge expired, unheld messages from the warehouse, the blob store and the index; enforce the hot window."""
    from dataclasses import asdict

    from consumers.index_purge import hot_window
    from consumers.judgement import as_of_time
    from consumers.retention import apply
    from strongroom import audit

    settings = settings_of(ctx)
    rules, digest, path = _policy(settings, policy)
    if not yes:
        raise InputError("retention apply deletes for good: run `strongroom retention plan` first, then add --yes")
    when = as_of_time(as_of)
    details = {"policy": path, "policy_sha256": digest, "as_of": when.isoformat()}
    audit.record(settings, "retention.apply.start", details, None)
    report = apply(settings, rules, digest, when, audit.who(settings))
    report.hot_window = hot_window(settings, when, apply=True)
    audit.record(settings, "retention.apply", {**details, **asdict(report)}, report.messages)
    if format == "json":
        print(json.dumps(asdict(report), indent=1))
        return
    _check_format(format)
    print(f"purged {report.messages} messages ({report.rows} rows): {report.files_rewritten} files rewritten, "
          f"{report.files_removed} removed, {report.blobs_deleted} blobs deleted ({report.blobs_kept_shared} kept, "
          f"still used), {report.documents_deleted} index documents deleted; {report.held_kept} expired messages "
          f"kept by holds; hot window: {report.hot_window['documents']} documents before "
          f"{report.hot_window['cutoff'][:10]} dropped")
