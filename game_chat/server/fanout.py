"""One delivery pass: what a batch of stored lines sends, gathered member by member.

The group-commit thread delivers lines in batches (server/group_commit.py). Sending each
line to each member separately would cost a queue operation, and often a ``send``, per line
and recipient. Instead, under the state's lock, :class:`Fanout` gathers each member's bytes
of the whole batch in order (a run of lines in one room is encoded once per dialect and
joined into one blob that every ordinary member shares), and queues them with one call per
member, waking no thread. Once the commit is let go (so that the next batch can be
committed by another thread meanwhile), the delivering thread writes them through: one
``send`` per member per batch, with no hand-off to a sender thread unless a socket is full.
Under a flood batches grow, so the cost per line falls; at low load a line is one ``send``
per recipient.

Lines said in a room do not go member by member at all: they are appended to the room's
stream (server/stream.py), noted in :attr:`Fanout.streams`, and the room is flushed after
the commit (at once, or a little later when the room is busy: server/stream.py's
Coalescer). Only what differs per member (acks, private lines, events) is gathered here.
"""

from __future__ import annotations

from typing import Any

from .stream import RoomStream


class Fanout:
    """Bytes for members, in the order they were added; each member's put at once."""

    __slots__ = ("_chunks", "_held", "streams")

    def __init__(self) -> None:
        # member -> its bytes, or the list of its chunks in order once it has several
        self._chunks: dict[Any, bytes | list[bytes]] = {}
        self._held: list[Any] = []  # mailboxes that were empty: to write through
        #: Room streams that got lines in this pass: to flush once the commit is let go.
        self.streams: set[RoomStream] = set()

    def add(self, member: Any, data: bytes) -> None:
        """Queue ``data`` (one or more whole frames; b"" is nothing) for ``member``."""
        if data:
            chunks = self._chunks.get(member)
            if chunks is None:
                self._chunks[member] = data
            elif type(chunks) is list:
                chunks.append(data)
            else:
                self._chunks[member] = [chunks, data]  # type: ignore[list-item]

    def settle(self) -> None:
        """State lock held, before a line is appended to a room's stream: what is gathered
        so far is put now, so that it comes before that line (a member's own bytes and its
        rooms' lines in one order). One put per member, waking no thread."""
        held = self._held
        for member, data in self._chunks.items():
            mailbox = member.mailbox
            if mailbox.put_held(data if type(data) is bytes else b"".join(data)):
                held.append(mailbox)
        self._chunks.clear()

    def put(self) -> list[Any]:
        """State lock held, at the end of the pass: :meth:`settle`. Returns the mailboxes
        that were empty, for :func:`write_through` once the caller holds no lock (and has let
        the next commit go)."""
        self.settle()
        return self._held


def write_through(mailboxes: list[Any]) -> None:
    """Send what :meth:`Fanout.put` queued into empty mailboxes, from this thread, in a
    tight loop: the sooner one member's bytes follow the last one's, the more of them a
    receiving process takes per wake-up (and a wake-up costs the sender more than a send)."""
    for mailbox in mailboxes:
        mailbox.write_through()
