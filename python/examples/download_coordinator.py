"""The download coordinator: several processes need the same toolchain;
exactly one downloads and unpacks it, the others wait for it and use it,
and later runs find it installed. A new version is fetched once again.

    python examples/download_coordinator.py [CACHE_DIR]

Starts 4 worker processes (multiprocessing's "spawn") that all call
``install("1.2.3")`` at once, then prints who did the work.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import lockyard


def install(cache: Path, version: str) -> Path:
    """The toolchain's directory, downloaded by whichever process gets
    there first."""
    target = cache / f"tool-{version}"

    def download() -> str:
        # Stands in for a slow download and unpack. Written to a temporary
        # name and renamed, so a crash halfway leaves no half-installed
        # directory; the run-once marker is only written after it returns.
        staging = cache / f".tool-{version}.{os.getpid()}"
        staging.mkdir(parents=True)
        time.sleep(0.5)
        (staging / "bin").write_text(f"tool {version}\n")
        staging.rename(target)
        return f"downloaded by {os.getpid()}"

    ran, said = lockyard.once(cache / "tool.installed", download, key=version)
    print(f"process {os.getpid()}: {said if ran else 'already installed'}", flush=True)
    return target


def worker(cache: str) -> None:
    target = install(Path(cache), "1.2.3")
    assert (target / "bin").read_text() == "tool 1.2.3\n"


def main() -> int:
    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=worker, args=(str(cache),)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    installed = sorted(p.name for p in cache.iterdir() if p.name.startswith("tool-"))
    print(f"installed: {installed}; failed workers: {failed}")
    return 0 if installed == ["tool-1.2.3"] and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
