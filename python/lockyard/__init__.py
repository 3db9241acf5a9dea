"""lockyard for Python: file locks that wait without polling.

``lockyard.filelock`` offers filelock's API (``FileLock``, ``SoftFileLock``,
``Timeout``) on lockyard's engine: a waiting process is woken by the
holder's release, not by a poll.
"""

from lockyard.filelock import AsyncFileLock, AsyncSoftFileLock, FileLock, SoftFileLock, Timeout

__all__ = ["AsyncFileLock", "AsyncSoftFileLock", "FileLock", "SoftFileLock", "Timeout"]
