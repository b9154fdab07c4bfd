"""Shared fixtures: settings with a namespace of their own, so tests never see each other's data."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from strongroom.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SERVICE_PORTS = {"kafka": 9092, "s3": 8333, "registry": 8081, "opensearch": 9200}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_fits_schema(captures) -> None:
    """Each record has exactly the schema's fields but ingested_at, and encodes once that is stamped."""
    import io
    import json
    from datetime import datetime, timezone

    import fastavro

    from schemas import serde

    fields = {f["name"] for f in json.loads(serde.schema_text())["fields"]}
    for capture in captures:
        assert set(capture.record) == fields - {"ingested_at"}
        fastavro.schemaless_writer(io.BytesIO(), serde.parsed_schema(),
                                   capture.record | {"ingested_at": datetime.now(timezone.utc)})


def consume(settings: Settings, topic: str, group: str, count: int, seconds: float = 30.0) -> list:
    """Read up to `count` records of `topic` from the start, in a consumer group of its own."""
    from strongroom.clients import kafka_consumer

    consumer = kafka_consumer(settings, settings.group(group))
    consumer.subscribe([topic])
    found: list = []
    for _ in range(int(seconds * 2)):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            found.append(msg)
            if len(found) == count:
                break
    consumer.close()
    return found


@pytest.fixture(scope="session")
def services() -> None:
    """The local services must be up; a test that needs them fails (never skips) when they are not."""
    down = [name for name, port in SERVICE_PORTS.items() if not _listening(port)]
    if down:
        pytest.fail(f"local services not running: {', '.join(down)} (run `make up`)", pytrace=False)


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def settings(namespace: str, tmp_path: Path) -> Settings:
    """Settings on the local services, a fresh namespace and a local storage dir of the test's own."""
    return load_settings(environ={}, namespace=namespace, storage={"url": str(tmp_path / "storage")})


@pytest.fixture
def s3_settings(namespace: str) -> Settings:
    """Like `settings`, but storage on the local S3 server, under a prefix of the test's own."""
    return load_settings(environ={}, namespace=namespace, storage={"url": f"s3://strongroom/tests/{namespace}"})
