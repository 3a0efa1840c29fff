"""Issue 4 on the client: tabs per room and private conversation, typed commands, history.

The first parts feed a Conversation synthetic events (no sockets) and drive a ChatScreen with
a fake client and posted pygame events (headless); the last part runs the real client against
the real server over loopback.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pygame
import pytest
from conftest import start_server
from wire import rich_client

from game_chat.client.conversation import Conversation, Status
from game_chat.client.events import (
    ChatFailed,
    ChatSent,
    Connected,
    Connecting,
    Disconnected,
    Reconnecting,
)
from game_chat.client.model import Delivery, LineKind, LogLine
from game_chat.client.net import ChatClient
from game_chat.client.rooms import Member, Tab, TabKind
from game_chat.client.screens.chat import ChatScreen
from game_chat.client.submit import submit_line
from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.client.ui.fonts import load_font
from game_chat.client.ui.tabs import TabBar, TabItem
from game_chat.client.ui.theme import Theme
from game_chat.protocol.errors import LocalProtocolError
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import (
    AwayChanged,
    ChatMessage,
    ClientMessage,
    ErrorReply,
    FetchHistory,
    Goodbye,
    Help,
    HistoryPage,
    JoinRoom,
    LineSettled,
    NickChanged,
    Notice,
    PartRoom,
    Ping,
    PrivateMessage,
    RoomJoined,
    RoomOpChanged,
    SendChat,
    SendPrivate,
    SetAway,
    SetTopic,
    TopicChanged,
    UserJoined,
    UserLeft,
    UserParted,
    WhoReply,
)
from game_chat.server import ChatServer

ME = "me"


# --- helpers ------------------------------------------------------------------------------


class Recorder:
    """Collects what a Conversation hands out, per tab id."""

    def __init__(self) -> None:
        self.lines: dict[int, list[LogLine]] = defaultdict(list)

    def on_line(self, tab: Tab, line: LogLine) -> None:
        self.lines[tab.id].append(line)

    def on_history(self, tab: Tab, lines: list[LogLine]) -> None:
        self.lines[tab.id][:0] = lines

    def texts(self, tab: Tab | None) -> list[str]:
        assert tab is not None
        return [line.text for line in self.lines[tab.id]]


def member(nick: str, **marks: Any) -> dict[str, Any]:
    return {"nick": nick, "away": "", "oper": False, "muted": False, **marks}


def joined(room: str, *nicks: str, topic: str = "") -> RoomJoined:
    return RoomJoined(room, topic, tuple(member(n) for n in (ME, *nicks)))


def chat(msg_id: int, text: str, nick: str = "bob", room: str = "#lobby", **kw: Any) -> ChatMessage:
    return ChatMessage(msg_id, nick, text, 1000.0 + msg_id, room=room, **kw)


def connected(*events: Any, settle: bool = True) -> tuple[Conversation, Recorder]:
    """A conversation that has connected and joined the lobby (with bob), then ``events``;
    then (``settle``) the replay is taken to be over: the "Connected" line is shown."""
    recorder = Recorder()
    conversation = Conversation(ME, recorder.on_line, recorder.on_history)
    conversation.apply(Connected(ME, "test", Limits(), (ME, "bob")))
    conversation.apply(joined("#lobby", "bob"))
    for event in events:
        conversation.apply(event)
    if settle:
        conversation.settle()
    return conversation, recorder


class FakeClient:
    """Stands in for ChatClient: records what is sent, hands out queued events."""

    nick, host, port = ME, "test", 0

    def __init__(self) -> None:
        self.sent: list[ClientMessage] = []
        self.incoming: list[Any] = []
        self.closed: str | None = None
        self._ids = itertools.count(1)

    def send_chat(self, text: str, room: str | None = None, action: bool = False) -> int:
        self.sent.append(SendChat(text, room=room, action=action))
        return next(self._ids)

    def send_private(self, to: str, text: str, action: bool = False) -> int:
        self.sent.append(SendPrivate(to, text, action=action))
        return next(self._ids)

    def send(self, message: ClientMessage) -> int | None:
        self.sent.append(message)
        return None

    def poll(self, limit: int | None = None) -> list[Any]:
        events, self.incoming = self.incoming, []
        return events

    def close(self, reason: str = "") -> None:
        self.closed = reason


# --- routing ------------------------------------------------------------------------------


def test_chat_goes_to_its_room_and_counts_unread_until_shown() -> None:
    c, rec = connected(joined("#dev", "carol"))
    lobby, dev = c.tab("#lobby"), c.tab("#dev")
    assert lobby is not None and dev is not None
    assert c.current is lobby  # joined without asking: not shown
    c.apply(chat(1, "in the lobby"))
    c.apply(chat(2, "in dev", nick="carol", room="#dev"))
    c.apply(chat(3, "ping me please", nick="carol", room="#DEV", action=True))
    assert rec.texts(lobby)[-1] == "in the lobby"
    assert rec.texts(dev)[-2:] == ["in dev", "ping me please"]
    assert rec.lines[dev.id][-1].kind == LineKind.ACTION
    assert (lobby.unread, dev.unread, dev.mention) == (0, 2, True)
    c.switch_to(dev)
    assert (dev.unread, dev.mention) == (0, False)
    c.apply(chat(4, "quiet", room="#lobby"))
    assert (lobby.unread, lobby.mention) == (1, False)


def test_private_messages_open_a_tab_per_peer() -> None:
    c, rec = connected()
    c.apply(PrivateMessage(7, "Bob", ME, "psst", 1.0))
    bob = c.tab("bob")
    assert bob is not None and bob.kind == TabKind.PRIVATE and bob.name == "Bob"
    assert c.current.name == "#lobby"
    assert (rec.texts(bob), bob.unread, bob.mention) == (["psst"], 1, True)
    assert c.tab("BOB") is bob
    # Our own copy (e.g. replayed) belongs with the peer too.
    c.apply(PrivateMessage(8, ME, "bob", "hi back", 2.0))
    assert rec.texts(bob) == ["psst", "hi back"]


def test_members_follow_joins_parts_leaves_nicks_and_away() -> None:
    c, rec = connected(joined("#dev", "bob", "carol"))
    lobby, dev = c.tab("#lobby"), c.tab("#dev")
    assert lobby is not None and dev is not None
    c.apply(UserJoined("dave", 1.0, "#dev"))
    assert [m.nick for m in dev.members] == ["bob", "carol", "dave", ME]
    c.apply(UserParted("#dev", "dave", "bored", 2.0))
    assert rec.texts(dev)[-1] == "dave left #dev (bored)"
    c.apply(AwayChanged("bob", "lunch", 3.0))
    assert [m.away for m in dev.members if m.nick == "bob"] == ["lunch"]
    assert rec.texts(lobby)[-1] == rec.texts(dev)[-1] == "bob is away: lunch"
    c.apply(NickChanged("bob", "robert", 4.0))
    assert dev.has("robert") and lobby.has("robert") and not dev.has("bob")
    assert rec.texts(dev)[-1] == "bob is now known as robert"
    c.apply(UserLeft("robert", "gone", 5.0))
    assert rec.texts(lobby)[-1] == rec.texts(dev)[-1] == "robert left (gone)"
    assert not dev.has("robert") and [m.nick for m in dev.members] == ["carol", ME]


def test_topic_notice_who_and_errors_land_where_they_belong() -> None:
    c, rec = connected(joined("#dev", topic="ship it"))
    lobby, dev = c.tab("#lobby"), c.tab("#dev")
    assert lobby is not None and dev is not None
    assert dev.topic == "ship it" and "Topic: ship it" in rec.texts(dev)
    c.apply(TopicChanged("#dev", "release friday", "bob", 1.0))
    assert dev.topic == "release friday"
    assert rec.texts(dev)[-1] == "bob set the topic: release friday"
    c.apply(Notice("dev notice", "#dev"))
    c.apply(Notice("server notice"))
    c.apply(ErrorReply("not_operator", "you are not an operator"))
    assert rec.lines[dev.id][-1].kind == LineKind.NOTICE
    assert rec.texts(lobby)[-2:] == ["server notice", "you are not an operator"]
    assert rec.lines[lobby.id][-1].kind == LineKind.ERROR
    c.apply(WhoReply("#dev", (member(ME), member("op", oper=True), member("zed", away="afk"))))
    assert rec.texts(lobby)[-1] == "In #dev (3): me, @op, zed (away)"
    assert [m.nick for m in dev.members] == [ME, "op", "zed"]


def test_own_lines_are_acked_or_failed_in_their_tab() -> None:
    c, rec = connected(joined("#dev"))
    dev = c.tab("#dev")
    assert dev is not None
    line = c.add_own(5, "hello dev", dev)
    failed = c.add_own(6, "too long", dev)
    c.apply(ChatSent(5, 42, 1.0))
    c.apply(ChatFailed(6, "text too long"))
    assert (line.delivery, failed.delivery) == (Delivery.SENT, Delivery.FAILED)
    assert dev.newest_id == 42 and rec.texts(dev)[-1] == "Not sent: text too long"


def test_parting_closes_the_tab_and_the_last_one_stays() -> None:
    c, rec = connected(joined("#dev"))
    dev, lobby = c.tab("#dev"), c.tab("#lobby")
    assert dev is not None and lobby is not None
    c.switch_to(dev)
    c.apply(UserParted("#dev", ME, "", 1.0))
    assert dev not in c.tabs and c.current is lobby
    assert rec.texts(lobby)[-1] == "You left #dev"
    c.apply(UserParted("#lobby", ME, "", 2.0))
    assert c.tabs == [lobby] and not lobby.joined


def test_nick_change_renames_the_private_tab_keeping_it() -> None:
    c, _ = connected(PrivateMessage(1, "bob", ME, "hi", 1.0))
    tab = c.tab("bob")
    assert tab is not None
    c.apply(NickChanged("bob", "robert", 2.0))
    assert c.tab("robert") is tab and c.tab("bob") is None and tab.name == "robert"
    c.apply(NickChanged(ME, "me2", 3.0))
    assert c.nick == "me2"


# --- history ------------------------------------------------------------------------------


def test_history_is_marked_and_replays_after_a_reconnect_are_not_repeated() -> None:
    c, rec = connected(*(chat(n, f"old {n}", history=True) for n in range(10, 13)))
    lobby = c.tab("#lobby")
    assert lobby is not None
    c.apply(chat(13, "live"))
    texts = rec.texts(lobby)
    assert texts[-5:-2] == ["old 10", "old 11", "old 12"] and texts[-1] == "live"
    assert texts[-2].startswith("Connected to")  # below the replay (see the test below)
    assert [line.history for line in rec.lines[lobby.id][-5:]] == [True] * 3 + [False] * 2
    # Reconnected: the lobby is replayed, with one line we missed and one older than all.
    count = len(rec.lines[lobby.id])
    c.apply(Disconnected("gone", will_retry=True))
    c.apply(Connected(ME, "test", Limits(), (ME, "bob")))
    c.apply(joined("#lobby", "bob"))
    for n in (5, 11, 12, 13, 14):
        c.apply(chat(n, f"replay {n}", history=True))
    c.settle()  # the replay is over: the "Connected" line shows below it
    texts = rec.texts(lobby)
    assert texts[0] == "replay 5" and texts[-2] == "replay 14"
    assert texts[-1].startswith("Connected to")
    assert len(texts) == count + 2 + 2  # the two system lines, and lines 5 and 14
    assert (lobby.oldest_id, lobby.newest_id) == (5, 14)


def test_the_connected_line_lands_below_the_replayed_history_not_among_it() -> None:
    """As in Discord: what was said before you came, then that you are here, then what is new.
    The line waits while replayed lines keep coming, and shows when a live event comes or when
    the replay has been quiet for REPLAY_QUIET seconds (or the connection goes)."""
    from game_chat.client.conversation import REPLAY_QUIET

    c, rec = connected(settle=False)
    lobby = c.tab("#lobby")
    assert lobby is not None
    assert not any(t.startswith("Connected to") for t in rec.texts(lobby))  # held back
    assert not c.settle(100.0)
    for n in range(1, 4):  # the replay may span several batches (several frames)
        c.apply(chat(n, f"old {n}", history=True))
        assert not c.settle(100.0 + n * REPLAY_QUIET * 0.9)
    assert c.settle(100.0 + 4 * REPLAY_QUIET)  # quiet for long enough: shown
    texts = rec.texts(lobby)
    assert texts[-4:-1] == ["old 1", "old 2", "old 3"] and texts[-1].startswith("Connected to")
    assert not c.settle(200.0)  # (shown once)
    # Reconnected, and something live comes before the quiet time is over: shown before it.
    c.apply(Disconnected("gone", will_retry=True))
    c.apply(Connected(ME, "test", Limits(), (ME, "bob")))
    c.apply(chat(4, "replayed", history=True))
    c.apply(chat(5, "live"))
    assert rec.texts(lobby)[-3:-1] == ["replayed", rec.texts(lobby)[-2]]
    assert rec.texts(lobby)[-2].startswith("Connected to") and rec.texts(lobby)[-1] == "live"
    # Lost again before anything came: the line is not lost, it comes before the drop's.
    c.apply(Connected(ME, "test", Limits(), (ME, "bob")))
    c.apply(Disconnected("gone", will_retry=True))
    assert rec.texts(lobby)[-2].startswith("Connected to")
    assert rec.texts(lobby)[-1].startswith("Disconnected")


def test_a_line_shown_before_it_was_stored_gets_its_id_once_and_is_not_shown_twice() -> None:
    """A cluster node whose store is away shows its members' lines pending (PROTOCOL.md 4.2):
    dimmed, no id; a LineSettled (or the stored line with the same origin) makes it a line
    like any other, in place; a replay after a reconnect (no origin) settles it by sender and
    text; id 0 marks it not sent."""
    c, rec = connected()
    lobby = c.tab("#lobby")
    assert lobby is not None
    c.apply(chat(0, "said while away", pending=True, origin="n1:1"))
    c.apply(chat(0, "and again", pending=True, origin="n1:2"))
    c.apply(chat(0, "this one is lost", pending=True, origin="n1:3"))
    first, second, lost = rec.lines[lobby.id][-3:]
    assert [line.delivery for line in (first, second, lost)] == [Delivery.PENDING] * 3
    assert lobby.newest_id is None  # no ids yet
    c.apply(LineSettled("#lobby", "n1:1", 40))
    assert first.delivery == Delivery.SENT and lobby.newest_id == 40
    c.apply(chat(41, "and again", origin="n1:2"))  # (a member who joined since: the line)
    assert second.delivery == Delivery.SENT and lobby.newest_id == 41
    c.apply(LineSettled("#lobby", "n1:3", 0))
    assert lost.delivery == Delivery.FAILED
    assert rec.texts(lobby)[-3:] == ["said while away", "and again", "this one is lost"]
    # Disconnected before its id came: the replay settles it, by sender and text.
    c.apply(chat(0, "in flight", pending=True, origin="n1:4"))
    flight = rec.lines[lobby.id][-1]
    c.apply(chat(42, "in flight", history=True))
    assert flight.delivery == Delivery.SENT and rec.texts(lobby).count("in flight") == 1
    c.apply(LineSettled("#nowhere", "x:1", 5))  # nothing of ours: nothing happens
    # Its node died before storing it: a new connection's replay ends without it.
    c.apply(chat(0, "never stored", pending=True, origin="n1:5"))
    orphan = rec.lines[lobby.id][-1]
    c.apply(Disconnected("gone", will_retry=True))
    assert orphan.delivery == Delivery.PENDING
    c.apply(Connected(ME, "test", Limits(), (ME, "bob")))
    c.apply(chat(43, "said before", history=True))
    c.settle()  # the replay is over
    assert orphan.delivery == Delivery.FAILED


def test_history_pages_go_above_one_request_at_a_time() -> None:
    c, rec = connected(*(chat(n, f"line {n}", history=True) for n in range(100, 103)))
    lobby = c.tab("#lobby")
    assert lobby is not None
    request = c.request_older(lobby)
    assert request == FetchHistory("#lobby", before=100, limit=100)
    assert c.request_older(lobby) is None  # one at a time
    page = (
        *({"id": n, "nick": "bob", "text": f"line {n}", "ts": 1.0} for n in (98, 99, 100)),
        {"id": "bad"},
        "not a dict",
    )  # 100 is shown already; the last two are malformed
    c.apply(HistoryPage("#lobby", page, more=True))  # type: ignore[arg-type]
    assert rec.texts(lobby)[:2] == ["line 98", "line 99"]
    assert rec.lines[lobby.id][0].history
    assert c.request_older(lobby) == FetchHistory("#lobby", before=98, limit=100)
    c.apply(HistoryPage("#lobby", (), more=False))
    assert c.request_older(lobby) is None and not lobby.history_more
    dm = c.open_private("bob")
    assert c.request_older(dm) is None  # rooms only


def test_a_lost_history_request_can_be_made_again() -> None:
    c, _ = connected()
    lobby = c.tab("#lobby")
    assert lobby is not None and c.request_older(lobby) is not None
    c.apply(Disconnected("gone", will_retry=True))
    assert c.request_older(lobby) is None  # not while disconnected
    c.apply(Connected(ME, "test", Limits(), (ME,)))
    assert c.request_older(lobby) is not None


# --- typed lines --------------------------------------------------------------------------


def test_typed_lines_go_to_the_tab_shown() -> None:
    c, rec = connected(joined("#dev"))
    client = FakeClient()
    submit_line("hello lobby", client, c)
    submit_line("//slash", client, c)
    submit_line("/me waves", client, c)
    dev = c.tab("#dev")
    assert dev is not None
    c.switch_to(dev)
    submit_line("hello dev", client, c)
    assert client.sent == [
        SendChat("hello lobby", room="#lobby"),
        SendChat("/slash", room="#lobby"),
        SendChat("waves", room="#lobby", action=True),
        SendChat("hello dev", room="#dev"),
    ]
    assert rec.lines[dev.id][-1].own and rec.texts(dev)[-1] == "hello dev"


def test_msg_opens_the_private_tab_and_lines_follow_it() -> None:
    c, rec = connected()
    client = FakeClient()
    submit_line("/msg Bob are you there?", client, c)
    bob = c.tab("bob")
    assert bob is not None and c.current is bob
    submit_line("hello?", client, c)
    submit_line("/me knocks", client, c)
    assert client.sent == [
        SendPrivate("Bob", "are you there?"),
        SendPrivate("Bob", "hello?"),
        SendPrivate("Bob", "knocks", action=True),
    ]
    assert rec.texts(bob) == ["are you there?", "hello?", "knocks"]
    submit_line("/part", client, c)  # in a private tab: closes it, nothing sent
    assert bob not in c.tabs and len(client.sent) == 3
    terminal = FakeClient()
    submit_line("/msg bob quietly", terminal, c, follow_private=False)
    assert c.current.name == "#lobby"


def test_join_and_part_switch_tabs_when_the_server_confirms() -> None:
    c, _ = connected()
    client = FakeClient()
    submit_line("/join dev", client, c)
    assert client.sent == [JoinRoom("#dev")] and c.current.name == "#lobby"
    c.apply(joined("#dev"))
    assert c.current.name == "#dev"
    submit_line("/join #lobby", client, c)  # in it already: shown, nothing sent
    assert c.current.name == "#lobby" and len(client.sent) == 1
    c.cycle(1)
    submit_line("/part bye all", client, c)
    assert client.sent[-1] == PartRoom("#dev", "bye all")
    assert c.tab("#dev") is not None  # until the server says so
    c.apply(UserParted("#dev", ME, "bye all", 1.0))
    assert c.tab("#dev") is None and c.current.name == "#lobby"


def test_quit_help_history_and_mistakes() -> None:
    c, rec = connected(chat(50, "x", history=True))
    client = FakeClient()
    assert submit_line("/quit dinner", client, c) == Goodbye("dinner")
    submit_line("/away lunch", client, c)
    submit_line("/help", client, c)
    submit_line("/history", client, c)
    submit_line("/history", client, c)  # one request at a time
    assert client.sent == [SetAway("lunch"), Help(), FetchHistory("#lobby", 50, 100)]
    lobby = c.tab("#lobby")
    submit_line("/dance", client, c)
    submit_line("/kick", client, c)
    assert rec.texts(lobby)[-2].startswith("unknown command /dance")
    assert rec.texts(lobby)[-1] == "usage: /kick NICK [REASON]"
    c.apply(Disconnected("gone", will_retry=True))
    submit_line("/help", client, c)  # offline: answered here
    assert rec.texts(lobby)[-1].startswith("//TEXT")
    assert len(client.sent) == 3


def test_a_room_we_left_refuses_lines() -> None:
    c, rec = connected()
    c.apply(UserParted("#lobby", ME, "", 1.0))
    client = FakeClient()
    submit_line("anyone?", client, c)
    assert client.sent == [] and rec.texts(c.current)[-1] == "You are not in #lobby: /join #lobby"


# --- the window (headless) ------------------------------------------------------------------


@pytest.fixture
def display() -> Iterator[pygame.Surface]:
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode((800, 480))
    pygame.quit()


def make_screen(surface: pygame.Surface) -> tuple[ChatScreen, FakeClient]:
    client = FakeClient()
    theme = Theme()
    screen = ChatScreen(
        surface.get_size(),
        client,  # type: ignore[arg-type]
        theme,
        load_font(theme),  # type: ignore[arg-type]
        MemoryClipboard(),
    )
    client.incoming += [Connected(ME, "test", Limits(), (ME, "bob")), joined("#lobby", "bob")]
    return screen, client


def run_frame(screen: ChatScreen, surface: pygame.Surface) -> None:
    for event in pygame.event.get():
        screen.handle_event(event)
    screen.update(1 / 60)
    screen.draw(surface)


def post_key(key: int, mod: int = 0) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, {"key": key, "mod": mod, "unicode": ""}))


def labels(screen: ChatScreen) -> list[tuple[str, int, bool]]:
    return [(item.label, item.unread, item.mention) for item in screen.tabs.items]


@pytest.mark.ui
def test_tab_bar_counts_unread_and_switches_by_click_and_keys(display: pygame.Surface) -> None:
    screen, client = make_screen(display)
    client.incoming += [
        joined("#dev", "carol"),
        chat(1, "hello", nick="carol", room="#dev"),
        chat(2, "me: look", nick="carol", room="#dev"),
        PrivateMessage(3, "bob", ME, "psst", 1.0),
    ]
    run_frame(screen, display)
    assert labels(screen) == [("#lobby", 0, False), ("#dev", 2, True), ("bob", 1, True)]
    assert screen.tabs.active == screen.conversation.tab("#lobby").id  # type: ignore[union-attr]
    dev = screen.conversation.tab("#dev")
    assert dev is not None
    rect = screen.tabs.tab_rect(dev.id)
    assert rect is not None
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"button": 1, "pos": rect.center}))
    run_frame(screen, display)
    assert screen.conversation.current is dev
    assert labels(screen)[1] == ("#dev", 0, False)
    assert [line.text for line in screen.log.visible_lines()][:2] == ["me: look", "hello"]
    assert screen.users.users == ["carol", ME]
    post_key(pygame.K_TAB, pygame.KMOD_CTRL)
    run_frame(screen, display)
    assert screen.conversation.current.name == "bob" and labels(screen)[2] == ("bob", 0, False)
    post_key(pygame.K_PAGEUP, pygame.KMOD_CTRL)
    post_key(pygame.K_PAGEUP, pygame.KMOD_CTRL)
    run_frame(screen, display)
    assert screen.conversation.current.name == "#lobby"
    assert screen.input.text == ""  # the keys were the tab bar's


@pytest.mark.ui
def test_user_list_marks_away_and_operators(display: pygame.Surface) -> None:
    screen, client = make_screen(display)
    client.incoming += [
        WhoReply("#lobby", (member(ME), member("op", oper=True), member("zed", away="afk")))
    ]
    run_frame(screen, display)
    assert screen.users.users == [ME, "op", "zed"]
    assert [m.oper for m in screen.users.members] == [False, True, False]
    assert screen.users.members[2].away == "afk"
    client.incoming.append(AwayChanged("zed", "", 1.0))
    run_frame(screen, display)
    assert screen.users.members[2].away == ""


@pytest.mark.ui
def test_typing_in_a_tab_and_closing_it(display: pygame.Surface) -> None:
    screen, client = make_screen(display)
    run_frame(screen, display)
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": "/msg bob hi"}))
    post_key(pygame.K_RETURN)
    run_frame(screen, display)
    assert client.sent == [SendPrivate("bob", "hi")]
    assert screen.conversation.current.name == "bob"
    assert [line.text for line in screen.log.visible_lines()] == ["hi"]
    bob_id = screen.conversation.current.id
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": "/close"}))
    post_key(pygame.K_RETURN)
    run_frame(screen, display)
    assert [item.label for item in screen.tabs.items] == ["#lobby"]
    assert bob_id not in screen.logs


@pytest.mark.ui
def test_scrolling_to_the_top_fetches_history_once_and_inserts_it(
    display: pygame.Surface,
) -> None:
    screen, client = make_screen(display)
    client.incoming += [chat(n, f"line {n}", history=True) for n in range(200, 260)]
    run_frame(screen, display)
    for _ in range(40):
        post_key(pygame.K_PAGEUP)
        run_frame(screen, display)
        if client.sent:
            break
    for _ in range(3):  # more frames at the top: no second request
        post_key(pygame.K_PAGEUP)
        run_frame(screen, display)
    assert client.sent == [FetchHistory("#lobby", before=200, limit=100)]
    shown = [line.text for line in screen.log.visible_lines()]
    assert shown[-1] == "line 200"  # the oldest line on top (the "Connected" line is below)
    page = tuple({"id": n, "nick": "bob", "text": f"older {n}", "ts": 1.0} for n in range(150, 200))
    client.incoming.append(HistoryPage("#lobby", page, more=False))
    run_frame(screen, display)
    after = [line.text for line in screen.log.visible_lines()]
    assert after[: len(shown)] == shown  # the view stayed put (a sliver may show above)
    assert screen.log.line_count >= 110
    post_key(pygame.K_HOME, pygame.KMOD_CTRL)
    run_frame(screen, display)
    assert screen.log.visible_lines()[-1].text == "older 150"
    assert screen.log.visible_lines()[-1].history
    assert len(client.sent) == 1  # more=False: no further requests


@pytest.mark.ui
def test_tab_bar_widget_keeps_the_active_tab_in_view(display: pygame.Surface) -> None:
    theme = Theme()
    chosen: list[int] = []
    bar = TabBar(pygame.Rect(0, 0, 200, 24), theme, load_font(theme), chosen.append)
    items = [TabItem(n, f"#room-number-{n}", unread=n % 3) for n in range(10)]
    bar.set_tabs(items, active=9)
    bar.update()
    bar.draw(display)
    last = bar.tab_rect(9)
    assert last is not None and last.right <= 200
    assert bar.handle_event(
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"button": 1, "pos": last.center})
    )
    assert chosen == [9]
    assert not bar.handle_event(
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"button": 1, "pos": (10, 100)})
    )


# --- the real client against the real server ------------------------------------------------


def next_event(client: ChatClient, match: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """The next event for which ``match`` holds, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no such event"
        try:
            event = client.events.get(timeout=remaining)
        except queue.Empty:
            continue
        if match(event):
            return event


def of(kind: type, **fields: Any) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())


@pytest.fixture
def clients() -> Iterator[list[ChatClient]]:
    made: list[ChatClient] = []
    yield made
    for client in made:
        client.close()


def start_client(server: ChatServer, nick: str, clients: list[ChatClient]) -> ChatClient:
    host, port = server.address
    client = ChatClient(host, port, nick, backoff_initial=0.05)
    clients.append(client)
    client.start()
    next_event(client, of(RoomJoined, room="#lobby"))
    return client


def test_rooms_and_private_messages_over_the_wire(
    server: ChatServer, clients: list[ChatClient]
) -> None:
    alice = start_client(server, "alice", clients)
    bob, _ = rich_client(server.address, "bob")
    assert alice.send(JoinRoom("#dev")) is None
    assert next_event(alice, of(RoomJoined, room="#dev")).members[0]["nick"] == "alice"
    bob.send_json(type="join", room="#dev")
    next_event(alice, of(UserJoined, nick="bob", room="#dev"))
    local = alice.send_chat("dev only", room="#dev")
    assert next_event(alice, of(ChatSent, local_id=local))
    message = bob.recv_until(lambda m: m["type"] == "chat")
    assert (message["room"], message["text"]) == ("#dev", "dev only")
    private = alice.send_private("bob", "psst", action=True)
    assert next_event(alice, of(ChatSent, local_id=private))
    received = bob.recv_until(lambda m: m["type"] == "msg")
    assert (received["to"], received["text"], received["action"]) == ("bob", "psst", True)
    lost = alice.send(SendPrivate("nobody", "hello?"))
    assert lost is not None and next_event(alice, of(ChatFailed, local_id=lost))
    bob.send_json(type="msg", to="alice", text="back at you")
    assert next_event(alice, of(PrivateMessage, nick="bob")).text == "back at you"
    with pytest.raises(LocalProtocolError):
        alice.send(Ping())


def test_rooms_are_joined_again_after_a_reconnection(clients: list[ChatClient]) -> None:
    server = start_server()
    port = server.address[1]
    alice = start_client(server, "alice", clients)
    alice.send(JoinRoom("#dev"))
    next_event(alice, of(RoomJoined, room="#dev"))
    server.shutdown()
    next_event(alice, of(Disconnected, will_retry=True))
    waiting = alice.send_chat("for dev", room="#dev")
    restarted = start_server(port=port)
    try:
        peer, _ = rich_client(restarted.address, "peer")
        peer.send_json(type="join", room="#dev")
        assert next_event(alice, of(RoomJoined, room="#dev"), timeout=10)
        assert next_event(alice, of(ChatSent, local_id=waiting))
        # Live, or replayed if the peer's join came second.
        message = peer.recv_until(lambda m: m["type"] == "chat" and m["text"] == "for dev")
        assert (message["room"], message["text"]) == ("#dev", "for dev")
    finally:
        alice.close()
        restarted.shutdown()


@pytest.mark.parametrize("how", ["kick", "ban"])
def test_kicked_or_banned_clients_do_not_reconnect(server_factory, how: str) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(oper_password="pw")
    op, _ = rich_client(server.address, "op")
    op.send_json(type="oper", password="pw")
    op.recv_until(lambda m: m["type"] == "notice")
    host, port = server.address
    victim = ChatClient(host, port, "victim", backoff_initial=0.01)
    victim.start()
    try:
        next_event(victim, of(RoomJoined))
        if how == "kick":
            op.send_json(type="kick", nick="victim", reason="spam")
        else:
            op.send_json(type="ban", target="victim", minutes=1)
        code = "kicked" if how == "kick" else "banned"
        assert next_event(victim, of(ErrorReply, code=code)).fatal
        gone = next_event(victim, of(Disconnected))
        assert (gone.will_retry, gone.code) == (False, code)
        victim._thread.join(5)
        assert not victim._thread.is_alive()  # no reconnection attempt
    finally:
        victim.close()


class WaitingClient(ChatClient):
    """``poll`` waits a little for a first event: test frames follow the network, no sleeps."""

    def poll(self, limit: int | None = None) -> list[Any]:
        try:
            first = self.events.get(timeout=0.02)
        except queue.Empty:
            return []
        return [first, *super().poll(None if limit is None else limit - 1)]


@pytest.mark.ui
def test_window_conversation_over_the_wire(
    burst_server: ChatServer, display: pygame.Surface
) -> None:
    """The chat screen with the real client: join a room, chat in it, get a private message,
    page the lobby's history in by scrolling up."""
    server = burst_server
    writer, _ = rich_client(server.address, "writer")
    for n in range(130):
        writer.send_json(type="chat", text=f"old {n}", id=n)
    for _ in range(130):
        writer.recv_until(lambda m: m["type"] == "ack")
    host, port = server.address
    theme = Theme()
    client = WaitingClient(host, port, ME)
    screen = ChatScreen(
        display.get_size(),
        client,
        theme,
        load_font(theme),  # type: ignore[arg-type]
        MemoryClipboard(),
    )
    client.start()

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            run_frame(screen, display)

    try:
        lobby = screen.conversation.tab("#lobby")
        assert lobby is not None
        until(lambda: lobby.oldest_id is not None and lobby.newest_id is not None)
        until(lambda: screen.log.line_count >= 100)
        assert screen.log.visible_lines()[0].history
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": "/join #dev"}))
        post_key(pygame.K_RETURN)
        until(lambda: screen.conversation.current.name == "#dev")
        writer.send_json(type="join", room="#dev")
        writer.send_json(type="chat", room="#dev", text="welcome to dev")
        until(lambda: "welcome to dev" in [line.text for line in screen.log.visible_lines()])
        writer.send_json(type="msg", to=ME, text="psst")
        until(lambda: [t.name for t in screen.conversation.tabs][-1] == "writer")
        assert labels(screen)[-1] == ("writer", 1, True)
        post_key(pygame.K_PAGEUP, pygame.KMOD_CTRL)
        until(lambda: screen.conversation.current is lobby)
        assert screen.conversation.status == Status.CONNECTED
        before = screen.log.line_count
        post_key(pygame.K_HOME, pygame.KMOD_CTRL)
        until(lambda: screen.log.line_count >= before + 30)
        post_key(pygame.K_HOME, pygame.KMOD_CTRL)
        run_frame(screen, display)
        assert screen.log.visible_lines()[-1].text == "old 0"
    finally:
        client.close()


def test_member_from_server_dicts() -> None:
    assert Member.from_dict({"nick": "a", "away": "lunch", "oper": True}) == Member(
        "a", "lunch", True
    )
    assert Member.from_dict({"nick": 3}) is None
    assert Member.from_dict({"nick": "b", "away": True}) == Member("b", "away")


def test_member_data_updates_the_room_member() -> None:
    from game_chat.client.conversation import Conversation
    from game_chat.protocol.messages import MemberData, RoomJoined

    conversation = Conversation("me", lambda tab, line: None, lambda tab, lines: None)
    conversation.apply(
        RoomJoined("#lobby", "", ({"nick": "me"}, {"nick": "bob", "data": {"team": "blue"}}))
    )
    tab = conversation.tab("#lobby")
    assert tab is not None
    bob = tab.member("bob")
    assert bob is not None and bob.data == {"team": "blue"}
    before = tab.revision
    conversation.apply(MemberData("#lobby", "bob", {"team": "red", "ready": True}, 1.0))
    bob = tab.member("bob")
    assert bob is not None and bob.data == {"team": "red", "ready": True}
    assert tab.revision > before


@pytest.mark.ui
@pytest.mark.parametrize(
    "where",
    ["wheel over the log", "click in the log", "click on the member list", "wheel over the tabs"],
)
def test_typing_after_touching_the_log_still_reaches_the_input(
    display: pygame.Surface, where: str
) -> None:
    """Discord and HexChat send every key to the input line wherever you clicked."""
    screen, client = make_screen(display)
    client.incoming += [chat(n, f"line {n}", nick="bob") for n in range(1, 80)]
    run_frame(screen, display)
    spot = {
        "wheel over the log": (screen.log_rect.center, 4),
        "click in the log": (screen.log_rect.center, 1),
        "click on the member list": (screen.users.rect.center, 1),
        "wheel over the tabs": (screen.tabs.rect.center, 5),
    }[where]
    pos, button = spot
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": pos, "button": button}))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, {"pos": pos, "button": button}))
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": "hi"}))
    post_key(pygame.K_RETURN)
    run_frame(screen, display)
    assert screen.input.focused
    assert [getattr(m, "text", None) for m in client.sent][-1:] == ["hi"]


@pytest.mark.ui
def test_selecting_in_the_log_then_ctrl_c_copies_it_and_typing_still_reaches_the_input(
    display: pygame.Surface,
) -> None:
    screen, client = make_screen(display)
    client.incoming += [chat(n, f"line number {n}", nick="bob") for n in range(1, 4)]
    run_frame(screen, display)
    rect = screen.log_rect
    row = rect.bottom - screen.theme.padding - screen.font.get_linesize() // 2  # the newest line
    start, end = (rect.left + 2, row), (rect.right - 20, row)
    for kind, pos in [
        (pygame.MOUSEBUTTONDOWN, start),
        (pygame.MOUSEMOTION, end),
        (pygame.MOUSEBUTTONUP, end),
    ]:
        pygame.event.post(pygame.event.Event(kind, {"pos": pos, "button": 1, "rel": (1, 0)}))
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, {"text": "draft"}))
    post_key(pygame.K_c, pygame.KMOD_CTRL)
    run_frame(screen, display)
    assert screen.log.selected_text().endswith("bob: line number 3")
    assert screen.input.text == "draft"  # the keys went to the input line
    assert screen.input.clipboard.get_text() == screen.log.selected_text()
    # Text selected in the input line is what Ctrl+C copies then.
    post_key(pygame.K_a, pygame.KMOD_CTRL)
    post_key(pygame.K_c, pygame.KMOD_CTRL)
    run_frame(screen, display)
    assert screen.input.clipboard.get_text() == "draft"


def test_room_operators_are_marked_and_a_removal_says_by_whom() -> None:
    c, rec = connected(joined("#den", "bob"))
    den = c.tab("#den")
    assert den is not None and not den.member("bob").op  # type: ignore[union-attr]
    c.apply(RoomOpChanged("#den", "bob", True, ME, 5.0))
    assert den.member("bob").op  # type: ignore[union-attr]
    assert rec.texts(den)[-1] == f"{ME} made bob an operator of #den"
    c.apply(UserParted("#den", "bob", "spam", 6.0, by=ME))
    assert rec.texts(den)[-1] == f"bob was removed from #den by {ME} (spam)"
    c.apply(UserParted("#den", ME, "", 7.0, by="carol"))
    said = [line.text for lines in rec.lines.values() for line in lines]
    assert any(t.startswith("You were removed from #den by carol") for t in said)


def test_bare_topic_shows_it_and_topic_dash_clears_it() -> None:
    """As in IRC clients: /topic shows the topic; text sets it; the window clears with '-'."""
    c, rec = connected(joined("#dev", topic="ship it"))
    client = FakeClient()
    dev = c.tab("#dev")
    assert dev is not None
    c.switch_to(dev)
    submit_line("/topic", client, c)
    assert client.sent == [] and rec.texts(dev)[-1] == "Topic of #dev: ship it"
    submit_line("/topic #lobby", client, c)
    assert client.sent == [] and rec.texts(c.tab("#lobby"))[-1].startswith("#lobby has no topic")
    submit_line("/topic friday", client, c)
    submit_line("/topic -", client, c)
    assert client.sent == [SetTopic("#dev", "friday"), SetTopic("#dev", "")]


def test_retries_update_the_status_instead_of_filling_the_log() -> None:
    c, rec = connected()
    lobby = c.tab("#lobby")
    assert lobby is not None
    before = len(rec.texts(lobby))
    c.apply(Disconnected("the server stopped answering", True))
    for attempt in range(2, 9):  # seven failed tries in a row
        c.apply(Reconnecting(attempt, 2.0))
        c.apply(Connecting("127.0.0.1", 5050, attempt))
        c.apply(Disconnected("connection refused", True))
    assert rec.texts(lobby)[before:] == ["Disconnected: the server stopped answering"]
    c.apply(Reconnecting(9, 4.0))
    assert c.status_detail == "retrying in 4.0 s (attempt 9)"


@pytest.mark.ui
def test_after_a_reconnect_away_is_restored_and_members_are_greyed_meanwhile(
    display: pygame.Surface,
) -> None:
    screen, client = make_screen(display)
    client.incoming += [AwayChanged(ME, "lunch", 1.0)]
    run_frame(screen, display)
    assert not screen.users.dimmed
    client.incoming += [Disconnected("the server stopped answering", True)]
    run_frame(screen, display)
    assert screen.users.dimmed
    client.incoming += [Connected(ME, "test", Limits(), (ME, "bob")), joined("#lobby", "bob")]
    run_frame(screen, display)
    assert not screen.users.dimmed
    assert SetAway("lunch") in client.sent


@pytest.mark.ui
def test_double_click_a_member_for_a_private_chat_and_middle_click_closes_a_tab(
    display: pygame.Surface,
) -> None:
    screen, _client = make_screen(display)
    run_frame(screen, display)
    row = next(
        (x, y)
        for y in range(screen.users.rect.top, screen.users.rect.bottom)
        for x in (screen.users.rect.centerx,)
        if screen.users.nick_at((x, y)) == "bob"
    )
    click = {"pos": row, "button": 1}
    for _ in range(2):
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, click))
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, click))
    run_frame(screen, display)
    bob = screen.conversation.tab("bob")
    assert bob is not None and not bob.is_room and screen.conversation.current is bob
    run_frame(screen, display)
    tab_pos = next(
        (x, screen.tabs.rect.centery)
        for x in range(screen.tabs.rect.left, screen.tabs.rect.right)
        if screen.tabs.tab_at((x, screen.tabs.rect.centery)) == bob.id
    )
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": tab_pos, "button": 2}))
    run_frame(screen, display)
    assert screen.conversation.tab("bob") is None  # closed; a private tab goes at once
    me = next(
        (screen.users.rect.centerx, y)
        for y in range(screen.users.rect.top, screen.users.rect.bottom)
        if screen.users.nick_at((screen.users.rect.centerx, y)) == ME
    )
    for _ in range(2):
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, {"pos": me, "button": 1}))
    run_frame(screen, display)
    assert screen.conversation.tab(ME) is None  # not a chat with yourself


@pytest.mark.ui
def test_a_status_line_too_long_for_a_small_window_ends_in_an_ellipsis(
    display: pygame.Surface,
) -> None:
    screen, _client = make_screen(display)
    run_frame(screen, display)
    screen.resize((400, 300))
    screen.update(0.0)
    assert screen._status_surface is not None
    assert screen._status_surface.get_width() <= screen.status_rect.width
    assert screen._status_key is not None
