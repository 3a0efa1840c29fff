"""quick_init: a frozen dataclass's faster __init__ keeps everything else the dataclass's."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from game_chat.protocol.messages import Ack, ChatMessage, PrivateMessage
from game_chat.protocol.records import quick_init
from game_chat.server.history import SentKey, StoredMessage


@quick_init
@dataclass(frozen=True)
class _Point:
    x: int
    y: int = 2
    label: str = field(default="p", kw_only=True)


def test_same_signature_defaults_and_keyword_only_fields() -> None:
    @dataclass(frozen=True)
    class Plain:
        x: int
        y: int = 2
        label: str = field(default="p", kw_only=True)

    assert str(inspect.signature(_Point)) == str(inspect.signature(Plain))
    assert _Point(1) == _Point(1, 2, label="p")
    assert _Point(x=1, y=3).y == 3
    with pytest.raises(TypeError):
        _Point(1, 2, "q")  # type: ignore[misc]  # label is keyword-only
    with pytest.raises(TypeError):
        _Point()  # type: ignore[call-arg]


def test_still_frozen_hashable_and_replaceable() -> None:
    p = _Point(1, label="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    assert hash(p) == hash(_Point(1, label="a"))
    assert dataclasses.replace(p, y=7) == _Point(1, 7, label="a")
    assert dataclasses.asdict(p) == {"x": 1, "y": 2, "label": "a"}
    assert repr(p) == "_Point(x=1, y=2, label='a')"


@pytest.mark.parametrize(
    "cls",
    [ChatMessage, PrivateMessage, Ack, StoredMessage, SentKey],
)
def test_the_line_records_use_it_and_build_as_before(cls: type) -> None:
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    args = {f.name: f.default for f in dataclasses.fields(cls)}
    for name in args:
        if args[name] is dataclasses.MISSING:
            args[name] = 1
    made = cls(**args)
    assert dataclasses.asdict(made) == args


def test_refuses_what_it_cannot_copy() -> None:
    with pytest.raises(TypeError, match="plain fields"):

        @quick_init
        @dataclass(frozen=True)
        class Factory:
            items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="__post_init__"):

        @quick_init
        @dataclass(frozen=True)
        class Post:
            x: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="__dict__"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Slotted:
            x: int

    with pytest.raises(TypeError):
        quick_init(int)
