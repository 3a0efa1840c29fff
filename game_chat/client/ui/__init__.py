"""Pygame widgets: each splits ``handle_event`` / ``update`` / ``draw``; ``draw`` changes no state."""
