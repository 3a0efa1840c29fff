#!/usr/bin/env python3
"""Open the game_chat window: ``python run_client.py --help`` for the options."""

import sys

from game_chat.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
