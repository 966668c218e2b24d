"""Repeating calls on the reactor's loop, started and stopped the same way by every component."""

from __future__ import annotations

from collections.abc import Callable

from scrapy.utils.asyncio import AsyncioLoopingCall, create_looping_call
from twisted.internet.task import LoopingCall

Repeating = AsyncioLoopingCall | LoopingCall


def every(seconds: float, function: Callable[[], object], *, now: bool = True) -> Repeating:
    """Call ``function`` every ``seconds`` (first at once when ``now``)."""
    call = create_looping_call(function)
    call.start(seconds, now=now)
    return call


def stop(call: Repeating | None) -> None:
    if call is not None and call.running:
        call.stop()
