"""The retention commands refuse bad input with one line and exit 2, before touching any service."""

from __future__ import annotations

from tests.unit.test_cli import _one_line_error, strongroom


def test_bad_policy_is_one_line(tmp_path):
    """A policy mistake names the rule and the field."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nkeep = '7y'\n[[rule]]\nname = 'chat'\nkind = 'chat'\nkeep = 'five years'\n")
    _one_line_error(strongroom("retention", "plan", "--policy", str(policy)), 2, "rule 'chat' field keep")


def test_apply_needs_yes(tmp_path):
    """Purging needs --yes; without it nothing happens."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nkeep = '7y'\n")
    _one_line_error(strongroom("retention", "apply", "--policy", str(policy)), 2, "add --yes")


def test_no_policy_anywhere(tmp_path):
    """Without --policy or retention.policy the command says where to put one."""
    _one_line_error(strongroom("retention", "plan", cwd=tmp_path), 2, "no policy: pass --policy FILE")


def test_policy_check_needs_one_selection(tmp_path):
    """policy check wants exactly one of --message-uid and --query."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nkeep = '7y'\n")
    _one_line_error(strongroom("policy", "check", "--policy", str(policy)), 2, "--message-uid UID or --query SQL")


def test_bad_hold_name(tmp_path):
    """Hold names become storage keys: refused unless plain."""
    _one_line_error(strongroom("hold", "create", "Acme/../x", "--custodian", "a@b.example", "--reason", "r",
                               env={"STRONGROOM_STORAGE_URL": str(tmp_path / "s")}), 2, "hold name 'Acme/../x'")
