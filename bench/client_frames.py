"""Client frame-time benchmark: prints ONE JSON line.

A frame = handle pygame events + drain a ``queue.Queue`` of incoming LogLines + update + draw
(+ ``display.flip``); the 60 FPS sleep between frames is not counted. A producer thread puts
LogLines on the queue at a fixed rate, as the network thread would. Scenarios: 1,000, 10,000
and 100,000 messages already in the log, with 200 and with 1,000 messages/s arriving, plus one
with the view scrolled to the top of a 100,000-message log and the wheel turning every frame,
and one with nothing arriving (the floor, and the machine's own jitter).
Window 960x640 under SDL's dummy video driver.

Targets: p99 <= 2 ms at 200 msg/s, p99 <= 5 ms at 1,000 msg/s, RSS <= 200 MB at 100,000.

To measure the whole window instead of the bare log, pass another ``FrameFactory`` to
:func:`run_benchmark` (``make_frame(screen, incoming, history) -> frame callable``).

Usage: ``python bench/client_frames.py [--seconds 5]`` (about 50 s in all)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import pygame

from game_chat.client.events import Connected
from game_chat.client.model import LineKind, LogLine
from game_chat.client.screens.chat import ChatScreen
from game_chat.client.ui.clipboard import MemoryClipboard
from game_chat.client.ui.fonts import load_font
from game_chat.client.ui.message_log import MessageLog
from game_chat.client.ui.theme import Theme
from game_chat.protocol.limits import Limits
from game_chat.protocol.messages import ChatMessage, UserJoined

WINDOW = (960, 640)
FPS = 60
#: Call gc.freeze() after setting up, as the client should (see run_scenario).
FREEZE_GC = True
#: Frames in the first half second of a scenario are reported apart (warmup_max_ms).
WARMUP_SECONDS = 0.5
OWN_NICK = "me"
TARGETS = {"p99_ms_at_200": 2.0, "p99_ms_at_1000": 5.0, "rss_mb_at_100000": 200.0}

Frame = Callable[[], None]
#: Builds one frame callable around a window surface, the incoming queue and the history.
FrameFactory = Callable[[pygame.Surface, "queue.Queue[LogLine]", Sequence[LogLine]], Frame]

_VOCABULARY = """
the a to and gg wp ready go push mid top bot lane rush b site who wants another round lobby map
vote kick ban lag ping server host join team red blue nice shot lol brb afk anyone up for ranked
later tonight? I think we should try again, it was close! Ελληνικά Кириллица café naïve
https://example.org/some/long/path?with=query&and=more
"""
_WORDS = _VOCABULARY.split()
# Characters the bundled Noto Sans lacks (drawn by DejaVu or a system font).
_SYMBOLS = ("✓", "→", "😀", "♥", "★")
#: Share of messages with a fallback-font character, and of long (multi-row) messages.
SYMBOL_SHARE = 0.15
LONG_SHARE = 0.05


def make_line(rng: random.Random, ts: float) -> LogLine:
    """A plausible chat line: mostly short chat, some long, some actions, notices, mentions."""
    roll = rng.random()
    count = rng.randint(30, 80) if rng.random() < LONG_SHARE else rng.randint(1, 16)
    words = rng.choices(_WORDS, k=count)
    if rng.random() < SYMBOL_SHARE:
        words.insert(rng.randint(0, count), rng.choice(_SYMBOLS))
    text = " ".join(words)
    nick = f"player{rng.randint(1, 60)}"
    if roll < 0.02:
        return LogLine(LineKind.SYSTEM, f"{nick} joined", ts=ts)
    if roll < 0.06:
        return LogLine(LineKind.ACTION, text, nick=nick, ts=ts)
    if roll < 0.08:
        text = f"{OWN_NICK}: {text}"
    return LogLine(LineKind.CHAT, text, nick=nick, ts=ts)


def _workload() -> dict[str, float]:
    rng = random.Random(0)
    lines = [make_line(rng, 0.0) for _ in range(2000)]
    return {
        "avg_chars": round(statistics.mean(len(line.text) for line in lines), 1),
        "symbol_share": SYMBOL_SHARE,
        "long_share": LONG_SHARE,
    }


def make_log_frame(
    screen: pygame.Surface, incoming: queue.Queue[LogLine], history: Sequence[LogLine]
) -> Frame:
    """A minimal loop around the MessageLog alone (the default FrameFactory)."""
    theme = Theme()
    log = MessageLog(screen.get_rect(), theme, load_font(theme), own_nick=OWN_NICK)
    log.extend(history)
    log.update(0)
    last = time.perf_counter()

    def frame() -> None:
        nonlocal last
        now = time.perf_counter()
        for event in pygame.event.get():
            log.handle_event(event)
        while True:
            try:
                log.append(incoming.get_nowait())
            except queue.Empty:
                break
        log.update(now - last)
        last = now
        log.draw(screen)  # the log fills its whole rect: the window needs no fill
        pygame.display.flip()

    return frame


class _BenchClient:
    """Stands in for ChatClient in the full window: incoming lines arrive as server events."""

    def __init__(self, incoming: queue.Queue[LogLine]) -> None:
        self.incoming = incoming
        self.nick, self.host, self.port = OWN_NICK, "bench", 0
        self._ids = iter(range(1, 1 << 62))

    def poll(self, limit: int | None = None) -> list[object]:
        events: list[object] = []
        while limit is None or len(events) < limit:
            try:
                line = self.incoming.get_nowait()
            except queue.Empty:
                break
            if line.kind == LineKind.SYSTEM:
                events.append(UserJoined(line.text.split()[0], line.ts))
            else:
                events.append(ChatMessage(next(self._ids), line.nick or "?", line.text, line.ts))
        return events

    def send(self, message: object) -> None:
        pass  # commands (e.g. a history request when scrolled to the top) go nowhere

    def close(self, reason: str = "") -> None:
        pass


def make_window_frame(
    screen: pygame.Surface, incoming: queue.Queue[LogLine], history: Sequence[LogLine]
) -> Frame:
    """The chat window's real frame: events -> drain the network queue -> update -> draw."""
    theme = Theme()
    client = _BenchClient(incoming)
    chat = ChatScreen(
        screen.get_size(),
        client,
        theme,
        load_font(theme),
        MemoryClipboard(),  # type: ignore[arg-type]
    )
    chat.conversation.apply(
        Connected(OWN_NICK, "bench", Limits(), tuple(f"player{n}" for n in range(1, 61)))
    )
    chat.log.extend(history)
    chat.update(0)
    last = time.perf_counter()

    def frame() -> None:
        nonlocal last
        now = time.perf_counter()
        for event in pygame.event.get():
            chat.handle_event(event)
        chat.update(now - last)
        last = now
        chat.draw(screen)
        pygame.display.flip()

    return frame


FRAMES: dict[str, FrameFactory] = {"window": make_window_frame, "log": make_log_frame}


class Producer(threading.Thread):
    """Puts ``rate`` LogLines per second on ``incoming`` until stopped."""

    def __init__(self, incoming: queue.Queue[LogLine], rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.incoming = incoming
        self.rate = rate
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        start = time.perf_counter()
        while not self.stopped.wait(0.002) and self.rate > 0:
            due = int((time.perf_counter() - start) * self.rate)
            while self.sent < due:
                self.incoming.put(make_line(self.rng, time.time()))
                self.sent += 1


@dataclass
class Scenario:
    name: str
    history: int
    rate: float
    scroll: bool = False  # view at the top of the log, the wheel turning every frame


def _scroll_events(frame_no: int) -> list[pygame.event.Event]:
    if frame_no == 0:
        return [pygame.event.Event(pygame.KEYDOWN, key=pygame.K_HOME, mod=pygame.KMOD_CTRL)]
    # Down then back up, so the view stays near the top of the history.
    direction = -1 if (frame_no // 30) % 2 == 0 else 1
    return [pygame.event.Event(pygame.MOUSEWHEEL, x=0, y=direction, flipped=False)]


def run_scenario(
    make_frame: FrameFactory, screen: pygame.Surface, scenario: Scenario, seconds: float
) -> dict[str, object]:
    """Run one scenario for ``seconds`` at 60 FPS; frame times exclude the sleep."""
    rng = random.Random(scenario.history)
    now = time.time()
    history = [make_line(rng, now - scenario.history + i) for i in range(scenario.history)]
    incoming: queue.Queue[LogLine] = queue.Queue()
    frame = make_frame(screen, incoming, history)
    del history
    if FREEZE_GC:
        # What the client should do once started: move everything alive now (pygame, fonts,
        # modules, the history) out of the collector's sight, so that a full collection
        # does not walk it (~20 ms for a bare client here: a dropped frame).
        gc.collect()
        gc.freeze()
    pygame.event.clear()
    # The same arrivals in every scenario: differences then come from the history size.
    producer = Producer(incoming, scenario.rate, seed=42)
    producer.start()
    times: list[float] = []
    warmup: list[float] = []  # first frames: one-time costs (fonts found, caches filled)
    gc_pauses: list[float] = []
    gc_started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_started)

    start = time.perf_counter()
    deadline = start + WARMUP_SECONDS + seconds
    next_frame = start
    gc.callbacks.append(on_gc)
    try:
        while time.perf_counter() < deadline:
            if scenario.scroll:
                for event in _scroll_events(len(warmup) + len(times)):
                    pygame.event.post(event)
            begin = time.perf_counter()
            frame()
            elapsed = time.perf_counter() - begin
            (warmup if begin - start < WARMUP_SECONDS else times).append(elapsed)
            next_frame += 1 / FPS
            time.sleep(max(0.0, next_frame - time.perf_counter()))
    finally:
        gc.callbacks.remove(on_gc)
        producer.stopped.set()
        producer.join()
        gc.unfreeze()
    times.sort()
    return {
        "name": scenario.name,
        "history": scenario.history,
        "rate": scenario.rate,
        "frames": len(times),
        "arrived": producer.sent,
        "p50_ms": round(statistics.median(times) * 1e3, 3),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))] * 1e3, 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3, 3),
        "max_ms": round(times[-1] * 1e3, 3),
        "warmup_max_ms": round(max(warmup, default=0.0) * 1e3, 3),
        "gc_max_ms": round(max(gc_pauses, default=0.0) * 1e3, 3),
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    }


SCENARIOS = [
    # Nothing arriving: the frame's floor, and the machine's own jitter (other processes).
    Scenario("100k idle", 100_000, 0),
    Scenario("1k@200", 1_000, 200),
    Scenario("10k@200", 10_000, 200),
    Scenario("100k@200", 100_000, 200),
    Scenario("1k@1000", 1_000, 1_000),
    Scenario("10k@1000", 10_000, 1_000),
    Scenario("100k@1000", 100_000, 1_000),
    Scenario("100k@200 scrolled", 100_000, 200, scroll=True),
]


def _passes(results: list[dict[str, object]]) -> bool:
    ok = True
    for r in results:
        if not r["rate"]:
            continue
        limit = TARGETS["p99_ms_at_200"] if r["rate"] == 200 else TARGETS["p99_ms_at_1000"]
        ok = ok and float(r["p99_ms"]) <= limit  # type: ignore[arg-type]
        if r["history"] == 100_000:
            ok = ok and float(r["rss_mb"]) <= TARGETS["rss_mb_at_100000"]  # type: ignore[arg-type]
    return ok


def run_benchmark(
    make_frame: FrameFactory = make_log_frame, seconds: float = 5.0
) -> dict[str, object]:
    """Every scenario in turn (one window); returns the report printed as JSON."""
    load_before = os.getloadavg()[0]
    pygame.display.init()
    pygame.font.init()
    try:
        screen = pygame.display.set_mode(WINDOW)
        # One-time costs of the process (system fonts searched for the first emoji, caches
        # filled) land here instead of in the first scenario; its worst frame is reported.
        warmup = run_scenario(make_frame, screen, Scenario("warm-up", 1_000, 1_000), 1.0)
        results = [run_scenario(make_frame, screen, s, seconds) for s in SCENARIOS]
    finally:
        pygame.quit()
    return {
        "bench": "client_frames",
        "window": list(WINDOW),
        "driver": os.environ.get("SDL_VIDEODRIVER"),
        "seconds_per_scenario": seconds,
        "targets": TARGETS,
        "workload": _workload(),
        "gc_freeze": FREEZE_GC,
        "process_warmup_max_ms": max(warmup["max_ms"], warmup["warmup_max_ms"]),  # type: ignore[type-var]
        # Other processes on the machine show up in p99: the 1-minute load, before and after.
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "pass": _passes(results),
        "scenarios": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario (default 5)")
    parser.add_argument(
        "--frame",
        choices=sorted(FRAMES),
        default="window",
        help="window: the chat screen as the app runs it (default); log: the log widget alone",
    )
    args = parser.parse_args(argv)
    seconds = min(max(args.seconds, 0.5), 30.0)  # bounded run time
    report = run_benchmark(FRAMES[args.frame], seconds=seconds)
    report["frame"] = args.frame
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
