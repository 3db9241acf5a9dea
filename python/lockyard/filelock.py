"""filelock's API on lockyard: change ``from filelock import FileLock`` to
``from lockyard.filelock import FileLock``.

Differences from filelock, on purpose: a wait is woken by the release (no
``poll_interval``: it is accepted and ignored), the lock file holds a holder
record (who holds it, a fencing token) instead of staying empty, and a
process forked while a lock is held does not hold it (see the README).
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import threading
import warnings
from weakref import WeakValueDictionary
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any

from lockyard.errors import LockTimeout, LockyardError, WouldBlock
from lockyard._lockyard import Guard, Lock

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


# How many forks separate this process from the one that imported the
# module: bumped in each child, so a state can tell it was copied by a
# fork without a getpid() system call on every acquire and release.
_forks = 0


def _forked() -> None:
    global _forks  # noqa: PLW0603 (one counter per process)
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class _State(threading.local):
    def __init__(self) -> None:
        self.guard: Guard | None = None
        self.counter = 0
        self.forks = _forks


class _Shared:
    def __init__(self) -> None:
        self.guard: Guard | None = None
        self.counter = 0
        self.forks = _forks


def _as_os_error(error: LockyardError, path: str) -> OSError:
    """lockyard's error as the built-in ``OSError`` subclass filelock's
    users catch (``FileNotFoundError``, ``PermissionError``,
    ``IsADirectoryError``...), with lockyard's message kept as the cause."""
    code = error.errno
    if code is None and path == "":
        code = errno.ENOENT
    if code is None and os.path.isdir(path):
        code = errno.EISDIR
    if code is None:
        return error
    return OSError(code, os.strerror(code), path)


def _take(lock: Lock, timeout: float | None, path: str) -> Guard | None:
    try:
        return lock._take(timeout)
    except LockyardError as e:
        raise _as_os_error(e, path) from e


def _arguments(init: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments ``init`` would see by name, defaults and ``**kwargs``
    included; None when they do not fit it (Python then says why)."""
    signature = inspect.signature(init)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    named: dict[str, Any] = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL and index > 0:
            named[name] = value
    return named


class _Singletons(type):
    """Makes ``is_singleton=True`` give the one live instance per path and
    class: built and ``__init__``-ed once, later calls with the same
    arguments return it, differing ones raise ``ValueError``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        given = _arguments(cls.__init__, args, kwargs)
        if given is None or not given.get("is_singleton", False):
            return super().__call__(*args, **kwargs)
        key = str(given.get("lock_file", args[0] if args else None))
        with cls._instances_guard:  # type: ignore[attr-defined]
            instance = cls._instances.get(key)  # type: ignore[attr-defined]
            if instance is None:
                instance = super().__call__(*args, **kwargs)
                cls._instances[key] = instance  # type: ignore[attr-defined]
                return instance
        kept = {
            "thread_local": instance.is_thread_local(),
            "timeout": instance.timeout,
            "mode": instance.mode,
            "blocking": instance.blocking,
        }
        differing = [
            f"{k} (existing lock has {kept[k]} but {given[k]} was passed)"
            for k in kept
            if k in given and kept[k] != given[k]
        ]
        if differing:
            msg = "Singleton lock instances cannot be initialized with differing arguments"
            msg += "\nNon-matching arguments: " + "".join(f"\n\t{d}" for d in differing)
            raise ValueError(msg)
        return instance


class BaseFileLock(ContextDecorator, metaclass=_Singletons):
    """A lock on ``lock_file``, reentrant per object (and per thread when
    ``thread_local``)."""

    _SOFT = False
    _instances: WeakValueDictionary[str, BaseFileLock]
    _instances_guard = threading.Lock()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instances = WeakValueDictionary()

    def __init__(  # noqa: PLR0913
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = 0o644,
        thread_local: bool = True,  # noqa: FBT001, FBT002
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        **kwargs: Any,  # noqa: ARG002 (filelock's subclasses pass their own)
    ) -> None:
        self._lock_file = os.fspath(lock_file)
        self._timeout = timeout
        self._mode = mode
        self._blocking = blocking
        self._is_thread_local = thread_local
        self._is_singleton = is_singleton
        self._states: _State | _Shared = _State() if thread_local else _Shared()
        self._native: Lock | None = None

    @property
    def _state(self) -> _State | _Shared:
        state = self._states
        if state.forks != _forks:
            # Forked while held: the hold is the parent's, not this
            # process's (the guard's copy releases nothing).
            state.guard, state.counter, state.forks = None, 0, _forks
        return state

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

    def is_thread_local(self) -> bool:
        """Whether each thread has its own reentrancy count."""
        return self._is_thread_local

    @property
    def is_singleton(self) -> bool:
        """Whether this is the one instance for its path (``is_singleton``)."""
        return self._is_singleton

    @property
    def is_locked(self) -> bool:
        """Whether this object (this thread, when thread-local) holds it."""
        return self._state.counter > 0

    @property
    def lock_counter(self) -> int:
        """How many times it was acquired and not yet released."""
        return self._state.counter

    def _lock(self) -> Lock:
        if self._native is None:
            if "\0" in self._lock_file:
                # What os.open says of such a path.
                msg = "embedded null byte"
                raise ValueError(msg)
            self._native = Lock(self._lock_file, soft=self._SOFT, mode=self._mode)
        return self._native

    def _begin(
        self, timeout: float | None, blocking: bool | None
    ) -> tuple[Lock, Guard | None, float | None] | None:
        """An acquisition up to its wait: None when this holder has it
        already (counted); else the lock, the guard if the first attempt
        won it, and how long to wait if not (None: for ever). Raises
        ``Timeout`` when it is busy and not to be waited for."""
        if timeout is None:
            timeout = self._timeout
        if blocking is None:
            blocking = self._blocking
        state = self._state
        if state.counter > 0:
            state.counter += 1
            return None
        lock = self._lock()
        lock_id, name = id(self), self._lock_file
        _LOGGER.debug("Attempting to acquire lock %s on %s", lock_id, name)
        guard = _take(lock, 0.0, name)
        if guard is None:
            _LOGGER.debug("Failed to immediately acquire lock %s on %s", lock_id, name)
            if not blocking or timeout == 0:
                raise self._timed_out()
            _LOGGER.debug("Lock %s not acquired on %s, waiting for its release", lock_id, name)
        return lock, guard, None if timeout < 0 else float(timeout)

    def _timed_out(self) -> Timeout:
        _LOGGER.debug("Timeout on acquiring lock %s on %s", id(self), self._lock_file)
        return Timeout(self._lock_file)

    def _acquired(self, guard: Guard) -> None:
        _LOGGER.debug("Lock %s acquired on %s", id(self), self._lock_file)
        state = self._state
        state.guard, state.counter = guard, 1

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
        begun = self._begin(timeout, blocking)
        if begun is not None:
            lock, guard, wait = begun
            if guard is None:
                guard = _take(lock, wait, self._lock_file)
                if guard is None:
                    raise self._timed_out()
            self._acquired(guard)
        return AcquireReturnProxy(lock=self)

    def release(self, force: bool = False) -> None:  # noqa: FBT001, FBT002
        """Releases one acquisition (all of them with ``force``)."""
        state = self._state
        if state.counter == 0:
            return
        state.counter = 0 if force else state.counter - 1
        if state.counter == 0 and state.guard is not None:
            lock_id, name = id(self), self._lock_file
            _LOGGER.debug("Attempting to release lock %s on %s", lock_id, name)
            guard, state.guard = state.guard, None
            guard.release()
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

    ``run_in_executor``, ``executor`` and ``loop`` are accepted as filelock
    has them and change nothing: no wait runs in an executor.
    """

    def __init__(  # noqa: PLR0913
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = 0o644,
        thread_local: bool = False,  # noqa: FBT001, FBT002
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        loop: Any = None,
        run_in_executor: bool = True,
        executor: Any = None,
    ) -> None:
        if thread_local and run_in_executor:
            msg = "run_in_executor is not supported when thread_local is True"
            raise ValueError(msg)
        super().__init__(
            lock_file, timeout, mode, thread_local, blocking=blocking, is_singleton=is_singleton
        )
        self._loop = loop
        self._run_in_executor = run_in_executor
        self._executor = executor

    @property
    def run_in_executor(self) -> bool:
        """As given (waits never run in an executor here)."""
        return self._run_in_executor

    @property
    def executor(self) -> Any:
        """As given (waits never run in an executor here)."""
        return self._executor

    @property
    def loop(self) -> Any:
        """As given."""
        return self._loop

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
        begun = self._begin(timeout, blocking)
        if begun is not None:
            lock, guard, wait = begun
            if guard is None:
                try:
                    guard = await lock.acquire_async(wait)
                except (WouldBlock, LockTimeout):
                    raise self._timed_out() from None
                except LockyardError as e:
                    raise _as_os_error(e, self._lock_file) from e
            self._acquired(guard)
        return AsyncAcquireReturnProxy(lock=self)

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
