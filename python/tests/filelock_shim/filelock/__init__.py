"""filelock's import name, redirected to lockyard (for running filelock's
own tests against lockyard)."""
from lockyard.filelock import *  # noqa: F403
from lockyard.filelock import (  # noqa: F401
    AcquireReturnProxy,
    AsyncAcquireReturnProxy,
    AsyncFileLock,
    AsyncSoftFileLock,
    BaseAsyncFileLock,
    BaseFileLock,
    FileLock,
    SoftFileLock,
    Timeout,
)

UnixFileLock = FileLock
WindowsFileLock = FileLock
__version__ = "lockyard"
