"""lockyard for Python: locks that wait without polling.

- ``lockyard.filelock``: filelock's API (``FileLock``, ``SoftFileLock``,
  ``AsyncFileLock``, ``Timeout``...) on lockyard's engine; change one import.
- ``Lock``, ``Guard``, ``Holder``: a lock file with holder records, fencing
  tokens, shared holds and leases kept alive in the background.
- ``LockDir``: named locks in a directory; ``once``: run-once across
  processes; ``PgLocks`` / ``ObjectLocks``: the same locks on PostgreSQL or
  object storage, when the package was built with those features.
"""

from lockyard._lockyard import FEATURES, Guard, Holder, Lock, LockDir, LockInfo, once
from lockyard.errors import LockLost, LockTimeout, LockyardError, WouldBlock
from lockyard.filelock import AsyncFileLock, AsyncSoftFileLock, FileLock, SoftFileLock, Timeout

__all__ = [
    "FEATURES",
    "AsyncFileLock",
    "AsyncSoftFileLock",
    "FileLock",
    "Guard",
    "Holder",
    "Lock",
    "LockDir",
    "LockInfo",
    "LockLost",
    "LockTimeout",
    "LockyardError",
    "SoftFileLock",
    "Timeout",
    "WouldBlock",
    "once",
]

if "postgres" in FEATURES:
    from lockyard._lockyard import PgLocks  # noqa: F401

    __all__ += ["PgLocks"]
if {"s3", "gcs", "azure"} & set(FEATURES):
    from lockyard._lockyard import ObjectLocks  # noqa: F401

    __all__ += ["ObjectLocks"]
