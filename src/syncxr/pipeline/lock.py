"""An exclusive lock on a dataset folder, so two runs never write into one folder at once.

`fcntl.flock` on `<out>/.syncxr.lock`: the kernel drops it when the holder exits, even on
SIGKILL, so a killed run never leaves a stale lock. The file holds the holder's PID and command
for the message the second run prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Optional

from syncxr.errors import UserError

LOCK_NAME = ".syncxr.lock"


class FolderLock:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: Optional[int] = None

    def __enter__(self) -> "FolderLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"{self.path.parent} is being written by another syncxr run ({holder}); wait for it to "
                "finish, stop it, or choose another --out folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv[:3])}".encode())
        self._fd = fd
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; the file stays (unlinking would race)
            self._fd = None
