#!/usr/bin/env python3
"""Start the game_chat server without any display: ``python run_server.py --help``."""

import sys

from game_chat.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
