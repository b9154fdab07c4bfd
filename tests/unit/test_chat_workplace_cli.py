"""`strongroom ingest teams|mattermost`: bad input is one clear line and exit 2, before anything is produced."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_cli import _one_line_error, strongroom

TEAMS = Path(__file__).parent.parent / "fixtures" / "chat" / "teams"


def test_missing_paths_exit_2(tmp_path: Path) -> None:
    """A Teams or Mattermost path that does not exist, or a missing --users file, exits 2 naming it."""
    _one_line_error(strongroom("ingest", "teams", str(tmp_path / "nowhere.json")), 2, "nowhere.json does not exist")
    _one_line_error(strongroom("ingest", "mattermost", str(tmp_path / "gone.jsonl")), 2, "gone.jsonl does not exist")
    _one_line_error(strongroom("ingest", "teams", str(TEAMS), "--users", str(tmp_path / "people.json")), 2,
                    "people.json does not exist")


def test_inputs_without_messages_exit_2(tmp_path: Path) -> None:
    """A folder with no Teams message files, or no Mattermost .jsonl, exits 2 saying what is missing."""
    _one_line_error(strongroom("ingest", "teams", str(tmp_path)), 2, "holds no Teams message files")
    _one_line_error(strongroom("ingest", "mattermost", str(tmp_path)), 2, "holds no Mattermost export")
