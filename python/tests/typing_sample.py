"""Not a test: mypy --strict checks this against the package's stubs
(.ci/python-tests), so editors and type checkers see the API."""

from __future__ import annotations

import lockyard
from lockyard.filelock import AsyncFileLock, FileLock, Timeout


def sync_use(path: str) -> int | None:
    lock = lockyard.Lock(path, soft=True, lease=30.0, owner="cli")
    with lock.acquire(timeout=5) as guard:
        guard.keep_alive()
        guard.check()
        holder: lockyard.Holder | None = lock.holder()
        if holder is not None:
            print(holder.pid, holder.owner, holder.expires_at)
        return guard.token


async def async_use(path: str) -> None:
    async with lockyard.Lock(path).acquire_async(timeout=1.0) as guard:
        print(guard.mode)
    guard2: lockyard.Guard = await lockyard.Lock(path).acquire_async()
    guard2.release()
    async with AsyncFileLock(path + ".2"):
        pass


def filelock_use(path: str) -> None:
    try:
        with FileLock(path, timeout=1):
            pass
    except Timeout as e:
        print(e.lock_file)
    ran, value = lockyard.once(path + ".done", lambda: 42, key="v1")
    print(ran, value)
    for info in lockyard.LockDir(path + ".d").list():
        print(info.name, info.state)

