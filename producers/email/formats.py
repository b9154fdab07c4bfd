"""Which kind of email input a path is: one .eml or Outlook .msg file, an Outlook PST, a directory of
.eml/.msg files, a Maildir, or an mbox.

Detection looks at the path and at most the first few KiB of one file, never at a whole mailbox:

- a regular file starting with the OLE compound file magic (D0 CF 11 E0 A1 B1 1A E1), or named
  ``*.msg``, is an Outlook message (msg); one starting with ``!BDN``, or named ``*.pst``/``*.ost``,
  is an Outlook data file (pst). The name counts so that an empty or truncated file handed over
  as one is still accounted for as one quarantined item;
- a regular file whose first line (after an optional UTF-8 BOM) starts with ``From `` is an mbox;
- a regular file whose first line is a header field (``Name: value``) is a single message (eml);
- an empty file is an mbox with zero messages, unless it is named ``*.eml`` (then it is a message,
  so the empty input is still accounted for as one quarantined item);
- a directory with ``cur/`` or ``new/`` is a Maildir; so is a tree holding such folders
  (Maildir++ ``.Folder`` subdirectories, or one Maildir per subdirectory);
- any other directory holding ``*.eml`` or ``*.msg`` files somewhere below it is an eml directory
  (both kinds are read from it; a file's content decides how it is parsed).

An explicit format (``--format``) skips the sniffing but still checks that the path is a file or a
directory as that format needs. Every failure is an InputError naming the path.
"""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path

from strongroom.errors import InputError

_SNIFF_BYTES = 4096
_BOM = b"\xef\xbb\xbf"
# RFC 5322 field name: printable ASCII except the colon; blanks before the colon are obsolete
# syntax that real mail still has.
HEADER_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_MAILDIR_SUBDIRS = ("cur", "new")


class EmailFormat(str, Enum):
    """The input formats the email producer reads; values are what ``--format`` accepts."""

    MBOX = "mbox"
    MAILDIR = "maildir"
    EML = "eml"
    EMLDIR = "emldir"
    MSG = "msg"
    PST = "pst"


_FILE_FORMATS = (EmailFormat.MBOX, EmailFormat.EML, EmailFormat.MSG, EmailFormat.PST)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PST_MAGIC = b"!BDN"
MESSAGE_SUFFIXES = (".eml", ".msg")


def detect_format(path: str | os.PathLike[str], override: str | None = None) -> EmailFormat:
    """The format of `path`, or `override` once it is known to fit the path; InputError otherwise."""
    target = Path(path)
    if not target.exists():
        raise InputError(f"{target} does not exist.")
    if not (target.is_file() or target.is_dir()):
        raise InputError(f"{target} is neither a regular file nor a directory, so it cannot be read as email.")
    if override is not None:
        return _checked_override(target, override)
    if target.is_file():
        return _sniff_file(target)
    return _sniff_directory(target)


def _checked_override(target: Path, override: str) -> EmailFormat:
    try:
        chosen = EmailFormat(override.strip().lower())
    except ValueError:
        names = ", ".join(f.value for f in EmailFormat)
        raise InputError(f"Unknown email format {override!r} for {target}; use one of {names}.") from None
    if chosen in _FILE_FORMATS and not target.is_file():
        raise InputError(f"{target} is a directory, but format {chosen.value} needs a file.")
    if chosen not in _FILE_FORMATS and not target.is_dir():
        raise InputError(f"{target} is a file, but format {chosen.value} needs a directory.")
    return chosen


def _sniff_file(target: Path) -> EmailFormat:
    try:
        with target.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{target} cannot be read: {exc.strerror or exc}.") from exc
    suffix = target.suffix.lower()
    if head.startswith(OLE_MAGIC) or (suffix == ".msg" and not head.startswith(PST_MAGIC)):
        return EmailFormat.MSG
    if head.startswith(PST_MAGIC) or suffix in (".pst", ".ost"):
        return EmailFormat.PST
    is_eml_name = suffix == ".eml"
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    if head.lstrip(b"\r\n").startswith(b"From "):
        return EmailFormat.MBOX
    if not head:
        return EmailFormat.EML if is_eml_name else EmailFormat.MBOX
    # Leading blanks before the first header are a known mailer bug that mime.py repairs.
    if is_eml_name or HEADER_FIELD.match(head.lstrip(b" \t")):
        return EmailFormat.EML
    raise InputError(
        f"{target} is not an email file: it starts with neither a header line nor an mbox 'From ' line."
    )


def _has_maildir_subdirs(dirnames: list[str]) -> bool:
    return any(name in dirnames for name in _MAILDIR_SUBDIRS)


def _sniff_directory(target: Path) -> EmailFormat:
    # Top-down, so a Maildir at the root wins over stray .eml files deeper down; the walk stops at
    # the first decisive directory, so a large tree costs one listing in the common case.
    for _dirpath, dirnames, filenames in os.walk(target):
        dirnames.sort()  # the same tree always gives the same answer
        if _has_maildir_subdirs(dirnames):
            return EmailFormat.MAILDIR
        if any(name.lower().endswith(MESSAGE_SUFFIXES) and not name.startswith(".") for name in filenames):
            return EmailFormat.EMLDIR
    raise InputError(f"{target} holds no Maildir (cur/, new/) and no .eml or .msg files.")
