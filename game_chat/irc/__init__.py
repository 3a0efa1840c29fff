"""The IRC listener (``run_server.py --irc-port``): IRC clients in the chat's rooms.

See docs/IRC.md."""
