"""Checks every chat source's output must pass: the event model of producers/chat/events.py."""

from __future__ import annotations

from collections import Counter, defaultdict

from producers.capture import Capture
from schemas.records import sha256_hex
from tests.conftest import assert_fits_schema


def kinds(captures: list[Capture]) -> Counter[str]:
    """Count per event_type; a quarantined item counts as 'quarantined'."""
    return Counter("quarantined" if c.quarantined else c.record["event_type"] for c in captures)


def check_event_model(captures: list[Capture]) -> None:
    """Versions rise from 1 without repeats per message; times, raw hashes and blobs are consistent."""
    assert_fits_schema(captures)
    versions: dict[str, list[int]] = defaultdict(list)
    for capture in captures:
        record = capture.record
        assert record["raw_sha256"] == sha256_hex(capture.raw) and record["raw_size"] == len(capture.raw)
        for file in record["attachments"]:
            assert file["sha256"] is None or file["sha256"] in capture.blobs
        for digest, data in capture.blobs.items():
            assert sha256_hex(data) == digest
        if capture.quarantined:
            continue
        versions[record["message_uid"]].append(record["version"])
        if record["event_type"] == "created":
            assert record["version"] == 1 and record["event_at"] is None
        else:
            assert record["version"] >= 2 and record["event_at"] is not None
            assert record["event_at"] >= record["sent_at"] or "original-missing" in record["flags"]
    for uid, numbers in versions.items():
        assert len(numbers) == len(set(numbers)), f"{uid} repeats a version: {numbers}"
        later = sorted(n for n in numbers if n > 1)
        assert later == list(range(2, 2 + len(later))), f"{uid} versions do not rise by one: {numbers}"


def same_output(first: list[Capture], second: list[Capture]) -> bool:
    """Two reads of one input give the same identities, versions and raw bytes (so re-ingest adds nothing)."""
    key = lambda c: (c.record["message_uid"], c.record["version"], c.record["raw_sha256"])  # noqa: E731
    return [key(c) for c in first] == [key(c) for c in second]
