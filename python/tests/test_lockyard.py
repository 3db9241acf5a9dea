"""The package's own tests: filelock's API on lockyard, with real processes."""

from __future__ import annotations

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
        import signal, sys, threading, os
        from lockyard.filelock import FileLock
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            FileLock(sys.argv[1]).acquire()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=20
    )
    assert out.stdout.strip() == "interrupted", out.stderr
    child.communicate("\n")
    with FileLock(path).acquire(timeout=5):
        pass
