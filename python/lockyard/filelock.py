"""filelock's API on lockyard: change ``from filelock import FileLock`` to
``from lockyard.filelock import FileLock``.

Differences from filelock, on purpose: a wait is woken by the release (no
``poll_interval``: it is accepted and ignored), and the lock file holds a
holder record (who holds it, a fencing token) instead of staying empty.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from weakref import WeakValueDictionary
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any

from lockyard._lockyard import RawLock

_LOGGER = logging.getLogger("filelock")

__all__ = [
    "AcquireReturnProxy",
    "AsyncAcquireReturnProxy",
    "AsyncFileLock",
    "AsyncSoftFileLock",
    "BaseAsyncFileLock",
    "BaseFileLock",
    "FileLock",
    "SoftFileLock",
    "Timeout",
]


class Timeout(TimeoutError):  # noqa: N818 (filelock's name)
    """Raised when the lock could not be acquired in ``timeout`` seconds."""

    def __init__(self, lock_file: str) -> None:
        super().__init__()
        self._lock_file = lock_file

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self._lock_file,)

    def __str__(self) -> str:
        return f"The file lock '{self._lock_file}' could not be acquired."

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.lock_file!r})"

    @property
    def lock_file(self) -> str:
        """The path of the file lock."""
        return self._lock_file


class AcquireReturnProxy:
    """What ``acquire`` returns: a context manager that releases on exit."""

    def __init__(self, lock: BaseFileLock) -> None:
        self.lock = lock

    def __enter__(self) -> BaseFileLock:
        return self.lock

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.lock.release()


class _State(threading.local):
    def __init__(self) -> None:
        self.raw: RawLock | None = None
        self.counter = 0


class _Shared:
    def __init__(self) -> None:
        self.raw: RawLock | None = None
        self.counter = 0


class BaseFileLock(ContextDecorator):
    """A lock on ``lock_file``, reentrant per object (and per thread when
    ``thread_local``)."""

    _SOFT = False
    _instances: WeakValueDictionary[str, BaseFileLock]
    _instances_guard = threading.Lock()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instances = WeakValueDictionary()

    def __new__(
        cls,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = 0o644,
        thread_local: bool = True,  # noqa: FBT001, FBT002
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        **kwargs: Any,
    ) -> BaseFileLock:
        if not is_singleton:
            return super().__new__(cls)
        key = os.fspath(lock_file)
        with cls._instances_guard:
            instance = cls._instances.get(key)
            if instance is None:
                instance = super().__new__(cls)
                cls._instances[key] = instance
                instance._initialized = False
            return instance

    def __init__(
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = 0o644,
        thread_local: bool = True,  # noqa: FBT001, FBT002
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        **kwargs: Any,
    ) -> None:
        if is_singleton and getattr(self, "_initialized", False):
            given = {"timeout": timeout, "mode": mode, "thread_local": thread_local, "blocking": blocking}
            kept = {
                "timeout": self._timeout,
                "mode": self._mode,
                "thread_local": self._is_thread_local,
                "blocking": self._blocking,
            }
            differing = {k: (kept[k], v) for k, v in given.items() if kept[k] != v}
            if differing:
                msg = f"Singleton lock instances cannot be initialized with differing arguments\nNon-matching arguments: {differing}"
                raise ValueError(msg)
            return
        self._initialized = True
        self._lock_file = os.fspath(lock_file)
        self._timeout = timeout
        self._mode = mode
        self._blocking = blocking
        self._is_thread_local = thread_local
        self._state: _State | _Shared = _State() if thread_local else _Shared()

    @property
    def lock_file(self) -> str:
        """The path of the lock file."""
        return self._lock_file

    @property
    def timeout(self) -> float:
        """The default timeout, in seconds (negative: wait for ever)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | str) -> None:
        self._timeout = float(value)

    @property
    def blocking(self) -> bool:
        """Whether ``acquire`` waits by default."""
        return self._blocking

    @blocking.setter
    def blocking(self, value: bool) -> None:
        self._blocking = value

    @property
    def mode(self) -> int:
        """The lock file's permission bits when it is created."""
        return self._mode

    @property
    def is_thread_local(self) -> bool:
        """Whether each thread has its own reentrancy count."""
        return self._is_thread_local

    @property
    def is_locked(self) -> bool:
        """Whether this object (this thread, when thread-local) holds it."""
        return self._state.counter > 0

    @property
    def lock_counter(self) -> int:
        """How many times it was acquired and not yet released."""
        return self._state.counter

    def _raw(self) -> RawLock:
        if self._state.raw is None:
            self._state.raw = RawLock(self._lock_file, soft=self._SOFT, mode=self._mode)
        return self._state.raw

    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float = 0.05,  # noqa: ARG002 (waits are woken, not polled)
        *,
        poll_intervall: float | None = None,
        blocking: bool | None = None,
    ) -> AcquireReturnProxy:
        """Acquires the lock (reentrant: a holder's acquire only counts).

        Raises ``Timeout`` when it cannot be had within ``timeout`` seconds
        (``self.timeout`` if None; negative waits for ever, 0 tries once),
        or at once with ``blocking=False``.
        """
        if poll_intervall is not None:
            msg = "use poll_interval instead of poll_intervall"
            warnings.warn(msg, DeprecationWarning, stacklevel=2)
        if timeout is None:
            timeout = self._timeout
        if blocking is None:
            blocking = self._blocking
        state = self._state
        if state.counter > 0:
            state.counter += 1
            return AcquireReturnProxy(lock=self)
        raw = self._raw()
        lock_id, name = id(self), self._lock_file
        _LOGGER.debug("Attempting to acquire lock %s on %s", lock_id, name)
        if not raw.acquire(0.0):
            _LOGGER.debug("Failed to immediately acquire lock %s on %s", lock_id, name)
            if not blocking or timeout == 0:
                _LOGGER.debug("Timeout on acquiring lock %s on %s", lock_id, name)
                raise Timeout(name)
            _LOGGER.debug("Lock %s not acquired on %s, waiting for its release", lock_id, name)
            if not raw.acquire(None if timeout < 0 else float(timeout)):
                _LOGGER.debug("Timeout on acquiring lock %s on %s", lock_id, name)
                raise Timeout(name)
        _LOGGER.debug("Lock %s acquired on %s", lock_id, name)
        state.counter = 1
        return AcquireReturnProxy(lock=self)

    def release(self, force: bool = False) -> None:  # noqa: FBT001, FBT002
        """Releases one acquisition (all of them with ``force``)."""
        state = self._state
        if state.counter == 0:
            return
        state.counter = 0 if force else state.counter - 1
        if state.counter == 0 and state.raw is not None:
            lock_id, name = id(self), self._lock_file
            _LOGGER.debug("Attempting to release lock %s on %s", lock_id, name)
            state.raw.release()
            _LOGGER.debug("Lock %s released on %s", lock_id, name)

    def __enter__(self) -> BaseFileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            # The synchronous release, for async locks too.
            BaseFileLock.release(self, force=True)
        except Exception:  # noqa: BLE001 (interpreter shutting down)
            pass

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lock_file={self._lock_file!r})"


class FileLock(BaseFileLock):
    """An OS lock (``flock`` / ``LockFileEx``) on the lock file."""


class SoftFileLock(BaseFileLock):
    """A sidecar lock file for filesystems whose OS locks are missing or
    unreliable (network and FUSE filesystems)."""

    _SOFT = True


class AsyncAcquireReturnProxy:
    """What ``AsyncFileLock.acquire`` returns: an async context manager
    that releases on exit."""

    def __init__(self, lock: BaseAsyncFileLock) -> None:
        self.lock = lock

    async def __aenter__(self) -> BaseAsyncFileLock:
        return self.lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.lock.release()


class BaseAsyncFileLock(BaseFileLock):
    """filelock's async lock: ``await lock.acquire()``, ``async with lock``.

    A wait suspends the coroutine and leaves the event loop running; it
    is woken by the holder's release (lockyard's own thread drives the
    wait and hands the outcome to the loop), never by a poll. Cancelling
    the task leaves nothing held.
    """

    async def acquire(  # type: ignore[override]
        self,
        timeout: float | None = None,
        poll_interval: float = 0.05,  # noqa: ARG002 (waits are woken, not polled)
        *,
        blocking: bool | None = None,
        **kwargs: Any,
    ) -> AsyncAcquireReturnProxy:
        """Acquires the lock (reentrant); raises ``Timeout`` as
        ``FileLock.acquire`` does."""
        import asyncio

        if timeout is None:
            timeout = self._timeout
        if blocking is None:
            blocking = self._blocking
        state = self._state
        if state.counter > 0:
            state.counter += 1
            return AsyncAcquireReturnProxy(lock=self)
        raw = self._raw()
        lock_id, name = id(self), self._lock_file
        _LOGGER.debug("Attempting to acquire lock %s on %s", lock_id, name)
        if raw.acquire(0.0):
            _LOGGER.debug("Lock %s acquired on %s", lock_id, name)
            state.counter = 1
            return AsyncAcquireReturnProxy(lock=self)
        _LOGGER.debug("Failed to immediately acquire lock %s on %s", lock_id, name)
        if not blocking or timeout == 0:
            _LOGGER.debug("Timeout on acquiring lock %s on %s", lock_id, name)
            raise Timeout(name)
        _LOGGER.debug("Lock %s not acquired on %s, waiting for its release", lock_id, name)
        wait = None if timeout < 0 else float(timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any) -> None:
            if not done.done():
                done.set_result(result)

        pending = raw.acquire_async(wait, lambda result: loop.call_soon_threadsafe(settle, result))
        try:
            result = await done
        except BaseException:
            # Cancelled (or the loop is closing): the acquisition is
            # dropped, and a lock it got meanwhile is released.
            pending.cancel()
            raise
        if result is True and raw.adopt(pending):
            _LOGGER.debug("Lock %s acquired on %s", lock_id, name)
            state.counter = 1
            return AsyncAcquireReturnProxy(lock=self)
        if result is False or result is True:
            _LOGGER.debug("Timeout on acquiring lock %s on %s", lock_id, name)
            raise Timeout(name)
        raise OSError(result)

    async def release(self, force: bool = False) -> None:  # type: ignore[override]  # noqa: FBT001, FBT002
        """Releases one acquisition (all of them with ``force``)."""
        BaseFileLock.release(self, force)

    async def __aenter__(self) -> BaseAsyncFileLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()

    def __enter__(self) -> BaseFileLock:
        msg = "use `async with` with an async lock"
        raise NotImplementedError(msg)


class AsyncFileLock(BaseAsyncFileLock):
    """An OS lock, for asyncio."""


class AsyncSoftFileLock(BaseAsyncFileLock):
    """A sidecar lock file, for asyncio."""

    _SOFT = True
