"""PstSource: the messages of an Outlook data file (.pst, .ost), read with Debian's readpst.

readpst (pst-utils, libpst) runs as a subprocess into a private temporary directory:

    readpst -e -D -j 0 -8 -q -t e -o OUTDIR FILE.pst

-e writes one RFC 822 file per message (`1.eml`, `2.eml`, ...) in a directory per PST folder,
-D keeps deleted items (an archive wants them), -j 0 runs in one process (a deterministic
order; the machine's cores are shared), -8 writes bodies as UTF-8 where the PST has them,
-t e takes email items only (notes, meeting requests, reports; contacts, appointments and
journal entries are not communications). Each file is parsed with parse_email.

- `source` is the PST's path, `source_position` "<folder path>:<n>" (the folder path as readpst
  names it, its top level being the PST's root folder), `workspace` that root folder's name:
  what Outlook calls the store, often the mailbox owner in exported mailboxes.
- A PST holds MAPI properties, not MIME: the raw original of each record is the RFC 822 text
  readpst made (flag `derived-raw:readpst`), so its sha256 depends on the readpst version.
  The PST itself is what was handed over: it is stored once as a blob (with the first message
  read from it) and every record names it in the header X-Strongroom-Container-Sha256.
- readpst failing (a corrupt or truncated PST, or an unsupported one) is not a traceback: the
  whole file becomes one quarantined item whose raw is the PST and whose parse_error is
  readpst's own message, after every message it did write. Files other than .eml that readpst
  writes are quarantined items too, so nothing it found is passed over silently.

The PST is read into memory once to hash and store it (the blob store takes bytes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from producers.capture import Capture
from producers.email.mime import parse_email
from producers.email.outlook import quarantined
from schemas.records import sha256_hex
from strongroom.errors import InputError

READPST_ARGS = ("-e", "-D", "-j", "0", "-8", "-q", "-t", "e")
CONTAINER_HEADER = "X-Strongroom-Container-Sha256"
_NUMBERED = re.compile(r"^(\d+)(\.[A-Za-z]+)?$")


def readpst_path() -> str:
    found = shutil.which("readpst")
    if found is None:
        raise InputError("Reading a PST needs readpst from Debian's pst-utils (apt-get install pst-utils); "
                         "it is not on PATH.")
    return found


class PstSource:
    """The messages of one PST, as Captures (see the module docstring), in folder order."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Capture]:
        return self.captures()

    def captures(self) -> Iterator[Capture]:
        readpst = readpst_path()
        try:
            container = self.path.read_bytes()
        except OSError as exc:
            raise InputError(f"{self.path} cannot be read: {exc.strerror or exc}.") from exc
        container_sha = sha256_hex(container)
        source = str(self.path)
        with tempfile.TemporaryDirectory(prefix="strongroom-pst-") as out:
            try:
                done = subprocess.run([readpst, *READPST_ARGS, "-o", out, os.path.abspath(self.path)],
                                      capture_output=True, check=False)
            except OSError as exc:
                raise InputError(f"{self.path}: readpst could not run: {exc.strerror or exc}.") from exc
            yield from captures_from_output(Path(out), source, container, container_sha)
            if done.returncode != 0:
                message = " ".join((done.stderr or done.stdout).decode("utf-8", "replace").split())
                yield quarantined(container, source, "pst",
                                  f"readpst failed (exit {done.returncode}): {message[:300] or 'no message'}")


def captures_from_output(root: Path, source: str, container: bytes, container_sha: str) -> Iterator[Capture]:
    """The Captures of the message files readpst wrote below `root`, each naming the PST;
    the first one also carries the PST's bytes as a blob."""
    first = True
    for folder, label, file in readpst_output(root):
        position = f"{folder}:{label}"
        raw = file.read_bytes()
        if file.suffix.lower() in ("", ".eml"):
            capture = parse_email(raw, source=source, position=position)
        else:
            capture = quarantined(raw, source, position,
                                  f"readpst wrote a {file.suffix} item here, not an email message")
        record = capture.record
        record["workspace"] = folder.split("/", 1)[0] or None
        record["headers"].append({"name": CONTAINER_HEADER, "value": container_sha})
        record["flags"].append("derived-raw:readpst")
        if first:  # the handed-over file, stored once, with the first record pointing at it
            capture.blobs[container_sha] = container
            first = False
        yield capture


def readpst_output(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(folder path, label, file) for every file readpst wrote below `root`: folders in name order,
    files in numeric order. The folder path uses "/" and is relative to `root`; the label is the
    file's number ("12" for 12.eml), or its whole name if it has none."""
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        relative = Path(folder).relative_to(root).as_posix()
        numbered = []
        for name in filenames:
            match = _NUMBERED.match(name)
            numbered.append((int(match.group(1)), match.group(1), name) if match else (-1, name, name))
        for _number, label, name in sorted(numbered):
            yield relative if relative != "." else "", label, Path(folder) / name
