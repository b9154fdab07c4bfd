"""Judging the warehouse against a policy and the holds: which rule applies to each message, when
it expires, whether it is held. One SQL text serves `policy check`, `retention plan` and `apply`.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb

from consumers.holds import ALL_ROWS, held_sql
from consumers.policy import Policy, parse_period, quote, rule_sql
from consumers.query import connect
from strongroom.config import Settings
from strongroom.errors import InputError

_UNIT_SQL = {"d": "to_days", "w": "to_weeks", "m": "to_months", "y": "to_years"}


def expiry_sql(keep: str) -> str:
    period = parse_period(keep)
    if period is None:
        return "NULL::TIMESTAMPTZ"
    return f"sent_at + {_UNIT_SQL[period[1]]}({period[0]})"


def ts(when: datetime) -> str:
    return f"TIMESTAMPTZ {quote(when.astimezone(timezone.utc).isoformat())}"


def judged_sql(policy: Policy, source: str = ALL_ROWS) -> str:
    """Per message: the rules it matches (m_<i>), the rule that applies, and when it expires."""
    ranked = policy.ranked()
    matches = ", ".join(f"coalesce(bool_or({rule_sql(r)}), false) AS m_{i}" for i, r in enumerate(ranked))
    applied = " ".join(f"WHEN m_{i} THEN {quote(r.name)}" for i, r in enumerate(ranked))
    expires = " ".join(f"WHEN m_{i} THEN {expiry_sql(r.keep)}" for i, r in enumerate(ranked))
    return f"""
        SELECT message_uid, sent_at, day, n_rows, {', '.join(f'm_{i}' for i in range(len(ranked))) or 'NULL AS m_none'},
               CASE {applied} ELSE 'default' END AS rule,
               CASE {expires} ELSE {expiry_sql(policy.default.keep)} END AS expires_at
        FROM (SELECT message_uid, min(sent_at) AS sent_at, min(date) AS day, count(*) AS n_rows
                     {', ' + matches if matches else ''}
              FROM {source} GROUP BY message_uid)""".replace("CASE  ELSE", "CASE WHEN false THEN NULL ELSE")


def judge(settings: Settings, policy: Policy, as_of: datetime,
          con: duckdb.DuckDBPyConnection | None = None) -> tuple[duckdb.DuckDBPyConnection, list]:
    """A connection holding table `judged` (message_uid, day, rule, expires_at, expired, held) and the active holds."""
    con = con or connect(settings)
    con.execute("SET TimeZone = 'UTC'")
    held, holds = held_sql(settings)
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE judged AS
            SELECT j.*, coalesce(expires_at < {ts(as_of)}, false) AS expired,
                   message_uid IN (SELECT message_uid FROM ({held})) AS held
            FROM ({judged_sql(policy)}) j""")
    except duckdb.Error as exc:
        raise InputError(f"judging the warehouse failed: {str(exc).splitlines()[0]}") from exc
    return con, holds


def as_of_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"--as-of {value!r} is not an ISO date or time (e.g. 2026-12-01)") from exc
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def explain(settings: Settings, policy: Policy, as_of: datetime, selection: str, limit: int = 50) -> list[dict]:
    """For each selected message: every rule with each of its fields matched or not, the rule that
    applies and why, when it expires, and the holds that keep it."""
    from consumers.holds import selection_sql
    from consumers.policy import field_sql

    con, holds = judge(settings, policy, as_of)
    ranked = policy.ranked()
    fields = [f"coalesce(bool_or({field_sql(f, p)}), false) AS \"{i}:{f}\""
              for i, r in enumerate(ranked) for f, p in r.conditions().items()]
    hold_cols = [f"message_uid IN ({selection_sql(h)}) AS \"hold:{h.name}\"" for h in holds]
    try:
        cur = con.execute(f"""
            SELECT j.message_uid, CAST(j.sent_at AS VARCHAR), j.rule, CAST(j.expires_at AS VARCHAR), j.expired, j.held,
                   f.* EXCLUDE (message_uid)
                   {''.join(', ' + c for c in hold_cols)}
            FROM judged j JOIN (SELECT message_uid {''.join(', ' + c for c in fields)} FROM {ALL_ROWS}
                                WHERE message_uid IN (SELECT message_uid FROM ({selection}))
                                GROUP BY message_uid) f USING (message_uid)
            ORDER BY j.sent_at LIMIT {int(limit)}""")
    except duckdb.Error as exc:
        raise InputError(f"policy check failed: {str(exc).splitlines()[0]}") from exc
    columns = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        values = dict(zip(columns, row))
        rules = []
        for i, rule in enumerate(ranked):
            checks = {f: values[f"{i}:{f}"] for f in rule.conditions()}
            rules.append({"rule": rule.name, "keep": rule.keep, "matches": all(checks.values()),
                          "fields": {f: {"patterns": rule.conditions()[f], "matched": ok} for f, ok in checks.items()}})
        matched = [r for r in rules if r["matches"]]
        if matched:
            why = (f"rule {matched[0]['rule']!r} ({matched[0]['keep']}) is the most protective of "
                   f"{len(matched)} matching rule{'s' if len(matched) > 1 else ''}") if len(matched) > 1 else \
                  f"rule {matched[0]['rule']!r} ({matched[0]['keep']}) is the only rule that matches"
        else:
            why = f"no rule matches, so the default ({policy.default.keep}) applies"
        out.append({"message_uid": values["message_uid"], "sent_at": row[1], "applies": values["rule"], "why": why,
                    "expires_at": row[3], "expired": values["expired"],
                    "held_by": [h.name for h in holds if values[f"hold:{h.name}"]], "rules": rules})
    return out


FOREVER_LOCK_YEARS = 100


def retain_until(policy: Policy, table) -> datetime | None:
    """When the first message in an Arrow table of rows expires under `policy`: the Object Lock
    retain-until date of the file holding them (None when that is already past). Per row, so it
    is never later than any message's own expiry; `forever` rules lock for 100 years."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    con.register("archived_rows", table)
    first, forever = con.execute(f"""SELECT CAST(min(expires_at) AS VARCHAR), count(*) FILTER (WHERE expires_at IS NULL)
        FROM ({judged_sql(policy, '(SELECT *, NULL::DATE AS date FROM archived_rows)')})""").fetchone()
    now = datetime.now(timezone.utc)
    if first is None:
        return now.replace(year=now.year + FOREVER_LOCK_YEARS) if forever else None
    when = datetime.fromisoformat(first.replace(" ", "T"))
    return when if when > now else None
