"""Export's pure parts: mboxrd escaping round trips, and the selection's one-line errors."""

from __future__ import annotations

import io
import mailbox
import sys

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from consumers import mboxrd
from consumers.export import select
from strongroom.config import load_settings
from strongroom.errors import InputError

LINES = st.lists(st.sampled_from([b"From ", b">From ", b">>From x", b"From", b"\r\n", b"\n", b"text \t", b"\xff\x00",
                                  b" From ", b">", b"\r"]), max_size=30).map(b"".join)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=5))
def test_mboxrd_gives_back_every_original_exactly(originals):
    """Whatever the bytes (From lines, quoting, CR, no final newline), each original is recovered byte for byte."""
    buffer = io.BytesIO()
    writer = mboxrd.MboxWriter(buffer)
    entries = [writer.add(raw, "a@b.example", None) for raw in originals]
    data = buffer.getvalue()
    assert writer.position == len(data)
    assert [mboxrd.recover(data, e.offset, e.length, e.appended_newline) for e in entries] == originals


def test_mboxrd_file_reads_as_one_message_each(tmp_path):
    """Python's mailbox module splits the file into exactly the messages written, body From lines escaped."""
    path = tmp_path / "x.mbox"
    with open(path, "wb") as handle:
        writer = mboxrd.MboxWriter(handle)
        for i in range(3):
            writer.add(b"Subject: %d\r\n\r\nFrom the start\n>From quoted\nno newline" % i, None, None)
    box = mailbox.mbox(str(path))
    assert [m["Subject"] for m in box] == ["0", "1", "2"]
    assert box[0].get_from().startswith("MAILER-DAEMON ")


def test_selection_needs_exactly_one_way(tmp_path):
    """No selection or two selections are refused; the shorthand becomes SQL over communications."""
    settings = load_settings(environ={}, storage={"url": str(tmp_path)})
    with pytest.raises(InputError, match="exactly one of"):
        select(settings)
    with pytest.raises(InputError, match=r"got --query, --where"):
        select(settings, query="SELECT 1", where="true")
    assert select(settings, where="kind = 'chat';").sql == "SELECT message_uid FROM communications WHERE kind = 'chat'"
    assert select(settings, message_uids=["a'b"]).sql == "SELECT unnest(['a''b']) AS message_uid"


def test_case_without_legal_holds_is_a_clear_error(tmp_path, monkeypatch):
    """Where consumers.holds is absent, --case says legal holds are not available (exit 2), not an ImportError."""
    monkeypatch.setitem(sys.modules, "consumers.holds", None)
    settings = load_settings(environ={}, storage={"url": str(tmp_path)})
    with pytest.raises(InputError, match="legal holds are not available"):
        select(settings, case="acme")
