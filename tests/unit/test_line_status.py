"""The effective status of a budget line: the most restrictive on its path (domain, no DB)."""

from __future__ import annotations

from yinfin_flow.domain.budget import LineStatus, stopping_line

PATH = [1, 5, 9]  # root, parent, the line


def test_open_all_the_way_stops_nothing():
    assert stopping_line(PATH, {1: "open", 5: "open", 9: "open"}) is None


def test_the_nearest_held_line_is_named_and_closed_beats_hold():
    assert stopping_line(PATH, {1: "hold", 5: "hold", 9: "open"}) == (5, LineStatus.HOLD)
    assert stopping_line(PATH, {1: "closed", 5: "hold", 9: "hold"}) == (1, LineStatus.CLOSED)
    assert stopping_line(PATH, {1: "open", 5: "open", 9: "hold"}) == (9, LineStatus.HOLD)


def test_a_journal_is_stopped_by_closed_only():
    assert stopping_line(PATH, {1: "hold", 5: "hold", 9: "open"}, consuming=False) is None
    assert stopping_line(PATH, {1: "closed", 5: "hold", 9: "open"}, consuming=False) == (1, LineStatus.CLOSED)
