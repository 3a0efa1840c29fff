"""The chat client: a network layer usable by any program, and the Pygame window on top."""
