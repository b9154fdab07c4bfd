"""Retention policies: parsing with one-line errors naming rule and field, and matching (in DuckDB,
over Arrow rows of the warehouse schema) where the most protective rule wins."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pytest

from consumers.judgement import judged_sql, retain_until
from consumers.policy import load_policy, parse_period
from schemas import serde
from schemas.records import new_record, participant, recipient
from strongroom.errors import InputError

POLICY = """
[default]
keep = "7y"
[[rule]]
name = "chat"
kind = "chat"
keep = "5y"
[[rule]]
name = "legal"
participant_domain = ["legal.example", "*.legal.example"]
keep = "10y"
[[rule]]
name = "random"
channel = "Random"
keep = "90d"
[[rule]]
name = "board"
mailbox = "board@northwind.example"
sender_domain = "northwind.example"
keep = "forever"
"""


def policy_file(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def _row(uid: str, kind: str = "email", sent: str = "2020-01-01T00:00:00+00:00", sender: str = "a@northwind.example",
         to: str = "b@northwind.example", channel: str | None = None, workspace: str | None = None, offset: int = 0) -> dict:
    rec = new_record(message_uid=uid, kind=kind, platform="email" if kind == "email" else "teams", source="test",
                     sent_at=datetime.fromisoformat(sent), sender=participant(address=sender),
                     recipients=[recipient("to", address=to)], channel=channel, workspace=workspace,
                     raw_sha256="0" * 64, raw_size=1)
    rec.update(ingested_at=datetime.now(timezone.utc), kafka_topic="t", kafka_partition=0, kafka_offset=offset)
    return rec


def judge(tmp_path, rows: list[dict], text: str = POLICY) -> dict[str, tuple[str, str | None]]:
    policy, _ = load_policy(policy_file(tmp_path, text))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("rows_t", pa.Table.from_pylist(rows, schema=serde.arrow_schema()))
    found = con.execute(f"""SELECT message_uid, rule, CAST(expires_at AS VARCHAR)
        FROM ({judged_sql(policy, '(SELECT *, NULL::DATE AS date FROM rows_t)')})""").fetchall()
    return {uid: (rule, expires) for uid, rule, expires in found}


@pytest.mark.parametrize("text, message", [
    ("[[rule]]\nname='x'\nkind='chat'\nkeep='5y'\n", 'a [default] section with keep = "..." is required'),
    ("[default]\nkeep='7 years'\n", "default.keep: '7 years' is not a period"),
    ("[default]\nkeep='7y'\n[[rule]]\nname='chat'\nkind='chat'\nkeep='5x'\n", "rule 'chat' field keep: '5x' is not a period"),
    ("[default]\nkeep='7y'\n[[rule]]\nname='chat'\nkinds='chat'\nkeep='5y'\n", "rule 'chat': unknown field 'kinds'"),
    ("[default]\nkeep='7y'\n[[rule]]\nname='all'\nkeep='5y'\n", "rule 'all': matches every message"),
    ("[default]\nkeep='7y'\n[[rule]]\nkind='chat'\nkeep='5y'\n", "rule #1 field name: Field required"),
    ("[default]\nkeep='7y'\n[[rule]]\nname='a'\nkind='chat'\nkeep='5y'\n[[rule]]\nname='a'\nkind='email'\nkeep='1y'\n",
     "rule name 'a' is used twice"),
    ("[default]\nkeep='7y'\n[[rule]]\nname='c'\nchannel=[]\nkeep='5y'\n", "rule 'c' field channel: needs at least one"),
    ("[default\nkeep='7y'\n", "is not valid TOML"),
])
def test_bad_policies_name_the_rule_and_field(tmp_path, text, message):
    """Each mistake is one InputError line that says which rule and which field."""
    with pytest.raises(InputError) as caught:
        load_policy(policy_file(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_policy_file(tmp_path):
    """A policy path that does not exist is an InputError naming it."""
    with pytest.raises(InputError, match="missing.toml"):
        load_policy(tmp_path / "missing.toml")


def test_periods():
    """Numbers with d, w, m, y; forever; nothing else."""
    assert parse_period("90d") == (90, "d") and parse_period(" 7Y ") == (7, "y") and parse_period("forever") is None
    for bad in ("0y", "7", "y", "-1d", "7 yrs"):
        with pytest.raises(ValueError):
            parse_period(bad)


def test_most_protective_rule_wins(tmp_path):
    """chat 5y beats random 90d; legal 10y beats chat; forever beats all; no match -> default."""
    found = judge(tmp_path, [
        _row("mail"),
        _row("chat", kind="chat", sent="2020-02-29T12:00:00+00:00", channel="general"),
        _row("random-chat", kind="chat", channel="RANDOM"),
        _row("legal-chat", kind="chat", to="x@eu.legal.example"),
        _row("board", workspace="Board@Northwind.example", to="counsel@legal.example"),
        _row("board-outsider", workspace="board@northwind.example", sender="x@contoso.example"),
    ])
    assert found == {"mail": ("default", "2027-01-01 00:00:00+00"),
                     "chat": ("chat", "2025-02-28 12:00:00+00"),  # 29 February plus five years
                     "random-chat": ("chat", "2025-01-01 00:00:00+00"),
                     "legal-chat": ("legal", "2030-01-01 00:00:00+00"),
                     "board": ("board", None),
                     "board-outsider": ("default", "2027-01-01 00:00:00+00")}


def test_a_message_is_judged_by_all_its_rows(tmp_path):
    """An arrival copy in another mailbox that matches a longer rule protects the whole message."""
    found = judge(tmp_path, [_row("m", offset=1), _row("m", workspace="board@northwind.example", offset=2)])
    assert found == {"m": ("board", None)}


def test_retain_until_is_the_first_expiry_in_a_file(tmp_path):
    """Object Lock dates: the earliest expiry of the rows; only forever rows lock for a century."""
    policy, _ = load_policy(policy_file(tmp_path, POLICY))
    rows = [_row("a", sent="2025-06-01T00:00:00+00:00"), _row("b", kind="chat", sent="2025-03-01T00:00:00+00:00")]
    table = pa.Table.from_pylist(rows, schema=serde.arrow_schema())
    assert retain_until(policy, table) == datetime(2030, 3, 1, tzinfo=timezone.utc)
    expired = pa.Table.from_pylist([_row("c", sent="2001-01-01T00:00:00+00:00")], schema=serde.arrow_schema())
    assert retain_until(policy, expired) is None
    board = pa.Table.from_pylist([_row("d", workspace="board@northwind.example")], schema=serde.arrow_schema())
    assert retain_until(policy, board).year >= datetime.now(timezone.utc).year + 99
