#!/usr/bin/env python3
"""Flood benchmark: do honest clients notice a flooder? (issue 9's "done when")

    python bench/flood.py --runs 3

Runs the same honest load twice on a fresh server with the default flood limits: 50 clients,
each typing a line a second (bench/fanout.py scenario b's machinery, 50 lines/s in all,
exactly-once and in-order checked), once alone and once beside a flooder: one rich client
sending chat lines flat out, which is refused (``rate_limited``), then kicked (excess flood),
and reconnects at once to flood again, for the whole run. Prints one JSON line per pair of
runs and a summary: the honest clients' p99 latency with and without the flood (target: at
most 2x), what the flooder got (lines refused, kicks), and whether any honest line was refused,
lost, duplicated or reordered. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import fanout

ROOT = Path(__file__).resolve().parent.parent
HEADER = 64
BURST_LINES = 200  # the flooder writes this many lines per send, as fast as the socket takes


def frame(payload: bytes) -> bytes:
    return b"%-64d" % len(payload) + payload


class Tally:
    """What the flooder saw (shared with the parent)."""

    def __init__(self) -> None:
        self.refused = mp.Value("q", 0)
        self.kicks = mp.Value("q", 0)
        self.accepted = mp.Value("q", 0)
        self.connections = mp.Value("q", 0)


def flooder(address: tuple[str, int], until: float, tally: Tally) -> None:
    """Connect, flood, get kicked, reconnect: until ``until`` (monotonic).

    Niced: a real flooder runs on a machine of its own, and this one must not take the CPU
    that the honest clients' load generator needs to measure on a 2-core machine (it still
    takes every cycle nobody else wants)."""
    os.nice(19)
    line = b'{"type":"chat","text":"FLOOD FLOOD FLOOD FLOOD FLOOD"}'
    burst = frame(line) * BURST_LINES
    hello = frame(b'{"type":"hello","nick":"flooder","version":1}')
    while time.monotonic() < until:
        try:
            with socket.create_connection(address, timeout=2) as sock:
                tally.connections.value += 1
                sock.sendall(hello)
                sock.setblocking(False)
                flood_until_kicked(sock, burst, until, tally)
        except OSError:
            time.sleep(0.05)  # refused (nick still held by the old one) or reset: again


def flood_until_kicked(sock: socket.socket, burst: bytes, until: float, tally: Tally) -> None:
    buffer = b""
    while time.monotonic() < until:
        try:
            sock.send(burst)
        except BlockingIOError:
            pass
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        if not data:
            return  # kicked: the server closed
        buffer += data
        while len(buffer) >= HEADER:
            size = int(buffer[:HEADER].strip() or b"0")
            if len(buffer) < HEADER + size:
                break
            payload, buffer = buffer[HEADER : HEADER + size], buffer[HEADER + size :]
            count(payload, tally)


def count(payload: bytes, tally: Tally) -> None:
    try:
        message = json.loads(payload)
    except ValueError:
        return
    if message.get("type") == "ack":
        tally.accepted.value += 1
    elif message.get("code") == "rate_limited":
        if message.get("fatal"):
            tally.kicks.value += 1
        else:
            tally.refused.value += 1


def honest_run(args: argparse.Namespace, with_flood: bool) -> dict[str, Any]:
    """One server, the honest load, and (maybe) the flooder beside it."""
    scenario = replace(
        fanout.SCENARIOS["b"],
        clients=args.clients,
        senders=args.clients,
        rate=args.clients * args.line_rate,
        flood_limits=True,
        max_p99_ms=1e9,
    )
    tally = Tally()
    with fanout.launched_server("game_chat", scenario, args) as server:
        load_args = argparse.Namespace(**{**vars(args), "address": "{}:{}".format(*server.address)})
        until = time.monotonic() + args.duration + 10  # setup of the honest clients included
        flood = mp.Process(target=flooder, args=(server.address, until, tally), daemon=True)
        if with_flood:
            flood.start()
        try:
            line = fanout.run_once(scenario, "external", load_args)
        finally:
            if with_flood:
                flood.terminate()
                flood.join(5)
    line["flood"] = with_flood
    if with_flood:
        line["flooder"] = {
            "connections": tally.connections.value,
            "accepted": tally.accepted.value,
            "refused": tally.refused.value,
            "kicks": tally.kicks.value,
        }
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="pairs of runs (medians printed)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of honest load")
    parser.add_argument("--clients", type=int, default=50, help="honest clients")
    parser.add_argument("--line-rate", type=float, default=1.0, help="lines/s per honest client")
    fanout_defaults = fanout.build_parser().parse_args([])
    args = parser.parse_args(argv)
    args = argparse.Namespace(**{**vars(fanout_defaults), **vars(args)})
    quiet, flooded = [], []
    for _ in range(args.runs):
        quiet.append(honest_run(args, with_flood=False))
        flooded.append(honest_run(args, with_flood=True))
        print(json.dumps({"quiet": slim(quiet[-1]), "flooded": slim(flooded[-1])}), flush=True)
    p99_quiet = statistics.median(line["p99_ms"] for line in quiet)
    p99_flooded = statistics.median(line["p99_ms"] for line in flooded)
    kicked = all(line["flooder"]["kicks"] > 0 for line in flooded)
    refused = all(line["flooder"]["refused"] > 0 for line in flooded)
    exact = all(
        line["lost"] == line["duplicated"] == line["reordered"] == 0 and line["drained"]
        for line in quiet + flooded
    )
    honest_refused = sum(honest_errors(line) for line in quiet + flooded)
    summary = {
        "summary": True,
        "p99_ms_quiet": p99_quiet,
        "p99_ms_flooded": p99_flooded,
        "ratio": round(p99_flooded / max(p99_quiet, 1e-9), 2),
        "ratio_target": 2.0,
        "flooder_refused_and_kicked": refused and kicked,
        "honest_exact": exact,
        "honest_errors": honest_refused,
    }
    print(json.dumps(summary), flush=True)
    ok = summary["ratio"] <= 2.0 and refused and kicked and exact and not honest_refused
    return 0 if ok else 1


def honest_errors(line: dict[str, Any]) -> int:
    """Honest lines refused (no ack) and error lines seen by honest clients. The flooder's
    own lines and its joins and leaves reach them too: those are not errors."""
    problems = line.get("problems", {})
    errors = [s for s in problems.get("other_frames", []) if "ERROR" in str(s)]
    return int(problems.get("missing_acks", 0)) + len(errors)


def slim(line: dict[str, Any]) -> dict[str, Any]:
    keep = ("p50_ms", "p99_ms", "max_ms", "deliveries", "lost", "duplicated", "reordered")
    out = {key: line[key] for key in keep}
    if "problems" in line:
        out["problems"] = line["problems"]
    if "flooder" in line:
        out["flooder"] = line["flooder"]
    return out


if __name__ == "__main__":
    sys.exit(main())
