"""Configuration: file, environment and overrides, in that order; unknown keys refused; secrets masked."""

from __future__ import annotations

import json

import pytest

from strongroom.config import load_settings
from strongroom.errors import ConfigError


def test_defaults_point_at_the_local_services():
    """With nothing configured, strongroom talks to infra/local's services."""
    s = load_settings(environ={})
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.registry.url.endswith("/apis/ccompat/v7")
    assert (s.topic("email"), s.group("archiver"), s.index_prefix("chat")) == (
        "strongroom.email", "strongroom-archiver", "strongroom-chat")


def test_file_then_env_then_overrides(tmp_path):
    """strongroom.toml is overridden by STRONGROOM__ variables, which are overridden by explicit values."""
    path = tmp_path / "strongroom.toml"
    path.write_text('namespace = "fromfile"\n[kafka]\nbootstrap_servers = "k1:9092"\npartitions = 6\n')
    env = {"STRONGROOM__KAFKA__BOOTSTRAP_SERVERS": "k2:9092", "STRONGROOM_STORAGE_URL": "s3://b/p"}
    s = load_settings(path, environ=env)
    assert (s.namespace, s.kafka.bootstrap_servers, s.kafka.partitions, s.storage.url) == (
        "fromfile", "k2:9092", 6, "s3://b/p")
    assert load_settings(path, environ=env, namespace="flag").namespace == "flag"


@pytest.mark.parametrize("text, where", [
    ("[kafka]\nbootstrap = 'x'\n", "kafka.bootstrap"),
    ("[kafak]\nbootstrap_servers = 'x'\n", "kafak"),
    ("namespace = 'Has Spaces'\n", "namespace"),
    ("[kafka]\npartitions = 0\n", "kafka.partitions"),
])
def test_bad_settings_are_refused_naming_the_key(tmp_path, text, where):
    """A typo or bad value is a ConfigError naming the setting, never a silent default."""
    path = tmp_path / "strongroom.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"setting {where}"):
        load_settings(path, environ={})


def test_malformed_toml_and_missing_file_are_config_errors(tmp_path):
    """Unparseable TOML and a missing --config file are one-line ConfigErrors."""
    path = tmp_path / "strongroom.toml"
    path.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_unknown_env_override_is_refused():
    """A STRONGROOM__ variable naming no setting is refused like a typo in the file."""
    with pytest.raises(ConfigError, match="opensearch.urll"):
        load_settings(environ={"STRONGROOM__OPENSEARCH__URLL": "http://x"})


def test_secrets_are_masked_when_shown():
    """config show never prints a secret."""
    s = load_settings(environ={"STRONGROOM__STORAGE__S3_SECRET_KEY": "hunter2", "STRONGROOM__KAFKA__SASL_PASSWORD": "pw"})
    shown = json.dumps(s.redacted())
    assert "hunter2" not in shown and "pw\"" not in shown
    assert s.storage.s3_secret_key.get_secret_value() == "hunter2"
    assert s.kafka.client_config()["sasl.password"] == "pw"
