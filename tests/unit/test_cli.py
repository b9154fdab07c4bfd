"""The command line: user errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def strongroom(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "strongroom.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("strongroom: error:") and text in lines[0], result.stderr


def test_wrong_path(tmp_path):
    """Ingesting a path that does not exist exits 2 naming the path."""
    _one_line_error(strongroom("ingest", "email", str(tmp_path / "missing.mbox")), 2, "missing.mbox")


def test_malformed_config(tmp_path):
    """A malformed strongroom.toml exits 2 saying so."""
    (tmp_path / "strongroom.toml").write_text("[kafka\nbootstrap_servers = 1\n")
    _one_line_error(strongroom("config", "show", cwd=tmp_path), 2, "not valid TOML")


def test_unknown_setting(tmp_path):
    """A misspelt setting exits 2 naming it."""
    _one_line_error(strongroom("config", "show", env={"STRONGROOM__KAFKA__BOOTSTRAP": "x"}), 2, "kafka.bootstrap")


def test_unreachable_broker(tmp_path):
    """Ingesting with no broker at the address exits 3 naming Kafka and the address."""
    mail = tmp_path / "one.eml"
    mail.write_bytes(b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n")
    result = strongroom("ingest", "email", str(mail),
                        env={"STRONGROOM__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "STRONGROOM_STORAGE_URL": str(tmp_path / "s")})
    _one_line_error(result, 3, "cannot reach Kafka at 127.0.0.1:1")


def test_config_show_masks_secrets():
    """config show prints the settings without the secret values."""
    result = strongroom("config", "show", env={"STRONGROOM__STORAGE__S3_SECRET_KEY": "hunter2"})
    assert result.returncode == 0 and "hunter2" not in result.stdout and '"s3_secret_key": "**********"' in result.stdout
