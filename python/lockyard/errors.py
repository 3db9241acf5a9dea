"""lockyard's exceptions. Each names the lock in its message and carries:

- ``kind``: what went wrong (``"would_block"``, ``"timed_out"``, ``"lost"``,
  ``"invalid_path"``, ``"invalid_config"``, ``"unsupported"``,
  ``"exclusive_only"``, ``"not_a_file"``, ``"symlink"``, ``"create_dir"``,
  ``"io"``);
- ``lock``: the lock file's path, or the lock's name;
- ``holder``: the holder's record (a ``Holder``) when the lock was busy and
  its holder wrote one, else None;
- ``waited``: seconds waited, for a wait that ran out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LockLost", "LockTimeout", "LockyardError", "WouldBlock"]


class LockyardError(OSError):
    """A lock could not be taken, kept or released."""

    kind: str = "io"
    lock: str = ""
    holder: Any = None
    waited: float | None = None


class WouldBlock(LockyardError, BlockingIOError):  # noqa: N818 (says what happened)
    """The lock is busy and the call was not to wait (``timeout=0``)."""


class LockTimeout(LockyardError, TimeoutError):
    """The lock stayed busy until the timeout."""


class LockLost(LockyardError):  # noqa: N818 (says what happened)
    """A soft lock or lease was taken over by another process: work that
    depended on it must stop (its fencing token is stale)."""
