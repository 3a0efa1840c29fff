"""Pygame widgets: each has ``handle_event`` / ``update`` / ``draw``; ``draw`` changes nothing."""
