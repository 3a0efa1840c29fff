#!/usr/bin/env python3
"""Open the game_chat window: ``python run_client.py --help`` for the options."""

import os
import sys

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from game_chat.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
