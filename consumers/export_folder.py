"""The folder an export is written into: staged, every file hashed, published only when complete.

Files go into a hidden staging folder next to `--out` (`.NAME.incomplete-PID`), which is renamed
to `--out` at the end, so a failed export leaves nothing that looks finished. `--out` must not
exist or be empty: an export is exactly the files its manifest lists, so mixing it with earlier
files would break that, and emptying a folder on a `--force` flag is too easy to regret.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import InputError

SUMS_NAME = "SHA256SUMS"


@dataclass
class OutputFolder:
    """A staging folder that becomes `--out` at the end; remembers every file's sha256 and size."""

    final: Path
    root: Path = field(init=False)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise InputError(f"--out {self.final} exists and is not an empty folder; give a new folder "
                             f"(a production holds exactly the files its manifest lists)")
        self.root = self.final.parent / f".{self.final.name}.incomplete-{os.getpid()}"
        try:
            self.root.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create {self.root}: {exc.strerror or exc}") from exc

    def write(self, relative: str, data: bytes) -> dict[str, Any]:
        path = self.root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:  # a full disk or a read-only folder: the user's to fix, not a bug
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        entry = {"path": relative, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        self.files[relative] = entry
        # md5 only for the load file (review tools still ask for it); sha256 is what we vouch for.
        self.md5[relative] = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return entry

    def add_written(self, relative: str, sha256: str, size: int) -> None:
        self.files[relative] = {"path": relative, "sha256": sha256, "size": size}

    def write_sums(self) -> str:
        lines = "".join(f"{f['sha256']}  {f['path']}\n" for f in sorted(self.files.values(), key=lambda f: f["path"]))
        data = lines.encode("utf-8")
        (self.root / SUMS_NAME).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def publish(self) -> None:
        if self.final.exists():
            self.final.rmdir()  # empty, checked at the start
        os.replace(self.root, self.final)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
