"""Retention policies as code: a TOML file of rules, each matching messages and keeping them a period.

    [default]                 # required: what applies when no rule matches
    keep = "7y"
    [[rule]]
    name = "chat"
    kind = "chat"             # match fields: kind, platform, source, sender_domain,
    keep = "5y"               # participant_domain, channel, mailbox; a string or a list

A rule matches when every field it names matches (a list: any of its values); values are
case-insensitive globs (`*.example.com`). Of the rules that match a message, the most protective
(longest period, `forever` above all) applies; the default only when none matches. A message is
judged by all its rows (versions, arrival copies): a rule matching any of them matches it.

Matching runs in DuckDB (`match_sql`) for plans over the whole warehouse and for `policy check`
alike, so the explanation a user reads is the very expression the purge used.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator, model_validator

from strongroom.errors import InputError

MATCH_FIELDS = ("kind", "platform", "source", "sender_domain", "participant_domain", "channel", "mailbox")
_PERIOD = re.compile(r"^(\d+)\s*([dwmy])$")


def _as_list(value):
    if isinstance(value, str):
        return [value]
    return value


Patterns = Annotated[list[str] | None, BeforeValidator(_as_list)]


def parse_period(text: str) -> tuple[int, str] | None:
    """`7y` -> (7, 'y'); `forever` -> None. Raises ValueError for anything else."""
    value = text.strip().lower()
    if value in ("forever", "permanent"):
        return None
    match = _PERIOD.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a period: use a number and d, w, m or y (\"90d\", \"7y\"), or \"forever\"")
    return int(match.group(1)), match.group(2)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DefaultRule(_Strict):
    keep: str
    description: str | None = None

    @field_validator("keep")
    @classmethod
    def _period(cls, value: str) -> str:
        parse_period(value)
        return value


class Rule(DefaultRule):
    name: str
    kind: Patterns = None
    platform: Patterns = None
    source: Patterns = None
    sender_domain: Patterns = None
    participant_domain: Patterns = None
    channel: Patterns = None
    mailbox: Patterns = None

    @field_validator(*MATCH_FIELDS)
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(not v.strip() for v in value)):
            raise ValueError("needs at least one non-empty value")
        return [v.strip().lower() for v in value] if value is not None else None

    @model_validator(mode="after")
    def _matches_something(self) -> "Rule":
        if not any(getattr(self, f) for f in MATCH_FIELDS):
            raise ValueError(f"matches every message; name at least one of {', '.join(MATCH_FIELDS)} "
                             f"(the [default] section is for everything else)")
        return self

    def conditions(self) -> dict[str, list[str]]:
        return {f: getattr(self, f) for f in MATCH_FIELDS if getattr(self, f)}


class Policy(_Strict):
    default: DefaultRule
    rule: list[Rule] = []

    @model_validator(mode="after")
    def _unique_names(self) -> "Policy":
        seen: set[str] = set()
        for rule in self.rule:
            if rule.name in seen or rule.name == "default":
                raise ValueError(f"rule name {rule.name!r} is used twice (\"default\" is taken by [default])")
            seen.add(rule.name)
        return self

    def ranked(self) -> list[Rule]:
        """Rules from most to least protective (file order breaks ties), the order a CASE tries them."""
        def strength(rule: Rule) -> float:
            period = parse_period(rule.keep)
            if period is None:
                return float("inf")
            return period[0] * {"d": 1, "w": 7, "m": 30.44, "y": 365.25}[period[1]]
        return sorted(self.rule, key=strength, reverse=True)


def load_policy(path: str | Path) -> tuple[Policy, str]:
    """The validated policy and the sha256 of its file (recorded with every purge)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"policy file {path}: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"policy file {path} is not valid TOML: {exc}") from exc
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"policy file {path}: {_where(raw, exc.errors()[0])}") from exc
    return policy, hashlib.sha256(data).hexdigest()


def _where(raw: dict, error: dict) -> str:
    """One line naming the rule (by name where it has one) and the field."""
    loc = list(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing" and loc == ["default"]:
        return "a [default] section with keep = \"...\" is required"
    if loc and loc[0] == "rule" and len(loc) > 1 and isinstance(loc[1], int):
        rules = raw.get("rule") or []
        name = rules[loc[1]].get("name") if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else None
        label = f"rule {name!r}" if name else f"rule #{loc[1] + 1}"
        fields = [str(p) for p in loc[2:] if not isinstance(p, int)]
        if error["type"] == "extra_forbidden":
            return f"{label}: unknown field {fields[0]!r} (match fields: {', '.join(MATCH_FIELDS)})"
        return f"{label}" + (f" field {fields[0]}" if fields else "") + f": {message}"
    if error["type"] == "extra_forbidden":
        return f"unknown section or key {'.'.join(str(p) for p in loc)!r} (use [default] and [[rule]])"
    return f"{'.'.join(str(p) for p in loc) or 'policy'}: {message}"


# -- matching, as SQL over rows of email_log / chat_log -------------------------------------------
def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _any_glob(expr: str, patterns: list[str]) -> str:
    return "(" + " OR ".join(f"{expr} GLOB {quote(p)}" for p in patterns) + ")"


def _domain(expr: str) -> str:
    return f"lower(split_part(coalesce({expr}, ''), '@', 2))"


FIELD_SQL = {
    "kind": lambda p: _any_glob("lower(kind)", p),
    "platform": lambda p: _any_glob("lower(platform)", p),
    "source": lambda p: _any_glob("lower(source)", p),
    "sender_domain": lambda p: _any_glob(_domain("sender.address"), p),
    "participant_domain": lambda p: (
        "len(list_filter(list_prepend(sender.address, list_transform(recipients, r -> r.address)), "
        f"a -> {_any_glob(_domain('a'), p)})) > 0"),
    # A channel matches by its name or its id (conversation_id), whichever the user knows.
    "channel": lambda p: f"({_any_glob('lower(coalesce(channel, chr(0)))', p)} OR "
                         f"{_any_glob('lower(coalesce(conversation_id, chr(0)))', p)})",
    "mailbox": lambda p: _any_glob("lower(coalesce(workspace, chr(0)))", p),
}


def field_sql(field: str, patterns: list[str]) -> str:
    return f"coalesce({FIELD_SQL[field](patterns)}, false)"


def rule_sql(rule: Rule) -> str:
    return " AND ".join(field_sql(f, p) for f, p in rule.conditions().items())
