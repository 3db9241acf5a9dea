"""Child processes for the tests: each runs a script, talks over its
stdin/stdout, and is killed and reaped when the test ends, however it
ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest


class Child:
    """A Python process running ``script`` with ``args``."""

    def __init__(self, script: str, *args: object) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def expect(self, line: str, timeout: float = 20) -> str:
        """Waits (up to ``timeout`` seconds) for the next line, which must
        start with ``line``; returns it."""
        assert self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                pytest.fail(f"child {self.pid} said nothing in {timeout} s (waiting for {line!r})")
        got = self.process.stdout.readline().strip()
        assert got.startswith(line), f"child said {got!r}, not {line!r}"
        return got

    def say(self, line: str = "") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 20) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=20)


@pytest.fixture
def child() -> Iterator[type[Child]]:
    """``child(script, *args)`` starts a child; all are reaped at the end."""
    started: list[Child] = []

    def start(script: str, *args: object) -> Child:
        c = Child(script, *args)
        started.append(c)
        return c

    yield start  # type: ignore[misc]
    for c in started:
        c.kill()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
