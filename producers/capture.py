"""What every source yields: one input item, parsed or quarantined, with the bytes to keep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Capture:
    """One input item.

    `record` holds every Communication field except `ingested_at` (stamped at produce time);
    `raw_sha256`/`raw_size` describe `raw`. `blobs` maps sha256 -> bytes for every attachment
    the record points at. `nested` holds the Captures of messages carried inside this one
    (forwarded or bounced mail: records of their own, `parent_uid` pointing here), which a
    source yields right after it. A source never raises for bad input: it yields a Capture with
    `record["parse_status"] == "quarantined"` and the error, so nothing is dropped.
    """

    path: str
    position: str
    raw: bytes
    record: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)
    nested: list[Capture] = field(default_factory=list)

    @property
    def quarantined(self) -> bool:
        return self.record.get("parse_status") == "quarantined"
