"""Pure logic of resuming: where each slice starts again (no nodes)."""

from __future__ import annotations

from remote_reindex.engines.client.docs import COUNTERS, SliceCursor
from remote_reindex.engines.client.resume import INDEX_PART, plan_resume, slice_part
from remote_reindex.state.store import Cursor

SIG = {"i": {"uuid": "u", "shards": {"0": [["_0", 1, 10, 0]]}}}


def row(slice_id: int, *, docs: int, submitted: int, status: str = "running", mode: str = "pit", pit: str | None = "P1",
        after: list | None = None, slice_max: int = 2, created: int | None = None) -> tuple[str, Cursor]:
    counts = dict.fromkeys(COUNTERS, 0)
    counts["created"] = docs if created is None else created
    pos = {"mode": mode, "slice_max": slice_max, "pit_id": pit, "search_after": after, "submitted": submitted, "counts": counts}
    return slice_part(slice_id), Cursor("i", slice_part(slice_id), pos, docs, status, None)


def index_row(signature=SIG) -> tuple[str, Cursor]:
    return INDEX_PART, Cursor("i", INDEX_PART, {"signature": signature}, 0, "running", None)


def never(*_):
    raise AssertionError("must not be asked")


def test_no_state_starts_every_slice_fresh() -> None:
    p = plan_resume("i", {}, mode="pit", slices=3, pit_is_alive=never, current_signature=never)
    assert p.how == "fresh" and not p.resumed
    assert [(c.slice_id, c.slice_max, c.docs_done, c.search_after, c.replay_left) for c in p.cursors] == [(0, 3, 0, None, 0), (1, 3, 0, None, 0), (2, 3, 0, None, 0)]


def test_alive_pit_resumes_exactly_with_the_replay_window() -> None:
    saved = dict([index_row(), row(0, docs=100, submitted=150, after=[99]), row(1, docs=80, submitted=80, status="done", after=[7])])
    p = plan_resume("i", saved, mode="pit", slices=5, pit_is_alive=lambda pid: pid == "P1", current_signature=never)
    assert (p.how, p.pit_id, p.prior_docs, p.prior["created"]) == ("exact", "P1", 180, 180)
    c0, c1 = p.cursors
    assert (c0.search_after, c0.docs_done, c0.replay_left, c0.context_id, c0.slice_max, c0.finished) == ([99], 100, 50, "P1", 2, False)
    assert c1.finished and c1.docs_done == 80  # done slices are not read again


def test_expired_pit_same_segments_continues_on_a_new_pit() -> None:
    saved = dict([index_row(), row(0, docs=100, submitted=100, after=[99]), row(1, docs=0, submitted=0)])
    p = plan_resume("i", saved, mode="pit", slices=2, pit_is_alive=lambda pid: False, current_signature=lambda: SIG)
    assert (p.how, p.pit_id, p.prior_docs) == ("exact-new-pit", None, 100)
    assert p.cursors[0].search_after == [99] and p.cursors[0].replay_left == 0


def test_expired_pit_changed_segments_replays_from_the_slice_start() -> None:
    saved = dict([index_row(), row(0, docs=100, submitted=125, after=[99]), row(1, docs=40, submitted=40, status="done")])
    p = plan_resume("i", saved, mode="pit", slices=2, pit_is_alive=lambda pid: False, current_signature=lambda: {"other": 1})
    assert p.how == "replay" and p.replayed_slices == 1
    c0, c1 = p.cursors
    # everything this slice ever sent may be on the destination: all of it is the replay window
    assert (c0.search_after, c0.docs_done, c0.replay_left, c0.counts["created"]) == (None, 0, 125, 0)
    assert c1.finished and p.prior_docs == 40  # the replayed slice's old counts are dropped, the done one kept


def test_no_signature_recorded_means_replay() -> None:
    saved = dict([index_row(signature=None), row(0, docs=10, submitted=10, after=[1])])
    p = plan_resume("i", saved, mode="pit", slices=1, pit_is_alive=lambda pid: False, current_signature=lambda: SIG)
    assert p.how == "replay" and p.cursors[0].search_after is None


def test_scroll_slices_replay_and_keep_the_saved_slice_count() -> None:
    saved = dict([row(0, docs=10, submitted=20, mode="scroll", pit=None, slice_max=3), row(2, docs=5, submitted=5, mode="scroll", pit=None, slice_max=3, status="done")])
    p = plan_resume("i", saved, mode="pit", slices=8, pit_is_alive=never, current_signature=never)
    assert [c.mode for c in p.cursors] == ["scroll"] * 3  # the saved mode and slice count win over new options
    assert [(c.replay_left, c.finished) for c in p.cursors] == [(20, False), (0, False), (0, True)]
    assert p.prior_docs == 5


def test_cursor_position_has_no_secret_and_round_trips() -> None:
    c = SliceCursor("i", 1, 2, "pit", context_id="P", search_after=[5], docs_done=3, submitted=4)
    pos = c.to_position()
    assert pos == {"mode": "pit", "slice_max": 2, "pit_id": "P", "search_after": [5], "submitted": 4, "counts": dict.fromkeys(COUNTERS, 0)}


def test_slices_with_rejected_documents_are_read_again_and_not_counted_as_copied() -> None:
    """A slice whose documents were dead-lettered moved its cursor past them: a re-run reads
    it again from its start (done or not) and drops its old counts; the file is named."""
    name0, r0 = row(0, docs=100, submitted=100, status="done", after=[99], created=60)
    r0.position["counts"]["failed"] = 40
    r0.position["dead_letter"] = "dl.ndjson"
    name1, r1 = row(1, docs=50, submitted=50, status="done", after=[49])
    saved = {**dict([index_row()]), name0: r0, name1: r1}
    p = plan_resume("i", saved, mode="pit", slices=2, pit_is_alive=lambda pid: pid == "P1", current_signature=never)
    assert (p.how, p.rejected_slices, p.rejected_docs, p.dead_letters) == ("exact", 1, 40, ["dl.ndjson"])
    c0, c1 = p.cursors
    assert (c0.finished, c0.search_after, c0.docs_done, c0.replay_left, c0.counts["failed"]) == (False, None, 0, 100, 0)
    assert c1.finished and (p.prior_docs, p.prior["failed"], p.prior["created"]) == (50, 0, 50)


def test_dead_letter_path_is_kept_in_the_saved_position() -> None:
    c = SliceCursor("i", 0, 1, "pit")
    assert "dead_letter" not in c.to_position()
    c.dead_letter = "/tmp/dl.ndjson"
    assert c.to_position()["dead_letter"] == "/tmp/dl.ndjson"
