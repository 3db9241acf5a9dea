"""py-lockyard rows for the peers benchmark harness (its ``--extra``
option): the harness's own Python workloads (W1, W2, W3), run unchanged
with ``lockyard.filelock``'s locks in place of filelock's, so both
libraries do exactly the same work in the same run.

Run it with an interpreter that has lockyard (the wheel) and filelock (the
harness imports it for its own rows), through a two-line wrapper, e.g.::

    printf '#!/bin/sh\\nexec %s %s "$@"\\n' "$VENV/bin/python" "$PWD/python/bench/peers_worker.py" > /tmp/py-lockyard
    chmod +x /tmp/py-lockyard
    PEERS=path/to/peers  # holds run.sh and py/harness.py
    "$PEERS/run.sh" --only 'py-' --extra /tmp/py-lockyard

``PEERS_PY`` names the directory of ``harness.py`` when it is not
``../../../shared/peers/py`` from this file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ.get("PEERS_PY", str(HERE.parents[2] / "shared" / "peers" / "py")))

import harness  # noqa: E402  (found through PEERS_PY)

from lockyard.filelock import AsyncFileLock, FileLock, SoftFileLock  # noqa: E402

ROWS = {
    "py-lockyard": dict(
        factory=FileLock,
        is_async=False,
        style="lock object kept",
        wait="event",
        notes="lockyard.filelock.FileLock, defaults: OS lock, woken by a file event, holder record",
    ),
    "py-lockyard-async": dict(
        factory=AsyncFileLock,
        is_async=True,
        style="lock object kept",
        wait="event",
        notes="lockyard.filelock.AsyncFileLock: the wait runs on lockyard's reactor thread, no executor",
    ),
    "py-lockyard-soft": dict(
        factory=SoftFileLock,
        is_async=False,
        style="sidecar record",
        wait="event",
        notes="lockyard.filelock.SoftFileLock: a sidecar lock file with holder record, woken by a file event",
    ),
}


def main() -> int:
    if sys.argv[1:2] == ["list"]:
        for name, row in ROWS.items():
            print(
                json.dumps(
                    {
                        "id": name,
                        "lang": "python",
                        "crate": "lockyard (Python)",
                        "wait": row["wait"],
                        "style": row["style"],
                        "api": "asyncio" if row["is_async"] else "sync",
                        "notes": row["notes"],
                    }
                )
            )
        return 0
    harness.IMPLS.clear()
    harness.IMPLS.update(ROWS)
    return harness.main()


if __name__ == "__main__":
    sys.exit(main())
