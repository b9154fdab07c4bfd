"""PstSource: the messages of an Outlook data file (.pst, .ost), read with Debian's readpst,
their number checked against libpff.

readpst (pst-utils, libpst) runs as a subprocess into a private temporary directory:

    readpst -e -b -D -j 0 -8 -o OUTDIR FILE.pst

-e writes one RFC 822 file per message (`1.eml`, `2.eml`, ...; calendar items `.ics`, contacts
`.vcf`) in a directory per PST folder, -b leaves out the RTF rendition of bodies (readpst would
add it as an `rtf-body.rtf` attachment, which no MIME copy of the message has), -D keeps deleted
items (an archive wants them), -j 0 runs in one process (a deterministic order; the machine's
cores are shared), -8 writes bodies as UTF-8 where the PST has them. Each .eml is parsed with
parse_email; every other file is a quarantined item ("not an email message"), kept.

- `source` is the PST's path, `source_position` "<folder path>:<n>" (the folder path as readpst
  names it, its top level being the PST's root folder; readpst numbers subfolders too, so
  numbers have gaps), `workspace` that root folder's name: the store's display name, often the
  mailbox owner in exported mailboxes.
- A PST holds MAPI properties, not MIME: the raw original of each record is the RFC 822 text
  readpst made (flag `derived-raw:readpst`), so its sha256 depends on the readpst version.
  The PST itself is what was handed over: it is stored once as a blob (with the first item read
  from it) and every record names it in the header X-Strongroom-Container-Sha256.
- Loss is never silent. readpst exits 0 when it cannot read some items, or a whole damaged
  folder, and says nothing; so after it ran, (1) its folder summaries are read for skipped items,
  and (2) libpff (libpff-python) counts the PST's items independently. readpst failing, skipping
  items, writing fewer items than libpff counts, libpff failing to read the PST (a damaged one),
  or a PST yielding nothing at all: each ends the PST's items with one quarantined item whose raw
  is the PST and whose parse_error says what happened.

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

READPST_ARGS = ("-e", "-b", "-D", "-j", "0", "-8")
CONTAINER_HEADER = "X-Strongroom-Container-Sha256"
_NUMBERED = re.compile(r"^(\d+)(\.[A-Za-z]+)?$")
# readpst's summary of each folder (its direct children): how many it wrote and how many it could not read.
_FOLDER_SUMMARY = re.compile(rb'^\s*"(.*)" - (\d+) items done, (\d+) items skipped\.\s*$', re.MULTILINE)
_PROGRESS = (b"Opening PST file", b"Processing Folder")
_ITEM_KINDS = {".ics": "a calendar or journal item", ".vcf": "a contact", ".msg": "an Outlook .msg copy"}


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
            written = 0
            for capture in captures_from_output(Path(out), source, container, container_sha):
                written += 1
                yield capture
        problems = [readpst_problem(done.returncode, done.stdout, done.stderr),
                    count_problem(written, *libpff_count(self.path))]
        found = [problem for problem in problems if problem]
        if found or not written:
            reason = "; ".join(found) or "readpst found no items in this PST"
            yield quarantined(container, source, "pst", f"{reason}; the PST is kept as this item's raw")


def libpff_count(path: Path) -> tuple[int | None, str | None]:
    """How many items libpff finds in all folders of the PST, or None and why it could not count."""
    try:
        import pypff
    except ImportError:
        return None, "libpff-python is not installed"
    pff = pypff.file()
    try:
        pff.open(str(path))
        total, stack = 0, [pff.get_root_folder()]
        while stack:  # not recursion: folder depth is the file's to choose
            folder = stack.pop()
            total += folder.number_of_sub_messages
            stack.extend(folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders))
        return total, None
    except Exception as exc:  # noqa: BLE001 - libpff reports damage as OSError, and other errors exist
        return None, " ".join(str(exc).split())[:200] or type(exc).__name__
    finally:
        try:
            pff.close()
        except Exception:  # noqa: BLE001, S110 - closing a file that never opened
            pass


def count_problem(written: int, counted: int | None, why: str | None) -> str | None:
    """Whether readpst's `written` items fall short of libpff's count. readpst may write more
    (it also recovers deleted items); fewer means items were lost."""
    if counted is None:
        return f"the number of items could not be checked: libpff could not read the PST ({why})"
    if written < counted:
        return f"readpst wrote {written} items, libpff counts {counted} in the PST"
    return None


def readpst_problem(returncode: int, stdout: bytes, stderr: bytes) -> str | None:
    """What readpst could not read, from its exit status and folder summaries; None if nothing."""
    if returncode != 0:
        # readpst prints its errors to stdout, between progress lines.
        lines = [line.strip() for line in (stderr + b"\n" + stdout).splitlines()
                 if line.strip() and not line.strip().startswith(_PROGRESS) and not _FOLDER_SUMMARY.match(line)]
        message = " ".join(b" ".join(lines).decode("utf-8", "replace").split()) or "no message"
        return f"readpst failed (exit {returncode}): {message[:300]}"
    skipped = [(name.decode("utf-8", "replace"), int(count))
               for name, _done, count in _FOLDER_SUMMARY.findall(stdout) if int(count)]
    if not skipped:
        return None
    where = ", ".join(f"{name}: {count}" for name, count in skipped[:10])
    return f"readpst skipped {sum(c for _n, c in skipped)} items it could not read ({where})"


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
            kind = _ITEM_KINDS.get(file.suffix.lower(), f"a {file.suffix} item")
            capture = quarantined(raw, source, position, f"not an email message: readpst wrote {kind} here")
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
