"""ResumeTracker on its own: what a hello resumes from, and gaps filled in order."""

from __future__ import annotations

from game_chat.client.resume import FILL_PAGE, ResumeTracker
from game_chat.protocol.messages import (
    Ack,
    ChatMessage,
    FetchHistory,
    HistoryPage,
    PrivateMessage,
    RoomJoined,
    message_dict,
)


def chat(id_: int, room: str = "#lobby", history: bool = False) -> ChatMessage:
    return ChatMessage(id_, "bob", f"line {id_}", 1.0, room, history=history)


def page(room: str, ids: list[int], more: bool, after: int | None) -> HistoryPage:
    lines = tuple(message_dict(chat(i, room, history=True)) for i in ids)
    return HistoryPage(room, lines, more, after)


def test_a_live_id_of_any_room_moves_every_room_on() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#lobby", "", ()))
    tracker.joined(RoomJoined("#team", "", ()))
    assert tracker.points() == {"#lobby": None, "#team": None}  # nothing yet: a plain replay
    assert tracker.chat(chat(5, "#lobby", history=True)) == [chat(5, "#lobby", history=True)]
    assert tracker.points() == {"#lobby": 5, "#team": None}
    tracker.chat(chat(9, "#team"))
    tracker.other(PrivateMessage(12, "bob", "me", "psst", 1.0))
    tracker.other(Ack("c1", 11, 1.0))  # an old id (a retry's ack) moves nothing back
    assert tracker.points() == {"#lobby": 12, "#team": 12}
    tracker.left("#TEAM")
    assert tracker.points() == {"#lobby": 12}


def test_a_gap_is_filled_page_by_page_before_the_rooms_newer_lines() -> None:
    tracker = ResumeTracker()
    requests = tracker.joined(RoomJoined("#lobby", "", (), {"after": 10, "before": 20}))
    assert requests == [FetchHistory("#lobby", before=20, limit=FILL_PAGE, after=10)]
    assert tracker.chat(chat(20, history=True)) == []  # the replay waits for the gap
    assert tracker.chat(chat(25)) == []  # and so does live
    assert tracker.chat(chat(3, "#team")) == [chat(3, "#team")]  # other rooms go on
    lines, more = tracker.page(page("#lobby", [11, 12, 13], more=True, after=10))  # type: ignore[misc]
    assert [m.id for m in lines] == [11, 12, 13]
    assert more == [FetchHistory("#lobby", before=20, limit=FILL_PAGE, after=13)]
    assert tracker.points() == {"#lobby": 13}  # a drop now resumes after 13
    lines, more = tracker.page(page("#lobby", list(range(14, 20)), more=False, after=13))  # type: ignore[misc]
    assert [m.id for m in lines] == [14, 15, 16, 17, 18, 19, 20, 25]
    assert all(m.history for m in lines[:-1]) and not lines[-1].history
    assert more == []
    assert tracker.points() == {"#lobby": 25}


def test_pages_the_owner_asked_for_are_not_ours() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#lobby", "", ()))
    assert tracker.page(page("#lobby", [1, 2], more=True, after=None)) is None


def test_a_refused_fill_hands_over_what_was_held() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#lobby", "", (), {"after": 1, "before": 50}))
    tracker.chat(chat(50, history=True))
    assert [m.id for m in tracker.give_up()] == [50]
    assert tracker.chat(chat(51)) == [chat(51)]


def test_a_lost_connection_drops_held_lines_and_keeps_the_resume_point() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#lobby", "", (), {"after": 7, "before": 30}))
    tracker.chat(chat(30, history=True))
    tracker.connection_lost()
    assert tracker.points() == {"#lobby": 7}
    assert tracker.page(page("#lobby", [8], more=False, after=7)) == ([], [])  # stale answer


def test_a_page_for_another_request_does_not_close_the_gap() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#lobby", "", (), {"after": 7, "before": 30}))
    assert tracker.page(page("#lobby", [3, 4], more=False, after=2)) == ([], [])
    lines, _ = tracker.page(page("#lobby", list(range(8, 30)), more=False, after=7))  # type: ignore[misc]
    assert [m.id for m in lines] == list(range(8, 30))


def test_another_store_forgets_ids_but_not_rooms() -> None:
    tracker = ResumeTracker()
    tracker.joined(RoomJoined("#team", "", ()))
    tracker.chat(chat(40, "#team"))
    tracker.forget_ids()
    assert tracker.points() == {"#team": None}


def test_a_nonsense_gap_is_ignored() -> None:
    tracker = ResumeTracker()
    for gap in ({"after": "x", "before": 3}, {"after": 5, "before": 6}, {"after": 9}):
        assert tracker.joined(RoomJoined("#lobby", "", (), gap)) == []  # type: ignore[arg-type]
    assert tracker.chat(chat(1)) == [chat(1)]
