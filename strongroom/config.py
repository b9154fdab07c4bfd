"""The one place for configuration: typed, frozen sections from strongroom.toml plus environment.

Precedence, lowest first: defaults (the local services of infra/local) < strongroom.toml
(`--config`, `STRONGROOM_CONFIG`, or ./strongroom.toml when present) < `STRONGROOM__SECTION__KEY`
environment variables < the shortcuts `STRONGROOM_NAMESPACE` and `STRONGROOM_STORAGE_URL` <
command-line flags. Unknown sections and keys are refused, so a typo never silently falls back
to a default. Secrets are `SecretStr` and print masked.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from strongroom.errors import ConfigError

ENV_PREFIX = "STRONGROOM__"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    # Passed to librdkafka as they are, for settings strongroom does not name.
    extra: dict[str, str] = {}

    def client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers,
                                "security.protocol": self.security_protocol,
                                # librdkafka's own retry chatter would bury our one-line errors;
                                # kafka.extra.log_level = "7" brings it back when debugging.
                                "log_level": 2}
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class RegistrySettings(Section):
    url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    basic_auth_user_info: SecretStr | None = None


class OpenSearchSettings(Section):
    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    hot_window_days: int = Field(90, ge=1)
    # A bulk takes up to this many documents or bytes (of Avro, about the JSON's size) and goes
    # out as requests of about bulk_part_bytes, bulk_concurrency at a time.
    # These bound the indexer's memory whatever the backlog.
    bulk_max_docs: int = Field(10_000, ge=1)
    bulk_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    bulk_part_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    bulk_concurrency: int = Field(2, ge=1)
    # gzip of request bodies (level 9 in opensearch-py) cost the indexer more CPU than all its
    # other work; worth it only over a slow link to a remote cluster.
    http_compress: bool = False


class StorageSettings(Section):
    # A local directory, or s3://bucket/prefix.
    url: str = ".strongroom/storage"
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: str = "strongroom"
    s3_secret_key: SecretStr = SecretStr("strongroom-local-secret")
    # S3 Object Lock: archived Parquet files are written with a retain-until date from the
    # retention policy, so the store itself refuses their deletion before it. The bucket must
    # have been created with Object Lock enabled. COMPLIANCE cannot be lifted by anyone;
    # GOVERNANCE can by a user allowed to bypass it.
    object_lock: bool = False
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


class ArchiverSettings(Section):
    max_rows: int = Field(200_000, ge=1)
    max_bytes: int = Field(128 * 1024 * 1024, ge=1024)
    idle_seconds: float = Field(30.0, gt=0)
    row_group_rows: int = Field(128_000, ge=1000)


class IndexerSettings(Section):
    idle_seconds: float = Field(5.0, gt=0)


class SmtpSettings(Section):
    """`strongroom serve smtp`: where it listens and how long a message may wait for Kafka."""

    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    # A message is answered 250 only once Kafka acknowledged its record; past this it gets 451
    # (try again later), which every sending MTA retries. Also librdkafka's message.timeout.ms.
    delivery_timeout_seconds: float = Field(60.0, gt=0)
    # Journal reports carry the original and its attachments; Exchange allows up to 150 MB.
    max_message_bytes: int = Field(150 * 1024 * 1024, ge=1024)
    # Deliveries whose blobs are stored in parallel; more sessions than this wait their turn.
    workers: int = Field(8, ge=1)


class ImapSettings(Section):
    """`strongroom ingest imap`: how much one FETCH and one checkpoint cover."""

    batch_messages: int = Field(200, ge=1)
    timeout_seconds: float = Field(60.0, gt=0)


class RetentionSettings(Section):
    # The retention policy file (TOML, docs/retention.md); `--policy` overrides it.
    policy: str | None = None
    # Who the audit trail names for this installation's commands (default: the OS user).
    identity: str | None = None


class Settings(Section):
    namespace: str = "strongroom"
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    opensearch: OpenSearchSettings = OpenSearchSettings()
    storage: StorageSettings = StorageSettings()
    archiver: ArchiverSettings = ArchiverSettings()
    indexer: IndexerSettings = IndexerSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_name(cls, value: str) -> str:
        # It becomes part of topic, group, index and path names; OpenSearch wants lower case.
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", value):
            raise ValueError("must be 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
        return value

    # -- names derived from the namespace: every topic, group, index and path ----------
    def topic(self, kind: str) -> str:
        return f"{self.namespace}.{kind}"

    def group(self, sink: str) -> str:
        return f"{self.namespace}-{sink}"

    def index_prefix(self, kind: str) -> str:
        return f"{self.namespace}-{kind}"

    def redacted(self) -> dict[str, Any]:
        """The effective settings with secrets masked, for `config show`."""
        return self.model_dump(mode="json")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    if environ.get("STRONGROOM_NAMESPACE"):
        values["namespace"] = environ["STRONGROOM_NAMESPACE"]
    if environ.get("STRONGROOM_STORAGE_URL"):
        values.setdefault("storage", {})["url"] = environ["STRONGROOM_STORAGE_URL"]
    return values


def config_path(explicit: str | Path | None, environ: dict[str, str]) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    if environ.get("STRONGROOM_CONFIG"):
        return config_path(environ["STRONGROOM_CONFIG"], {})
    default = Path("strongroom.toml")
    return default if default.is_file() else None


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Settings from file and environment; `overrides` (e.g. namespace=...) win over both."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    source = config_path(path, environ)
    if source:
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    data = _deep_merge(data, _from_env(environ))
    data = _deep_merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        origin = f" (from {source})" if source else ""
        raise ConfigError(f"setting {where}: {first['msg']}{origin}") from exc
