"""The chat commands refuse bad arguments with one line and exit 2, before touching any service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = str(Path(sys.executable).parent / "strongroom")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "chat"


@pytest.mark.parametrize("args, message", [
    (["ingest", "matrix", "/nonexistent/room.json"], "does not exist"),
    (["ingest", "whatsapp", str(FIXTURES / "whatsapp" / "export"), "--timezone", "Mars/Olympus"], "IANA"),
    (["ingest", "whatsapp", str(FIXTURES / "whatsapp" / "export"), "--date-order", "dym"], "--date-order"),
    (["ingest", "irc", str(FIXTURES / "irc"), "--date", "yesterday"], "--date"),
    (["ingest", "telegram", str(FIXTURES / "matrix" / "messages-dir-b.json")], "neither a Telegram export"),
    (["ingest", "xmpp-mam", "--jid", "alice@strongroom.test", "--password-env", "STRONGROOM_TEST_UNSET_PW"], "not set"),
    (["ingest", "xmpp-mam", "--jid", "alice", "--password-env", "PATH"], "USER@HOST"),
])
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path):
    """Each error is one line on stderr naming the problem; no traceback."""
    result = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "STRONGROOM_STORAGE_URL": str(tmp_path / "storage")})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
