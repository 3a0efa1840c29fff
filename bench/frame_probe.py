#!/usr/bin/env python3
"""Run a pygame program, recording when its loop looks at input and when frames reach the screen.

    python bench/frame_probe.py OUT.json SCRIPT [ARGS...]

Used by bench/client_cpu.py. Wraps ``pygame.event.get`` (a look at input: time taken on
entry) and ``pygame.display.flip`` (a frame shown: time taken on return), runs SCRIPT as
``__main__`` with ARGS, and when the program exits writes ``{"looks": [...], "flips": [...]}``
to OUT, in ``time.monotonic()`` seconds (one clock for every process on the machine, so the
caller can cut out its own phases). The times are kept in arrays and written once, at exit:
a few microseconds a frame, nothing written while measuring.

Nothing in game_chat changes for it: any loop that takes its events once an iteration and
flips the frames it draws is measured the same way, the chat window (run_client.py) and a
game with the chat overlay (examples/lobby_game.py) alike. The program must end normally
(SIGTERM does: SDL turns it into QUIT) for OUT to be written.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import time
from array import array
from pathlib import Path
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # after the banner is hidden


def write(path: Path, looks: array[float], flips: array[float]) -> None:
    path.write_text(json.dumps({"looks": looks.tolist(), "flips": flips.tolist()}))


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, script, *args = sys.argv[1:]
    looks, flips = array("d"), array("d")
    get, flip = pygame.event.get, pygame.display.flip

    def probed_get(*a: Any, **k: Any) -> Any:
        looks.append(time.monotonic())
        return get(*a, **k)

    def probed_flip(*a: Any, **k: Any) -> Any:
        result = flip(*a, **k)
        flips.append(time.monotonic())
        return result

    pygame.event.get = probed_get
    pygame.display.flip = probed_flip
    atexit.register(write, Path(out), looks, flips)
    # As `python SCRIPT ARGS` would: its own argv, its directory first on the path.
    sys.argv = [script, *args]
    sys.path[0] = str(Path(script).resolve().parent)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
