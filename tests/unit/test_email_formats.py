"""Email input formats and sources: detection, mbox splitting, Maildir and .eml directories."""

from __future__ import annotations

import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from producers.email import EmailFormat, captures, detect_format, open_source
from producers.email.sources import EmlDirSource, EmlFileSource, MaildirSource, MboxSource, from_line_date
from strongroom.errors import InputError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
MBOX = FIXTURES / "sample.mbox"
MAILDIR = FIXTURES / "maildir"
EML_DIR = FIXTURES / "eml"

SIMPLE = b"From: a@example.com\nSubject: %d\n\nbody %d\n"


def _offset(position: str) -> int:
    return int(position.split("@")[1])


# --- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    (MBOX, EmailFormat.MBOX),
    (EML_DIR / "html-only.eml", EmailFormat.EML),
    (EML_DIR, EmailFormat.EMLDIR),
    (MAILDIR, EmailFormat.MAILDIR),
])
def test_detects_each_fixture_format(path: Path, expected: EmailFormat) -> None:
    """Each fixture path is recognised as the format it is."""
    assert detect_format(path) is expected


def test_detects_maildir_plus_plus_tree_without_root_cur(tmp_path: Path) -> None:
    """A directory whose only Maildir folders are Maildir++ subfolders is a Maildir."""
    (tmp_path / ".Sent" / "cur").mkdir(parents=True)
    (tmp_path / ".Sent" / "new").mkdir()
    assert detect_format(tmp_path) is EmailFormat.MAILDIR


def test_detects_message_file_without_eml_suffix(tmp_path: Path) -> None:
    """A file starting with a header field is one message whatever its name."""
    path = tmp_path / "message.txt"
    path.write_bytes(SIMPLE % (1, 1))
    assert detect_format(path) is EmailFormat.EML


def test_detects_mbox_behind_utf8_bom(tmp_path: Path) -> None:
    """A BOM before the first From_ line does not hide an mbox."""
    path = tmp_path / "bom.mbox"
    path.write_bytes(b"\xef\xbb\xbfFrom - Mon Jan  1 00:00:00 2024\n" + SIMPLE % (1, 1))
    assert detect_format(path) is EmailFormat.MBOX


def test_empty_file_is_mbox_unless_named_eml(tmp_path: Path) -> None:
    """An empty file is an empty mbox, but an empty .eml is still one (broken) message."""
    (tmp_path / "Inbox").write_bytes(b"")
    (tmp_path / "empty.eml").write_bytes(b"")
    assert detect_format(tmp_path / "Inbox") is EmailFormat.MBOX
    assert detect_format(tmp_path / "empty.eml") is EmailFormat.EML


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    """A path that does not exist is an InputError whose message names it."""
    missing = tmp_path / "nowhere.mbox"
    with pytest.raises(InputError, match="nowhere.mbox does not exist"):
        detect_format(missing)


def test_unrecognised_file_names_the_path(tmp_path: Path) -> None:
    """A file that is neither mbox nor message is an InputError naming it."""
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nbinary")
    with pytest.raises(InputError, match="picture.png is not an email file"):
        detect_format(path)


def test_directory_without_mail_names_the_path(tmp_path: Path) -> None:
    """A directory with neither Maildir folders nor .eml files is an InputError naming it."""
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match=f"{tmp_path.name} holds no Maildir"):
        detect_format(tmp_path)


def test_override_is_accepted_case_insensitively() -> None:
    """An explicit --format wins over sniffing and ignores case."""
    assert detect_format(EML_DIR / "html-only.eml", "MBOX") is EmailFormat.MBOX


def test_override_unknown_format_is_refused() -> None:
    """An unknown --format value is an InputError listing the valid ones."""
    with pytest.raises(InputError, match="Unknown email format 'mh'.*mbox, maildir, eml, emldir, msg, pst"):
        detect_format(MBOX, "mh")


def test_override_must_fit_file_or_directory() -> None:
    """A file format forced on a directory (and the reverse) is an InputError."""
    with pytest.raises(InputError, match="is a directory, but format eml needs a file"):
        detect_format(MAILDIR, "eml")
    with pytest.raises(InputError, match="is a file, but format maildir needs a directory"):
        detect_format(MBOX, "maildir")


# --- mbox ----------------------------------------------------------------------------------


def test_mbox_fixture_splits_into_four_slices_of_the_file() -> None:
    """Each mbox message is the exact file slice its position names, without its From_ line."""
    data = MBOX.read_bytes()
    messages = list(MboxSource(MBOX))
    assert [m.position.split("@")[0] for m in messages] == ["0", "1", "2", "3"]
    for message in messages:
        start = _offset(message.position)
        assert data[start:start + len(message.raw)] == message.raw
        assert not message.raw.startswith(b"From ")
        assert message.path == str(MBOX)
    assert messages[0].raw.startswith(b"Return-Path: <alice@example.com>\n")


def test_mbox_keeps_from_quoting_and_drops_separator_blank_line() -> None:
    """">From " stays as stored and the blank line before the next From_ line is not message content."""
    first = next(iter(MboxSource(MBOX))).raw
    assert b"\n>From the archive: nothing changed since January.\n" in first
    assert first.endswith(b"January.\n")


def test_mbox_from_line_dates_are_utc() -> None:
    """Each message carries the date of its From_ line as aware UTC."""
    dates = [m.from_line_date for m in MboxSource(MBOX)]
    assert dates[0] == datetime(2024, 3, 4, 9, 15, tzinfo=timezone.utc)
    assert dates[3] == datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)


def test_crlf_mbox_splits_and_keeps_crlf(tmp_path: Path) -> None:
    """A CRLF mbox splits on its From_ lines and drops only the separating CRLF blank line."""
    path = tmp_path / "crlf.mbox"
    path.write_bytes(b"From a Mon Jan  1 00:00:00 2024\r\nSubject: one\r\n\r\nbody one\r\n\r\n"
                     b"From b Mon Jan  1 00:01:00 2024\r\nSubject: two\r\n\r\nbody two\r\n")
    raws = [m.raw for m in MboxSource(path)]
    assert raws == [b"Subject: one\r\n\r\nbody one\r\n", b"Subject: two\r\n\r\nbody two\r\n"]


def test_final_message_without_trailing_newline(tmp_path: Path) -> None:
    """The last message may end without a newline and is yielded as stored."""
    path = tmp_path / "cut.mbox"
    path.write_bytes(b"From a Mon Jan  1 00:00:00 2024\nSubject: one\n\nno newline at the end")
    (message,) = MboxSource(path)
    assert message.raw == b"Subject: one\n\nno newline at the end"
    assert message.position == "0@32"


def test_blank_lines_before_first_from_line_are_not_a_message(tmp_path: Path) -> None:
    """Blank lines ahead of the first From_ line are neither a message nor an obstacle to detection."""
    path = tmp_path / "padded"
    path.write_bytes(b"\n\r\nFrom a Mon Jan  1 00:00:00 2024\nSubject: one\n\nx\n")
    assert detect_format(path) is EmailFormat.MBOX
    assert [m.raw for m in MboxSource(path)] == [b"Subject: one\n\nx\n"]


def test_empty_mbox_yields_nothing(tmp_path: Path) -> None:
    """An empty mbox file holds zero messages and is no error."""
    path = tmp_path / "empty.mbox"
    path.write_bytes(b"")
    assert list(MboxSource(path)) == []


def test_unquoted_body_from_line_stays_in_its_message(tmp_path: Path) -> None:
    """A body line "From Russia with love" is not a separator; a bare "From -" before headers is."""
    path = tmp_path / "unmunged.mbox"
    path.write_bytes(b"From -\nSubject: one\n\nMy favourite film:\n\nFrom Russia with love\nYear: 1963\n"
                     b"From -\nSubject: two\n\nbody\n")
    raws = [m.raw for m in MboxSource(path)]
    assert len(raws) == 2
    assert raws[0].endswith(b"\nFrom Russia with love\nYear: 1963\n")
    assert raws[1] == b"Subject: two\n\nbody\n"


def test_message_with_its_own_from_line_stays_whole(tmp_path: Path) -> None:
    """A From_ line right after a From_ line is the message's own envelope line, not an empty message."""
    path = tmp_path / "doubled.mbox"
    path.write_bytes(b"From a Mon Jan  1 00:00:00 2024\nFrom b Mon Jan  1 00:00:00 2024\nSubject: one\n\nx\n")
    (message,) = MboxSource(path)
    assert message.raw == b"From b Mon Jan  1 00:00:00 2024\nSubject: one\n\nx\n"


def test_forced_mbox_keeps_text_before_first_from_line(tmp_path: Path) -> None:
    """Bytes before the first From_ line of a forced mbox become message 0, so nothing is dropped."""
    path = tmp_path / "odd.mbox"
    path.write_bytes(b"Subject: stray\n\nstray\n\nFrom a Mon Jan  1 00:00:00 2024\nSubject: real\n\nx\n")
    messages = list(open_source(path, "mbox"))
    assert [m.raw for m in messages] == [b"Subject: stray\n\nstray\n", b"Subject: real\n\nx\n"]
    assert messages[0].from_line_date is None


def test_mbox_is_streamed_not_loaded(tmp_path: Path) -> None:
    """Iterating a 16 MB mbox never holds more than a few messages' worth of Python memory."""
    path = tmp_path / "big.mbox"
    body = b"x" * 8000 + b"\n"
    with path.open("wb") as fh:
        for i in range(2000):
            fh.write(b"From a Mon Jan  1 00:00:00 2024\n" + SIMPLE % (i, i) + body + b"\n")
    tracemalloc.start()
    try:
        count = sum(1 for _ in MboxSource(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < 1_000_000


@pytest.mark.parametrize(("line", "expected"), [
    (b"From alice@example.com Mon Mar  4 09:15:00 2024", datetime(2024, 3, 4, 9, 15, tzinfo=timezone.utc)),
    (b"From 1844@xxx Tue Jun 08 12:34:56 +0200 2021", datetime(2021, 6, 8, 10, 34, 56, tzinfo=timezone.utc)),
    (b"From - ", None),
    (b"From x Mon Feb 30 10:00:00 2024", None),
    (b"From x Mon Jan  1 00:00:00 +0100 0001", None),
])
def test_from_line_date(line: bytes, expected: datetime | None) -> None:
    """From_ line dates parse in ctime form with an optional zone; absent or impossible dates are None."""
    assert from_line_date(line) == expected


# --- Maildir and .eml ----------------------------------------------------------------------


def test_maildir_reads_cur_new_and_subfolders_in_order() -> None:
    """A Maildir yields cur/ then new/ then each folder, skipping tmp/ and dotfiles."""
    positions = [m.position for m in MaildirSource(MAILDIR)]
    assert positions == [
        "cur/1700000000.M1P100.strongroom;2,S",
        "new/1700000100.M2P100.strongroom",
        ".Archive/cur/1690000000.M3P100.strongroom;2,RS",
    ]


def test_maildir_raw_is_the_file_bytes() -> None:
    """A Maildir message is its file's bytes, with the Maildir root as its path."""
    first = next(iter(MaildirSource(MAILDIR)))
    assert first.raw == (MAILDIR / first.position).read_bytes()
    assert first.path == str(MAILDIR)
    assert first.from_line_date is None


def test_eml_directory_is_recursive_sorted_and_eml_only() -> None:
    """An .eml directory yields a folder's *.eml files in name order, then its subfolders, and nothing else."""
    positions = [m.position for m in EmlDirSource(EML_DIR)]
    assert positions == ["html-only.eml", "unknown-charset.eml", "nested/forwarded.eml"]


def test_single_eml_position_is_its_name() -> None:
    """A single .eml file is one message positioned by its file name."""
    (message,) = EmlFileSource(EML_DIR / "unknown-charset.eml")
    assert message.position == "unknown-charset.eml"
    assert message.raw.startswith(b"Message-ID: <junk-5@example.com>")


def test_captures_account_for_every_mbox_item() -> None:
    """Every mbox message becomes a Capture; the binary one is quarantined, not dropped."""
    statuses = [(c.position.split("@")[0], c.record["parse_status"]) for c in captures(MBOX)]
    assert statuses == [("0", "ok"), ("1", "ok"), ("2", "ok"), ("3", "quarantined")]


def test_forced_emldir_reads_every_file_whatever_its_name(tmp_path) -> None:
    """With --format emldir a folder of .raw or extensionless messages is read whole, not silently skipped."""
    from producers.email.sources import open_source

    (tmp_path / "a.raw").write_bytes(b"From: a@example.com\n\none\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"From: b@example.com\n\ntwo\n")
    (tmp_path / ".hidden").write_bytes(b"From: c@example.com\n\nthree\n")
    assert [m.position for m in open_source(tmp_path, "emldir")] == ["a.raw", "sub/b"]
