"""Snapshot versions: the same event always gets the same version, different events never share one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from producers.chat.snapshot import REACTION_BASE, TIMELESS_DELETE, TIMELESS_EDIT, Reaction, Snapshot
from schemas.records import participant

SENT = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def _snapshot(**state) -> Snapshot:
    fields = dict(message_uid="ch-x", platform="slack", source="s", sent_at=SENT, sender=participant("U1", "Ann"),
                  flags=[])
    return Snapshot(fields=fields, raw=b"{}", position="p", text="now", **state)


def _versions(snapshot: Snapshot) -> dict[str, int]:
    return {c.position: c.record["version"] for c in snapshot.captures()}


def test_a_later_export_with_one_more_edit_adds_exactly_that_edit() -> None:
    """Export 1 saw an edit at +60 s, export 2 the edit at +300 s: versions differ, so the second edit is not a duplicate."""
    first = _versions(_snapshot(edited=True, edited_at=SENT + timedelta(seconds=60)))
    second = _versions(_snapshot(edited=True, edited_at=SENT + timedelta(seconds=300)))
    assert first == {"p": 1, "p/edited": 62} and second == {"p": 1, "p/edited": 302}


def test_reactions_never_collide_with_text_versions_and_are_stable() -> None:
    """Reactions live above every text version; adding one reaction leaves the others' versions alone."""
    ann, bo = participant("U1", "Ann"), participant("U2", "Bo")
    one = _versions(_snapshot(reactions=[Reaction("eyes", ann)]))
    two = _versions(_snapshot(reactions=[Reaction("eyes", ann), Reaction("+1", bo)]))
    assert one["p/reaction/eyes/U1"] == two["p/reaction/eyes/U1"] >= REACTION_BASE
    assert REACTION_BASE <= two["p/reaction/+1/U2"] < 2**31
    assert len(set(two.values())) == 3


def test_same_second_edit_and_delete_and_untimed_events() -> None:
    """An edit and a deletion in the same second get consecutive versions; events without time sort after timed ones."""
    at = SENT + timedelta(seconds=10)
    assert _versions(_snapshot(edited=True, edited_at=at, deleted=True, deleted_at=at)) == {
        "p": 1, "p/edited": 12, "p/deleted": 13}
    assert _versions(_snapshot(edited=True, deleted=True)) == {"p": 1, "p/edited": TIMELESS_EDIT, "p/deleted": TIMELESS_DELETE}


def test_deleted_keeps_last_text_and_unknown_original_is_flagged() -> None:
    """The deleted record carries the last text; the created record of an edited message has none and says so."""
    records = [c.record for c in _snapshot(edited=True, edited_at=SENT, deleted=True, deleted_at=SENT).captures()]
    assert [(r["event_type"], r["body_text"], r["flags"]) for r in records] == [
        ("created", None, ["original-text-unavailable"]), ("edited", "now", []), ("deleted", "now", [])]


def test_reaction_to_a_message_of_unknown_author_has_no_empty_recipient() -> None:
    """When the author is unknown (a deletion-only item), a reaction names no blank 'to' recipient."""
    snapshot = _snapshot(reactions=[Reaction("eyes", participant("U2", "Bo"))])
    snapshot.fields["sender"] = participant()
    reaction = [c.record for c in snapshot.captures() if c.record["event_type"] == "reaction"][0]
    assert reaction["recipients"] == [] and reaction["sender"]["user_id"] == "U2"
