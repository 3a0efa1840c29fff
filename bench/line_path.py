"""The server's Python work per chat line and per recipient, in one process (issue 10).

peer-bench and ``bench/fanout.py`` measure the whole server from outside, with the kernel,
the scheduler and the load generator in the figure. This measures the two costs the fan-out
work is about, in the calling thread only (``time.thread_time``), on real sockets
(socketpairs) and a real ChatState with its memory-only store:

- **line path**: ``ChatState.say`` + ``wait`` for plain members in one room: validation, the
  store's transaction, the fan-out, the ack and the room's flush to every member; once with
  8 lines per commit (a flood: a reader hands over what one ``recv`` held) and once with 1
  (low load: every line commits alone);
- **flush per member**: one line appended to a room's stream and flushed to N members
  (``flush_now``), against a bare ``sock.send`` of the same bytes to the same N sockets.

Receivers are drained between rounds, outside the timed part.

    python3 bench/line_path.py            # medians of 5 runs
    python3 bench/line_path.py --profile  # cProfile of the 8-line case, by own time
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from game_chat.server.members import Dialect, Member
from game_chat.server.outbox import Outbox
from game_chat.server.state import ChatState
from game_chat.server.stream import RoomStream, flush_now

TEXT = "BENCH n0 1 1.0 " + "y" * 80  # a 100-byte payload, as peer-bench's
FRAME = b"%-64d" % 100 + b"x" * 100


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return ours, theirs


def _drain(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        try:
            while sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


def _outbox(sock: socket.socket) -> Outbox:
    return Outbox(1 << 22, lambda: None, lambda: None, sock=sock)


def line_path(members: int, senders: int, per_commit: int, rounds: int, runs: int) -> float:
    """µs of CPU per line, median of ``runs`` after one run to warm up: ``senders`` members
    say ``per_commit`` lines each, then wait; ``rounds`` times per run."""
    state = ChatState()
    pairs = [_pair() for _ in range(members)]
    joined: list[Member] = [
        state.join(f"n{i}", Dialect.PLAIN, _outbox(ours)) for i, (ours, _) in enumerate(pairs)
    ]
    theirs = [t for _, t in pairs]
    _drain(theirs)

    def run() -> float:
        spent = 0.0
        for _ in range(rounds):
            start = time.thread_time()
            for member in joined[:senders]:
                tickets = [state.say(member, TEXT) for _ in range(per_commit)]
                state.wait(tickets[-1].ticket)
            spent += time.thread_time() - start
            _drain(theirs)
        return spent / (rounds * senders * per_commit) * 1e6

    try:
        run()  # (the first run is slower: the interpreter specialises, the store grows)
        return statistics.median(run() for _ in range(max(1, runs)))
    finally:
        state.close()
        for ours, other in pairs:
            ours.close()
            other.close()


def flush_per_member(members: int, rounds: int) -> tuple[float, float]:
    """µs of CPU per member: a room's flush of one line, and a bare ``send`` loop."""
    pairs = [_pair() for _ in range(members)]
    stream = RoomStream("#bench")
    for ours, _ in pairs:
        _outbox(ours).follow({stream: (Dialect.PLAIN, True)})
    theirs = [t for _, t in pairs]
    socks = [s for s, _ in pairs]

    def timed(step: Callable[[], None]) -> float:
        spent = 0.0
        for _ in range(rounds):
            start = time.thread_time()
            step()
            spent += time.thread_time() - start
            _drain(theirs)
        return spent / (rounds * members) * 1e6

    def flush() -> None:
        stream.append({(Dialect.PLAIN, True): FRAME})
        flush_now(stream)

    def bare() -> None:
        for sock in socks:
            sock.send(FRAME)

    try:
        return timed(flush), timed(bare)
    finally:
        for ours, other in pairs:
            ours.close()
            other.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each figure (median)")
    parser.add_argument("--rounds", type=int, default=300, help="rounds per run")
    parser.add_argument("--members", type=int, default=50, help="members of the line path's room")
    parser.add_argument("--profile", action="store_true", help="cProfile the 8-line case")
    args = parser.parse_args(argv)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(line_path, args.members, 10, 8, args.rounds, 1)
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    runs = range(max(1, args.runs))
    batched = line_path(args.members, 10, 8, args.rounds, args.runs)
    alone = line_path(2, 2, 1, args.rounds * 4, args.runs)
    flushes = [flush_per_member(100, args.rounds * 4) for _ in runs]
    flush = statistics.median(f for f, _ in flushes)
    bare = statistics.median(b for _, b in flushes)
    print(f"line path, {args.members} members, 8 lines per commit: {batched:.1f} µs per line")
    print(f"line path, 2 members, 1 line per commit: {alone:.1f} µs per line")
    print(f"flush of one line to 100 members: {flush:.2f} µs per member")
    print(f"bare send loop to the same sockets: {bare:.2f} µs per member")


if __name__ == "__main__":
    main()
