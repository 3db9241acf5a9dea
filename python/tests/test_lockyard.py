"""The package's own tests: filelock's API on lockyard, with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lockyard.filelock import FileLock, SoftFileLock, Timeout

HOLD = textwrap.dedent(
    """
    import sys, time
    from lockyard.filelock import {cls}
    lock = {cls}(sys.argv[1])
    with lock:
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def holder(path: Path, cls: str = "FileLock") -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(cls=cls), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


@pytest.mark.parametrize("cls", ["FileLock", "SoftFileLock"])
def test_another_process_holds_it_until_it_lets_go(tmp_path: Path, cls: str) -> None:
    path = tmp_path / "a.lock"
    child = holder(path, cls)
    lock = {"FileLock": FileLock, "SoftFileLock": SoftFileLock}[cls](path)
    with pytest.raises(Timeout) as caught:
        lock.acquire(timeout=0.2)
    assert caught.value.lock_file == str(path)
    with pytest.raises(Timeout):
        lock.acquire(blocking=False)
    started = time.monotonic()
    threading.Timer(0.3, lambda: child.communicate("\n")).start()
    with lock.acquire(timeout=10):
        assert lock.is_locked
        assert time.monotonic() - started < 5
    assert not lock.is_locked
    child.wait(timeout=10)


def test_reentrant_per_object_and_released_on_the_last(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "b.lock")
    with lock:
        with lock:
            assert lock.lock_counter == 2
        assert lock.is_locked
    assert lock.lock_counter == 0
    lock.acquire()
    lock.acquire()
    lock.release(force=True)
    assert not lock.is_locked


def test_other_threads_run_while_one_waits(tmp_path: Path) -> None:
    path = tmp_path / "c.lock"
    child = holder(path)
    ticks = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    with pytest.raises(Timeout):
        FileLock(path).acquire(timeout=0.5)
    stop.set()
    ticker.join()
    assert len(ticks) > 10, "the interpreter was held while waiting"
    child.communicate("\n")


def test_singletons_and_a_data_file_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "d.lock"
    assert FileLock(path, is_singleton=True) is FileLock(path, is_singleton=True)
    assert FileLock(path) is not FileLock(path)
    data = tmp_path / "data.json"
    data.write_text('{"keep": true}')
    with FileLock(data):
        pass
    assert data.read_text() == '{"keep": true}'


def test_a_keyboard_interrupt_ends_a_wait_with_nothing_held(tmp_path: Path) -> None:
    path = tmp_path / "e.lock"
    child = holder(path)
    script = textwrap.dedent(
        """
        import sys
        from lockyard.filelock import FileLock
        print("waiting", flush=True)
        try:
            FileLock(sys.argv[1]).acquire()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        sys.stdin.readline()  # alive while the parent checks
        """
    )
    waiter = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiter.stdout is not None
        assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(0.3)  # inside the wait
        waiter.send_signal(signal.SIGINT)
        assert waiter.stdout.readline().strip() == "interrupted"
        # The holder lets go while the interrupted process lives on: the
        # abandoned wait took nothing.
        child.communicate("\n")
        with FileLock(path).acquire(timeout=5):
            pass
        waiter.communicate("\n", timeout=20)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(timeout=20)


def test_an_async_wait_leaves_the_loop_running_and_is_woken_by_the_release(tmp_path: Path) -> None:
    import asyncio

    from lockyard.filelock import AsyncFileLock

    path = tmp_path / "f.lock"
    child = holder(path)

    async def main() -> tuple[int, float]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        lock = AsyncFileLock(path)
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, lambda: child.communicate("\n"))
        started = time.monotonic()
        async with await lock.acquire(timeout=10):
            took = time.monotonic() - started
            assert lock.is_locked
        ticker.cancel()
        return ticks, took

    ticks, took = asyncio.run(main())
    assert ticks > 20, f"the loop stalled while waiting ({ticks} ticks)"
    assert 0.4 < took < 5, took


def test_a_cancelled_async_wait_leaves_nothing_held(tmp_path: Path) -> None:
    import asyncio

    from lockyard.filelock import AsyncFileLock

    path = tmp_path / "g.lock"
    child = holder(path)

    async def main() -> None:
        lock = AsyncFileLock(path)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lock.acquire(), timeout=0.3)
        assert not lock.is_locked
        with pytest.raises(Timeout):
            await lock.acquire(timeout=0.2)

    asyncio.run(main())
    child.communicate("\n")
    child.wait(timeout=10)
    # Nothing of the cancelled waits holds it.
    with FileLock(path).acquire(timeout=5):
        pass
