"""The one place strongroom's errors are defined.

    StrongroomError                      every error we raise on purpose; the CLI prints one line
    ├── ConfigError(ValueError)          bad or unknown settings, malformed strongroom.toml
    ├── InputError(ValueError)           a path that does not exist, a format we cannot read
    ├── ServiceError(ConnectionError)    a service is unreachable or refused us   (transient)
    │   ├── KafkaError
    │   ├── RegistryError
    │   ├── SearchError
    │   ├── MailServerError              an IMAP server (strongroom ingest imap)
    │   └── StorageError
    │       └── AlreadyExists            a write-once object is already there
    ├── DeliveryError                    records were not acknowledged by Kafka
    └── IntegrityError                   verification found data that is missing or altered

Third-party exceptions are translated at the boundary that calls the library
(`raise ... from exc`), so callers handle only these. `transient` tells the one place that
decides retry versus fail whether trying again can help.
"""

from __future__ import annotations


class StrongroomError(Exception):
    """Base of every error strongroom raises on purpose."""

    transient = False


class ConfigError(StrongroomError, ValueError):
    """Settings are malformed, unknown or inconsistent."""


class InputError(StrongroomError, ValueError):
    """User input (a path, a format, an argument) cannot be used."""


class ServiceError(StrongroomError, ConnectionError):
    """A service did not answer or refused the request."""

    transient = True
    service = "service"


class KafkaError(ServiceError):
    service = "kafka"


class RegistryError(ServiceError):
    service = "schema registry"


class SearchError(ServiceError):
    service = "opensearch"


class MailServerError(ServiceError):
    service = "mail server"


class StorageError(ServiceError):
    service = "storage"


class AlreadyExists(StorageError):
    """A write-once object already exists; the caller decides whether that is fine."""

    transient = False


class DeliveryError(StrongroomError):
    """Some records were not acknowledged by the broker."""

    transient = True


class IntegrityError(StrongroomError):
    """Archived data is missing, duplicated or altered."""
