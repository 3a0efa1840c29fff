"""A faster ``__init__`` for the frozen dataclasses made once per chat line.

A frozen dataclass's generated ``__init__`` sets each field with a call of
``object.__setattr__`` (its own ``__setattr__`` refuses), about 100 ns a field: for the five
records a chat line makes on its way through the server (the message, its stored row, the
delivery, the acceptance, the ack) that was about 2 µs of the line's 18 in a flood
(``bench/line_path.py``; issue 10). :func:`quick_init` gives such a class an
``__init__`` with the same signature and defaults that fills the instance's ``__dict__``
directly (2.5 times as fast); everything else (frozenness, equality, hashing, ``replace``,
``fields``) stays the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Class decorator, under ``@dataclass(frozen=True)``: the faster ``__init__``.

    Only for plain records: every field in ``__init__``, defaults but no default factories,
    no ``__post_init__``, no ``__slots__`` (TypeError otherwise, when the class is made)."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_init takes a dataclass without __post_init__")
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init needs instances with a __dict__")
    namespace: dict[str, Any] = {}
    positional, keyword, body = [], [], []
    for f in dataclasses.fields(cls):
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: quick_init takes plain fields only")
        param = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            param = f"{f.name}=_default_{f.name}"
        (keyword if f.kw_only else positional).append(param)
        body.append(f"    d[{f.name!r}] = {f.name}")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({params}):\n    d = self.__dict__\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # (as dataclasses itself makes __init__)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = cls.__init__.__annotations__  # (help() and signatures as before)
    cls.__init__ = init  # type: ignore[misc]
    return cls
