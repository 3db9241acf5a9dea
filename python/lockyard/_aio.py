"""asyncio glue: an acquisition runs on lockyard's own thread, which waits
in an event reactor (no polling) and, when it ends, writes a byte to a
socket the loop watches (``add_reader``). The loop never blocks, and
lockyard's thread never runs Python code."""

from __future__ import annotations

import asyncio
from types import TracebackType
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockyard._lockyard import Guard, Lock


async def _acquire(lock: Lock, timeout: float | None, shared: bool) -> Guard:  # noqa: FBT001
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not ended.done():
            ended.set_result(None)

    pending = lock._start(timeout, shared)
    fd = pending.fileno()
    loop.add_reader(fd, settle)
    try:
        await ended
    except BaseException:
        # Cancelled (or the loop is closing): the acquisition is dropped,
        # and a lock it got meanwhile is released.
        pending.cancel()
        raise
    finally:
        loop.remove_reader(fd)
    return pending.result()


class Acquiring(Coroutine[Any, Any, "Guard"]):
    """``await lock.acquire_async()`` gives a ``Guard``; ``async with
    lock.acquire_async() as guard:`` also releases it on exit. A coroutine,
    so ``asyncio.create_task`` and ``TaskGroup`` take it too."""

    def __init__(self, lock: Lock, timeout: float | None, shared: bool) -> None:  # noqa: FBT001
        self._lock = lock
        self._timeout = timeout
        self._shared = shared
        self._running: Coroutine[Any, Any, Guard] | None = None
        self._guard: Guard | None = None

    def _coroutine(self) -> Coroutine[Any, Any, Guard]:
        if self._running is None:
            self._running = _acquire(self._lock, self._timeout, self._shared)
        return self._running

    def send(self, value: Any) -> Any:
        return self._coroutine().send(value)

    def throw(self, *args: Any) -> Any:
        return self._coroutine().throw(*args)

    def close(self) -> None:
        if self._running is not None:
            self._running.close()

    def __await__(self) -> Generator[Any, None, Guard]:
        return self._coroutine().__await__()

    async def __aenter__(self) -> Guard:
        self._guard = await self._coroutine()
        return self._guard

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._guard is not None:
            self._guard.release()


def acquire(lock: Lock, timeout: float | None, shared: bool) -> Acquiring:  # noqa: FBT001
    """What ``Lock.acquire_async`` returns."""
    return Acquiring(lock, timeout, shared)
