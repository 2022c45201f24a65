"""Hold or break one of the dialog workflow's activities, to see what happens meanwhile.

A gate replaces an activity method of ``DialogActivities`` (or another activities class)
before the worker is built: each call announces itself, waits until the test opens the gate,
then runs the real method, or fails while the test says the database is down.
"""

import asyncio
import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from temporalio import activity


class Gate:
    """The calls of one activity: ``entered`` is set when one starts; it waits while closed."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.open.set()
        self.failing: type[Exception] | None = None
        self.calls = 0

    def close(self) -> None:
        self.entered.clear()
        self.open.clear()

    @contextmanager
    def down(self, error: type[Exception] = OperationalError) -> Iterator[None]:
        """Every call fails with ``error`` (by its class name, as Temporal sees it) meanwhile."""
        self.failing = error
        try:
            yield
        finally:
            self.failing = None


def install(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> Gate:
    """Put a gate in front of ``cls.name`` (an ``@activity.defn`` method)."""
    gate = Gate()
    original: Callable[..., Any] = getattr(cls, name)

    async def gated(self, argument):
        gate.calls += 1
        gate.entered.set()
        await gate.open.wait()
        if gate.failing is OperationalError:
            raise OperationalError("SELECT 1", {}, Exception("the database is unreachable"))
        if gate.failing is not None:
            raise gate.failing("the database is unreachable")
        return await original(self, argument)

    gated.__name__ = gated.__qualname__ = name
    # The argument's type, for the data converter (``self`` stays unannotated: not an argument).
    hints = typing.get_type_hints(original)
    (parameter,) = [p for p in inspect.signature(original).parameters if p != "self"]
    gated.__annotations__ = {"argument": hints[parameter], "return": hints["return"]}
    monkeypatch.setattr(cls, name, activity.defn(name=name)(gated))
    return gate
